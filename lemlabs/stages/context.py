"""Per-patient context of each result, computed group-wise with pandas.

Baseline (and its age), the ratio to baseline (rise and fall), the 48-hour creatinine rise, days
since the latest course, the label's monitoring window, the pairing of TSH with free T4, the last
day of the TSH swing window, and whether a dipstick's same-day microscopy was negative.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

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
    "baseline_days": "int64",
    "rise_ratio": "float64",
    "fall_fraction": "float64",
    "rise_48h": "float64",
    "day": "int64",
    "swing_until": "int64",
    "micro_neg": "int64",
    "days_since_course": "float64",
    "window_end": "datetime64[ns]",
    "window": "object",
    "pair_flag": "object",
    "pair_row": "float64",
}
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


def _rise_48h(out: pd.DataFrame, rows: _Sorted, hours: int) -> np.ndarray:
    """Value minus the lowest result of the same analyte in the ``hours`` before (creatinine):
    before ``[t - hours, t)``, as pandas' time-based ``rolling(closed="left")`` counts."""
    rise = np.full(len(out), np.nan)
    creatinine = np.flatnonzero(rows.analyte == "creatinine")
    if not len(creatinine):
        return rise
    times = rows.times[creatinine].astype("int64")
    patient = rows.patient[creatinine]
    # (patient, time) as one sortable integer: the time's rank among the distinct times
    distinct = np.unique(times)
    stride = len(distinct) + 1
    keys = patient * stride + np.searchsorted(distinct, times)
    start = times - np.int64(hours) * 3_600_000_000_000
    left = np.searchsorted(keys, patient * stride + np.searchsorted(distinct, start), "left")
    right = np.searchsorted(keys, keys, "left")
    values = out["value"].to_numpy(dtype=float)[creatinine]
    lower = out["lower"].to_numpy(dtype=float)[creatinine]
    rise[creatinine] = lower - _range_min(values, left, right)
    return rise


def _pair(results: pd.DataFrame, rows: _Sorted, left: str, right: str, days: int) -> pd.DataFrame:
    """For each ``left`` result, the nearest ``right`` result of the patient within ``days``."""
    names = ["value", "flag", "collected_at", "row"]
    a = results.loc[rows.analyte == left, ["patient_id", "collected_at"]].reset_index()
    b = results.loc[rows.analyte == right, ["patient_id", *names]]
    b = b.sort_values(["collected_at", "value", "row"])
    if a.empty or b.empty:
        return pd.DataFrame(columns=["pair_flag", "pair_row"], index=results.index[:0])
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
    pairs: pd.DataFrame = merged.set_index("index")[["pair_flag", "pair_row"]]
    return pairs


def _swing_until(results: pd.DataFrame, months: int) -> pd.Series:
    """For TSH: the last day (epoch days) of the swing window, ``months`` calendar months on."""
    day = results["collected_at"].dt.normalize()
    tsh = results["analyte"] == "tsh"
    until = day.where(~tsh, day[tsh] + pd.DateOffset(months=months))
    days: pd.Series = (until - _EPOCH).dt.days
    return days


def _microscopy_negative(results: pd.DataFrame, rows: _Sorted, rbc_positive: float) -> np.ndarray:
    """1 for a dipstick blood result whose same-day microscopy shows fewer than
    ``rbc_positive`` RBC/HPF for certain (every count's upper bound below it), else 0."""
    rbc = rows.analyte == "urine_rbc"
    dipstick = rows.analyte == "urine_blood"
    if not rbc.any() or not dipstick.any():
        return np.zeros(len(results), dtype="int64")
    keys = _patient_day(rows.patient, rows.day)
    highest = results["upper"][rbc].groupby(keys[rbc]).max()
    same_day = highest.reindex(keys).to_numpy()
    return np.asarray(dipstick & (same_day < rbc_positive), dtype="int64")


def add_context(
    results: pd.DataFrame, patients: pd.DataFrame | None, thresholds: Thresholds
) -> pd.DataFrame:
    """Scored results with their context columns, sorted by patient, analyte and time."""
    out = results.sort_values(_ORDER, kind="mergesort").reset_index(drop=True)
    if out.empty:
        return out.assign(
            **{name: pd.Series(dtype=dtype) for name, dtype in CONTEXT_COLUMNS.items()}
        )
    rows = _Sorted(out)
    courses = course_table(patients, thresholds)
    first_course = courses.groupby("patient_id")["start"].min()
    _baselines(out, rows, first_course)
    # a result taken before its baseline is not a change from it (a pre-treatment value weeks
    # before the baseline visit neither rises nor falls from a later baseline)
    positive = out["baseline"].where(
        (out["baseline"] > 0) & (out["collected_at"] >= out["baseline_date"])
    )
    out["rise_ratio"] = out["lower"] / positive
    out["fall_fraction"] = 1 - out["upper"] / positive
    out["rise_48h"] = _rise_48h(out, rows, int(thresholds["renal.aki_window_hours"]))
    out["day"] = rows.day.astype("int64")
    out["baseline_days"] = out["day"] - (out["baseline_date"].dt.normalize() - _EPOCH).dt.days
    months = int(thresholds["thyroid.fluctuation_window_months"])
    out["swing_until"] = _swing_until(out, months)
    out["micro_neg"] = _microscopy_negative(out, rows, thresholds["renal.rbc_haematuria_hpf"])
    _course_context(out, rows, courses)
    days = int(thresholds["thyroid.pair_window_days"])
    pairs = pd.concat(
        [_pair(out, rows, "tsh", "free_t4", days), _pair(out, rows, "free_t4", "tsh", days)]
    )
    for name in ("pair_flag", "pair_row"):
        out[name] = pairs[name].reindex(out.index)
    return out


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
