"""The label's monitoring schedule: which tests are due or overdue for each patient.

Each pack declares its test groups (``schedule.toml``: monthly blood count, creatinine and
urinalysis, 3-monthly TSH, ...), from the first course until 48 months after the last infusion of
the latest course. A test group's clock runs from its latest
result on or before ``as_of`` (or from the first course day when there is none since then):

* ``missed_intervals``: due dates ``clock + k × interval`` whose tolerance ended before ``as_of``;
* ``status``: ``no_courses`` (no course dates known), ``window_ended`` (``as_of`` after the window),
  ``overdue`` (one interval or more missed), ``due`` (inside the due date's tolerance), ``ok``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import numpy as np
import pandas as pd

from lemlabs.engine.rules import formatted
from lemlabs.errors import LabInputError
from lemlabs.packs.loader import ScheduleGroup
from lemlabs.packs.thresholds import Thresholds
from lemlabs.stages.context import course_table

COLUMNS = [
    "patient_id",
    "test_group",
    "last_done",
    "last_row",
    "next_due",
    "days_overdue",
    "missed_intervals",
    "window_end",
    "status",
]


Groups = Mapping[str, ScheduleGroup]
"""The packs' schedule groups by name (:attr:`lemlabs.packs.Packs.groups`)."""


def group_of(analytes: pd.Series, groups: Groups) -> pd.Series:
    """The schedule's test group of each analyte ('' for analytes the schedule does not track)."""
    lookup = {analyte: name for name, group in groups.items() for analyte in group.analytes}
    return analytes.map(lookup).fillna("")


def schedule_table(
    results: pd.DataFrame,
    people: pd.DataFrame | None,
    as_of: dt.date,
    thresholds: Thresholds,
    groups: Groups,
) -> pd.DataFrame:
    """One row per patient and test group (see the module docstring for the columns)."""
    day = pd.Timestamp(as_of)
    courses = course_table(people, thresholds)
    started = courses[courses["start"] <= day]
    first = started.groupby("patient_id")["start"].min()
    window_end = started.sort_values("start").groupby("patient_id")["window_end"].last()
    known = list(people["patient_id"]) if people is not None else []
    patients = sorted(set(known) | set(results["patient_id"]))
    grid = pd.MultiIndex.from_product([patients, list(groups)], names=["patient_id", "test_group"])
    table = pd.DataFrame(index=grid).reset_index()

    done = results[
        (results["status"] == "scored") & (results["collected_at"].dt.normalize() <= day)
    ]
    done = done.assign(test_group=group_of(done["analyte"], groups))
    done = done.sort_values(["collected_at", "row"])
    last = done[done["test_group"] != ""].groupby(["patient_id", "test_group"]).last()
    table = table.merge(
        last[["collected_at", "row"]].rename(
            columns={"collected_at": "last_done", "row": "last_row"}
        ),
        left_on=["patient_id", "test_group"],
        right_index=True,
        how="left",
    )
    # reindex, not map: pandas cannot map through an empty datetime Series
    table["first_course"] = first.reindex(table["patient_id"]).to_numpy()
    table["window_end"] = window_end.reindex(table["patient_id"]).to_numpy()
    interval = (
        table["test_group"]
        .map({n: thresholds[g.interval] for n, g in groups.items()})
        .astype(float)
    )
    tolerance = (
        table["test_group"]
        .map({n: thresholds[g.tolerance] for n, g in groups.items()})
        .astype(float)
    )
    clock = (
        table["last_done"]
        .dt.normalize()
        .where(table["last_done"].dt.normalize() > table["first_course"], table["first_course"])
    )
    elapsed = (day - clock).dt.days.astype(float)
    missed = np.maximum(0, np.ceil((elapsed - tolerance) / interval) - 1)
    table["next_due"] = clock + pd.to_timedelta(interval, unit="D")
    table["missed_intervals"] = missed.fillna(0).astype(int)
    overdue = table["missed_intervals"] >= 1
    table["days_overdue"] = np.where(overdue, (day - table["next_due"]).dt.days, 0).astype(int)
    table["status"] = np.select(
        [
            table["first_course"].isna(),
            day > table["window_end"],
            overdue,
            day >= table["next_due"] - pd.to_timedelta(tolerance, unit="D"),
        ],
        ["no_courses", "window_ended", "overdue", "due"],
        "ok",
    )
    ended = table["status"].isin(["no_courses", "window_ended"])
    table.loc[ended, ["missed_intervals", "days_overdue"]] = 0
    table["last_row"] = table["last_row"].astype("Int64")
    return table[COLUMNS]


def interval_words(group: ScheduleGroup, missed: int, thresholds: Thresholds) -> str:
    """``"2 monthly tests"`` / ``"1 3-monthly test"`` for messages (the group's interval)."""
    every = formatted(thresholds[group.interval], "monthly")
    return f"{missed} {every} test{'s' if missed != 1 else ''}"


def adherence(
    results: pd.DataFrame,
    people: pd.DataFrame,
    patient_id: str,
    as_of: dt.date,
    thresholds: Thresholds,
    groups: Groups,
) -> pd.DataFrame:
    """One patient's tests done and due dates missed since the first course, by test group:
    columns test_group, date, done. A due date is missed when its tolerance ended before the
    next test (or before ``as_of``), the rule :func:`schedule_table` counts by."""
    day = pd.Timestamp(as_of)
    courses = course_table(people, thresholds)
    mine = courses[(courses["patient_id"] == patient_id) & (courses["start"] <= day)]
    if mine.empty:
        raise LabInputError(f"patient {patient_id!r} has no course on or before {as_of}")
    start = mine["start"].min()
    end = min(day, mine.sort_values("start")["window_end"].iloc[-1])
    own = results[(results["patient_id"] == patient_id) & (results["status"] == "scored")]
    own = own.assign(test_group=group_of(own["analyte"], groups))
    rows: list[tuple[str, pd.Timestamp, bool]] = []
    for group, entry in groups.items():
        interval = pd.Timedelta(days=thresholds[entry.interval])
        tolerance = pd.Timedelta(days=thresholds[entry.tolerance])
        dates = own.loc[own["test_group"] == group, "collected_at"].dt.normalize()
        done = sorted({d for d in dates if start <= d <= end})
        rows += [(group, d, True) for d in done]
        for clock, following in zip([start, *done], [*done, end], strict=True):
            due = clock + interval
            while due + tolerance < following:
                rows.append((group, due, False))
                due += interval
    return pd.DataFrame(rows, columns=["test_group", "date", "done"]).sort_values(
        ["test_group", "date"]
    )
