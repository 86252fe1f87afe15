"""Module names from before the package was arranged by pipeline stage, and where each went.

``import lemlabs.ingest`` still works: it gives :mod:`lemlabs.stages.ingest` with a
:class:`DeprecationWarning` naming the new place. ``lemlabs.fhir`` and ``lemlabs.plot`` are public
names of :mod:`lemlabs.formats.fhir` and :mod:`lemlabs.formats.plot`, without a warning.
(``lemlabs.normalise`` and ``lemlabs.schedule`` are the functions; their modules are
:mod:`lemlabs.stages.normalise` and :mod:`lemlabs.stages.schedule`.)
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

PUBLIC = {"lemlabs.fhir": "lemlabs.formats.fhir", "lemlabs.plot": "lemlabs.formats.plot"}
MOVED = {
    "lemlabs.adlb": "lemlabs.formats.adlb",
    "lemlabs.analytes": "lemlabs.packs.analytes",
    "lemlabs.context": "lemlabs.stages.context",
    "lemlabs.display": "lemlabs.packs.display",
    "lemlabs.excel": "lemlabs.formats.excel",
    "lemlabs.export": "lemlabs.formats.export",
    "lemlabs.facts": "lemlabs.stages.facts",
    "lemlabs.findings": "lemlabs.stages.findings",
    "lemlabs.ingest": "lemlabs.stages.ingest",
    "lemlabs.memory": "lemlabs.stages.findings.memory",
    "lemlabs.reference": "lemlabs.stages.reference",
    "lemlabs.report": "lemlabs.formats.report",
    "lemlabs.rules.conditions": "lemlabs.engine.language",
    "lemlabs.rules.listing": "lemlabs.packs.listing",
    "lemlabs.rules.records": "lemlabs.engine.rules",
    "lemlabs.rules.thresholds": "lemlabs.packs",
    "lemlabs.rules": "lemlabs.packs",
    "lemlabs.scoring": "lemlabs.pipeline",
    "lemlabs.sdtm": "lemlabs.formats.sdtm",
    "lemlabs.units": "lemlabs.packs.units",
    "lemlabs.values": "lemlabs.stages.values",
}


class _Aliases(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old name first and loads it as the module it now is (one module, two names)."""

    def __init__(self) -> None:
        self._specs: dict[str, importlib.machinery.ModuleSpec | None] = {}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED and fullname not in PUBLIC:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        if spec.name in MOVED:
            warnings.warn(
                f"{spec.name} moved to {MOVED[spec.name]}; import it from there",
                DeprecationWarning,
                stacklevel=2,
            )
        module = importlib.import_module(MOVED.get(spec.name) or PUBLIC[spec.name])
        self._specs[spec.name] = module.__spec__  # the import system sets the alias' spec on it
        return module

    def exec_module(self, module: ModuleType) -> None:
        alias = module.__spec__.name if module.__spec__ is not None else ""
        if alias in self._specs:
            module.__spec__ = self._specs.pop(alias)


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, _Aliases) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Aliases())
