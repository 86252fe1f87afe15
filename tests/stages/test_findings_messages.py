"""Messages match their evidence, and every finding carries its onset (domain.md).

"Seen N times" counted rule hits; a reader counts results. The message now says how many results
the episode holds (the same number as ``results_in_episode``), which of them reached the
finding's severity when an episode mixes severities, and censored values with their sign.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rules_helpers import START, findings

import lemlabs
from lemlabs import examples
from lemlabs import strategies as ls
from lemlabs.models import Finding
from lemlabs.stages.findings.writer import _iso, records_of

COUNT = re.compile(r"(\d+) results?(?: \((.*?)\))?, (?:on|from) \d{4}-\d{2}-\d{2}")


def _check_counts(found: Iterable[Finding]) -> int:
    checked = 0
    for finding in found:
        if finding.code.startswith("monitoring."):
            continue
        match = COUNT.search(finding.message)
        assert match, finding.message
        assert int(match.group(1)) == finding.results_in_episode == len(finding.evidence)
        if match.group(2):  # "2 TSH, 1 free T4" adds up too
            parts = [int(part.split()[0]) for part in match.group(2).split(", ")]
            assert sum(parts) == finding.results_in_episode
        checked += 1
    return checked


@pytest.fixture(scope="module")
def example_report() -> lemlabs.Report:
    return lemlabs.score_frame(
        lemlabs.read_labs(examples.path("labs")), lemlabs.read_patients(examples.path("patients"))
    )


def test_message_counts_equal_the_results_in_every_example_finding(
    example_report: lemlabs.Report,
) -> None:
    assert _check_counts(example_report.finding_list) == len(example_report.finding_list) > 0


@settings(max_examples=15)
@given(ls.cohorts(size=(1, 4), months=(3, 18)))
def test_message_counts_equal_the_results_in_generated_histories(cohort: ls.Cohort) -> None:
    _check_counts(lemlabs.score_frame(cohort.labs, cohort.patients).finding_list)


def test_every_example_finding_has_its_onset_and_time_to_onset(
    example_report: lemlabs.Report,
) -> None:
    courses = {
        pid: sorted(days)
        for pid, days in zip(
            example_report.patients["patient_id"], example_report.patients["courses"], strict=True
        )
    }
    for finding in example_report.finding_list:
        onset = finding.episode_start
        assert onset == min(e.collected_at for e in finding.evidence).date()
        assert onset <= finding.date
        started = [d.date() for d in courses.get(finding.patient_id, []) if d.date() <= onset]
        expected = (onset - started[-1]).days if started else None
        assert finding.days_from_course == expected
    table = example_report.findings
    assert list(table.columns[12:14]) == ["episode_start", "days_from_course"]
    assert str(table["days_from_course"].dtype) == "Int64"


def test_an_old_rise_is_dated_by_its_latest_result_and_starts_at_its_onset(
    example_report: lemlabs.Report,
) -> None:
    table = example_report.findings
    rise = table[
        (table["patient_id"] == "LEM-0033") & (table["code"] == "anti_gbm.creatinine_rise")
    ]
    (row,) = rise.to_dict("records")
    assert row["episode_start"].date() == dt.date(2019, 4, 18)
    assert row["date"].date() == dt.date(2022, 1, 14)
    assert row["days_from_course"] == (dt.date(2019, 4, 18) - dt.date(2018, 1, 5)).days


def test_time_to_onset_counts_from_the_latest_course_before_onset() -> None:
    (first,) = findings([(30, "PLT", "40", "10^9/L")])
    assert (first.episode_start, first.days_from_course) == (START + dt.timedelta(30), 30)
    (second,) = findings([(365 + 40, "PLT", "40", "10^9/L")])  # second course on day 365
    assert second.days_from_course == 40
    (before,) = findings([(-20, "PLT", "40", "10^9/L")])  # before the first course
    assert before.days_from_course is None


def test_a_mixed_episode_says_which_results_reached_its_severity() -> None:
    rows = [(-5, "Creat", "60", "umol/L")]
    rows += [(30 * i, "Creat", "100", "umol/L") for i in range(1, 32)]  # 1.7 × baseline
    rows.insert(10, (30 * 9 + 1, "Creat", "412", "umol/L"))  # ≥ 3 × and above the ULN
    (rise,) = [f for f in findings(rows) if f.code == "anti_gbm.creatinine_rise"]
    assert str(rise.severity) == "urgent" and rise.results_in_episode == 32
    assert "32 results, from" in rise.message
    day = (START + dt.timedelta(30 * 9 + 1)).isoformat()
    assert f"1 of them reached this level (412 µmol/L on {day})" in rise.message


def test_one_result_firing_two_arms_is_counted_once() -> None:
    rows = [
        (200, "U-Blood", "2+", ""),
        (205, "Urine protein", "2+", ""),
        (205, "UACR", "40", "mg/mmol"),
    ]
    (both,) = [f for f in findings(rows) if f.code == "anti_gbm.haematuria_proteinuria"]
    assert both.results_in_episode == 3
    assert "3 results (" in both.message and "times" not in both.message


@pytest.mark.parametrize(
    ("test", "value", "unit", "shown"),
    [
        ("Creat", ">1000", "umol/L", "highest >1000 µmol/L"),
        ("TSH", "<0.01", "mIU/L", "lowest <0.01 mIU/L"),
        ("PLT", "<10", "10^9/L", "lowest <10 ×10⁹/L"),
        ("Urine RBC", "TNTC", "/HPF", "highest >100 /HPF"),
        ("Urine RBC", "5-10", "/HPF", "highest 5–10 /HPF"),
    ],
)
def test_a_censored_worst_value_keeps_its_sign(
    test: str, value: str, unit: str, shown: str
) -> None:
    found = findings([(200, test, value, unit)], sex="M")
    assert any(shown in f.message for f in found), [f.message for f in found]


@given(
    st.lists(
        st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2199, 12, 31)),
        max_size=20,
    )
)
def test_evidence_times_are_written_as_isoformat_writes_them(times: list[dt.datetime]) -> None:
    stamps = np.array(times, dtype="datetime64[us]")
    assert _iso(stamps) == [when.isoformat() for when in times]


def test_no_two_findings_share_an_evidence_dict() -> None:
    """A result is evidence of several findings (a composite and its parts): each finding has
    its own copy, so editing one finding's evidence leaves the others as they were."""
    report = lemlabs.score_frame(examples.path("labs"), examples.path("patients"))
    dicts = [item for evidence in report.findings["evidence"] for item in evidence]
    rows = [item["row"] for item in dicts]
    assert len(rows) > len(set(rows))  # some result is evidence twice
    assert len({id(item) for item in dicts}) == len(dicts)


def test_a_record_reads_its_row_and_makes_only_the_columns_read() -> None:
    """Findings read results through records (one context row each) whose columns become
    Python lists only when first read: the unread ones (pair rows, note fields) of one
    patient's million rows were 1.1 GB of Python floats."""
    needed = pd.DataFrame(
        {
            "analyte": ["tsh", "platelets"],
            "value": [5.5, 30.0],
            "hlh_plt_row": [np.nan, 7.0],
            "collected_at": pd.to_datetime(["2024-01-02T08:30:00.250", "2024-02-03T00:00:00.000"]),
        },
        index=[40, 12],
    )
    records = records_of(needed)
    assert list(records) == [40, 12]
    first, second = records[40], records[12]
    assert (first["analyte"], first["value"], second["value"]) == ("tsh", 5.5, 30.0)
    assert type(first["value"]) is float
    assert first["collected_at"] == dt.datetime(2024, 1, 2, 8, 30, 0, 250000)
    assert (first["collected_iso"], second["day_text"]) == (
        "2024-01-02T08:30:00.250000",
        "2024-02-03",
    )
    assert first.get("source_id") is None and "source_id" not in first
    assert set(first) == {*needed.columns, "stamp", "collected_iso", "day_text"}
    made = first._columns  # what the records hold
    assert set(made) == {"analyte", "value", "collected_at", "collected_iso", "day_text"}
