"""The label's monitoring schedule: due and overdue tests, and monitoring findings."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st
from rules_helpers import START, day, labs, patients

import lemlabs
from lemlabs.models import Severity


def monthly(
    months: range, skip: set[int] = frozenset(), offset: int = 0
) -> list[tuple[int, str, str, str]]:  # type: ignore[assignment]
    rows = []
    for month in months:
        if month in skip:
            continue
        d = offset + 30 * month
        rows += [
            (d, "PLT", "250", "10^9/L"),
            (d, "Creat", "70", "umol/L"),
            (d, "U-Blood", "neg", ""),
            (d, "ALT", "25", "U/L"),
        ]
        if month % 3 == 0:
            rows.append((d, "TSH", "1.5", "mIU/L"))
    return rows


def plan(
    rows: list[tuple[int, str, str, str]], as_of_day: int, courses: str | None = None
) -> pd.DataFrame:
    as_of = START + dt.timedelta(days=as_of_day)
    return lemlabs.schedule(labs(rows), patients(courses=courses), as_of).set_index("test_group")


def test_an_on_time_monthly_history_has_nothing_overdue() -> None:
    table = plan(monthly(range(0, 13)), as_of_day=12 * 30 + 10)
    assert (table["status"].isin(["ok", "due"])).all()
    assert (table["missed_intervals"] == 0).all()


def test_one_missed_month_is_overdue_by_the_right_number_of_days() -> None:
    # last blood count on day 300; due on day 330; as of day 345 it is 15 days overdue
    table = plan(monthly(range(0, 11)), as_of_day=345)
    row = table.loc["blood_count"]
    assert row["status"] == "overdue"
    assert row["next_due"] == pd.Timestamp(day(330))
    assert row["days_overdue"] == 15 and row["missed_intervals"] == 1
    assert table.loc["thyroid", "status"] in ("ok", "due")  # TSH on day 270, due on day 361


def test_the_tolerance_edges() -> None:
    rows = monthly(range(0, 11))  # last on day 300, due on day 330, tolerance 7 days
    assert plan(rows, as_of_day=322)["status"]["blood_count"] == "ok"
    assert plan(rows, as_of_day=323)["status"]["blood_count"] == "due"
    assert plan(rows, as_of_day=337)["status"]["blood_count"] == "due"
    assert plan(rows, as_of_day=338)["status"]["blood_count"] == "overdue"
    assert plan(rows, as_of_day=368)["missed_intervals"]["blood_count"] == 2


def test_a_second_course_restarts_the_48_month_window() -> None:
    one_course = plan(monthly(range(0, 13)), as_of_day=400, courses=START.isoformat())
    two_courses = plan(monthly(range(0, 13)), as_of_day=400)
    assert one_course.loc["blood_count", "window_end"] == pd.Timestamp(day(4)) + pd.DateOffset(
        months=48
    )
    assert two_courses.loc["blood_count", "window_end"] == pd.Timestamp(day(367)) + pd.DateOffset(
        months=48
    )


def test_after_the_window_the_status_is_window_ended() -> None:
    table = plan(monthly(range(0, 13)), as_of_day=367 + 49 * 31)
    assert (table["status"] == "window_ended").all()
    assert (table["missed_intervals"] == 0).all()


def test_a_patient_without_courses_has_no_schedule() -> None:
    table = plan(monthly(range(0, 3)), as_of_day=100, courses="")
    assert (table["status"] == "no_courses").all()


def test_no_result_since_the_first_course_counts_from_the_course() -> None:
    table = plan([(-5, "PLT", "250", "10^9/L")], as_of_day=50)
    row = table.loc["blood_count"]
    assert row["next_due"] == pd.Timestamp(day(30)) and row["missed_intervals"] == 1
    assert table.loc["urinalysis", "missed_intervals"] == 1


def test_monitoring_findings_are_watch_then_action() -> None:
    rows = monthly(range(0, 11))
    one = lemlabs.score_frame(labs(rows), patients(), as_of=day(345))
    two = lemlabs.score_frame(labs(rows), patients(), as_of=day(380))
    (watch,) = [
        f for f in one.finding_list if f.code == "monitoring.overdue" and "blood count" in f.message
    ]
    (action,) = [
        f for f in two.finding_list if f.code == "monitoring.overdue" and "blood count" in f.message
    ]
    assert watch.severity == Severity.WATCH and action.severity == Severity.ACTION
    assert str(watch.condition) == "monitoring" and watch.date.isoformat() == day(345)
    assert watch.evidence[0].collected_at.date().isoformat() == day(300)
    assert "15 days past the due date" in watch.message
    assert not [
        f
        for f in lemlabs.score_frame(labs(rows), patients()).finding_list
        if f.code == "monitoring.overdue"
    ]


VISITS = st.lists(st.integers(-10, 700), min_size=0, max_size=15)


@given(VISITS, st.integers(-10, 700), st.integers(0, 900))
def test_adding_a_result_never_makes_a_patient_more_overdue(
    visits: list[int], extra: int, as_of: int
) -> None:
    rows = [(d, "PLT", "250", "10^9/L") for d in visits]
    before = plan(rows, as_of)["missed_intervals"]["blood_count"]
    after = plan([*rows, (extra, "PLT", "250", "10^9/L")], as_of)["missed_intervals"]["blood_count"]
    assert after <= before


@given(VISITS, st.integers(0, 700), st.integers(0, 200))
def test_moving_as_of_forward_never_makes_a_test_less_overdue(
    visits: list[int], as_of: int, step: int
) -> None:
    rows = [(d, "PLT", "250", "10^9/L") for d in visits]
    early = plan(rows, as_of).loc["blood_count"]
    late = plan(rows, as_of + step).loc["blood_count"]
    result_between = any(as_of < d <= as_of + step for d in visits)
    if not result_between and late["status"] != "window_ended":
        assert late["missed_intervals"] >= early["missed_intervals"]
        assert late["days_overdue"] >= early["days_overdue"]


def test_adherence_marks_each_missed_due_date_once() -> None:
    from lemlabs.packs import builtin_packs, default_thresholds
    from lemlabs.stages.ingest import prepare_patients
    from lemlabs.stages.schedule import adherence

    rows = monthly(range(0, 8), skip={3, 4})  # two missed months
    results, _ = lemlabs.normalise(labs(rows))
    table = adherence(
        results,
        prepare_patients(patients()),
        "P1",
        dt.date.fromisoformat(day(215)),
        default_thresholds(),
        builtin_packs().groups,
    )
    blood = table[table["test_group"] == "blood_count"]
    assert blood["done"].sum() == 6
    assert [d.date().isoformat() for d in blood.loc[~blood["done"], "date"]] == [day(90), day(120)]


def test_urinalysis_is_satisfied_by_microscopy_or_a_dipstick_not_a_ratio() -> None:
    base = [row for row in monthly(range(0, 11)) if row[1] != "U-Blood"]
    urine = {
        "dipstick": [(300, "U-Blood", "neg", "")],
        "protein dipstick": [(300, "Urine protein", "1+", "")],
        "microscopy": [(300, "Urine RBC", "2", "/HPF")],
        "UPCR alone": [(300, "UPCR", "10", "mg/mmol")],
    }
    statuses = {
        what: plan(base + rows, 310)["status"]["urinalysis"] for what, rows in urine.items()
    }
    assert statuses == {
        "dipstick": "ok",
        "protein dipstick": "ok",
        "microscopy": "ok",
        "UPCR alone": "overdue",  # no urinalysis since the course day
    }


def test_a_positive_dipstick_without_same_day_microscopy_says_microscopy_needed() -> None:
    alone = lemlabs.score_frame(labs([(100, "U-Blood", "2+", "")]), patients())
    with_rbc = lemlabs.score_frame(
        labs([(100, "U-Blood", "2+", ""), (100, "Urine RBC", "12", "/HPF")]), patients()
    )
    (finding,) = alone.finding_list
    assert "microscopy needed" in finding.message
    assert all("microscopy needed" not in f.message for f in with_rbc.finding_list)
