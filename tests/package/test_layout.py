"""The package's shape: dependencies point inward, and no module imports, directly or through
others, a module that imports it (function-level imports count; ``if TYPE_CHECKING:`` imports,
which never run, do not)."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest

import lemlabs

ROOT = Path(lemlabs.__file__).parent
# inner → outer; a module may import its own layer and the layers inside it
LAYERS = (
    ("lemlabs.version", "lemlabs.errors", "lemlabs.vocabulary", "lemlabs.tables", "lemlabs.models"),
    ("lemlabs.packs", "lemlabs.ctcae", "lemlabs.engine"),
    ("lemlabs.stages",),
    ("lemlabs.formats",),
    ("lemlabs.pipeline", "lemlabs.frame", "lemlabs.streaming"),
    ("lemlabs.dask", "lemlabs.cli", "lemlabs.strategies", "lemlabs.synthetic", "lemlabs"),
)
# outward on purpose: Finding.to_fhir() and to_cds_card() call the FHIR writer when asked (it
# never imports the models at run time, so no circle: see test_no_import_circle)
OUTWARD = {("lemlabs.models", "lemlabs.formats.fhir")}


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _checked_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The lemlabs modules ``name`` imports at run time (anywhere in it)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    pending: list[ast.AST] = [ast.parse(path.read_text("utf-8"))]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and _checked_only(node):
            pending += node.orelse
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    [*package.split(".")[: len(package.split(".")) - node.level + 1], base]
                ).rstrip(".")
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in modules else base)
        pending += list(ast.iter_child_nodes(node))
    return {module for module in found if module in modules and module != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, name, modules) for name, path in modules.items()}


def _layer(name: str) -> int:
    for number, layer in enumerate(LAYERS):
        if any(
            name == prefix or name.startswith(prefix + ".")
            for prefix in layer
            if prefix != "lemlabs"
        ):
            return number
    return len(LAYERS) - 1  # lemlabs itself, examples, __main__


def _circles(graph: dict[str, set[str]]) -> list[str]:
    """Every path that leads from a module back to itself."""
    circles = []
    for start in sorted(graph):
        stack = [(start, [start])]
        seen = set()
        while stack:
            node, path = stack.pop()
            for target in sorted(graph[node]):
                if target == start:
                    circles.append(" → ".join([*path, start]))
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, [*path, target]))
    return circles


def test_no_import_circle() -> None:
    graph = _graph()
    assert "lemlabs.stages.normalise" in graph["lemlabs.pipeline"]  # the graph is read
    assert _circles(graph) == []


def test_the_circle_check_sees_one_through_others() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _circles(graph) == ["a → b → c → a", "b → c → a → b", "c → a → b → c"]


def test_dependencies_point_inward() -> None:
    outward = sorted(
        f"{name} → {target}"
        for name, targets in _graph().items()
        for target in targets
        if _layer(target) > _layer(name) and (name, target) not in OUTWARD
    )
    assert outward == []


def test_old_module_names_import_with_a_warning_naming_the_new_place() -> None:
    import importlib
    import sys

    from lemlabs._moved import MOVED, PUBLIC

    for old, new in sorted(MOVED.items()):  # a package before its modules
        sys.modules.pop(old, None)
        with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
            module = importlib.import_module(old)
        assert module is importlib.import_module(new)
        assert module.__spec__ is not None and module.__spec__.name == new
    # the names the old modules were imported for (imported above: no second warning)
    from lemlabs.rules.thresholds import default_thresholds, load_thresholds, site_template

    from lemlabs.rules import ALL_RULES, TITLES  # noqa: F401

    assert load_thresholds(None) is default_thresholds() and site_template
    for old, new in PUBLIC.items():
        sys.modules.pop(old, None)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert importlib.import_module(old) is importlib.import_module(new)
    assert callable(lemlabs.normalise) and callable(lemlabs.schedule)  # not the modules
