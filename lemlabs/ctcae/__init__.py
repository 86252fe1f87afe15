"""CTCAE grades: the criteria are data (``ctcae/v4.toml``, ``v5``, ``v6``, and a pack's own
``ctcae_v4.toml`` ... for its analytes), one table per version with the criterion text beside its
machine form, and this module is the one evaluator.

A criterion's ``when`` is a condition of the rule language (:mod:`lemlabs.engine.language`) over
``value`` (the result as certain in the term's direction), ``lln``, ``uln`` (the result's own
interval, converted with it), ``baseline`` (missing for a result taken before its baseline) and
``baseline_flag`` (the baseline record's own flag, L, H or N, for a result taken after it; '-'
otherwise — CTCAE's "if baseline was abnormal" arms): ``value > 3.0 * uln or value / baseline >
3.0``. A term may grade a result sent in another unit by CTCAE's own criteria for that unit
(``in_units``: haemoglobin in mmol/L, "< 6.2", "< 4.9", which are not exactly 100 and 80 g/L),
its numbers then in that unit. Findings take their grade from it (a rule's
``ctcae`` names its term), and so does every scored result (``report.results``' columns
``ctcae_grade_low``/``ctcae_grade_high``, ADLB's ``ATOXGRL``/``ATOXGRH``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from lemlabs.engine.language import Columns, Node, evaluate, fields_of, parse
from lemlabs.errors import LemlabsError, RuleDefinitionError

VERSIONS = {"4.03": "v4", "5.0": "v5", "6.0": "v6"}
"""Canonical CTCAE versions and the short names ``score_frame(ctcae=...)`` accepts."""
DEFAULT_VERSION = "5.0"
NAMES = ("value", "lln", "uln", "baseline", "baseline_flag")
_TERM_KEYS = {"key", "term", "analyte", "direction", "needs", "cites", "grades"}
_OPTIONAL_KEYS = {"in_units"}

INPUT_COLUMNS = (
    "upper", "lower", "ref_low", "ref_high", "comparable_baseline", "baseline_flag", "raw_unit",
)  # fmt: skip
"""The context columns a grade reads."""
GRADE_COLUMNS = {
    "ctcae_version": "object",
    "ctcae_term_low": "object",
    "ctcae_grade_low": "Int64",
    "ctcae_term_high": "object",
    "ctcae_grade_high": "Int64",
}
"""What every result gains in ``report.results`` (the grade is <NA> where it cannot be graded,
0 where it can and is normal)."""


class CtcaeError(LemlabsError, ValueError):
    """An unknown CTCAE version, or a criteria table lemlabs cannot read."""


def version_of(text: str | None) -> str:
    """``"v4"``, ``"4"``, ``"4.03"`` → ``"4.03"``; ``"v5"``/``"5.0"`` → ``"5.0"``; ``"v6"`` →
    ``"6.0"``; ``None`` → the default (5.0)."""
    if text is None:
        return DEFAULT_VERSION
    folded = str(text).strip().casefold().removeprefix("ctcae").strip().removeprefix("v")
    for canonical, short in VERSIONS.items():
        if folded in {canonical, short[1:], f"{short[1:]}.0", canonical.rstrip("0").rstrip(".")}:
            return canonical
    raise CtcaeError(f"unknown CTCAE version {text!r} (use v4, v5 or v6)")


@dataclass(frozen=True)
class Grade:
    grade: int
    text: str
    when: str
    tree: Node
    text_us: str = ""


@dataclass(frozen=True)
class Term:
    """One CTCAE term of one version: its grades (lowest first) and what it needs to be 0."""

    key: str
    term: str
    analyte: str
    direction: str
    needs: tuple[str, ...]
    cites: tuple[str, ...]
    grades: tuple[Grade, ...]
    pack: str = ""
    in_units: tuple[tuple[str, float, tuple[Grade, ...]], ...] = ()
    """Per lab unit (as the lab writes it, case aside): the factor from it to the canonical unit
    (set when the packs load the term: :meth:`with_factors`) and CTCAE's criteria in it."""

    def with_factors(self, factor: Any) -> Term:
        """The term with each ``in_units`` unit's factor to the canonical unit: ``factor(unit)``."""
        return replace(
            self, in_units=tuple((unit, factor(unit), grades) for unit, _, grades in self.in_units)
        )


@dataclass(frozen=True)
class Criteria:
    version: str
    name: str
    terms: tuple[Term, ...]

    def term(self, key: str) -> Term:
        found = self.find(key)
        if found is None:
            raise CtcaeError(f"CTCAE {self.version} has no term {key!r}")
        return found

    def find(self, key: str) -> Term | None:
        """The term of this key, name or analyte; ``None`` where the version has none (CTCAE
        v6.0 has no "Lymphocyte count decreased": such a result is not graded under v6)."""
        for term in self.terms:
            if key in (term.key, term.term, term.analyte):
                return term
        return None

    def term_keys(self) -> tuple[str, ...]:
        return tuple(term.key for term in self.terms)

    def with_terms(self, terms: Sequence[Term], where: str) -> Criteria:
        """These criteria and a pack's own terms (a key of both is refused by name)."""
        known = set(self.term_keys())
        for term in terms:
            if term.key in known:
                raise RuleDefinitionError(f"{where}: CTCAE term {term.key!r} is defined already")
            known.add(term.key)
        return replace(self, terms=(*self.terms, *terms))

    def table(self) -> pd.DataFrame:
        """The criteria as a table (one row per term and grade), like admiral's
        ``atoxgr_criteria_ctcv*``: version, term, direction, grade, criterion text, machine form."""
        rows = [
            {
                "version": self.version,
                "term": term.term,
                "analyte": term.analyte,
                "direction": term.direction,
                "grade": grade.grade,
                "criterion": grade.text,
                "criterion_us": grade.text_us,
                "when": grade.when,
            }
            for term in self.terms
            for grade in term.grades
        ]
        return pd.DataFrame(rows)


def read_terms(raw: Sequence[Mapping[str, Any]], where: str, pack: str = "") -> tuple[Term, ...]:
    """A table's ``[[term]]`` records, checked: each criterion a condition of the language over
    :data:`NAMES`."""
    terms = []
    for item in raw:
        at = f"{where}, term {item.get('key', '?')!r}"
        unknown = sorted(set(item) - _TERM_KEYS - _OPTIONAL_KEYS)
        missing = sorted(_TERM_KEYS - set(item))
        if unknown or missing:
            what = f"unknown keys {', '.join(unknown)}" if unknown else f"missing {missing[0]!r}"
            raise RuleDefinitionError(f"{at}: {what}")
        if item["direction"] not in ("L", "H"):
            raise RuleDefinitionError(f"{at}: direction is L (low) or H (high)")
        if not set(item["needs"]) <= set(NAMES):
            raise RuleDefinitionError(f"{at}: needs names some of {', '.join(NAMES)}")
        in_units = item.get("in_units", {})
        if not isinstance(in_units, Mapping):
            raise RuleDefinitionError(f"{at}: in_units is a table of unit = [grades]")
        terms.append(
            Term(
                key=item["key"],
                term=item["term"],
                analyte=item["analyte"],
                direction=item["direction"],
                needs=tuple(item["needs"]),
                cites=tuple(item["cites"]),
                grades=_grades(item["grades"], at),
                pack=pack,
                in_units=tuple(
                    (str(unit), 1.0, _grades(grades, f"{at}, in_units {unit!r}"))
                    for unit, grades in in_units.items()
                ),
            )
        )
    return tuple(terms)


def _grades(raw: Sequence[Mapping[str, Any]], at: str) -> tuple[Grade, ...]:
    grades = []
    for grade in sorted(raw, key=lambda g: g["grade"]):
        try:
            tree = parse(grade["when"], set())
        except RuleDefinitionError as error:
            raise RuleDefinitionError(f"{at}, grade {grade['grade']}: {error}") from None
        unknown_names = sorted(set(fields_of(tree)) - set(NAMES))
        if unknown_names:
            raise RuleDefinitionError(
                f"{at}, grade {grade['grade']}: unknown name {unknown_names[0]!r} (a "
                f"criterion reads {', '.join(NAMES)})"
            )
        grades.append(
            Grade(grade["grade"], grade["text"], grade["when"], tree, grade.get("text_us", ""))
        )
    return tuple(grades)


@cache
def criteria(version: str | None = None) -> Criteria:
    """The built-in criteria table of a CTCAE version (``"v4"``, ``"5.0"``, ...); a pack set's
    own terms join it in :meth:`lemlabs.packs.Packs.criteria`."""
    canonical = version_of(version)
    name = f"{VERSIONS[canonical]}.toml"
    raw = tomllib.loads(resources.files("lemlabs.ctcae").joinpath(name).read_text("utf-8"))
    return Criteria(raw["version"], raw["name"], read_terms(raw["term"], f"ctcae/{name}"))


def evaluate_term(term: Term, names: pd.DataFrame) -> np.ndarray:
    """The grade of every row (a float array: NaN where it cannot be graded, 0 where it is
    normal), the highest grade whose criterion holds. ``names`` holds :data:`NAMES` (NaN, or
    '-' for the flag, where missing)."""
    grades = np.full(len(names), np.nan)
    present = names["value"].notna().to_numpy().copy()
    for name in term.needs:
        present &= names[name].notna().to_numpy()
    grades[present] = 0.0
    columns = Columns(names)
    own = np.zeros(len(names), dtype=bool)
    units = names["unit"].to_numpy(dtype=object) if "unit" in names else None
    for unit, factor, in_unit in term.in_units if units is not None else ():
        mine = np.asarray(units == unit.casefold(), dtype=bool)
        if mine.any():
            scaled = names[mine].copy()
            for name in ("value", "lln", "uln", "baseline"):
                scaled[name] = scaled[name] / factor
            found = np.where(present[mine], 0.0, np.nan)
            for grade in in_unit:
                found[evaluate(grade.tree, Columns(scaled), {})] = grade.grade
            grades[mine] = found
            own |= mine
    for grade in term.grades:
        grades[evaluate(grade.tree, columns, {}) & ~own] = grade.grade
    return grades


def with_version(thresholds: Any, version: str | None) -> Any:
    """The threshold table with ``ctcae.version`` set to ``version`` (``"v4"``, ``"v6"``, ...;
    ``None`` keeps the table's), checked: an unknown version is a :class:`CtcaeError`."""
    current = version_of(str(thresholds["ctcae.version"]))
    wanted = current if version is None else version_of(version)
    if wanted == str(thresholds["ctcae.version"]):
        return thresholds
    entry = {"value": wanted, "source": criteria(wanted).name}
    return type(thresholds).from_table({"ctcae.version": entry}, thresholds)


def _names(term: Term, part: pd.DataFrame) -> pd.DataFrame:
    """The evaluator's names from result columns: the value as certain in the term's direction,
    the result's interval, and the baseline where the result may be compared with it (not a
    result taken before its baseline)."""

    def column(name: str) -> np.ndarray:
        if name not in part.columns:
            return np.full(len(part), np.nan)
        return np.asarray(pd.to_numeric(part[name], errors="coerce"), dtype=float)

    return pd.DataFrame(
        {
            "value": column("upper" if term.direction == "L" else "lower"),
            "lln": column("ref_low"),
            "uln": column("ref_high"),
            "baseline": column("comparable_baseline"),
            "baseline_flag": (
                part["baseline_flag"].to_numpy(dtype=object)
                if "baseline_flag" in part.columns
                else np.full(len(part), "-", dtype=object)
            ),
            "unit": (
                part["raw_unit"].astype(str).str.strip().str.casefold().to_numpy(dtype=object)
                if term.in_units and "raw_unit" in part.columns
                else np.full(len(part), "", dtype=object)
            ),
        }
    )


def _term_grades(
    term: Term, frame: pd.DataFrame, of: Mapping[str, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Which rows of ``frame`` are the term's analyte, and their grades (as
    :func:`evaluate_term`). ``of``: each analyte's rows, when the caller grades several terms."""
    if of is None:
        mine = np.asarray(frame["analyte"].to_numpy() == term.analyte, dtype=bool)
    else:
        mine = of.get(term.analyte, np.zeros(len(frame), dtype=bool))
    if not mine.any():
        return mine, np.zeros(0)
    return mine, evaluate_term(term, _names(term, frame.loc[mine]))


def grade_rows(term: Term, frame: pd.DataFrame) -> np.ndarray:
    """The grade of every row of ``frame`` (context rows) for ``term``, as integers: 0 where it
    is not graded, normal or of another analyte."""
    grades = np.zeros(len(frame), dtype="int64")
    mine, found = _term_grades(term, frame)
    grades[mine] = np.nan_to_num(found).astype("int64")
    return grades


def grade_results(results: pd.DataFrame, table: Criteria) -> pd.DataFrame:
    """Per-result grades (:data:`GRADE_COLUMNS`) of a context table (scored results with
    ``lower``, ``upper``, ``ref_low``, ``ref_high`` and the comparable baseline), by index."""
    out = pd.DataFrame(index=results.index)
    out["ctcae_version"] = table.version
    codes, names = pd.factorize(results["analyte"].to_numpy(dtype=object))
    of = {str(name): codes == number for number, name in enumerate(names)}
    for direction, suffix in (("L", "low"), ("H", "high")):
        terms = pd.Series(None, index=results.index, dtype=object)
        grades = pd.Series(np.nan, index=results.index)
        for term in table.terms:
            if term.direction != direction:
                continue
            mine, found = _term_grades(term, results, of)
            if mine.any():
                grades[mine] = found
                terms[mine] = term.term
        out[f"ctcae_term_{suffix}"] = terms
        out[f"ctcae_grade_{suffix}"] = grades.round().astype("Int64")
    return out[list(GRADE_COLUMNS)]
