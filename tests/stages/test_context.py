"""Context columns against brute-force references written from their definitions, row by row:
the 48-hour creatinine rise, the latest course and the label's window, same-day microscopy."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lemlabs.engine.language import shifted
from lemlabs.packs import builtin_packs, default_thresholds
from lemlabs.stages.context import add_context

START = dt.datetime(2020, 1, 1)
THRESHOLDS = default_thresholds()
BOOK = builtin_packs().book

results_rows = st.lists(
    st.tuples(
        st.sampled_from(["P1", "P2", "P3"]),
        st.sampled_from(["creatinine", "urine_rbc", "urine_blood", "platelets"]),
        # hours over months, or within days of each other: 48-hour windows' edges, same days
        st.one_of(
            st.integers(0, 24 * 200), st.integers(0, 24 * 6), st.integers(0, 12).map((12).__mul__)
        ).map(lambda hours: START + dt.timedelta(hours=hours)),
        st.one_of(
            st.floats(0, 500, allow_nan=False),
            st.sampled_from([0.0, float(THRESHOLDS["renal.rbc_haematuria_hpf"]), float("nan")]),
        ),
    ),
    min_size=1,
    max_size=60,
)
course_days = st.dictionaries(
    st.sampled_from(["P1", "P2", "P3"]), st.sets(st.integers(-20, 220), max_size=3)
)


def _frame(rows: list[tuple[str, str, dt.datetime, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["patient_id", "analyte", "collected_at", "value"])
    frame["collected_at"] = frame["collected_at"].astype("datetime64[ns]")
    frame["lower"] = frame["upper"] = frame["value"]
    frame["raw_value"] = frame["value"].astype(str)
    frame["raw_unit"] = ""
    frame["flag"] = "N"
    frame["ref_low"] = frame["ref_high"] = np.nan  # scored results carry their interval
    frame["row"] = np.arange(len(frame))
    return frame.astype({"patient_id": object, "analyte": object, "raw_value": object})


def _people(days: dict[str, set[int]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_id": list(days),
            "courses": [
                [(START + dt.timedelta(days=d)).date() for d in sorted(v)] for v in days.values()
            ],
        },
    ).astype({"patient_id": object})


@given(results_rows)
def test_the_48h_rise_is_the_value_minus_the_lowest_creatinine_in_the_48_hours_before(
    rows: list[tuple[str, str, dt.datetime, float]],
) -> None:
    out = add_context(_frame(rows), None, THRESHOLDS, BOOK).set_index("row")
    for row, (patient, analyte, when, value) in enumerate(rows):
        before = [
            v
            for p, a, t, v in rows
            if p == patient
            and a == "creatinine"
            and when - dt.timedelta(hours=48) <= t < when
            and v == v
        ]
        expected = value - min(before) if analyte == "creatinine" and before else np.nan
        np.testing.assert_equal(out.at[row, "rise_48h"], expected)


@given(results_rows, course_days)
def test_each_result_has_its_latest_course_started_on_or_before_its_day(
    rows: list[tuple[str, str, dt.datetime, float]], days: dict[str, set[int]]
) -> None:
    out = add_context(_frame(rows), _people(days), THRESHOLDS, BOOK).set_index("row")
    months = int(THRESHOLDS["label.monitoring_months"])
    for row, (patient, _, when, _) in enumerate(rows):
        starts = [START.date() + dt.timedelta(days=d) for d in sorted(days.get(patient, ()))]
        started = [s for s in starts if s <= when.date()]
        if not starts:
            assert out.at[row, "window"] == "no_courses"
        elif not started:
            assert out.at[row, "window"] == "pre_treatment"
        if not started:
            assert np.isnan(out.at[row, "days_since_course"])
            assert pd.isna(out.at[row, "window_end"])
            continue
        latest = started[-1]
        assert out.at[row, "days_since_course"] == (when.date() - latest).days
        length = THRESHOLDS[
            "label.first_course_days" if latest == starts[0] else "label.later_course_days"
        ]
        end = pd.Timestamp(latest) + pd.Timedelta(days=length - 1) + pd.DateOffset(months=months)
        assert out.at[row, "window_end"] == end
        expected = "after_window" if pd.Timestamp(when.date()) > end else "in_window"
        assert out.at[row, "window"] == expected


@given(results_rows)
def test_a_dipstick_is_microscopy_negative_when_every_same_day_rbc_count_is_below_the_cutoff(
    rows: list[tuple[str, str, dt.datetime, float]],
) -> None:
    out = add_context(_frame(rows), None, THRESHOLDS, BOOK).set_index("row")
    cutoff = THRESHOLDS["renal.rbc_haematuria_hpf"]
    for row, (patient, analyte, when, _) in enumerate(rows):
        counts = [  # a missing count says nothing
            v
            for p, a, t, v in rows
            if p == patient and a == "urine_rbc" and t.date() == when.date() and v == v
        ]
        below = max(counts, default=np.inf) < shifted(cutoff, "<")  # as the language compares
        expected = analyte == "urine_blood" and bool(counts) and below
        assert out.at[row, "micro_neg"] == int(expected)


def _rise(gap: dt.timedelta) -> float:
    rows = [
        ("P1", "creatinine", START, 100.0),
        ("P1", "creatinine", START + gap, 150.0),
        ("P2", "creatinine", START + gap - dt.timedelta(hours=1), 10.0),  # another patient's
    ]
    out = add_context(_frame(rows), None, THRESHOLDS, BOOK).set_index("row")
    return float(out.at[1, "rise_48h"])


def test_the_48h_window_holds_its_start_and_not_its_end() -> None:
    hours = THRESHOLDS["renal.aki_window_hours"]
    assert _rise(dt.timedelta(hours=hours)) == 50.0
    assert _rise(dt.timedelta(hours=hours - 1)) == 50.0
    assert np.isnan(_rise(dt.timedelta(hours=hours, seconds=1)))
    assert np.isnan(_rise(dt.timedelta(0)))  # the same time is not before


@pytest.mark.parametrize(
    ("count", "negative"),
    [
        (0.0, 1),
        (THRESHOLDS["renal.rbc_haematuria_hpf"] - 1, 1),
        (THRESHOLDS["renal.rbc_haematuria_hpf"], 0),
    ],
)
def test_microscopy_is_negative_below_the_haematuria_cutoff_only(
    count: float, negative: int
) -> None:
    rows = [
        ("P1", "urine_blood", START, 1.0),
        ("P1", "urine_rbc", START + dt.timedelta(hours=5), count),
        ("P2", "urine_rbc", START, 0.0),
    ]
    out = add_context(_frame(rows), None, THRESHOLDS, BOOK).set_index("row")
    assert out.at[0, "micro_neg"] == negative


@pytest.mark.parametrize(
    ("day", "window"), [(-1, "pre_treatment"), (0, "in_window"), (1, "in_window")]
)
def test_a_course_counts_from_the_day_it_starts(day: int, window: str) -> None:
    rows = [("P1", "platelets", START + dt.timedelta(days=day, hours=1), 200.0)]
    out = add_context(_frame(rows), _people({"P1": {0}, "P2": {-5}}), THRESHOLDS, BOOK)
    assert out.at[0, "window"] == window
    np.testing.assert_equal(out.at[0, "days_since_course"], float(day) if day >= 0 else np.nan)
