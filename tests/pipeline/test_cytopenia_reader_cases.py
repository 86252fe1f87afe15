"""The cytopenia pack against cases an independent reader wrote from ../shared/domain.md alone
(data/cytopenia_reader_cases.json: 77 cases, each citing the text it comes from): every
neutrophil and haemoglobin cut-off at, just below and just above it, in each accepted unit, by
sex, with the lab's own interval; lymphocytes down to 0 raising nothing; bad input a data issue.
Scored in one run, one patient per case. An expectation changes only when domain.md does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rules_helpers import score_cases

import lemlabs

CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parents[1] / "data" / "cytopenia_reader_cases.json").read_text("utf-8")
)


@pytest.fixture(scope="module")
def report() -> lemlabs.Report:
    return score_cases(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_the_readers_case(report: lemlabs.Report, case: dict[str, Any]) -> None:
    mine = [f for f in report.finding_list if f.patient_id == case["id"]]
    found = {(f.code, str(f.severity)) for f in mine}
    for expected in case["expect"]:
        assert (expected["code"], expected["severity"]) in found, case["why"]
    assert not {f.code for f in mine} & set(case["expect_absent"]), case["why"]
    if not case["expect"]:
        assert found == set(), case["why"]
    issue_rows = set(report.issues["patient_id"])
    assert (case["id"] in issue_rows) == case["data_issue"], case["why"]


LYMPHOCYTE = st.one_of(
    st.floats(0, 6, allow_nan=False).map(lambda v: f"{v:.2f}"),
    st.sampled_from(["<0.1", "<0.05", "0", "0.0", ">4"]),
)


@given(st.lists(st.tuples(st.integers(0, 1500), LYMPHOCYTE), min_size=1, max_size=12))
def test_lymphocytes_alone_never_raise_a_finding(counts: list[tuple[int, str]]) -> None:
    """Profound lymphopenia is what alemtuzumab does (domain.md): any lymphocyte history alone,
    before or after the course, raises nothing."""
    start = pd.Timestamp("2020-01-01")
    labs = pd.DataFrame(
        {
            "patient_id": "P1",
            "collected_at": [
                (start + pd.Timedelta(days=day)).date().isoformat() for day, _ in counts
            ],
            "test": "Lymphocytes",
            "value": [value for _, value in counts],
            "unit": "10^9/L",
        }
    )
    patients = pd.DataFrame({"patient_id": ["P1"], "course_dates": ["2020-02-01"]})
    report = lemlabs.score_frame(labs, patients)
    assert len(report.finding_list) == 0
    assert (report.results["analyte"] == "lymphocytes").all()
