"""CTCAE cut-off tables generated from the criteria records (every version, every term): a result
at each grade's cut-off, just below and just above, in each unit spelling of the term's
analyte, with the default interval written in that unit beside it (as a lab sends its own). The
grade changes exactly where the criterion's ``<`` or ``>`` puts it, and it is the same in every
unit (admiral's habit: a row at every cut-off)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest

import lemlabs
from lemlabs.ctcae import VERSIONS, Term
from lemlabs.engine.language import (
    OPERATORS,
    All,
    Any_,
    Arithmetic,
    Comparison,
    Computed,
    Node,
    Ref,
    fields_of,
    walk,
)
from lemlabs.packs import builtin_packs
from lemlabs.packs.units import conversion
from lemlabs.strategies import name_spellings, unit_spellings

PACKS = builtin_packs()
STEP = 1e-6


@dataclass(frozen=True)
class Cut:
    version: str
    term: Term
    grade: int
    number: float  # the cut-off in the canonical unit, for the default interval
    op: str


def _number(comparison: Comparison | Computed, term: Term) -> float | None:
    """The canonical number a criterion compares ``value`` with: a number, or a multiple of the
    analyte's default ULN or LLN (``None`` for the baseline arms and anything else)."""
    interval = PACKS.catalogue[term.analyte].ref
    if isinstance(comparison, Comparison):
        ok = comparison.field == "value" and isinstance(comparison.operand, float)
        return float(comparison.operand) if ok else None  # type: ignore[arg-type]
    right = comparison.right
    if not (isinstance(comparison.left, Ref) and comparison.left.name == "value"):
        return None
    if isinstance(right, Ref):
        right = Arithmetic("*", 1.0, right)
    if (
        isinstance(right, Arithmetic)
        and right.op == "*"
        and isinstance(right.left, float)
        and isinstance(right.right, Ref)
    ):
        limit = {"uln": interval.high, "lln": interval.low}.get(right.right.name)
        return right.left * limit if limit is not None else None
    return None


def _alone(node: Node) -> list[Comparison | Computed]:
    """The comparisons that decide a grade for a single result (no baseline): not those joined
    by ``and`` to a comparison with the baseline (v6.0's "> baseline and ULN")."""
    if isinstance(node, Any_):
        return [found for part in node.parts for found in _alone(part)]
    if isinstance(node, All) and "baseline" in fields_of(node):
        return []
    return list(walk(node))


def _cuts() -> list[Cut]:
    found = []
    for version in VERSIONS:
        for term in PACKS.criteria(version).terms:
            if PACKS.catalogue[term.analyte].kind != "quantitative":
                continue
            for grade in term.grades:
                for comparison in _alone(grade.tree):
                    number = _number(comparison, term)
                    if number is not None:
                        found.append(Cut(version, term, grade.grade, number, comparison.op))
    return found


CUTS = _cuts()


def _siblings(cut: Cut) -> list[Cut]:
    """The other arms of the same grade with a number of their own (fibrinogen's grade 4: < 0.25
    × LLN or < 0.5 g/L): at a value one arm leaves, another may hold."""
    return [
        other
        for other in CUTS
        if (other.version, other.term.key, other.grade) == (cut.version, cut.term.key, cut.grade)
        and other.number != cut.number
    ]


def _arm_holds(cut: Cut, value: float) -> bool:
    return bool(OPERATORS[cut.op](value, cut.number))


def _grades(version: str, rows: list[tuple[str, str, float, str, str, str]]) -> list[int]:
    """Each value's grade in the term's direction: one result a patient."""
    labs = pd.DataFrame(
        [(f"P{n}", "2021-06-01", test, repr(value), unit, low, high) for n,
         (test, _, value, unit, low, high) in enumerate(rows)],
        columns=["patient_id", "collected_at", "test", "value", "unit", "ref_low", "ref_high"],
    )  # fmt: skip
    results = lemlabs.score_frame(labs, ctcae=version).results.set_index("patient_id")
    out = []
    for n, (_, direction, *_) in enumerate(rows):
        column = "ctcae_grade_low" if direction == "L" else "ctcae_grade_high"
        out.append(int(results.loc[f"P{n}", column]))
    return out


def test_every_term_of_a_measured_analyte_has_its_cut_offs() -> None:
    terms = {(cut.version, cut.term.key) for cut in CUTS}
    assert {("5.0", "platelets"), ("4.03", "creatinine"), ("6.0", "platelets")} <= terms


@pytest.mark.parametrize("version", list(VERSIONS))
def test_a_grade_starts_where_its_criterion_says_in_every_unit(version: str) -> None:
    mine = [cut for cut in CUTS if cut.version == version]
    rows, keys = [], []
    for cut in mine:
        entry = PACKS.catalogue[cut.term.analyte]
        for side, factor in (("below", 1 - STEP), ("at", 1.0), ("above", 1 + STEP)):
            own = {unit.casefold() for unit, _, _ in cut.term.in_units}
            for unit in unit_spellings(entry):
                if unit.strip().casefold() in own:
                    continue  # graded by CTCAE's criteria in that unit: the test below
                scale = conversion(entry, unit).factor
                assert scale is not None
                canonical = cut.number * factor
                low, high = (
                    "" if limit is None else repr(limit / scale)
                    for limit in (entry.ref.low, entry.ref.high)
                )
                name = name_spellings(entry)[0]
                rows.append((name, cut.term.direction, canonical / scale, unit, low, high))
                keys.append((cut, side, unit))
    grades = _grades(version, rows)
    for (cut, side, unit), grade in zip(keys, grades, strict=True):
        holds = {"<": side == "below", ">": side == "above", "<=": side != "above",
                 ">=": side != "below"}[cut.op]  # fmt: skip
        value = cut.number * {"below": 1 - STEP, "at": 1.0, "above": 1 + STEP}[side]
        holds = holds or any(_arm_holds(other, value) for other in _siblings(cut))
        assert (grade >= cut.grade) is holds, (cut.term.key, cut.grade, side, unit, grade)
    per_value: dict[tuple[Cut, str], set[int]] = {}
    for (cut, side, _), grade in zip(keys, grades, strict=True):
        per_value.setdefault((cut, side), set()).add(grade)
    assert all(len(found) == 1 for found in per_value.values())


def _unit_cuts() -> list[tuple[str, Term, str, int, float, str]]:
    """The cut-offs of the criteria a term keeps for a lab unit (haemoglobin in mmol/L), as
    numbers in that unit (``lln`` times the default LLN converted to it)."""
    found = []
    for version in VERSIONS:
        for term in PACKS.criteria(version).terms:
            for unit, factor, grades in term.in_units:
                for grade in grades:
                    for comparison in walk(grade.tree):
                        if isinstance(comparison, Comparison) and comparison.field == "value":
                            operand = comparison.operand
                            number = float(operand) if isinstance(operand, float) else None
                        elif isinstance(comparison, Computed):
                            number = _number(comparison, term)
                            number = None if number is None else number / factor
                        else:
                            number = None
                        if number is not None:
                            found.append((version, term, unit, grade.grade, number, comparison.op))
    return found


def test_a_unit_of_its_own_is_graded_at_ctcaes_numbers_in_that_unit() -> None:
    """Haemoglobin in mmol/L: grade 2 below 6.2 and grade 3 below 4.9 mmol/L as CTCAE writes
    them (4.90-4.96 mmol/L is grade 2 there, though below 80 g/L), at, just below and above."""
    cuts = _unit_cuts()
    assert {("5.0", "haemoglobin", 6.2), ("5.0", "haemoglobin", 4.9)} <= {
        (version, term.key, number) for version, term, _, _, number, _ in cuts
    }
    for version in VERSIONS:
        rows, keys = [], []
        for cut_version, term, unit, grade, number, op in cuts:
            if cut_version != version:
                continue
            entry = PACKS.catalogue[term.analyte]
            factor = conversion(entry, unit).factor
            assert factor is not None
            low = "" if entry.ref.low is None else repr(entry.ref.low / factor)
            high = "" if entry.ref.high is None else repr(entry.ref.high / factor)
            for side, step in (("below", 1 - STEP), ("at", 1.0), ("above", 1 + STEP)):
                name = name_spellings(entry)[0]
                rows.append((name, term.direction, number * step, unit, low, high))
                keys.append((term.key, grade, side, op))
        for (key, grade, side, op), found in zip(keys, _grades(version, rows), strict=True):
            holds = {"<": side == "below", ">": side == "above"}[op]
            assert (found >= grade) is holds, (version, key, grade, side, found)
