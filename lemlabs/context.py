"""Per-patient context of each result, computed group-wise with pandas.

Baseline (and its age), the ratio to baseline (rise and fall), the 48-hour creatinine rise, days
since the latest course, the label's monitoring window, the pairing of TSH with free T4, the last
day of the TSH swing window, and whether a dipstick's same-day microscopy was negative.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lemlabs.rules.thresholds import Thresholds

_EPOCH = pd.Timestamp("1970-01-01")
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


def _baselines(results: pd.DataFrame, first_course: pd.Series) -> pd.DataFrame:
    day = results["collected_at"].dt.normalize()
    first_day = first_course.reindex(results["patient_id"].to_numpy()).to_numpy()
    before = pd.Series(day.to_numpy() <= first_day, index=results.index)
    groups = [results["patient_id"], results["analyte"]]
    pre = results["value"].where(before).groupby(groups).transform("last")
    pre_date = results["collected_at"].where(before).groupby(groups).transform("last")
    first = results.groupby(groups)["value"].transform("first")
    first_date = results.groupby(groups)["collected_at"].transform("first")
    return pd.DataFrame(
        {
            "baseline": pre.fillna(first),
            "baseline_date": pre_date.fillna(first_date),
            "baseline_kind": np.where(pre.notna(), "pre-treatment", "first on record"),
        },
        index=results.index,
    )


def _rise_48h(results: pd.DataFrame, hours: int) -> pd.Series:
    """Value minus the lowest result of the same analyte in the ``hours`` before (creatinine)."""
    creatinine = results[results["analyte"] == "creatinine"]
    if creatinine.empty:
        return pd.Series(np.nan, index=results.index)
    earlier = (
        creatinine.set_index("collected_at")
        .groupby("patient_id")["value"]
        .rolling(f"{hours}h", closed="left")
        .min()
    )
    rise = creatinine["lower"].to_numpy() - earlier.to_numpy()
    return pd.Series(rise, index=creatinine.index).reindex(results.index)


def _pair(results: pd.DataFrame, left: str, right: str, days: int) -> pd.DataFrame:
    """For each ``left`` result, the nearest ``right`` result of the patient within ``days``."""
    names = ["value", "flag", "collected_at", "row"]
    a = results[results["analyte"] == left][["patient_id", "collected_at"]].reset_index()
    b = results[results["analyte"] == right][["patient_id", *names]]
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


def _microscopy_negative(results: pd.DataFrame, rbc_positive: float) -> pd.Series:
    """1 for a dipstick blood result whose same-day microscopy shows fewer than
    ``rbc_positive`` RBC/HPF for certain (every count's upper bound below it), else 0."""
    rbc = results[results["analyte"] == "urine_rbc"]
    dipstick = results["analyte"] == "urine_blood"
    if rbc.empty or not dipstick.any():
        return pd.Series(0, index=results.index, dtype="int64")
    highest = rbc.groupby(["patient_id", "day"])["upper"].max()
    keys = pd.MultiIndex.from_arrays([results["patient_id"], results["day"]])
    same_day = highest.reindex(keys).to_numpy()
    negative = dipstick.to_numpy() & (same_day < rbc_positive)
    return pd.Series(negative.astype("int64"), index=results.index)


def add_context(
    results: pd.DataFrame, patients: pd.DataFrame | None, thresholds: Thresholds
) -> pd.DataFrame:
    """Scored results with their context columns, sorted by patient, analyte and time."""
    out = results.sort_values(_ORDER, kind="mergesort").reset_index(drop=True)
    if out.empty:
        return out.assign(
            **{name: pd.Series(dtype=dtype) for name, dtype in CONTEXT_COLUMNS.items()}
        )
    courses = course_table(patients, thresholds)
    first_course = courses.groupby("patient_id")["start"].min()
    out = out.join(_baselines(out, first_course))
    # a result taken before its baseline is not a change from it (a pre-treatment value weeks
    # before the baseline visit neither rises nor falls from a later baseline)
    positive = out["baseline"].where(
        (out["baseline"] > 0) & (out["collected_at"] >= out["baseline_date"])
    )
    out["rise_ratio"] = out["lower"] / positive
    out["fall_fraction"] = 1 - out["upper"] / positive
    out["rise_48h"] = _rise_48h(out, int(thresholds["renal.aki_window_hours"]))
    out["day"] = (out["collected_at"].dt.normalize() - _EPOCH).dt.days
    out["baseline_days"] = out["day"] - (out["baseline_date"].dt.normalize() - _EPOCH).dt.days
    months = int(thresholds["thyroid.fluctuation_window_months"])
    out["swing_until"] = _swing_until(out, months)
    out["micro_neg"] = _microscopy_negative(out, thresholds["renal.rbc_haematuria_hpf"])

    out = out.join(_course_context(out, courses))
    days = int(thresholds["thyroid.pair_window_days"])
    pairs = pd.concat([_pair(out, "tsh", "free_t4", days), _pair(out, "free_t4", "tsh", days)])
    return out.join(pairs)


def _course_context(results: pd.DataFrame, courses: pd.DataFrame) -> pd.DataFrame:
    """Latest course started on or before each result, days since it, and the label's window."""
    day = results["collected_at"].dt.normalize()
    columns = ["days_since_course", "window_end", "window"]
    if courses.empty:
        return pd.DataFrame(
            {
                "days_since_course": np.nan,
                "window_end": pd.NaT,
                "window": "no_courses",
            },
            index=results.index,
            columns=columns,
        ).astype({"window_end": "datetime64[ns]"})
    left = pd.DataFrame({"patient_id": results["patient_id"], "day": day}).reset_index()
    latest = (
        pd.merge_asof(
            left.sort_values("day"),
            courses.sort_values("start"),
            left_on="day",
            right_on="start",
            by="patient_id",
            direction="backward",
        )
        .set_index("index")
        .reindex(results.index)
    )
    has_courses = results["patient_id"].isin(courses["patient_id"])
    window = np.select(
        [
            ~has_courses.to_numpy(),
            latest["start"].isna().to_numpy(),
            (day > latest["window_end"]).to_numpy(),
        ],
        ["no_courses", "pre_treatment", "after_window"],
        "in_window",
    )
    return pd.DataFrame(
        {
            "days_since_course": (day - latest["start"]).dt.days,
            "window_end": latest["window_end"],
            "window": window,
        },
        index=results.index,
    )
