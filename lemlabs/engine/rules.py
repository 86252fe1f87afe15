"""Rule records: each rule is data in a pack file (``thyroid.toml``, ``platelets.toml``,
``renal.toml``, ``monitoring.toml``), loaded and checked here.

A record names its id, code, severity, the condition (a list of expressions, see
:mod:`lemlabs.engine.language`), the message and action with ``{threshold.key}`` placeholders for
every number, and its sources. ``phase`` says what it matches: ``result`` (one result), ``finding``
(a join of two findings, ``first`` and ``second``) or ``schedule`` (one schedule row). ``grade``
and ``notes`` name functions of :mod:`lemlabs.engine.functions`. A pack may also declare derived
fact ``fields`` (an expression whose truth every result fact carries as 0/1).
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from lemlabs.engine.functions import FUNCTIONS
from lemlabs.engine.language import (
    All,
    Any_,
    Field,
    Node,
    day_bounds,
    evaluate,
    own,
    parse,
    threshold_keys,
    walk,
)
from lemlabs.errors import RuleDefinitionError
from lemlabs.vocabulary import Condition, Severity, format_value

if TYPE_CHECKING:
    import pandas as pd

Phase = Literal["result", "finding", "schedule"]
PACKS = ("thyroid", "platelets", "renal", "monitoring")
RESULT_FIELDS = (
    "analyte",
    "lower",
    "upper",
    "flag",
    "pair_flag",
    "rise_ratio",
    "fall_fraction",
    "rise_48h",
    "day",
    "swing_until",
    "micro_neg",
    "sex",
)
"""What a result fact holds (besides derived fields); numbers in canonical units."""
SCHEDULE_FIELDS = ("missed",)
ALIASES: dict[str, tuple[str, ...]] = {  # what a rule of each phase calls the facts it matches
    "result": ("m",),
    "finding": ("first", "second"),
    "schedule": ("m",),
}
_PLACEHOLDER = re.compile(r"\{([a-z0-9_]+\.[a-z0-9_]+)(?::([a-z]+))?\}")
_RULE_KEYS = {
    "id",
    "code",
    "severity",
    "phase",
    "when",
    "first",
    "second",
    "message",
    "action",
    "sources",
    "cites",
    "grade",
    "notes",
    "worst",
    "superseded_by",
}


def formatted(value: Any, style: str | None = None) -> str:
    """A threshold as a message shows it: ``{key}`` plain, ``{key:grade}`` as a dipstick grade
    (1 → 1+), ``{key:fraction}`` as a share (0.5 → half, else a percentage), ``{key:monthly}``
    an interval in days as the label says it (91 → 3-monthly)."""
    if style == "grade":
        return format_value(value, "grade")
    if style == "fraction":
        return "half" if value == 0.5 else f"{value * 100:g} %"
    if style == "monthly":  # an interval in days as the label says it: 91 → 3-monthly
        months = round(value / 30.44)
        return "monthly" if months <= 1 else f"{months}-monthly"
    return f"{value:g}" if not isinstance(value, str) else value


@dataclass(frozen=True)
class Rule:
    """One rule record, parsed: ``when`` pairs each matched fact's alias with its condition."""

    id: str
    code: str
    condition: Condition
    severity: Severity
    phase: Phase
    when: tuple[tuple[str, Node], ...]
    written: tuple[tuple[str, tuple[str, ...]], ...]
    message: str
    action: str
    sources: tuple[str, ...]
    cites: tuple[str, ...] = ()
    grade: str | None = None
    notes: str | None = None
    worst: Literal["lowest", "highest"] | None = None
    """Which extreme of an episode the message reports (the lowest platelet count, ...)."""
    superseded_by: str | None = None
    """A composite's hit is dropped when a hit of this code matched the same ``first`` finding."""

    @property
    def aliases(self) -> tuple[str, ...]:
        return tuple(alias for alias, _ in self.when)

    @cached_property
    def thresholds(self) -> tuple[str, ...]:
        """Every threshold the rule reads: conditions, message, action, functions, ``cites``."""
        keys = [key for _, node in self.when for key in threshold_keys(node)]
        keys += [match.group(1) for match in _PLACEHOLDER.finditer(self.message + self.action)]
        for name in (self.grade, self.notes):
            keys += FUNCTIONS[name].thresholds if name else ()
        return tuple(dict.fromkeys([*keys, *self.cites]))

    def text(self, thresholds: Mapping[str, Any]) -> tuple[str, str]:
        """The message and the action with the effective thresholds filled in."""

        def fill(match: re.Match[str]) -> str:
            return formatted(thresholds[match.group(1)], match.group(2))

        return _PLACEHOLDER.sub(fill, self.message), _PLACEHOLDER.sub(fill, self.action)

    def source(self, thresholds: Any) -> str:
        """Citations of the rule and of every threshold it reads, without repeats."""
        cited = [*self.sources]
        grade = FUNCTIONS[self.grade] if self.grade else None
        for key in self.thresholds:
            cited.append(thresholds.entry(key).source)
            if grade is not None and grade.cites is not None and key == grade.thresholds[-1]:
                cited += grade.cites(thresholds)
        return "; ".join(dict.fromkeys(cited))

    def grades_of(self, results: pd.DataFrame, thresholds: Mapping[str, Any]) -> list[int | None]:
        """The rule's CTCAE grade of each result (a table of context rows), ``None`` for none."""
        if not self.grade:
            return [None] * len(results)
        grades = FUNCTIONS[self.grade].run(results, thresholds)
        return [int(grade) if grade > 0 else None for grade in grades]

    def notes_of(self, fact: Mapping[str, Any], thresholds: Mapping[str, Any]) -> list[str]:
        notes: list[str] = FUNCTIONS[self.notes].run(fact, thresholds) if self.notes else []
        return notes


def gates(rules: Iterable[Rule]) -> tuple[Node | None, ...]:
    """What the rules ask of one fact alone, per matched fact (a join's conditions on the other
    fact left out); ``None`` where any fact may match. A fact that passes none of them cannot
    take part in any of their matches."""
    return tuple(own(node) for rule in rules for _, node in rule.when)


def join_reach(
    rules: Iterable[Rule], facts: pd.DataFrame, thresholds: Mapping[str, Any]
) -> int | None:
    """How many days apart (``day``) the two facts of any match of these joins can be, at most,
    among ``facts`` (a table of finding facts): for each join, its second condition's bounds
    (:func:`~lemlabs.engine.language.day_bounds`) evaluated on every fact that can be its
    ``first``, so that a bound by another field (``day <= first.swing_until``) reaches as far
    as the facts say. ``None`` when some join does not bound ``day`` on both sides (or a bound
    is not a finite number): then any two facts may match, however far apart. Rules that are
    not joins are left out; 0 when no join can match."""
    reach = 0.0
    for rule in rules:
        if len(rule.when) != 2:
            continue
        (_, first), (_, second) = rule.when
        bounds = day_bounds(second, thresholds)
        if bounds is None:
            return None
        alone = own(first)
        firsts = facts if alone is None else facts[evaluate(alone, facts, thresholds)]
        if firsts.empty:
            continue
        day = firsts["day"].to_numpy(dtype=float)
        lower, upper = (
            [firsts[name].to_numpy(dtype=float) + offset - day for name, offset in side]
            for side in bounds
        )
        # second.day - first.day lies within [max of the lower bounds, min of the upper ones]
        furthest = float(np.maximum(np.min(upper, axis=0), -np.max(lower, axis=0)).max())
        if not math.isfinite(furthest):
            return None
        reach = max(reach, furthest)
    return math.ceil(reach)


@dataclass(frozen=True)
class RuleBook:
    """Every rule, and the derived fact fields the packs declare."""

    rules: tuple[Rule, ...]
    fields: tuple[tuple[str, Node], ...]
    titles: dict[str, str]

    @cached_property
    def by_id(self) -> dict[str, Rule]:
        return {rule.id: rule for rule in self.rules}

    def phase(self, phase: Phase) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.rules if rule.phase == phase)

    def reads(self, phase: Phase) -> tuple[str, ...]:
        """The fact fields the phase's conditions read: all a fact needs to carry."""
        nodes = [node for rule in self.phase(phase) for _, node in rule.when]
        return tuple(sorted({name for node in nodes for name in _fields_of(node)}))


def _expressions(raw: Any, where: str) -> tuple[str, ...]:
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        raise RuleDefinitionError(f"{where}: expected a list of expressions")
    return tuple(items)


def _tree(texts: tuple[str, ...], keys: set[str], aliases: tuple[str, ...]) -> Node:
    trees = tuple(parse(text, keys, aliases) for text in texts)
    return trees[0] if len(trees) == 1 else All(trees)


def _has_or(node: Node) -> bool:
    return isinstance(node, Any_) or (isinstance(node, All) and any(map(_has_or, node.parts)))


def _fields_of(node: Node) -> list[str]:
    names = []
    for comparison in walk(node):
        names.append(comparison.field)
        if isinstance(comparison.operand, Field):
            names.append(comparison.operand.name)
    return names


def _rule(
    raw: Mapping[str, Any], pack: Mapping[str, Any], keys: set[str], derived: set[str]
) -> Rule:
    where = f"rule {raw.get('id', '?')!r}"
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise RuleDefinitionError(f"{where}: unknown entries {', '.join(sorted(unknown))}")
    phase: Phase = raw.get("phase", "result")
    if phase not in ALIASES:
        raise RuleDefinitionError(f"{where}: phase must be result, finding or schedule")
    names = ("first", "second") if phase == "finding" else ("when",)
    written = tuple((name, _expressions(raw.get(name), f"{where} {name}")) for name in names)
    aliases = ALIASES[phase]
    when = tuple(
        (alias, _tree(texts, keys, aliases if alias == "second" else ()))
        for alias, (_, texts) in zip(aliases, written, strict=True)
    )
    known = {
        "result": {*RESULT_FIELDS, *derived},
        "finding": {*RESULT_FIELDS, *derived, "code"},
        "schedule": set(SCHEDULE_FIELDS),
    }[phase]
    for _, node in when:
        bad = sorted(set(_fields_of(node)) - known)
        if bad:
            raise RuleDefinitionError(f"{where}: unknown fact fields {', '.join(bad)}")
    if phase == "finding" and any(_has_or(node) for _, node in when):
        # durable-rules 2.0.28 ignores a join's other conditions when one is an "or" (seen with
        # the first): a join says each alternative as a rule of its own
        raise RuleDefinitionError(f"{where}: the facts of a join cannot use 'or'")
    for name in (raw.get("grade"), raw.get("notes")):
        if name is not None and name not in FUNCTIONS:
            raise RuleDefinitionError(f"{where}: no function named {name!r}")
    try:
        rule = Rule(
            id=str(raw["id"]),
            code=str(raw["code"]),
            condition=Condition(pack["condition"]),
            severity=Severity.parse(raw["severity"]),
            phase=phase,
            when=when,
            written=written,
            message=str(raw["message"]),
            action=str(raw["action"]),
            sources=(str(pack["source"]), *raw.get("sources", ())),
            cites=tuple(raw.get("cites", ())),
            grade=raw.get("grade"),
            notes=raw.get("notes"),
            worst=raw.get("worst"),
            superseded_by=raw.get("superseded_by"),
        )
    except KeyError as error:
        raise RuleDefinitionError(f"{where}: {error.args[0]!r} is missing") from None
    except ValueError as error:
        raise RuleDefinitionError(f"{where}: {error}") from None
    missing = sorted(set(rule.thresholds) - keys)
    if missing:
        raise RuleDefinitionError(f"{where}: unknown thresholds {', '.join(missing)}")
    return rule


def read_packs(texts: Iterable[str], keys: set[str]) -> RuleBook:
    """Rule packs (TOML text) checked against the threshold keys there are."""
    packs = [tomllib.loads(text) for text in texts]
    fields = tuple(
        (name, parse(expression, keys))
        for pack in packs
        for name, expression in pack.get("fields", {}).items()
    )
    derived = {name for name, _ in fields}
    rules = tuple(_rule(raw, pack, keys, derived) for pack in packs for raw in pack.get("rule", []))
    titles = {code: str(title) for pack in packs for code, title in pack["titles"].items()}
    untitled = sorted({rule.code for rule in rules} - set(titles))
    if untitled:
        raise RuleDefinitionError(f"codes without a title: {', '.join(untitled)}")
    ids = [rule.id for rule in rules]
    twice = sorted({rule_id for rule_id in ids if ids.count(rule_id) > 1})
    if twice:
        raise RuleDefinitionError(f"rule ids used twice: {', '.join(twice)}")
    return RuleBook(rules, fields, titles)


def pack_path(name: str) -> Path:
    """Where a bundled pack lives (for reading it, or copying it to write your own)."""
    return Path(str(resources.files("lemlabs").joinpath(f"rules/{name}.toml")))


@cache
def rule_book() -> RuleBook:
    """The bundled rule packs, checked against the default threshold table."""
    from lemlabs.packs.thresholds import default_thresholds

    texts = [pack_path(name).read_text("utf-8") for name in PACKS]
    return read_packs(texts, set(default_thresholds().keys()))
