"""Rule records: what a pack's ``rules.toml`` says, checked and compiled into :class:`Rule`\\ s.

A pack's rules file holds:

* ``[[rule]]``: one rule — ``id``, ``code``, ``severity``, the condition (``when``, a list of
  expressions that must all hold, see :mod:`lemlabs.engine.language`), the ``message`` and
  ``action`` with ``{threshold.key}`` placeholders for every number, ``sources``, and optionally
  ``ctcae`` (the CTCAE term, or a list of terms one per analyte, that grades its findings),
  ``notes`` (named notes), ``worst`` (the extreme its message reports), ``cites`` (thresholds
  it cites without reading them), ``superseded_by`` (a code: a composite is dropped where that
  code's composite matched the same first finding, a result rule's hit where a finding of that
  code stands on the same result), ``supersedes`` (codes made ``superseded_by`` its own, said
  from the other side). ``phase`` says what it matches:
  ``result`` (one result, the default), ``finding`` (a join of two findings, ``first`` and
  ``second``) or ``schedule`` (one schedule row).
* ``[[ladder]]``: a code whose severities are listed top-down in ``[[ladder.step]]``\\ s; the first
  step that holds wins. Each step becomes a rule (id ``code.severity`` unless it names one) that
  asks what the ladder asks, what the step asks, and not what any step above asks: the
  complements are derived, never written by hand. A step without ``when`` takes what the steps
  above leave (it must be the last).
* ``[fields]``: derived fields every result fact carries, each an expression: arithmetic gives a
  number (``rise_ratio = "lower / baseline"``), a condition a flag, 1 or 0 (``rise = "rise_ratio
  >= renal.rise_ratio_action or ..."``).
* ``[[feature]]``: context features computed from other results of the patient (the general kinds
  of :mod:`lemlabs.stages.context`: ``rise_within``, ``months_later``, ``nearest``,
  ``same_day``), each declared with its parameters.
* ``[notes.NAME]``: a note a finding carries where its ``when`` holds for the result, its ``text``
  with ``{threshold.key}`` and ``{field}`` placeholders; ``on``: codes of any pack whose findings
  carry it too (a pack's word on another pack's findings).
* ``[titles]``: what each code is called where a clinician reads first.

The book of all loaded packs (:func:`compile_book`) checks every name against the thresholds, the
fact fields (:mod:`lemlabs.engine.fields`, the packs' own), the analytes, the notes and the CTCAE
terms there are, and refuses a record that names anything else, naming the file, the record and
the key.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from lemlabs.engine.fields import PHASE_FIELDS, RESULT_FIELDS, FactField
from lemlabs.engine.language import (
    All,
    Any_,
    Comparison,
    Computed,
    Expr,
    Field,
    Node,
    Ref,
    Threshold,
    day_bounds,
    evaluate,
    fields_of,
    names_of,
    negate,
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
ALIASES: dict[str, tuple[str, ...]] = {  # what a rule of each phase calls the facts it matches
    "result": ("m",),
    "finding": ("first", "second"),
    "schedule": ("m",),
}
_PLACEHOLDER = re.compile(r"\{([a-z0-9_]+(?:\.[a-z0-9_]+)?)(?::([a-z]+))?\}")
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
    "ctcae",
    "notes",
    "worst",
    "superseded_by",
    "supersedes",
}
_LADDER_KEYS = {"code", "phase", "when", "sources", "cites", "ctcae", "notes", "worst", "step"}
_STEP_KEYS = {"id", "severity", "when", "message", "action", "sources", "cites", "ctcae", "notes"}
_FEATURE_KINDS: dict[str, dict[str, str]] = {
    # kind: its parameters, each "threshold" (a key or a number), "analytes", "analyte", "pairs",
    # "fields" (names of a result's fields) or a text
    "rise_within": {"analytes": "analytes", "hours": "threshold"},
    "months_later": {"analytes": "analytes", "months": "threshold"},
    "nearest": {"pairs": "pairs", "days": "threshold", "take": "fields"},
    "same_day": {"analytes": "analytes", "of": "analyte", "take": "field", "how": "how"},
    "window": {
        "analytes": "analytes",
        "of": "analytes",
        "before": "threshold",
        "after": "threshold",
        "pick": "pick",
        "by": "expression",
        "take": "expressions",
    },
}
_FEATURE_FIELDS = {"flag", "value", "lower", "upper"}  # what a feature may take of another result
_HOW = {"max", "min"}
_PICK = {"max", "min", "nearest"}


def formatted(value: Any, style: str | None = None) -> str:
    """A threshold or field as a text shows it: ``{key}`` plain, ``{key:grade}`` as a dipstick
    grade (1 → 1+), ``{key:fraction}`` as a share (0.5 → half, else a percentage),
    ``{key:ratio}`` to one decimal, ``{key:monthly}`` an interval in days as the label says it
    (91 → 3-monthly), ``{key:percent}`` a share as a whole percentage, ``{key:value}`` to 4
    significant digits (whole numbers from 10 000 on), ``{key:date}`` a day number as an ISO
    date."""
    if style == "grade":
        return format_value(value, "grade")
    if style == "fraction":
        return "half" if value == 0.5 else f"{value * 100:g} %"
    if style == "ratio":  # a computed ratio, to one decimal: 7.4
        return f"{value:.1f}"
    if style == "monthly":  # an interval in days as the label says it: 91 → 3-monthly
        months = round(value / 30.44)
        return "monthly" if months <= 1 else f"{months}-monthly"
    if style == "percent":  # a share as a whole percentage: 0.581 → 58 %
        return f"{value * 100:.0f} %"
    if style == "value":  # a result, to 4 significant digits: 79.56 (12000, not 1.2e+04)
        shown = f"{value:.4g}"
        return f"{value:.0f}" if "e+" in shown else shown
    if style == "date":  # a day (days since 1970-01-01) as an ISO date
        return (dt.date(1970, 1, 1) + dt.timedelta(days=int(value))).isoformat()
    return f"{value:g}" if not isinstance(value, str) else value


def placeholders(text: str) -> list[tuple[str, str | None]]:
    """The ``{name}`` / ``{name:style}`` placeholders of a text, in order."""
    return [(match.group(1), match.group(2)) for match in _PLACEHOLDER.finditer(text)]


@dataclass(frozen=True)
class Note:
    """A note a finding carries where ``when`` holds for its result: for each result of the
    episode (``of = "each"``), or for the result that reached the finding's severity last only
    (``of = "worst"``: a note naming that result's numbers, not one per result)."""

    name: str
    when: Node
    text: str
    of: str = "each"
    on: tuple[str, ...] = ()
    """Codes (of any pack) whose findings carry it besides the rules that list it: a pack's
    word on another pack's findings (the TTP pattern on the ITP findings it explains)."""

    @property
    def thresholds(self) -> tuple[str, ...]:
        keys = threshold_keys(self.when) + [k for k, _ in placeholders(self.text) if "." in k]
        return tuple(dict.fromkeys(keys))

    def fields(self) -> tuple[str, ...]:
        names = fields_of(self.when) + [k for k, _ in placeholders(self.text) if "." not in k]
        return tuple(dict.fromkeys(names))

    @cached_property
    def row_fields(self) -> tuple[str, ...]:
        """The result's fields the text names (the rest of its placeholders are thresholds)."""
        return tuple(dict.fromkeys(k for k, _ in placeholders(self.text) if "." not in k))

    def fill(self, row: Mapping[str, Any], thresholds: Mapping[str, Any]) -> str:
        """The text with the thresholds and the result's fields filled in."""

        def value(match: re.Match[str]) -> str:
            name, style = match.group(1), match.group(2)
            found = thresholds[name] if "." in name else row[name]
            return formatted(found, style)

        return _PLACEHOLDER.sub(value, self.text)


@dataclass(frozen=True)
class Feature:
    """A context feature a pack declares: ``kind`` with its parameters (:data:`_FEATURE_KINDS`)."""

    name: str
    kind: str
    params: Mapping[str, Any]

    @property
    def analytes(self) -> tuple[str, ...]:
        """The analytes whose results carry it."""
        if self.kind == "nearest":
            return tuple(self.params["pairs"])
        return tuple(self.params["analytes"])

    @property
    def named(self) -> tuple[str, ...]:
        """Every analyte it names (those carrying it and those it looks at)."""
        if self.kind == "nearest":
            return tuple(dict.fromkeys([*self.params["pairs"], *self.params["pairs"].values()]))
        if self.kind == "same_day":
            return (*self.analytes, self.params["of"])
        if self.kind == "window":
            return tuple(dict.fromkeys([*self.analytes, *self.params["of"]]))
        return self.analytes

    @property
    def fields(self) -> tuple[FactField, ...]:
        """The fields it adds to a result fact."""
        if self.kind == "nearest":
            taken = tuple(
                FactField(
                    f"{self.name}_{name}",
                    "text" if name == "flag" else "number",
                    f"the {name} of the nearest result paired with it ({self.name}; '-' or "
                    "missing without one)",
                    missing=name != "flag",
                )
                for name in self.params["take"]
            )
            row = FactField(f"{self.name}_row", "number", "the paired result's row", missing=True)
            return (*taken, row)
        if self.kind == "window":
            picked = (
                f"the {self.params['pick']} result of {', '.join(self.params['of'])} in the window"
            )
            taken = tuple(
                FactField(f"{self.name}_{name}", "number", f"{name} of {picked}", missing=True)
                for name in self.params["take"]
            )
            row = FactField(f"{self.name}_row", "number", f"the row of {picked}", missing=True)
            return (*taken, row)
        return (FactField(self.name, "number", f"{self.kind} ({self.name})", missing=True),)

    @property
    def row_field(self) -> str | None:
        """The field holding the row of the other result it reads (evidence of a finding whose
        rule reads the feature), for the kinds that pick one result."""
        return f"{self.name}_row" if self.kind in ("nearest", "window") else None

    @property
    def thresholds(self) -> tuple[str, ...]:
        return tuple(
            value
            for name, kind in _FEATURE_KINDS[self.kind].items()
            if kind == "threshold" and isinstance(value := self.params[name], str)
        )


@dataclass(frozen=True)
class Derived:
    """A derived field of every result fact: a number (``expression`` arithmetic) or a flag, 1
    or 0 (``expression`` a condition)."""

    name: str
    expression: Node | Expr

    @property
    def kind(self) -> str:
        return (
            "integer"
            if isinstance(self.expression, All | Any_ | Comparison | Computed)
            else "number"
        )

    @property
    def declared(self) -> FactField:
        """How it is declared among the fact fields."""
        return FactField(
            self.name,
            "integer" if self.kind == "integer" else "number",
            f"derived: {self.name}",
            missing=self.kind == "number",
        )

    def reads(self) -> list[str]:
        if self.kind == "integer":
            assert isinstance(self.expression, All | Any_ | Comparison | Computed)
            return fields_of(self.expression)
        return [ref.name for ref in names_of(self.expression) if isinstance(ref, Ref)]  # type: ignore[arg-type]


@dataclass(frozen=True)
class Rule:
    """One rule, parsed: ``when`` pairs each matched fact's alias with its condition as written
    (for words), ``compiled`` with the condition the engine runs (:class:`Computed` comparisons
    read from the fact's columns, see :attr:`RuleBook.computed`)."""

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
    ctcae: tuple[str, ...] = ()
    """The CTCAE term keys that grade its findings (a result by the term of its analyte)."""
    notes: tuple[Note, ...] = ()
    worst: Literal["lowest", "highest"] | None = None
    """Which extreme of an episode the message reports (the lowest platelet count, ...)."""
    superseded_by: str | None = None
    """A composite's hit is dropped when a hit of this code matched the same ``first`` finding;
    a result rule's hit when a finding of this code stands on its result."""
    supersedes: tuple[str, ...] = ()
    """Codes whose rules it makes ``superseded_by`` its own code (said by the pack that needs
    the other, not by the other)."""
    pack: str = ""
    compiled: tuple[tuple[str, Node], ...] = ()

    @property
    def aliases(self) -> tuple[str, ...]:
        return tuple(alias for alias, _ in self.when)

    @cached_property
    def thresholds(self) -> tuple[str, ...]:
        """Every threshold the rule reads: conditions, message, action, notes, CTCAE, ``cites``
        (not those of a note another pack attaches with ``on``: that pack's finding cites them)."""
        keys = [key for _, node in self.when for key in threshold_keys(node)]
        keys += [name for name, _ in placeholders(self.message + self.action)]
        keys += [key for note in self.notes if not note.on for key in note.thresholds]
        keys += ["ctcae.version"] if self.ctcae else []
        return tuple(dict.fromkeys([*keys, *self.cites]))

    def text(self, thresholds: Mapping[str, Any]) -> tuple[str, str]:
        """The message and the action with the effective thresholds filled in."""

        def fill(match: re.Match[str]) -> str:
            return formatted(thresholds[match.group(1)], match.group(2))

        return _PLACEHOLDER.sub(fill, self.message), _PLACEHOLDER.sub(fill, self.action)

    def source(self, thresholds: Any, ctcae_cites: Sequence[str] = ()) -> str:
        """Citations of the rule and of every threshold it reads, without repeats; the CTCAE
        term's (``ctcae_cites``, of the effective version) after the version's."""
        cited = [*self.sources]
        for key in self.thresholds:
            cited.append(thresholds.entry(key).source)
            if key == "ctcae.version":
                cited += ctcae_cites
        return "; ".join(dict.fromkeys(cited))

    def reads(self) -> list[str]:
        """The fact fields its compiled conditions read."""
        return [name for _, node in self.compiled for name in fields_of(node)]


def gates(rules: Iterable[Rule]) -> tuple[Node | None, ...]:
    """What the rules ask of one fact alone, per matched fact (a join's conditions on the other
    fact left out); ``None`` where any fact may match. A fact that passes none of them cannot
    take part in any of their matches."""
    return tuple(own(node) for rule in rules for _, node in rule.compiled)


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
        if len(rule.compiled) != 2:
            continue
        (_, first), (_, second) = rule.compiled
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
    """Every rule of the loaded packs, with the fields, features and notes they declare."""

    rules: tuple[Rule, ...]
    titles: dict[str, str]
    fields: dict[str, FactField]
    """Every field a result fact may hold (base, features, derived), by name."""
    derived: tuple[Derived, ...] = ()
    features: tuple[Feature, ...] = ()
    notes: dict[str, Note] = dataclasses.field(default_factory=dict)
    computed: dict[str, Computed] = dataclasses.field(default_factory=dict)
    """Comparisons the engine reads as columns of the fact (``_c0`` ...): 1 where it holds."""

    @cached_property
    def by_id(self) -> dict[str, Rule]:
        return {rule.id: rule for rule in self.rules}

    def phase(self, phase: Phase) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.rules if rule.phase == phase)

    def reads(self, phase: Phase) -> tuple[str, ...]:
        """The fact fields the phase's compiled conditions read: all a fact needs to carry."""
        return tuple(sorted({name for rule in self.phase(phase) for name in rule.reads()}))

    @cached_property
    def missing(self) -> frozenset[str]:
        """The number fields that may be missing (the engine sees them so: see
        :data:`~lemlabs.engine.fields.MISSING`)."""
        return frozenset(name for name, f in self.fields.items() if f.missing)

    @cached_property
    def paired(self) -> dict[str, tuple[str, ...]]:
        """Per rule id, the row fields of the ``nearest`` and ``window`` features its
        conditions read (through derived fields too): the results they picked are its evidence
        too."""
        depends = {derived.name: set(derived.reads()) for derived in self.derived}
        out = {}
        for rule in self.rules:
            reads = set(fields_of_all(rule.when))
            for derived in reversed(self.derived):  # a derived field reads those above it
                if derived.name in reads:
                    reads |= depends[derived.name]
            rows = tuple(
                feature.row_field
                for feature in self.features
                if feature.row_field and reads & {f.name for f in feature.fields}
            )
            if rows:
                out[rule.id] = tuple(dict.fromkeys(rows))
        return out

    @cached_property
    def row_fields(self) -> tuple[str, ...]:
        """Every row field some rule's evidence reads (:attr:`paired`)."""
        return tuple(dict.fromkeys(field for rows in self.paired.values() for field in rows))

    @cached_property
    def compared_with_baseline(self) -> frozenset[str]:
        """Analytes some result rule compares with their baseline (itself or through a derived
        field): their evidence shows the baseline."""
        depends = {"baseline"}
        for derived in self.derived:  # in declaration order: a field reads those above it
            if depends & set(derived.reads()):
                depends.add(derived.name)
        analytes: set[str] = set()
        for rule in self.phase("result"):
            if depends & set(fields_of_all(rule.when)):
                analytes |= named_analytes(rule.when)
        return frozenset(analytes)


def fields_of_all(when: Iterable[tuple[str, Node]]) -> list[str]:
    return [name for _, node in when for name in fields_of(node)]


def named_analytes(when: Iterable[tuple[str, Node]]) -> set[str]:
    """The analytes a condition names (``analyte == 'x'``)."""
    return {
        str(comparison.operand)
        for _, node in when
        for comparison in walk(node)
        if isinstance(comparison, Comparison)
        and comparison.field == "analyte"
        and comparison.op == "=="
    }


# ---- reading a pack's rules file ----------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One pack's rules file as read: its name (for messages), the pack it belongs to, its
    condition and citation, and its TOML content."""

    where: str
    pack: str
    condition: str
    citation: str
    content: Mapping[str, Any]


class _Checker:
    """Names the loaded packs know: thresholds, fields, analytes, notes, CTCAE terms."""

    def __init__(
        self,
        keys: Collection[str],
        analytes: Collection[str],
        terms: Collection[str],
        fields: Mapping[str, FactField],
    ) -> None:
        self.keys, self.analytes, self.terms = set(keys), set(analytes), set(terms)
        self.fields = dict(fields)
        self.notes: dict[str, Note] = {}
        self.reads: dict[str, tuple[list[str], list[str]]] = {}
        """Per derived or feature field: the thresholds and the fields it reads."""

    def keys_behind(self, names: Iterable[str]) -> list[str]:
        """The thresholds the derived and feature fields among ``names`` read, through the
        fields they read in turn."""
        keys: list[str] = []
        pending, seen = list(names), set()
        while pending:
            name = pending.pop()
            if name in seen or name not in self.reads:
                continue
            seen.add(name)
            own_keys, fields = self.reads[name]
            keys += own_keys
            pending += fields
        return list(dict.fromkeys(keys))

    def tree(self, texts: Any, where: str, aliases: tuple[str, ...] = ()) -> Node:
        items = [texts] if isinstance(texts, str) else texts
        if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
            raise RuleDefinitionError(f"{where}: expected a list of expressions")
        try:
            trees = [parse(text, self.keys, aliases) for text in items]
        except RuleDefinitionError as error:
            raise RuleDefinitionError(f"{where}: {error}") from None
        return _all(trees)

    def check(self, node: Node, where: str, known: Mapping[str, FactField]) -> None:
        bad = sorted(set(fields_of(node)) - set(known))
        if bad:
            raise RuleDefinitionError(f"{where}: unknown fact fields {', '.join(bad)}")
        unknown = sorted(named_analytes((("m", node),)) - self.analytes)
        if unknown:
            raise RuleDefinitionError(
                f"{where}: analyte {unknown[0]!r} is in no loaded pack (known: "
                f"{', '.join(sorted(self.analytes))})"
            )
        for comparison in walk(node):
            self._kinds(comparison, where, known)

    @staticmethod
    def _kinds(
        comparison: Comparison | Computed, where: str, known: Mapping[str, FactField]
    ) -> None:
        """A text compared as a text, a number as a number."""
        if isinstance(comparison, Comparison):
            field = known.get(comparison.field)
            text = isinstance(comparison.operand, str)
            joined = isinstance(comparison.operand, Field)
            if field is not None and not joined and (field.kind == "text") != text:
                what = "a text" if field.kind == "text" else "a number"
                raise RuleDefinitionError(
                    f"{where}: {comparison.field} is {what}, compared with {comparison.operand!r}"
                )
            return
        for side in (comparison.left, comparison.right):
            for ref in names_of(side):
                if isinstance(ref, Ref) and ref.name in known and known[ref.name].kind == "text":
                    raise RuleDefinitionError(f"{where}: {ref.name} is a text, not a number")

    def texts(self, where: str, *texts: str) -> None:
        for text in texts:
            for name, style in placeholders(text):
                if "." not in name:
                    raise RuleDefinitionError(
                        f"{where}: placeholder {{{name}}} is not a threshold key"
                    )
                if name not in self.keys:
                    raise RuleDefinitionError(f"{where}: unknown threshold {name!r} in a text")
                if style not in (None, "grade", "fraction", "ratio", "monthly"):
                    raise RuleDefinitionError(f"{where}: unknown style {style!r} of {{{name}}}")


def _all(parts: Iterable[Node]) -> Node:
    """Every part, nested ``and`` flattened; one part as it is."""
    flat: list[Node] = []
    for part in parts:
        flat += part.parts if isinstance(part, All) else (part,)
    return flat[0] if len(flat) == 1 else All(tuple(flat))


def _has_or(node: Node) -> bool:
    return isinstance(node, Any_) or (isinstance(node, All) and any(map(_has_or, node.parts)))


def _features(source: Source, checker: _Checker) -> list[Feature]:
    found: list[Feature] = []
    for number, raw in enumerate(source.content.get("feature", []), start=1):
        where = f"{source.where}, feature {raw.get('name', number)!r}"
        kind = raw.get("kind")
        if kind not in _FEATURE_KINDS:
            raise RuleDefinitionError(
                f"{where}: kind must be one of {', '.join(sorted(_FEATURE_KINDS))}, not {kind!r}"
            )
        expected = _FEATURE_KINDS[kind]
        unknown = sorted(set(raw) - {"name", "kind", *expected})
        optional = {"same_day": {"how"}, "window": {"by"}}.get(kind, set())
        missing = sorted(set(expected) - set(raw) - optional)
        if unknown or missing or not isinstance(raw.get("name"), str):
            what = f"unknown keys {', '.join(unknown)}" if unknown else ""
            what = what or (f"missing {', '.join(missing)}" if missing else "a name is needed")
            raise RuleDefinitionError(f"{where}: {what}")
        params = {key: raw[key] for key in expected if key in raw}
        params.setdefault("how", "max") if kind == "same_day" else None
        if kind == "window" and (params["pick"] == "nearest") == ("by" in params):
            raise RuleDefinitionError(
                f"{where}: 'by' says what pick = max or min compares (nearest compares days)"
            )
        above = {f.name for feature in found for f in feature.fields if f.kind == "number"}
        for key, value in params.items():
            params[key] = _check_param(where, key, expected[key], value, checker, above)
        found.append(Feature(raw["name"], kind, params))
    return found


def _check_param(
    where: str, key: str, kind: str, value: Any, checker: _Checker, above: set[str]
) -> Any:
    """The parameter, checked (an expression parsed: it reads the other result's own numbers
    and those of the features ``above`` it in its pack)."""

    def analyte(name: Any) -> None:
        if name not in checker.analytes:
            raise RuleDefinitionError(f"{where}: {key}: analyte {name!r} is in no loaded pack")

    if kind == "threshold":
        if isinstance(value, str) and value not in checker.keys:
            raise RuleDefinitionError(f"{where}: {key}: unknown threshold {value!r}")
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise RuleDefinitionError(f"{where}: {key} is a threshold key or a number")
    elif kind == "analytes":
        if not isinstance(value, list) or not value:
            raise RuleDefinitionError(f"{where}: {key} is a list of analytes")
        for name in value:
            analyte(name)
    elif kind == "analyte":
        analyte(value)
    elif kind == "pairs":
        if not isinstance(value, Mapping) or not value:
            raise RuleDefinitionError(f"{where}: {key} maps an analyte to the one it pairs with")
        for name in [*value, *value.values()]:
            analyte(name)
    elif kind in ("fields", "field"):
        names = value if kind == "fields" else [value]
        if not isinstance(names, list) or not all(n in _FEATURE_FIELDS for n in names):
            raise RuleDefinitionError(
                f"{where}: {key} takes {', '.join(sorted(_FEATURE_FIELDS))} of another result"
            )
    elif kind in ("expression", "expressions"):
        texts = {"": value} if kind == "expression" else value
        if not isinstance(texts, Mapping) or not texts:
            raise RuleDefinitionError(f"{where}: {key} maps a field name to an expression")
        parsed = {}
        for name, text in texts.items():
            if not isinstance(text, str) or (
                kind == "expressions" and not re.fullmatch(r"[a-z][a-z0-9_]*", str(name))
            ):
                raise RuleDefinitionError(f"{where}: {key}: {name!r} = an expression as text")
            expression = _expression(text, checker, f"{where}, {key}")
            if isinstance(expression, All | Any_ | Comparison | Computed):
                raise RuleDefinitionError(f"{where}: {key}: {text!r} is not arithmetic")
            names = [r.name for r in names_of(expression) if isinstance(r, Ref)]
            own_fields = {f.name for f in RESULT_FIELDS if f.kind == "number"} | above
            bad = sorted(set(names) - own_fields)
            if bad:
                raise RuleDefinitionError(
                    f"{where}: {key}: {text!r} reads {', '.join(bad)}; it may read the other "
                    f"result's own numbers and those of the features above it: "
                    f"{', '.join(sorted(own_fields))}"
                )
            parsed[name] = expression
        return parsed[""] if kind == "expression" else parsed
    elif kind == "pick":
        if value not in _PICK:
            raise RuleDefinitionError(f"{where}: {key} is one of {', '.join(sorted(_PICK))}")
    elif value not in _HOW:
        raise RuleDefinitionError(f"{where}: {key} is one of {', '.join(sorted(_HOW))}")
    return value


def _derived(source: Source, checker: _Checker) -> list[Derived]:
    found = []
    for name, text in source.content.get("fields", {}).items():
        where = f"{source.where}, [fields] {name}"
        if not isinstance(text, str):
            raise RuleDefinitionError(f"{where}: expected an expression")
        if name in checker.fields:
            raise RuleDefinitionError(f"{where}: field {name!r} is already declared")
        expression = _expression(text, checker, where)
        known = checker.fields
        reads = (
            fields_of(expression)
            if isinstance(expression, All | Any_ | Comparison | Computed)
            else [r.name for r in names_of(expression) if isinstance(r, Ref)]
        )
        bad = sorted(set(reads) - set(known))
        if bad:
            raise RuleDefinitionError(f"{where}: unknown fact fields {', '.join(bad)}")
        derived = Derived(name, expression)
        checker.fields[name] = derived.declared
        if isinstance(expression, All | Any_ | Comparison | Computed):
            keys = threshold_keys(expression)
        else:
            keys = [item.key for item in names_of(expression) if isinstance(item, Threshold)]
        checker.reads[name] = (keys, reads)
        found.append(derived)
    return found


def _expression(text: str, checker: _Checker, where: str) -> Node | Expr:
    """A condition, or (when it compares nothing) an arithmetic expression."""
    try:
        return parse(text, checker.keys)
    except RuleDefinitionError as error:
        if "expected a comparison" not in str(error):
            raise RuleDefinitionError(f"{where}: {error}") from None
    try:
        node = parse(f"{text} == 0", checker.keys)
    except RuleDefinitionError as error:
        raise RuleDefinitionError(f"{where}: {error}") from None
    if isinstance(node, Comparison):
        return Ref(node.field)
    if isinstance(node, Computed) and node.right == 0.0:
        return node.left
    raise RuleDefinitionError(f"{where}: expected a condition or an arithmetic expression")


def _notes(source: Source, checker: _Checker) -> None:
    for name, raw in source.content.get("notes", {}).items():
        where = f"{source.where}, [notes.{name}]"
        if not isinstance(raw, Mapping) or not {"when", "text"} <= set(raw) <= {
            "when",
            "text",
            "of",
            "on",
        }:
            raise RuleDefinitionError(f"{where}: a note has 'when' and 'text' (and 'of', 'on')")
        on = raw.get("on", [])
        if isinstance(on, str) or not all(isinstance(code, str) for code in on):
            raise RuleDefinitionError(f"{where}: on: expected a list of finding codes")
        if raw.get("of", "each") not in ("each", "worst"):
            raise RuleDefinitionError(f"{where}: of: 'each' (result) or 'worst'")
        if name in checker.notes:
            raise RuleDefinitionError(f"{where}: note {name!r} is already declared")
        node = checker.tree(raw["when"], where)
        checker.check(node, where, checker.fields)
        text = str(raw["text"])
        for key, _ in placeholders(text):
            if "." in key and key not in checker.keys:
                raise RuleDefinitionError(f"{where}: unknown threshold {key!r} in its text")
            if "." not in key and key not in checker.fields:
                raise RuleDefinitionError(f"{where}: unknown fact field {key!r} in its text")
        checker.notes[name] = Note(name, node, text, str(raw.get("of", "each")), tuple(on))


def _rule(
    where: str,
    raw: Mapping[str, Any],
    source: Source,
    checker: _Checker,
    when: Node | None = None,
) -> Rule:
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise RuleDefinitionError(f"{where}: unknown entries {', '.join(sorted(unknown))}")
    phase: Phase = raw.get("phase", "result")
    if phase not in ALIASES:
        raise RuleDefinitionError(f"{where}: phase must be result, finding or schedule")
    names = ("first", "second") if phase == "finding" else ("when",)
    aliases = ALIASES[phase]
    trees: tuple[tuple[str, Node], ...]
    if when is not None:  # a ladder step: its condition is made already
        written: tuple[tuple[str, tuple[str, ...]], ...] = (("when", tuple(raw.get("when", ()))),)
        trees = ((aliases[0], when),)
    else:
        texts = []
        for name in names:
            items = raw.get(name)
            items = [items] if isinstance(items, str) else items
            if not isinstance(items, list) or not items:
                raise RuleDefinitionError(f"{where}: {name}: expected a list of expressions")
            texts.append((name, tuple(items)))
        written = tuple(texts)
        trees = tuple(
            (
                alias,
                checker.tree(list(items), f"{where}, {name}", aliases if alias == "second" else ()),
            )
            for alias, (name, items) in zip(aliases, written, strict=True)
        )
    known = {
        "result": checker.fields,
        "finding": {**checker.fields, **{f.name: f for f in PHASE_FIELDS["finding"]}},
        "schedule": {f.name: f for f in PHASE_FIELDS["schedule"]},
    }[phase]
    for alias, node in trees:
        checker.check(node, f"{where}, {dict(zip(aliases, names, strict=True))[alias]}", known)
    if phase == "finding" and any(_has_or(node) for _, node in trees):
        # durable-rules 2.0.28 ignores a join's other conditions when one is an "or" (seen with
        # the first): a join says each alternative as a rule of its own
        raise RuleDefinitionError(f"{where}: the facts of a join cannot use 'or'")
    terms = raw.get("ctcae", ())
    terms = (terms,) if isinstance(terms, str) else tuple(terms)
    for term in terms:
        if term not in checker.terms:
            raise RuleDefinitionError(
                f"{where}: ctcae: no CTCAE term {term!r} (known: "
                f"{', '.join(sorted(checker.terms))})"
            )
    notes = raw.get("notes", [])
    if isinstance(notes, str) or not all(isinstance(n, str) for n in notes):
        raise RuleDefinitionError(f"{where}: notes: expected a list of note names")
    for name in notes:
        if name not in checker.notes:
            raise RuleDefinitionError(f"{where}: notes: no note named {name!r}")
    try:
        rule = Rule(
            id=str(raw["id"]),
            code=str(raw["code"]),
            condition=Condition(source.condition),
            severity=Severity.parse(raw["severity"]),
            phase=phase,
            when=trees,
            written=written,
            message=str(raw["message"]),
            action=str(raw["action"]),
            sources=(source.citation, *raw.get("sources", ())),
            # what the derived and feature fields it reads read is cited too
            cites=tuple(
                dict.fromkeys([*raw.get("cites", ()), *checker.keys_behind(fields_of_all(trees))])
            ),
            ctcae=terms,
            notes=tuple(checker.notes[name] for name in notes),
            worst=raw.get("worst"),
            superseded_by=raw.get("superseded_by"),
            supersedes=tuple(raw.get("supersedes", ())),
            pack=source.pack,
        )
    except KeyError as error:
        raise RuleDefinitionError(f"{where}: {error.args[0]!r} is missing") from None
    except ValueError as error:
        raise RuleDefinitionError(f"{where}: {error}") from None
    if rule.worst not in (None, "lowest", "highest"):
        raise RuleDefinitionError(f"{where}: worst is 'lowest' or 'highest'")
    checker.texts(where, rule.message, rule.action)
    missing = sorted(set(rule.thresholds) - checker.keys)
    if missing:
        raise RuleDefinitionError(f"{where}: unknown thresholds {', '.join(missing)}")
    return rule


def _ladders(source: Source, checker: _Checker) -> list[Rule]:
    rules = []
    for number, raw in enumerate(source.content.get("ladder", []), start=1):
        code = raw.get("code", "?")
        where = f"{source.where}, ladder {code!r}"
        unknown = set(raw) - _LADDER_KEYS
        if unknown:
            raise RuleDefinitionError(f"{where}: unknown entries {', '.join(sorted(unknown))}")
        if "code" not in raw:
            raise RuleDefinitionError(f"{source.where}, ladder {number}: 'code' is missing")
        steps = raw.get("step", [])
        if not steps:
            raise RuleDefinitionError(f"{where}: a ladder needs its steps ([[ladder.step]])")
        phase = raw.get("phase", "result")
        if phase not in ("result", "schedule"):
            raise RuleDefinitionError(f"{where}: a ladder matches a result or a schedule row")
        base = checker.tree(raw["when"], f"{where}, when") if "when" in raw else None
        above: list[Node] = []
        for position, step in enumerate(steps):
            severity = step.get("severity", "?")
            at = f"{where}, step {severity!r}"
            unknown = set(step) - _STEP_KEYS
            if unknown:
                raise RuleDefinitionError(f"{at}: unknown entries {', '.join(sorted(unknown))}")
            own_tree = checker.tree(step["when"], f"{at}, when") if "when" in step else None
            if own_tree is None and position < len(steps) - 1:
                raise RuleDefinitionError(f"{at}: a step without 'when' must be the last")
            parts = [p for p in (base, own_tree) if p is not None]
            parts += [negate(node) for node in above]
            if not parts:
                raise RuleDefinitionError(f"{at}: a step must ask something")
            if own_tree is not None:
                above.append(own_tree)
            record = {
                key: value
                for key, value in raw.items()
                if key in {"sources", "cites", "ctcae", "notes", "worst", "phase"}
            }
            record.update({key: value for key, value in step.items() if key != "when"})
            if "when" in step:
                record["when"] = [*raw.get("when", []), *step["when"]]
            else:
                record["when"] = list(raw.get("when", []))
            record["code"] = code
            record.setdefault("id", f"{code}.{severity}")
            rules.append(_rule(at, record, source, checker, _all(parts)))
    return rules


def compile_book(
    sources: Sequence[Source],
    keys: Collection[str],
    analytes: Collection[str],
    terms: Collection[str],
) -> RuleBook:
    """Every pack's rules file (``sources``) checked against the threshold ``keys``, the
    ``analytes`` and the CTCAE ``terms`` there are, and compiled: ladders expanded, the
    comparisons durable-rules cannot make itself turned into columns of the fact."""
    base = {f.name: f for f in RESULT_FIELDS}
    checker = _Checker(keys, analytes, terms, base)
    features: list[Feature] = []
    for source in sources:
        for feature in _features(source, checker):
            for made in feature.fields:
                if made.name in checker.fields:
                    raise RuleDefinitionError(
                        f"{source.where}, feature {feature.name!r}: field {made.name!r} is "
                        "already declared"
                    )
                checker.fields[made.name] = made
                checker.reads[made.name] = (list(feature.thresholds), [])
            features.append(feature)
    derived = [item for source in sources for item in _derived(source, checker)]
    for source in sources:
        _notes(source, checker)
    rules: list[Rule] = []
    titles: dict[str, str] = {}
    for source in sources:
        for code, title in source.content.get("titles", {}).items():
            if code in titles:
                raise RuleDefinitionError(
                    f"{source.where}, [titles]: code {code!r} has a title already"
                )
            titles[str(code)] = str(title)
        mine = [
            _rule(f"{source.where}, rule {raw.get('id', '?')!r}", raw, source, checker)
            for raw in source.content.get("rule", [])
        ]
        mine += _ladders(source, checker)
        order = list(titles)  # a pack's codes in the order its [titles] lists them
        rules += sorted(mine, key=lambda r: order.index(r.code) if r.code in order else len(order))
    untitled = sorted({rule.code for rule in rules} - set(titles))
    if untitled:
        raise RuleDefinitionError(f"codes without a title: {', '.join(untitled)}")
    ids = [rule.id for rule in rules]
    twice = sorted({rule_id for rule_id in ids if ids.count(rule_id) > 1})
    if twice:
        raise RuleDefinitionError(f"rule ids used twice: {', '.join(twice)}")
    codes = {rule.code for rule in rules}
    rules = _said_of_others(rules, checker.notes.values(), codes)
    for rule in rules:
        if rule.superseded_by and rule.superseded_by not in codes:
            raise RuleDefinitionError(
                f"rule {rule.id!r}: superseded_by {rule.superseded_by!r} is no code of a rule"
            )
    computed: dict[str, Computed] = {}
    rules = [_compiled(rule, computed, checker.fields) for rule in rules]
    return RuleBook(
        tuple(rules),
        titles,
        {**checker.fields, **{name: _computed_field(name) for name in computed}},
        tuple(derived),
        tuple(features),
        dict(checker.notes),
        computed,
    )


def _said_of_others(rules: list[Rule], notes: Iterable[Note], codes: Collection[str]) -> list[Rule]:
    """The rules with what other packs say of their codes: ``supersedes`` (the rule becomes
    ``superseded_by`` the code that says it) and notes ``on`` them; a code no rule has is
    refused by name."""
    over: dict[str, str] = {}
    for rule in rules:
        for code in rule.supersedes:
            if code not in codes:
                raise RuleDefinitionError(f"rule {rule.id!r}: supersedes {code!r}: no such code")
            over[code] = rule.code
    attached = [note for note in notes if note.on]
    for note in attached:
        unknown = sorted(set(note.on) - set(codes))
        if unknown:
            raise RuleDefinitionError(f"note {note.name!r}: on: no rule has code {unknown[0]!r}")
    out = []
    for rule in rules:
        extra = tuple(n for n in attached if rule.code in n.on and n not in rule.notes)
        superseded = rule.superseded_by or over.get(rule.code)
        out.append(replace(rule, notes=(*rule.notes, *extra), superseded_by=superseded))
    return out


def _computed_field(name: str) -> FactField:
    return FactField(name, "integer", "1 where a computed comparison holds")


def _compiled(rule: Rule, computed: dict[str, Computed], fields: Mapping[str, FactField]) -> Rule:
    """The rule as the engine runs it: each :class:`Computed` comparison replaced by ``_cN ==
    1``, ``_cN`` a column of the fact (one per distinct comparison of the book)."""
    names = {node: name for name, node in computed.items()}

    def lower(node: Node) -> Node:
        if isinstance(node, Computed):
            if node not in names:
                names[node] = name = f"_c{len(computed)}"
                computed[name] = node
            return Comparison(names[node], "==", 1.0)
        if isinstance(node, Comparison):
            return node
        parts = tuple(lower(part) for part in node.parts)
        return All(parts) if isinstance(node, All) else Any_(parts)

    trees = tuple((alias, lower(node)) for alias, node in rule.when)
    if rule.phase == "finding":
        for _, node in trees:
            for comparison in walk(node):
                assert isinstance(comparison, Comparison)  # the Computed are columns now
                declared = fields.get(comparison.field)
                if declared is not None and declared.missing and comparison.negated:
                    # its "or missing" would be an "or" in a join, which durable-rules ignores
                    raise RuleDefinitionError(
                        f"rule {rule.id!r}: a join cannot say 'not' of a comparison of "
                        f"{comparison.field!r}, which may be missing"
                    )
    return replace(rule, compiled=trees)


__all__ = [
    "ALIASES",
    "Derived",
    "Feature",
    "Note",
    "Phase",
    "Rule",
    "RuleBook",
    "Source",
    "compile_book",
    "formatted",
    "gates",
    "join_reach",
]
