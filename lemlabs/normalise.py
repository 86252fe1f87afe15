"""Normalising: every lab row becomes a result in canonical units or a data issue, never neither.

The work is done per unique raw value and per unique (analyte, unit) pair, then spread over the
rows with numpy, so a million rows cost a few thousand parses and pint look-ups.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from lemlabs.analytes import catalogue, identify
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


def _per_unique(values: Any, func: Callable[[Any], Any], dtype: Any = object) -> np.ndarray:
    """``func`` applied once per unique value, spread over the rows."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=False)
    return np.asarray([func(value) for value in uniques], dtype=dtype)[codes]


def _identified(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the analyte key ('' when not scored), why it is not scored, and a data issue
    when its name and LOINC contradict each other (:func:`lemlabs.analytes.identify`)."""
    empty = np.full(len(frame), "", dtype=object)
    columns = [
        frame[name].to_numpy(dtype=object) if name in frame.columns else empty
        for name in ("test", "loinc", "specimen")
    ]
    key = np.zeros(len(frame), dtype="int64")
    uniques = []
    for column in columns:
        codes, values = pd.factorize(column, use_na_sentinel=False)
        key = key * len(values) + codes
        uniques.append(values)
    codes, keys = pd.factorize(key, use_na_sentinel=False)
    found = []
    for number in keys:
        rest, specimen = divmod(int(number), len(uniques[2]))
        test, loinc = divmod(rest, len(uniques[1]))
        found.append(
            identify(str(uniques[0][test]), str(uniques[1][loinc]), str(uniques[2][specimen]))
        )

    def spread(name: str) -> np.ndarray:
        return np.array([getattr(identity, name) for identity in found], dtype=object)[codes]

    return spread("analyte"), spread("reason"), spread("issue")


def _grade_from_mass(mg_dl: np.ndarray, cutoffs: tuple[tuple[float, float], ...]) -> np.ndarray:
    grade = np.zeros(len(mg_dl))
    for cutoff, value in cutoffs:
        grade = np.where(mg_dl >= cutoff, value, grade)
    return grade


def _bounds(value: np.ndarray, censor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bound of the true value: what a threshold may rely on."""
    lower = np.where(np.isin(censor, ["<", "<="]), -np.inf, value)
    lower = np.where(censor == ">", np.nextafter(value, np.inf), lower)
    upper = np.where(np.isin(censor, [">", ">="]), np.inf, value)
    upper = np.where(censor == "<", np.nextafter(value, -np.inf), upper)
    return lower, upper


def _pair_key(
    pair: int, analytes: np.ndarray, units: np.ndarray, book: dict[str, Any]
) -> tuple[str, str, str]:
    """Decode ``(analyte code × units + unit code) × 2 + mass flag`` (-1: no unit needed)."""
    if pair < 0:
        return "", "", ""
    rest, mass = divmod(pair, 2)
    analyte_code, unit_code = divmod(rest, len(units))
    analyte = str(analytes[analyte_code])
    return analyte, str(units[unit_code]), (book[analyte].mass_unit or "") if mass else ""


def _conversion(key: tuple[str, str, str]) -> Conversion:
    analyte, unit, target = key
    if not analyte:
        return Conversion(1.0)
    return conversion(analyte, unit, target or None)


def _expected(what: str, labels: np.ndarray, raws: np.ndarray) -> Callable[[int], str]:
    return lambda i: f"expected {what} for {labels[i]}, got {_clip(str(raws[i]))!r}"


def normalise(labs: Source, patients: Source | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Normalise a lab table: ``(results, issues)``.

    ``results`` holds every accepted row (``status`` ``scored`` or ``not_scored`` for analytes
    lemlabs does not score), values in canonical units with the raw value and unit kept, the
    reference interval and an interpretation flag (L/H/N). ``issues`` holds one record per
    rejected row (``row`` is its 0-based position) and per unusable patient record.
    """
    people = prepare_patients(patients) if patients is not None else None
    return normalise_prepared(prepare_labs(labs), people)


def normalise_prepared(
    frame: pd.DataFrame, people: pd.DataFrame | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`normalise` for tables already through ``prepare_labs``/``prepare_patients``."""
    size = len(frame)
    problems = _Problems(size)
    book = catalogue()

    patient_ids = frame["patient_id"].to_numpy(dtype=object)
    if "problem" in frame.columns:  # a reader (FHIR) already found the row unusable
        reported = frame["problem"].to_numpy(dtype=object)
        problems.add(
            _per_unique(reported, lambda p: bool(str(p).strip()), bool),
            "source",
            lambda i: str(reported[i]),
        )
    problems.add(
        _per_unique(patient_ids, lambda p: not str(p).strip(), bool),
        "patient_id",
        "patient_id is empty",
    )
    raw_dates = frame["collected_at_raw"].to_numpy(dtype=object)
    problems.add(
        frame["collected_at"].isna().to_numpy(),
        "collected_at",
        lambda i: f"not an ISO date: {_clip(raw_dates[i])!r}",
    )

    analyte, not_scored_reason, conflict = _identified(frame)
    problems.add(conflict != "", "loinc", lambda i: str(conflict[i]))
    analyte_codes, analytes = pd.factorize(analyte, use_na_sentinel=False)

    def attribute(name: str, default: Any = None, dtype: Any = object) -> np.ndarray:
        """A catalogue attribute per row (``default`` where unset or not scored)."""
        table = [getattr(book[key], name) if key else None for key in analytes]
        return np.asarray([default if v is None else v for v in table], dtype=dtype)[analyte_codes]

    def bounds(name: str) -> tuple[np.ndarray, np.ndarray]:
        table = [getattr(book[key], name) if key else None for key in analytes]
        pairs = np.array([v or (-np.inf, np.inf) for v in table], dtype=float).reshape(-1, 2)
        return pairs[analyte_codes, 0], pairs[analyte_codes, 1]

    scored = analyte != ""
    kind = attribute("kind", "")
    labels = attribute("label", "")

    raw_values = frame["value"].to_numpy(dtype=object)
    value_codes, unique_values = pd.factorize(raw_values, use_na_sentinel=False)
    parsed = [parse_value(str(raw)) for raw in unique_values]

    def field(name: str, dtype: Any = object) -> np.ndarray:
        return np.asarray([getattr(p, name) for p in parsed], dtype=dtype)[value_codes]

    shape, value, high, censor = (
        field("shape"),
        field("value", float),
        field("high", float),
        field("censor"),
    )
    problems.add(
        scored & (shape == "invalid"), "value", lambda i: str(parsed[value_codes[i]].problem)
    )

    unit_text = _per_unique(frame["unit"], lambda u: str(u).strip())
    has_unit = unit_text != ""
    quantitative, counts, ordinal = (
        kind == "quantitative",
        kind == "count_per_hpf",
        kind == "ordinal",
    )
    grade_zero = (shape == "grade") & (value == 0)
    mass_protein = ordinal & (shape == "number") & has_unit
    problems.add(
        quantitative & (shape != "number"), "value", _expected("a number", labels, raw_values)
    )
    problems.add(
        counts & ~np.isin(shape, ["number", "range", "tntc"]) & ~grade_zero,
        "value",
        _expected("a count per HPF", labels, raw_values),
    )
    problems.add(
        ordinal & (shape != "grade") & ~mass_protein,
        "value",
        _expected("a dipstick grade", labels, raw_values),
    )

    needs_unit = quantitative | mass_protein | (counts & has_unit)
    target = np.where(mass_protein, attribute("mass_unit", ""), "")
    unit_codes, units_seen = pd.factorize(unit_text, use_na_sentinel=False)
    pair = np.where(
        needs_unit, (analyte_codes * len(units_seen) + unit_codes) * 2 + mass_protein, -1
    )
    codes, unique_pairs = pd.factorize(pair, use_na_sentinel=False)
    converted = [_conversion(_pair_key(int(p), analytes, units_seen, book)) for p in unique_pairs]
    problem = np.array([c.problem or "" for c in converted], dtype=object)[codes]
    problems.add(needs_unit & (problem != ""), "unit", lambda i: str(problem[i]))
    factor = np.array([c.factor or 1.0 for c in converted], dtype=float)[codes]

    value = np.where(shape == "tntc", attribute("tntc", np.nan, float), value) * factor
    high = high * factor
    low_ok, high_ok = bounds("plausible")
    low_mass, high_mass = bounds("plausible_mg_dl")
    low_ok, high_ok = (
        np.where(mass_protein, low_mass, low_ok),
        np.where(mass_protein, high_mass, high_ok),
    )
    implausible = (quantitative | counts | mass_protein) & np.isfinite(value)
    implausible &= (value < low_ok) | (value > high_ok)
    units = attribute("unit", "")
    shown_unit = np.where(mass_protein, target, units)
    problems.add(
        implausible,
        "value",
        lambda i: (
            f"implausible value {value[i]:g} {shown_unit[i]} "
            f"for {labels[i]} (plausible {low_ok[i]:g}–{high_ok[i]:g})"
        ),
    )
    problems.add(
        ordinal & (shape == "grade") & (value > attribute("max_grade", np.inf, float)),
        "value",
        "grade above the dipstick scale",
    )

    for key in analytes:
        if key and book[key].grade_cutoffs_mg_dl:
            rows = mass_protein & (analyte == key)
            value = np.where(rows, _grade_from_mass(value, book[key].grade_cutoffs_mg_dl), value)
    censor = np.where(ordinal, "", censor)
    lower, upper = _bounds(value, censor)

    sex_of = {} if people is None else dict(zip(people["patient_id"], people["sex"], strict=True))
    sex = _per_unique(patient_ids, lambda p: sex_of.get(str(p).strip(), ""))
    empty = np.full(size, "", dtype=object)
    ref_factor, ref_note = _reference_units(frame, analyte, unit_text, quantitative, factor)
    ref_low, ref_high, ref_source = reference_intervals(
        analyte_codes,
        analytes,
        sex,
        ref_factor,
        frame["ref_low"].to_numpy(dtype=object) if "ref_low" in frame.columns else empty,
        frame["ref_high"].to_numpy(dtype=object) if "ref_high" in frame.columns else empty,
    )
    flag = np.where(upper < ref_low, "L", np.where(lower > ref_high, "H", "N"))
    critical_low, critical_high = (
        attribute("critical_low", -np.inf, float),
        attribute("critical_high", np.inf, float),
    )
    interpretation = np.select(  # HL7 v3 ObservationInterpretation codes
        [upper < critical_low, lower >= critical_high, ordinal & (flag != "N")],
        ["LL", "HH", "A"],
        flag,
    )

    accepted = problems.ok
    columns = {
        "analyte": analyte,
        "status": np.where(scored, "scored", "not_scored"),
        "status_reason": not_scored_reason,
        "kind": kind,
        "raw_value": raw_values,
        "raw_unit": frame["unit"].to_numpy(dtype=object),
        "value": np.where(scored, value, np.nan),
        "value_high": np.where(scored, high, np.nan),
        "censor": np.where(scored, censor, ""),
        "lower": np.where(scored, lower, np.nan),
        "upper": np.where(scored, upper, np.nan),
        "unit": np.where(scored, units, frame["unit"].to_numpy(dtype=object)),
        "ref_low": np.where(scored, ref_low, np.nan),
        "ref_high": np.where(scored, ref_high, np.nan),
        "ref_source": np.where(scored, ref_source, ""),
        "ref_note": np.where(scored, ref_note, ""),
        "flag": np.where(scored, flag, ""),
        "interpretation": np.where(scored, interpretation, ""),
        "sex": sex,
    }
    results = frame.copy()
    results.insert(0, "row", np.arange(size))
    for name, column in columns.items():
        results[name] = pd.Series(column, index=results.index, dtype=column.dtype)
    issues = pd.DataFrame(
        {
            "row": np.arange(size)[~accepted],
            "patient_id": patient_ids[~accepted],
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


def _reference_units(
    frame: pd.DataFrame,
    analyte: np.ndarray,
    unit_text: np.ndarray,
    quantitative: np.ndarray,
    factor: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The factor that brings a row's own reference bounds to the canonical unit, and a note
    where they cannot be used (then the default interval applies, and the result says so).

    Bounds are in the row's unit unless ``ref_unit`` names another one (a FHIR referenceRange
    may say ``mIU/L`` where the value says ``m[IU]/L``): that unit is converted with pint.
    """
    ref_factor = np.where(quantitative, factor, np.nan)
    note = np.full(len(frame), "", dtype=object)
    if "ref_note" in frame.columns:
        note = _per_unique(frame["ref_note"], lambda text: str(text).strip())
    if "ref_unit" not in frame.columns:
        return ref_factor, note
    ref_unit = _per_unique(frame["ref_unit"], lambda text: str(text).strip())
    own = np.flatnonzero(quantitative & (ref_unit != "") & (ref_unit != unit_text))
    if not len(own):
        return ref_factor, note
    keys = pd.Series(analyte[own], dtype=object) + "\x1f" + pd.Series(ref_unit[own], dtype=object)
    codes, uniques = pd.factorize(keys.to_numpy(dtype=object), use_na_sentinel=False)
    found = [conversion(*str(key).split("\x1f", 1)) for key in uniques]
    ref_factor[own] = np.array([c.factor or np.nan for c in found], dtype=float)[codes]
    problems = np.array([c.problem or "" for c in found], dtype=object)[codes]
    failed = own[problems != ""]
    note[failed] = [
        f"the lab's reference range in {ref_unit[i]!r} cannot be used ({problem}): "
        "the default interval applies"
        for i, problem in zip(failed, problems[problems != ""], strict=True)
    ]
    return ref_factor, note


def _raw_for(frame: pd.DataFrame, problems: _Problems, mask: np.ndarray) -> list[str]:
    column_of = {
        "source": "source_id",
        "patient_id": "patient_id",
        "loinc": "loinc",
        "collected_at": "collected_at_raw",
        "value": "value",
        "unit": "unit",
    }
    return [
        _clip(str(frame.at[index, column_of[field]])) if column_of[field] in frame.columns else ""
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
