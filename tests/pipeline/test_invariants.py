"""lemlabs' invariants, checked on data from its own public strategies (lemlabs.strategies)."""

from __future__ import annotations

import random

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st
from rules_helpers import essence

import lemlabs
from lemlabs import strategies as ls
from lemlabs.packs import builtin_packs
from lemlabs.packs.units import conversion
from lemlabs.pipeline import score_unfiltered


def _respell(labs: pd.DataFrame, rnd: random.Random) -> pd.DataFrame:
    """The same quantities, each row written in another accepted unit."""
    out = labs.copy()
    for index, row in labs.iterrows():
        analyte = builtin_packs().catalogue.recognise(row["test"])
        if analyte is None or not row["unit"]:
            continue
        entry = builtin_packs().catalogue[analyte]
        if entry.kind != "quantitative":
            continue
        unit = rnd.choice([u for u in ls.unit_spellings(entry) if u])
        old, new = conversion(entry, row["unit"]).factor, conversion(entry, unit).factor
        assert old is not None and new is not None
        out.loc[index, ["value", "unit"]] = [repr(float(row["value"]) * old / new), unit]
    return out


@given(ls.cohorts(), st.randoms(use_true_random=False))
def test_unit_invariance(cohort: ls.Cohort, rnd: random.Random) -> None:
    plain = lemlabs.score_frame(cohort.labs, cohort.patients)
    respelled = lemlabs.score_frame(_respell(cohort.labs, rnd), cohort.patients)
    assert essence(plain.finding_list) == essence(respelled.finding_list)


@given(ls.cohorts(), st.randoms(use_true_random=False))
def test_row_order_invariance(cohort: ls.Cohort, rnd: random.Random) -> None:
    order = list(range(len(cohort.labs)))
    rnd.shuffle(order)
    shuffled = cohort.labs.iloc[order].reset_index(drop=True)
    a = lemlabs.score_frame(cohort.labs, cohort.patients)
    b = lemlabs.score_frame(shuffled, cohort.patients.iloc[::-1])
    assert essence(a.finding_list) == essence(b.finding_list)


@given(ls.cohorts())
def test_idempotence(cohort: ls.Cohort) -> None:
    first = lemlabs.score_frame(cohort.labs, cohort.patients)
    second = lemlabs.score_frame(cohort.labs, cohort.patients)
    assert [f.to_dict() for f in first.finding_list] == [f.to_dict() for f in second.finding_list]


@given(ls.cohorts())
def test_the_prefilter_never_hides_a_finding(cohort: ls.Cohort) -> None:
    labs = cohort.labs.assign(ref_low="", ref_high="")
    labs.loc[labs["test"] == "PLT", ["ref_low", "ref_high"]] = ["90", "450"]  # a lab's own interval
    filtered = lemlabs.score_frame(labs, cohort.patients)
    everything = score_unfiltered(labs, cohort.patients)
    assert [f.to_dict() for f in filtered.finding_list] == [
        f.to_dict() for f in everything.finding_list
    ]


@given(st.lists(ls.lab_rows() | ls.lab_rows(invalid=True), min_size=1, max_size=30))
def test_row_accounting(rows: list[dict[str, str]]) -> None:
    report = lemlabs.score_frame(pd.DataFrame(rows))
    s = report.summary
    assert s["rows_in"] == len(rows) == s["rows_normalised"] + s["rows_rejected"]


# (analyte, test name, unit, direction of abnormality, values drawn)
MONOTONE = [
    ("tsh", "TSH", "mIU/L", -1, st.integers(1, 399).map(lambda v: v / 1000)),
    ("tsh", "TSH", "mIU/L", +1, st.integers(401, 3000).map(lambda v: v / 100)),
    ("urine_rbc", "Urine RBC", "/HPF", +1, st.integers(0, 120).map(float)),
    ("upcr", "UPCR", "mg/mmol", +1, st.integers(10, 1000).map(lambda v: v / 10)),
    ("uacr", "UACR", "mg/mmol", +1, st.integers(5, 600).map(lambda v: v / 10)),
]


@given(st.sampled_from(MONOTONE), st.data())
def test_monotonic_severity_in_the_direction_of_abnormality(
    case: tuple[object, ...], data: st.DataObject
) -> None:
    _, test, unit, direction, values = case
    a, b = sorted([data.draw(values), data.draw(values)])  # type: ignore[arg-type]
    milder, worse = (a, b) if direction == +1 else (b, a)

    def severity(value: float) -> int:
        frame = pd.DataFrame(
            [
                {
                    "patient_id": "P1",
                    "collected_at": "2021-01-01",
                    "test": test,
                    "value": repr(value),
                    "unit": unit,
                }
            ]
        )
        return max((int(f.severity) for f in lemlabs.score_frame(frame).finding_list), default=-1)

    assert severity(worse) >= severity(milder)
