"""Cut-off tables generated from the packs' records, not written by hand: for every comparison of
a result rule with a threshold, a value of each analyte it names at the cut-off, just below and
just above, in each unit spelling the analyte lists. The comparison decides as it is written
(``<`` holds below only, ``>=`` at and above), and the rules a value fires do not depend on the
unit it was written in. A new pack's rules get their tables without a line of test code."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
import pytest

import lemlabs
from lemlabs.engine.language import (
    OPERATORS,
    All,
    Any_,
    Columns,
    Comparison,
    Node,
    Threshold,
    evaluate,
)
from lemlabs.packs import builtin_packs
from lemlabs.packs.units import conversion
from lemlabs.strategies import name_spellings, unit_spellings
from lemlabs.vocabulary import format_value

PACKS = builtin_packs()
THRESHOLDS = PACKS.defaults
STEP = 1e-6  # relative: "just below" and "just above" a cut-off, far beyond the 1e-9 tolerance
GRADES = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0)


@dataclass(frozen=True)
class Cut:
    rule: str
    analyte: str
    comparison: Comparison

    @property
    def number(self) -> float:
        assert isinstance(self.comparison.operand, Threshold)
        return float(THRESHOLDS[self.comparison.operand.key])


def _scoped(node: Node, analytes: frozenset[str]) -> Iterator[tuple[str, Comparison]]:
    """Each comparison of a number with a threshold, with the analytes it applies to: those an
    ``analyte == 'x'`` beside it (in the same ``and``) or above it names."""
    if isinstance(node, Comparison):
        if node.field in ("lower", "upper", "value") and isinstance(node.operand, Threshold):
            yield from ((analyte, node) for analyte in sorted(analytes))
        return
    if isinstance(node, All):
        named = {
            str(part.operand)
            for part in node.parts
            if isinstance(part, Comparison) and part.field == "analyte" and part.effective == "=="
        }
        analytes = frozenset(named) or analytes
    if isinstance(node, All | Any_):
        for part in node.parts:
            yield from _scoped(part, analytes)


def _cuts() -> list[Cut]:
    found = []
    for rule in PACKS.book.phase("result"):
        for _, node in rule.compiled:
            found += [Cut(rule.id, a, c) for a, c in _scoped(node, frozenset())]
    return list(dict.fromkeys(found))


CUTS = _cuts()


def _written(analyte: str, canonical: float, unit: str) -> str:
    """A canonical value as a lab writes it in ``unit``: a number, a grade, a count."""
    entry = PACKS.catalogue[analyte]
    if entry.kind == "ordinal":
        return format_value(canonical, "grade").replace("negative", "neg")
    factor = conversion(entry, unit).factor if unit else 1.0
    assert factor is not None
    return repr(canonical / factor)


def _positions(cut: Cut) -> dict[str, float]:
    """At, just below and just above the cut-off, as the analyte can hold them (dipstick grades
    and microscopy counts in steps)."""
    kind = PACKS.catalogue[cut.analyte].kind
    at = cut.number
    if kind == "ordinal":
        lower = [g for g in GRADES if g < at]
        upper = [g for g in GRADES if g > at]
        return {"at": at, "below": lower[-1], "above": upper[0]} if upper else {"at": at}
    if kind == "count_per_hpf":
        return {"at": at, "below": at - 1, "above": at + 1}
    return {"at": at, "below": at * (1 - STEP), "above": at * (1 + STEP)}


def _table() -> tuple[pd.DataFrame, list[tuple[Cut, str, str, float]]]:
    rows, cases = [], []
    for cut in CUTS:
        entry = PACKS.catalogue[cut.analyte]
        for position, canonical in _positions(cut).items():
            spellings = unit_spellings(entry) if entry.kind != "ordinal" else ("",)
            for unit in spellings:
                if entry.kind == "count_per_hpf" and not unit:
                    continue
                patient = f"P{len(rows)}"  # one result a patient: nothing else decides
                value = _written(cut.analyte, canonical, unit)
                low, high = (  # the default interval, as a lab writes its own in its unit
                    "" if limit is None or entry.kind != "quantitative" else
                    _written(cut.analyte, limit, unit)
                    for limit in (entry.ref.low, entry.ref.high)
                )  # fmt: skip
                name = name_spellings(entry)[0]
                rows.append((patient, "2021-06-01", name, value, unit, low, high))
                cases.append((cut, position, unit, canonical))
    columns = ["patient_id", "collected_at", "test", "value", "unit", "ref_low", "ref_high"]
    return pd.DataFrame(rows, columns=columns), cases


@pytest.fixture(scope="module")
def scored() -> tuple[lemlabs.Report, list[tuple[Cut, str, str, float]]]:
    labs, cases = _table()
    return lemlabs.score_frame(labs), cases


def test_every_result_rule_with_a_numeric_cut_off_gets_a_table() -> None:
    with_cuts = {cut.rule for cut in CUTS}
    assert {
        "itp.suspected.urgent",
        "anti_gbm.proteinuria.watch",
        "anti_gbm.albuminuria.action",
    } <= with_cuts
    assert {r.id for r in PACKS.book.phase("result") if "upper" in r.reads()} <= with_cuts


def test_each_comparison_decides_as_written_at_below_and_above_its_cut_off(
    scored: tuple[lemlabs.Report, list[tuple[Cut, str, str, float]]],
) -> None:
    report, cases = scored
    assert report.issues.empty, report.issues.head().to_dict("records")
    results = report.results.set_index("patient_id").loc[[f"P{n}" for n in range(len(cases))]]
    held = {}
    for number, (cut, position, _, _) in enumerate(cases):
        row = results.iloc[[number]]
        held[number] = bool(evaluate(cut.comparison, Columns(row), THRESHOLDS)[0])
        side = {"at": 0.0, "below": -1.0, "above": 1.0}[position]
        written = OPERATORS[cut.comparison.op](side, 0.0)
        expected = not written if cut.comparison.negated else written
        if cut.comparison.field == "lower" and row["censor"].iloc[0]:
            continue  # a censored value's bound is not its number
        assert held[number] == expected, (cut, position, row[["value", "unit"]].to_dict())


def test_the_rules_a_value_fires_do_not_depend_on_the_unit_it_was_written_in(
    scored: tuple[lemlabs.Report, list[tuple[Cut, str, str, float]]],
) -> None:
    report, cases = scored
    fired = report.findings.groupby("patient_id")["rule_id"].apply(set).to_dict()
    by_value: dict[tuple[str, str, float], dict[str, set[str]]] = {}
    for number, (cut, _, unit, canonical) in enumerate(cases):
        rules = fired.get(f"P{number}", set())
        by_value.setdefault((cut.rule, cut.analyte, canonical), {})[unit] = rules
    for key, per_unit in by_value.items():
        assert len({frozenset(rules) for rules in per_unit.values()}) == 1, (key, per_unit)
