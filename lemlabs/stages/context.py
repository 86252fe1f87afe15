"""Per-patient context of each result, computed group-wise with pandas and numpy.

For every result: its baseline (and its age; ``comparable_baseline`` only from the baseline's
date on), its day, days since the latest course and the label's monitoring window. Then what the
packs declare (:mod:`lemlabs.engine.rules`): features of the patient's other results — the
general kinds here, each written once, whatever analyte a pack names (``rise_within``,
``months_later``, ``nearest``, ``same_day``, ``window``) — and derived fields (arithmetic or
conditions of the result's own fields).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lemlabs.engine.language import Columns, Computed, Node, evaluate, number
from lemlabs.engine.rules import Feature, RuleBook

if TYPE_CHECKING:
    from lemlabs.packs.thresholds import Thresholds

_EPOCH = pd.Timestamp("1970-01-01")
# days since 1970 of the years lemlabs reads (1900-2199), shifted to be positive, stay below _DAYS
_DAY_SHIFT = np.int64(100_000)
_DAYS = np.int64(200_000)


def _patient_day(patient: np.ndarray, day: np.ndarray) -> np.ndarray:
    """(patient number, day) as one integer that sorts by patient, then day."""
    return np.asarray(patient * _DAYS + day.astype("datetime64[D]").astype("int64") + _DAY_SHIFT)


CONTEXT_COLUMNS = {
    "baseline": "float64",
    "baseline_date": "datetime64[ns]",
    "baseline_kind": "object",
    "baseline_flag": "object",
    "baseline_days": "int64",
    "comparable_baseline": "float64",
    "day": "int64",
    "days_since_course": "float64",
    "window_end": "datetime64[ns]",
    "window": "object",
}
"""What every result gains, whatever the packs declare (they add their features' and derived
fields' columns: :func:`context_columns`)."""


def context_columns(book: RuleBook) -> dict[str, str]:
    """Every column the context adds, with its dtype: the base ones and the packs' own."""
    kinds = {"number": "float64", "integer": "int64", "text": "object"}
    made = [made for feature in book.features for made in feature.fields]
    made += [derived.declared for derived in book.derived]
    return {**CONTEXT_COLUMNS, **{f.name: kinds[f.kind] for f in made}}


# Sorting by value after time makes ties (same patient, analyte and time) independent of row order.
_ORDER = ["patient_id", "analyte", "collected_at", "value", "raw_value", "raw_unit"]


def course_table(patients: pd.DataFrame | None, thresholds: Thresholds) -> pd.DataFrame:
    """One row per course: patient_id, course (1-based), start, last_infusion, window_end."""
    columns = ["patient_id", "course", "start", "last_infusion", "window_end"]
    if patients is None or patients.empty:
        return pd.DataFrame(columns=columns).astype(
            {
                "course": "int64",
                "start": "datetime64[ns]",
                "last_infusion": "datetime64[ns]",
                "window_end": "datetime64[ns]",
            }
        )
    courses = patients[["patient_id", "courses"]].explode("courses").dropna(subset=["courses"])
    courses = courses.rename(columns={"courses": "start"}).drop_duplicates()
    courses["start"] = pd.to_datetime(courses["start"]).astype("datetime64[ns]")
    courses = courses.sort_values(["patient_id", "start"])
    courses["course"] = courses.groupby("patient_id").cumcount() + 1
    length = np.where(
        courses["course"] == 1,
        thresholds["label.first_course_days"],
        thresholds["label.later_course_days"],
    )
    courses["last_infusion"] = courses["start"] + pd.to_timedelta(length - 1, unit="D")
    months = pd.DateOffset(months=int(thresholds["label.monitoring_months"]))
    courses["window_end"] = courses["last_infusion"] + months
    return courses[columns].reset_index(drop=True)


class _Sorted:
    """Scored results sorted by patient, analyte and time, with the keys context steps share:
    patient and (patient, analyte) group numbers in row order, days since 1970."""

    def __init__(self, out: pd.DataFrame) -> None:
        patient = out["patient_id"].to_numpy(dtype=object)
        analyte = out["analyte"].to_numpy(dtype=object)
        new_patient = np.r_[True, patient[1:] != patient[:-1]]
        self.patient = np.cumsum(new_patient) - 1
        self.patients = pd.Index(patient[new_patient])
        self.group = np.cumsum(new_patient | np.r_[True, analyte[1:] != analyte[:-1]]) - 1
        self.analyte = analyte
        self.times = out["collected_at"].to_numpy(dtype="datetime64[ns]")
        self.day = self.times.astype("datetime64[D]")
        codes, names = pd.factorize(analyte)
        order = np.argsort(codes, kind="stable")
        starts = np.searchsorted(codes[order], np.arange(len(names) + 1))
        self._positions = {
            str(name): order[starts[n] : starts[n + 1]] for n, name in enumerate(names)
        }

    def of(self, analytes: Iterable[str]) -> np.ndarray:
        """The positions of the results of these analytes, in row order."""
        found = [self._positions[a] for a in dict.fromkeys(analytes) if a in self._positions]
        return np.sort(np.concatenate(found)) if found else np.zeros(0, dtype=np.intp)


def _text(labels: np.ndarray, index: pd.Index) -> pd.Series:
    """Labels as an object column, as :data:`CONTEXT_COLUMNS` says (pandas 3 would make each
    row a new string of its own text type)."""
    return pd.Series(labels, index=index, dtype=object)


def _baselines(out: pd.DataFrame, rows: _Sorted, first_course: pd.Series) -> None:
    first_day = first_course.reindex(rows.patients).to_numpy(dtype="datetime64[ns]")
    before = rows.day <= first_day[rows.patient]  # NaT (no course): never before
    pre = out["value"].where(before).groupby(rows.group).transform("last")
    pre_date = out["collected_at"].where(before).groupby(rows.group).transform("last")
    first = out["value"].groupby(rows.group).transform("first")
    first_date = out["collected_at"].groupby(rows.group).transform("first")
    out["baseline"] = pre.fillna(first)
    out["baseline_date"] = pre_date.fillna(first_date)
    names = np.array(["first on record", "pre-treatment"], dtype=object)
    out["baseline_kind"] = _text(names[pre.notna().to_numpy().astype(np.intp)], out.index)
    flags = out["flag"].astype(object)
    pre_flag = flags.where(before).groupby(rows.group).transform("last")
    first_flag = flags.groupby(rows.group).transform("first")
    # the baseline record's own flag, for the results after it ('-' for the record itself, a
    # result taken with it or before it): CTCAE's "if baseline was abnormal" arms read it
    after = (out["collected_at"] > out["baseline_date"]).to_numpy()
    flag = np.where(pre.notna().to_numpy(), pre_flag.to_numpy(), first_flag.to_numpy())
    out["baseline_flag"] = _text(np.where(after, flag, "-").astype(object), out.index)


def _range_min(values: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The smallest of ``values[left:right]`` for each pair (NaN ignored; NaN for an empty
    range), from a sparse table: a few numpy passes, whatever the ranges' lengths."""
    table = [values]
    while 2 ** len(table) <= len(values):
        width = 2 ** (len(table) - 1)
        table.append(np.fmin(table[-1][:-width], table[-1][width:]))
    length = right - left
    out = np.full(len(left), np.nan)
    some = np.flatnonzero(length > 0)
    level = np.floor(np.log2(length[some])).astype(np.intp)
    for k in np.unique(level):
        mine = some[level == k]
        out[mine] = np.fmin(table[k][left[mine]], table[k][right[mine] - 2**k])
    return out


def _rise_within(out: pd.DataFrame, rows: _Sorted, feature: Feature, hours: float) -> np.ndarray:
    """``rise_within``: a result's ``lower`` minus the lowest result of the same patient and
    analyte in the ``hours`` before it (``[t - hours, t)``, as pandas' time-based
    ``rolling(closed="left")`` counts), for the feature's analytes; NaN otherwise."""
    rise = np.full(len(out), np.nan)
    mine = rows.of(feature.analytes)
    if not len(mine):
        return rise
    times = rows.times[mine].astype("int64")
    group = rows.group[mine]  # patient and analyte
    # (group, time) as one sortable integer: the time's rank among the distinct times
    distinct = np.unique(times)
    stride = len(distinct) + 1
    keys = group * stride + np.searchsorted(distinct, times)
    start = times - np.int64(round(hours * 3_600_000_000_000))
    left = np.searchsorted(keys, group * stride + np.searchsorted(distinct, start), "left")
    right = np.searchsorted(keys, keys, "left")
    values = out["value"].to_numpy(dtype=float)[mine]
    lower = out["lower"].to_numpy(dtype=float)[mine]
    rise[mine] = lower - _range_min(values, left, right)
    return rise


def _months_later(out: pd.DataFrame, rows: _Sorted, feature: Feature, months: float) -> np.ndarray:
    """``months_later``: the day (days since 1970) ``months`` calendar months after the
    result's day, for the feature's analytes; NaN otherwise."""
    later = np.full(len(out), np.nan)
    mine = rows.of(feature.analytes)
    if len(mine):
        day = out["collected_at"].iloc[mine].dt.normalize()
        later[mine] = ((day + pd.DateOffset(months=int(months))) - _EPOCH).dt.days.to_numpy()
    return later


def _nearest(
    out: pd.DataFrame, rows: _Sorted, feature: Feature, days: float
) -> dict[str, pd.Series]:
    """``nearest``: for each result of an analyte of ``pairs``, the nearest result of the
    analyte it pairs with (same patient, within ``days`` before or after, inclusive; nearest in
    time, then the lowest value and row): its fields ``take`` (a text ``'-'`` without one, a
    number NaN) and its ``row``."""
    taken = [*feature.params["take"], "row"]
    pairs = pd.concat(
        [
            _pair(out, rows, left, right, int(days), taken)
            for left, right in feature.params["pairs"].items()
        ]
    )
    columns = {}
    for name in taken:
        column = pairs[name].reindex(out.index)
        if out[name].dtype == object:
            column = column.astype(object).where(column.notna(), "-")
        columns[f"{feature.name}_{name}"] = column
    return columns


def _pair(
    results: pd.DataFrame, rows: _Sorted, left: str, right: str, days: int, taken: list[str]
) -> pd.DataFrame:
    """For each ``left`` result, the nearest ``right`` result of the patient within ``days``."""
    names = list(dict.fromkeys(["value", *taken, "collected_at", "row"]))
    a = results[["patient_id", "collected_at"]].iloc[rows.of([left])].reset_index()
    b = results[["patient_id", *names]].iloc[rows.of([right])]
    b = b.sort_values(["collected_at", "value", "row"])
    if a.empty or b.empty:
        return pd.DataFrame(columns=taken, index=results.index[:0])
    b = b.assign(pair_at=b["collected_at"]).rename(columns={n: f"pair_{n}" for n in names})
    merged = pd.merge_asof(
        a.sort_values("collected_at"),
        b.sort_values("pair_at"),
        left_on="collected_at",
        right_on="pair_at",
        by="patient_id",
        direction="nearest",
        tolerance=pd.Timedelta(days=days, hours=23, minutes=59, seconds=59),
    )
    merged = merged[merged["pair_collected_at"].notna()]
    within = (
        merged["pair_collected_at"].dt.normalize() - merged["collected_at"].dt.normalize()
    ).abs()
    merged = merged[within <= pd.Timedelta(days=days)]
    pairs: pd.DataFrame = merged.set_index("index")[[f"pair_{n}" for n in taken]]
    return pairs.set_axis(taken, axis=1)


def _same_day(out: pd.DataFrame, rows: _Sorted, feature: Feature) -> np.ndarray:
    """``same_day``: for each result of the feature's analytes, the highest (``how = "max"``)
    or lowest ``take`` of the patient's results of analyte ``of`` on the same day; NaN without
    one."""
    found = np.full(len(out), np.nan)
    of = rows.of([feature.params["of"]])
    mine = rows.of(feature.analytes)
    if not len(of) or not len(mine):
        return found
    keys = _patient_day(rows.patient, rows.day)
    by_day = out[feature.params["take"]].iloc[of].groupby(keys[of])
    per_day = by_day.max() if feature.params["how"] == "max" else by_day.min()
    found[mine] = per_day.reindex(keys[mine]).to_numpy(dtype=float)
    return found


def _window(
    out: pd.DataFrame,
    rows: _Sorted,
    feature: Feature,
    days: tuple[float, float],
    columns: Columns,
    thresholds: Mapping[str, Any],
) -> dict[str, np.ndarray]:
    """``window``: for each result of the feature's analytes, one result of the patient's
    analytes ``of`` whose day lies from ``before`` days before to ``after`` days after its day
    (inclusive): the one with the highest (``pick = "max"``) or lowest ``by``, or the nearest in
    days (ties: the earlier); equal ones, the first in the context's order. Its ``take``
    expressions and its ``row``; NaN without one."""
    params = feature.params
    found = {f"{feature.name}_{name}": np.full(len(out), np.nan) for name in params["take"]}
    found[f"{feature.name}_row"] = np.full(len(out), np.nan)
    mine = rows.of(feature.analytes)
    of = rows.of(params["of"])
    if not len(mine) or not len(of):
        return found
    of = of[np.argsort(_patient_day(rows.patient[of], rows.day[of]), kind="stable")]
    keys = _patient_day(rows.patient[of], rows.day[of])
    at = _patient_day(rows.patient[mine], rows.day[mine])
    left = np.searchsorted(keys, at - np.int64(days[0]), "left")
    right = np.searchsorted(keys, at + np.int64(days[1]), "right")
    if params["pick"] == "nearest":
        last = np.searchsorted(keys, at, "right") - 1  # the last on or before the day
        before = np.searchsorted(keys, keys[np.maximum(last, 0)], "left")  # that day's first
        after = np.searchsorted(keys, at, "left")  # the first on or after the day
        far = np.iinfo(np.int64).max
        gap_before = np.where(last >= left, at - keys[np.maximum(last, 0)], far)
        gap_after = np.where(after < right, keys[np.minimum(after, len(keys) - 1)] - at, far)
        pick = np.where(gap_before <= gap_after, before, after)
        pick = np.where(np.minimum(gap_before, gap_after) < far, pick, -1)
    else:
        by = number(params["by"], columns.at(of), thresholds)
        pick = _range_pick(by if params["pick"] == "max" else -by, left, right)
    chosen = pick >= 0
    picked = of[pick[chosen]]
    reading = columns.at(picked)
    for name, expression in params["take"].items():
        found[f"{feature.name}_{name}"][mine[chosen]] = number(expression, reading, thresholds)
    found[f"{feature.name}_row"][mine[chosen]] = out["row"].to_numpy(dtype=float)[picked]
    return found


def _range_pick(values: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The position of the highest of ``values[left:right]`` for each pair (the first of equal
    ones; NaN never wins), -1 for a range that is empty or all NaN: a sparse table of
    positions, as :func:`_range_min` keeps values."""
    filled = np.where(np.isnan(values), -np.inf, values)
    table = [np.arange(len(values))]
    while 2 ** len(table) <= len(values):
        width = 2 ** (len(table) - 1)
        a, b = table[-1][:-width], table[-1][width:]
        table.append(np.where(filled[b] > filled[a], b, a))
    length = right - left
    out = np.full(len(left), -1)
    some = np.flatnonzero(length > 0)
    level = np.floor(np.log2(length[some])).astype(np.intp)
    for k in np.unique(level):
        mine = some[level == k]
        a, b = table[k][left[mine]], table[k][right[mine] - 2**k]
        out[mine] = np.where(filled[b] > filled[a], b, a)
    out[out >= 0] = np.where(np.isnan(values[out[out >= 0]]), -1, out[out >= 0])
    return out


def _parameter(feature: Feature, name: str, thresholds: Mapping[str, Any]) -> float:
    value = feature.params[name]
    return float(thresholds[value] if isinstance(value, str) else value)


def _features(out: pd.DataFrame, rows: _Sorted, book: RuleBook, thresholds: Thresholds) -> None:
    """The packs' features, as columns of ``out``."""
    for feature in book.features:
        if feature.kind == "rise_within":
            hours = _parameter(feature, "hours", thresholds)
            out[feature.name] = _rise_within(out, rows, feature, hours)
        elif feature.kind == "months_later":
            months = _parameter(feature, "months", thresholds)
            out[feature.name] = _months_later(out, rows, feature, months)
        elif feature.kind == "nearest":
            days = _parameter(feature, "days", thresholds)
            for name, column in _nearest(out, rows, feature, days).items():
                out[name] = column
        elif feature.kind == "window":
            span = (
                _parameter(feature, "before", thresholds),
                _parameter(feature, "after", thresholds),
            )
            columns = field_columns(out, book)
            for name, found in _window(out, rows, feature, span, columns, thresholds).items():
                out[name] = found
        else:
            out[feature.name] = _same_day(out, rows, feature)


def field_columns(frame: pd.DataFrame, book: RuleBook) -> Columns:
    """A context table's columns as conditions name them (``lln`` reads ``ref_low``,
    ``baseline`` reads ``comparable_baseline``, ...)."""
    return Columns(frame, {name: f.source for name, f in book.fields.items() if f.column})


def _derived(out: pd.DataFrame, book: RuleBook, thresholds: Thresholds) -> None:
    """The packs' derived fields, in declaration order (one may read those above it)."""
    for derived in book.derived:
        columns = field_columns(out, book)
        expression = derived.expression
        if isinstance(expression, Node | Computed):  # a condition: a flag, 1 or 0
            out[derived.name] = evaluate(expression, columns, thresholds).astype("int64")
        else:
            out[derived.name] = number(expression, columns, thresholds)


def _course_context(results: pd.DataFrame, rows: _Sorted, courses: pd.DataFrame) -> None:
    """Latest course started on or before each result's day, days since it, and the label's
    window (``days_since_course``, ``window_end``, ``window``)."""
    mine = rows.patients.get_indexer(courses["patient_id"])  # courses by patient, then start
    patient = mine[mine >= 0]
    starts = courses["start"].to_numpy(dtype="datetime64[ns]")[mine >= 0]
    ends = courses["window_end"].to_numpy(dtype="datetime64[ns]")[mine >= 0]
    # a course counts from the day it starts on
    first_day = (starts + np.timedelta64(1, "D") - np.timedelta64(1, "ns")).astype("datetime64[D]")
    keys = _patient_day(patient, first_day)
    latest = np.searchsorted(keys, _patient_day(rows.patient, rows.day), side="right") - 1
    found = latest >= 0
    found[found] = patient[latest[found]] == rows.patient[found]
    nat = np.datetime64("NaT", "ns")
    pick = np.where(found, latest, -1)  # -1: the NaT appended to each column
    start, end = np.append(starts, nat)[pick], np.append(ends, nat)[pick]
    day = rows.day.astype("datetime64[ns]")
    since = (day - start).astype("timedelta64[D]").astype(float)
    results["days_since_course"] = np.where(found, since, np.nan)
    results["window_end"] = end
    has_courses = np.isin(rows.patient, patient)
    chosen = np.select([~has_courses, ~found, day > end], [0, 1, 2], 3)
    names = np.array(["no_courses", "pre_treatment", "after_window", "in_window"], dtype=object)
    results["window"] = _text(names[chosen], results.index)


def add_context(
    results: pd.DataFrame, patients: pd.DataFrame | None, thresholds: Thresholds, book: RuleBook
) -> pd.DataFrame:
    """Scored results with their context columns (:func:`context_columns`), sorted by patient,
    analyte and time."""
    out = results.sort_values(_ORDER, kind="mergesort").reset_index(drop=True)
    if out.empty:
        empty = {name: pd.Series(dtype=dtype) for name, dtype in context_columns(book).items()}
        return pd.concat([out, pd.DataFrame(empty, index=out.index)], axis=1)
    rows = _Sorted(out)
    courses = course_table(patients, thresholds)
    first_course = courses.groupby("patient_id")["start"].min()
    _baselines(out, rows, first_course)
    # a result taken before its baseline is not a change from it (a pre-treatment value weeks
    # before the baseline visit neither rises nor falls from a later baseline)
    out["comparable_baseline"] = out["baseline"].where(
        (out["baseline"] > 0) & (out["collected_at"] >= out["baseline_date"])
    )
    out["day"] = rows.day.astype("int64")
    out["baseline_days"] = out["day"] - (out["baseline_date"].dt.normalize() - _EPOCH).dt.days
    _course_context(out, rows, courses)
    with warnings.catch_warnings():
        # a column per feature and derived field, added one by one (each may read those above
        # it): pandas warns of a fragmented frame past 100 blocks; joining them once is what
        # the next stage's row selection does anyway, and copying the table here would double
        # its memory
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        _features(out, rows, book, thresholds)
        _derived(out, book, thresholds)
    return out
