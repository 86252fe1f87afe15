"""Normalising: every lab row becomes a result in canonical units or a data issue, never neither.

The work is done per unique raw value and per unique (analyte, unit) pair, then spread over the
rows with numpy, so a million rows cost a few thousand parses and pint look-ups.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from lemlabs.analytes import catalogue, recognise
from lemlabs.ingest import Source, prepare_labs, prepare_patients
from lemlabs.reference import reference_intervals
from lemlabs.units import Conversion, conversion
from lemlabs.values import parse_value

ISSUE_COLUMNS = ["row", "patient_id", "field", "raw_value", "reason", "source"]
MAX_RAW_IN_ISSUE = 200


def _clip(text: str) -> str:
    if len(text) <= MAX_RAW_IN_ISSUE:
        return text
    return f"{text[:MAX_RAW_IN_ISSUE]}… ({len(text)} characters)"


class _Problems:
    """The first problem found for each row (field and reason); later checks skip flagged rows."""

    def __init__(self, size: int) -> None:
        self.field = np.full(size, "", dtype=object)
        self.reason = np.full(size, "", dtype=object)

    @property
    def ok(self) -> np.ndarray:
        return np.asarray(self.reason == "", dtype=bool)

    def add(self, mask: np.ndarray, field: str, reason: str | Callable[[int], str]) -> None:
        """Flag rows in ``mask`` not flagged yet; ``reason`` may be a function of the row."""
        new = np.flatnonzero(mask & self.ok)
        self.field[new] = field
        self.reason[new] = reason if isinstance(reason, str) else [reason(int(i)) for i in new]


def _analytes(frame: pd.DataFrame) -> pd.Series:
    tests = pd.Series(frame["test"].unique())
    by_test = dict(zip(tests, tests.map(lambda test: recognise(test)), strict=True))
    analyte = frame["test"].map(by_test)
    if "loinc" in frame.columns:
        codes = frame["loinc"].unique()
        by_loinc = {code: recognise(None, code) for code in codes}
        analyte = frame["loinc"].map(by_loinc).fillna(analyte)
    return analyte.fillna("").astype(str)


def _per_unique(
    columns: list[np.ndarray], func: Any, fields: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """Call ``func`` once per unique combination of ``columns``; spread ``fields`` over rows."""
    codes, uniques = pd.MultiIndex.from_arrays(columns).factorize()
    parsed = [func(*key) for key in uniques]
    return {
        name: np.array([getattr(p, name) for p in parsed], dtype=object)[codes] for name in fields
    }


def _grade_from_mass(mg_dl: np.ndarray, cutoffs: tuple[tuple[float, float], ...]) -> np.ndarray:
    grade = np.zeros(len(mg_dl))
    for cutoff, value in cutoffs:
        grade = np.where(mg_dl >= cutoff, value, grade)
    return grade


def _bounds(value: np.ndarray, high: np.ndarray, censor: np.ndarray) -> tuple[np.ndarray, ...]:
    """Lower and upper bound of the true value: what a threshold may rely on."""
    lower = np.where(np.isin(censor, ["<", "<="]), -np.inf, value)
    lower = np.where(censor == ">", np.nextafter(value, np.inf), lower)
    upper = np.where(np.isin(censor, [">", ">="]), np.inf, value)
    upper = np.where(censor == "<", np.nextafter(value, -np.inf), upper)
    return lower, upper


def normalise(labs: Source, patients: Source | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Normalise a lab table: ``(results, issues)``.

    ``results`` holds every accepted row (``status`` ``scored`` or ``not_scored`` for analytes
    lemlabs does not score), values in canonical units with the raw value and unit kept, the
    reference interval and an interpretation flag (L/H/N). ``issues`` holds one record per
    rejected row (``row`` is its 0-based position) and per unusable patient record.
    """
    frame = prepare_labs(labs)
    people = prepare_patients(patients) if patients is not None else None
    size = len(frame)
    problems = _Problems(size)
    book = catalogue()

    problems.add(
        frame["patient_id"].str.strip().eq("").to_numpy(), "patient_id", "patient_id is empty"
    )
    raw_dates = frame["collected_at_raw"].to_numpy(dtype=object)
    problems.add(
        frame["collected_at"].isna().to_numpy(),
        "collected_at",
        lambda i: f"not an ISO date: {_clip(raw_dates[i])!r}",
    )
    analyte = _analytes(frame)
    scored = analyte.ne("").to_numpy()
    kind = analyte.map({key: a.kind for key, a in book.items()}).fillna("").to_numpy()

    parsed = _per_unique(
        [frame["value"].to_numpy()], parse_value, ("shape", "value", "high", "censor", "problem")
    )
    shape = parsed["shape"]
    value = parsed["value"].astype(float)
    high = parsed["high"].astype(float)
    censor = parsed["censor"].astype(str)
    problems.add(scored & (shape == "invalid"), "value", lambda i: parsed["problem"][i])

    unit_text = frame["unit"].str.strip()
    has_unit = unit_text.ne("").to_numpy()
    quantitative = kind == "quantitative"
    counts = kind == "count_per_hpf"
    ordinal = kind == "ordinal"
    grade_zero = (shape == "grade") & (value == 0)
    mass_protein = ordinal & (shape == "number") & has_unit
    expects_number = quantitative & (shape != "number")
    wrong_count = counts & ~np.isin(shape, ["number", "range", "tntc"]) & ~grade_zero
    wrong_grade = ordinal & (shape != "grade") & ~mass_protein
    labels = analyte.map({key: a.label for key, a in book.items()}).fillna("").to_numpy()
    raw_values = frame["value"].to_numpy(dtype=object)
    for mask, what in (
        (expects_number, "a number"),
        (wrong_count, "a count per HPF"),
        (wrong_grade, "a dipstick grade"),
    ):
        problems.add(mask, "value", _expected(what, labels, raw_values))

    needs_unit = quantitative | mass_protein | (counts & has_unit)
    target = np.where(
        mass_protein, analyte.map({k: a.mass_unit or "" for k, a in book.items()}).fillna(""), ""
    )
    convert = _per_unique(
        [np.where(needs_unit, analyte, ""), np.where(needs_unit, unit_text, ""), target],
        _conversion,
        ("factor", "problem"),
    )
    problems.add(
        needs_unit & (convert["problem"] != None),  # noqa: E711
        "unit",
        lambda i: convert["problem"][i],
    )
    factor = np.where(needs_unit & (convert["factor"] != None), convert["factor"], 1.0)  # noqa: E711
    factor = factor.astype(float)

    tntc = analyte.map({k: a.tntc for k, a in book.items()}).astype(float).to_numpy()
    value = np.where(shape == "tntc", tntc, value) * factor
    high = high * factor

    low_bound = analyte.map(
        {k: (a.plausible_mg_dl or a.plausible or (-np.inf, np.inf))[0] for k, a in book.items()}
    )
    high_bound = analyte.map(
        {k: (a.plausible_mg_dl or a.plausible or (-np.inf, np.inf))[1] for k, a in book.items()}
    )
    low_ok, high_ok = low_bound.astype(float).to_numpy(), high_bound.astype(float).to_numpy()
    numeric = quantitative | counts | mass_protein
    implausible = numeric & np.isfinite(value) & ((value < low_ok) | (value > high_ok))
    units = analyte.map({k: a.unit for k, a in book.items()}).fillna("").to_numpy()
    shown_unit = np.where(mass_protein, target, units)
    problems.add(
        implausible,
        "value",
        lambda i: (
            f"implausible value {value[i]:g} {shown_unit[i]} for {labels[i]} "
            f"(plausible {low_ok[i]:g}–{high_ok[i]:g})"
        ),
    )
    max_grade = analyte.map({k: a.max_grade for k, a in book.items()}).astype(float).to_numpy()
    problems.add(
        ordinal & (shape == "grade") & (value > max_grade),
        "value",
        "grade above the dipstick scale",
    )

    cutoffs = {k: a.grade_cutoffs_mg_dl for k, a in book.items() if a.grade_cutoffs_mg_dl}
    for key, table in cutoffs.items():
        rows = mass_protein & (analyte.to_numpy() == key)
        value = np.where(rows, _grade_from_mass(value, table), value)
    censor = np.where(ordinal, "", censor)
    lower, upper = _bounds(value, high, censor)

    sex = pd.Series("", index=frame.index)
    if people is not None:
        sex = (
            frame["patient_id"]
            .map(dict(zip(people["patient_id"], people["sex"], strict=True)))
            .fillna("")
        )
    empty = pd.Series("", index=frame.index)
    refs = reference_intervals(
        analyte,
        sex,
        pd.Series(np.where(quantitative, factor, np.nan), index=frame.index),
        frame.get("ref_low", empty),
        frame.get("ref_high", empty),
    )
    flag = np.where(
        upper < refs["ref_low"].to_numpy(),
        "L",
        np.where(lower > refs["ref_high"].to_numpy(), "H", "N"),
    )

    results = frame.copy()
    results.insert(0, "row", np.arange(size))
    results["analyte"] = analyte.to_numpy()
    results["status"] = np.where(scored, "scored", "not_scored")
    results["kind"] = kind
    results["raw_value"] = frame["value"]
    results["raw_unit"] = frame["unit"]
    results["value"] = np.where(scored, value, np.nan)
    results["value_high"] = np.where(scored, high, np.nan)
    results["censor"] = np.where(scored, censor, "")
    results["lower"] = np.where(scored, lower, np.nan)
    results["upper"] = np.where(scored, upper, np.nan)
    results["unit"] = np.where(scored, units, frame["unit"])
    results["ref_low"] = refs["ref_low"].where(scored)
    results["ref_high"] = refs["ref_high"].where(scored)
    results["ref_source"] = np.where(scored, refs["ref_source"], "")
    results["flag"] = np.where(scored, flag, "")
    results["sex"] = sex.to_numpy()
    accepted = problems.ok
    issues = pd.DataFrame(
        {
            "row": np.arange(size)[~accepted],
            "patient_id": frame["patient_id"].to_numpy()[~accepted],
            "field": problems.field[~accepted],
            "raw_value": _raw_for(frame, problems, ~accepted),
            "reason": problems.reason[~accepted],
            "source": "labs",
        },
        columns=ISSUE_COLUMNS,
    )
    if people is not None:
        issues = pd.concat([issues, _patient_issues(people)], ignore_index=True)
    return results.loc[accepted].reset_index(drop=True), issues.astype({"row": "int64"})


def _expected(what: str, labels: np.ndarray, raws: np.ndarray) -> Callable[[int], str]:
    return lambda i: f"expected {what} for {labels[i]}, got {_clip(str(raws[i]))!r}"


def _conversion(analyte: str, unit: str, target: str) -> Conversion:
    if not analyte:
        return Conversion(1.0)
    return conversion(analyte, unit, target or None)


def _raw_for(frame: pd.DataFrame, problems: _Problems, mask: np.ndarray) -> list[str]:
    column_of = {
        "patient_id": "patient_id",
        "collected_at": "collected_at_raw",
        "value": "value",
        "unit": "unit",
    }
    return [
        _clip(str(frame.at[index, column_of[field]]))
        for index, field in zip(np.flatnonzero(mask), problems.field[mask], strict=True)
    ]


def _patient_issues(people: pd.DataFrame) -> pd.DataFrame:
    bad = people[people["problem"] != ""]
    return pd.DataFrame(
        {
            "row": bad.index.to_numpy(),
            "patient_id": bad["patient_id"].to_numpy(),
            "field": "course_dates",
            "raw_value": bad.get("course_dates", pd.Series("", index=bad.index))
            .map(_clip)
            .to_numpy(),
            "reason": bad["problem"].to_numpy(),
            "source": "patients",
        },
        columns=ISSUE_COLUMNS,
    )
