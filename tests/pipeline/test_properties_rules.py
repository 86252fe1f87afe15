"""Properties of scoring: monotonic severity, unit and row-order invariance, quiet results."""

from __future__ import annotations

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st
from rules_helpers import labs, patients

import lemlabs
from lemlabs.models import Finding, Severity

COUNTS = st.lists(st.integers(5, 450), min_size=1, max_size=8)


def _max_severity(found: list[Finding], condition: str) -> int:
    return max((int(f.severity) for f in found if f.condition == condition), default=-1)


def _score(rows: list[tuple[int, str, str, str]], sex: str = "F") -> list[Finding]:
    return list(lemlabs.score_frame(labs(rows), patients(sex)).finding_list)


def _history(
    test: str, unit: str, baseline: int, values: list[int]
) -> list[tuple[int, str, str, str]]:
    return [(-5, test, str(baseline), unit)] + [
        (30 * (i + 1), test, str(value), unit) for i, value in enumerate(values)
    ]


@given(st.integers(150, 400), COUNTS, st.data())
def test_a_lower_platelet_count_never_lowers_severity(
    baseline: int, counts: list[int], data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(counts) - 1))
    lower = data.draw(st.integers(1, counts[index]))
    changed = counts.copy()
    changed[index] = lower
    before = _max_severity(_score(_history("PLT", "10^9/L", baseline, counts)), "itp")
    after = _max_severity(_score(_history("PLT", "10^9/L", baseline, changed)), "itp")
    assert after >= before


@given(st.integers(45, 110), st.lists(st.integers(30, 900), min_size=1, max_size=8), st.data())
def test_a_higher_creatinine_never_lowers_severity(
    baseline: int, values: list[int], data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(values) - 1))
    higher = data.draw(st.integers(values[index], 1000))
    changed = values.copy()
    changed[index] = higher
    before = _max_severity(_score(_history("Creat", "umol/L", baseline, values)), "anti_gbm")
    after = _max_severity(_score(_history("Creat", "umol/L", baseline, changed)), "anti_gbm")
    assert after >= before


# Inside the reference interval *and* without a change the rules name (a platelet fall of half,
# a creatinine 1.5 × baseline or +26.5 µmol/L in 48 h — those are findings even in range).
QUIET = {
    "PLT": (st.integers(200, 390), "10^9/L"),
    "Creat": (st.integers(60, 88), "umol/L"),
    "TSH": (st.floats(0.41, 3.99).map(lambda v: f"{v:.2f}"), "mIU/L"),
    "Free T4": (st.floats(12.1, 21.9).map(lambda v: f"{v:.1f}"), "pmol/L"),
    "U-Blood": (st.sampled_from(["neg", "trace"]), ""),
    "Urine RBC": (st.sampled_from(["0", "1", "0-2", "2"]), "/HPF"),
    "Urine protein": (st.sampled_from(["neg", "trace", "10"]), ""),
    "UPCR": (st.floats(1, 15).map(lambda v: f"{v:.1f}"), "mg/mmol"),
}


@st.composite
def quiet_rows(draw: st.DrawFn) -> list[tuple[int, str, str, str]]:
    tests = draw(st.lists(st.sampled_from(sorted(QUIET)), min_size=1, max_size=25))
    rows = []
    for test in tests:
        values, unit = QUIET[test]
        rows.append((draw(st.integers(-30, 1500)), test, str(draw(values)), unit))
    return rows


@given(quiet_rows(), st.sampled_from(["F", "M", ""]))
def test_quiet_results_give_nothing_above_info(
    rows: list[tuple[int, str, str, str]], sex: str
) -> None:
    found = _score(rows, sex)
    assert all(f.severity <= Severity.INFO for f in found), [f.code for f in found]


@given(st.lists(st.text(max_size=12), min_size=1, max_size=8))
def test_arbitrary_patient_ids_reach_the_engine_safely(ids: list[str]) -> None:
    frame = pd.DataFrame(
        [(pid, "2021-01-01", "PLT", "20", "10^9/L") for pid in ids],
        columns=["patient_id", "collected_at", "test", "value", "unit"],
    )
    report = lemlabs.score_frame(frame)
    scored = {pid.strip() for pid in ids if pid.strip()}  # ids are stripped (issue 17)
    assert {f.patient_id for f in report.finding_list} == scored
