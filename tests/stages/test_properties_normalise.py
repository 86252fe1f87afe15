"""Properties of normalising: unit invariance, no crash on any text, row accounting, row order."""

from __future__ import annotations

import pandas as pd
from conftest import lab_frame
from hypothesis import given
from hypothesis import strategies as st

import lemlabs
from lemlabs.packs import builtin_packs
from lemlabs.packs.units import conversion

ACCEPTED_UNITS = {
    "tsh": ("TSH", ["mIU/L", "mU/L", "µIU/mL", "uIU/mL", "m[IU]/L", "u[IU]/mL"], (0.001, 500.0)),
    "free_t4": ("Free T4", ["pmol/L", "ng/dL", "ng/L", "pg/mL"], (1.0, 150.0)),
    "platelets": (
        "PLT",
        ["10^9/L", "10*9/L", "G/L", "K/µL", "10^3/µL", "10*3/uL", "thou/mm3", "/nL", "x10E9/L"],
        (1.0, 2000.0),
    ),
    "creatinine": ("Creatinine", ["µmol/L", "umol/L", "mg/dL", "mg/L", "mmol/L"], (10.0, 3000.0)),
    "upcr": ("UPCR", ["mg/mmol", "mg/g", "g/g"], (0.5, 2000.0)),
    "uacr": ("UACR", ["mg/mmol", "mg/g"], (0.5, 2000.0)),
}


@st.composite
def same_quantity_in_two_units(draw: st.DrawFn) -> tuple[str, str, str, str, str, float]:
    analyte = draw(st.sampled_from(sorted(ACCEPTED_UNITS)))
    test, units, (low, high) = ACCEPTED_UNITS[analyte]
    canonical = draw(st.floats(low, high, allow_nan=False, allow_infinity=False))
    first, second = draw(st.sampled_from(units)), draw(st.sampled_from(units))
    values = []
    for unit in (first, second):
        factor = conversion(builtin_packs().catalogue[analyte], unit).factor
        assert factor is not None
        values.append(repr(canonical / factor))
    return test, values[0], first, values[1], second, canonical


@given(same_quantity_in_two_units())
def test_unit_invariance(case: tuple[str, str, str, str, str, float]) -> None:
    test, value_a, unit_a, value_b, unit_b, canonical = case
    labs = lab_frame(
        [("P1", "2021-01-01", test, value_a, unit_a), ("P1", "2021-01-02", test, value_b, unit_b)]
    )
    results, issues = lemlabs.normalise(labs)
    assert issues.empty, issues.to_dict("records")
    a, b = results["value"].tolist()
    assert abs(a - b) <= 1e-9 * abs(canonical)
    assert abs(a - canonical) <= 1e-9 * abs(canonical)


TESTS = st.sampled_from(["TSH", "PLT", "Creat", "U-Blood", "Urine RBC", "UPCR", "Free T4", "Hb"])
TEXT = st.text(max_size=30)
ROWS = st.lists(
    st.tuples(
        st.sampled_from(["P1", "P2", "", " "]) | TEXT,
        st.sampled_from(["2021-01-01", "2021-02-30", "2021-03-04T10:00:00"]) | TEXT,
        TESTS | TEXT,
        st.sampled_from(["4.2", "<0.01", "1+", "TNTC", "5-10", "1,200", "neg"]) | TEXT,
        st.sampled_from(["mIU/L", "10^9/L", "mg/dL", "", "/HPF"]) | TEXT,
    ),
    max_size=25,
)


@given(ROWS)
def test_any_text_is_a_result_or_an_issue_never_a_crash(rows: list[tuple[str, ...]]) -> None:
    labs = lab_frame(rows)
    report = lemlabs.score_frame(labs)
    summary = report.summary
    assert summary["rows_in"] == len(rows)
    assert summary["rows_in"] == summary["rows_normalised"] + summary["rows_rejected"]
    lab_issues = report.issues[report.issues["source"] == "labs"]
    assert lab_issues["row"].is_unique
    accounted = set(report.results["row"]) | set(lab_issues["row"])
    assert accounted == set(range(len(rows)))
    assert not set(report.results["row"]) & set(lab_issues["row"])
    assert (lab_issues["reason"].str.len() > 0).all()


@given(ROWS, st.randoms(use_true_random=False))
def test_shuffling_rows_changes_nothing_but_order(rows: list[tuple[str, ...]], rnd: object) -> None:
    labs = lab_frame(rows)
    order = list(range(len(rows)))
    rnd.shuffle(order)  # type: ignore[attr-defined]
    shuffled = labs.iloc[order].reset_index(drop=True)
    results_a, issues_a = lemlabs.normalise(labs)
    results_b, issues_b = lemlabs.normalise(shuffled)

    def content(results: pd.DataFrame) -> list[tuple[object, ...]]:
        keep = [
            "patient_id",
            "collected_at_raw",
            "test",
            "raw_value",
            "raw_unit",
            "analyte",
            "value",
            "ref_low",
            "ref_high",
            "flag",
        ]
        return sorted(map(tuple, results[keep].astype(str).to_numpy()))

    assert content(results_a) == content(results_b)
    reasons = lambda issues: sorted(issues["reason"])  # noqa: E731
    assert reasons(issues_a) == reasons(issues_b)
