"""Ingest: lab and patient tables (as read by :mod:`lemlabs.formats.labs`) in lemlabs' shape:
column mapping, required columns, ISO dates, patient ids stripped; raw strings kept."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Iterable, Mapping
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from lemlabs.errors import LabInputError, MissingColumnError
from lemlabs.tables import stable_dtypes

LAB_COLUMNS = ("patient_id", "collected_at", "test", "value", "unit")
LAB_OPTIONAL = (
    "loinc",
    "ref_low",
    "ref_high",
    "ref_unit",
    "ref_note",
    "specimen",
    "source_id",
    "problem",
)
PATIENT_COLUMNS = ("patient_id",)
PATIENT_OPTIONAL = ("sex", "birth_date", "course_dates")
#: columns lemlabs adds to the patients table
RESERVED_PATIENT_COLUMNS = ("problem", "courses")
INPUT_PREFIX = "input_"
#: dates lemlabs accepts (collected_at, course_dates, birth_date, --as-of): outside these years a
#: date is a data issue, far from the limits of pandas' nanosecond timestamps (1677–2262)
FIRST_YEAR, LAST_YEAR = 1900, 2199
#: no date, ISO or not, is longer than this; a longer text is not parsed (nor cached)
MAX_DATE_LENGTH = 40

_ISO_DATE = re.compile(
    r"^\d{4}-\d{2}-\d{2}"  # a whole day; then hours, minutes, seconds at any precision (SDTMIG)
    r"(?:[T ]\d{2}(?::\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
)

_PARTIAL_DATE = re.compile(r"^\d{4}(?:-\d{2})?$")


def check_duplicates(columns: Iterable[Any], name: str) -> None:
    """Two columns whose names are equal up to case and surrounding spaces: lemlabs cannot
    tell which one is meant."""
    seen: dict[str, str] = {}
    for column in map(str, columns):
        folded = column.strip().casefold()
        if folded in seen:
            raise LabInputError(
                f"{name}: columns {seen[folded]!r} and {column!r} have the same name "
                "(ignoring case and spaces); rename or drop one"
            )
        seen[folded] = column


def _carry_reserved(frame: pd.DataFrame, reserved: Collection[str]) -> pd.DataFrame:
    """Input columns named like one lemlabs adds are carried as ``input_<name>``."""
    taken = {str(column) for column in frame.columns}
    renames = {}
    for column in map(str, frame.columns):
        if column in reserved:
            target = INPUT_PREFIX + column
            while target in taken:
                target = INPUT_PREFIX + target
            taken.add(target)
            renames[column] = target
    return frame.rename(columns=renames) if renames else frame


def _map_columns(
    frame: pd.DataFrame,
    known: tuple[str, ...],
    required: tuple[str, ...],
    columns: Mapping[str, str] | None,
    name: str,
) -> pd.DataFrame:
    check_duplicates(frame.columns, name)
    folded = {str(column).strip().casefold(): column for column in frame.columns}
    renames = {}
    for original, target in (columns or {}).items():
        found = original if original in frame.columns else folded.get(original.strip().casefold())
        if found is None:
            raise LabInputError(
                f"{name}: the column mapping names {original!r} (→ {target}), which is not a "
                f"column of it; the header found: {', '.join(repr(str(c)) for c in frame.columns)}"
            )
        renames[found] = target
    for wanted in known:
        if wanted not in renames.values() and wanted in folded and folded[wanted] != wanted:
            renames[folded[wanted]] = wanted
    frame = frame.rename(columns=renames)
    if frame.columns.duplicated().any():
        twice = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise LabInputError(f"{name}: column {twice[0]!r} appears more than once")
    missing = [column for column in required if column not in frame.columns]
    if missing:
        header = [str(c) for c in frame.columns]
        raise MissingColumnError(missing, name, header, _likely_mapping(header, missing))
    return frame


_LIKELY = {
    "patient_id": ("mrn", "patient", "patientid", "patient id", "subject", "subjid", "usubjid",
                   "pid", "id", "patient number", "hospital number", "personnummer"),
    "collected_at": ("date", "collection date", "collected", "sample date", "specimen date",
                     "collection time", "datetime", "lbdtc", "taken", "drawn", "effective"),
    "test": ("analyte", "test name", "testname", "lbtest", "lbtestcd", "parameter", "analyse",
             "analysis", "component", "observation", "item"),
    "value": ("result", "lborres", "result value", "resultat", "value text", "valuequantity"),
    "unit": ("units", "lborresu", "uom", "unit of measure", "enhet", "einheit"),
}  # fmt: skip
"""Header names that exports use for lemlabs' required columns (suggested, never applied)."""


def _likely_mapping(header: list[str], missing: list[str]) -> dict[str, str]:
    """For each missing column, the one header column whose name an export commonly uses for
    it (nothing when none or more than one is)."""
    out = {}
    for wanted in missing:
        found = [c for c in header if c.strip().casefold() in _LIKELY.get(wanted, ())]
        if len(found) == 1 and found[0] not in out:
            out[found[0]] = wanted
    return out


def _as_text(series: pd.Series) -> pd.Series:
    """Text as plain Python strings (object dtype): the numpy paths of normalising are several
    times faster on them than on pandas' Arrow-backed strings."""
    if series.dtype == object and pd.api.types.infer_dtype(series, skipna=False) == "string":
        return series  # already all str (what read_csv(dtype=object) gives)
    if pd.api.types.is_string_dtype(series.dtype) and series.dtype != object:
        return series.astype(object).where(series.notna(), "")
    return series.where(series.notna(), "").astype(object).map(str)


def parse_date(text: str) -> pd.Timestamp | None:
    """An ISO date or date-time within the years lemlabs accepts; else ``None``."""
    if len(text) > MAX_DATE_LENGTH:
        return None  # never cached
    return _parse_short_date(text)


@lru_cache(maxsize=1_000_000)
def _parse_short_date(text: str) -> pd.Timestamp | None:
    text = text.strip()
    if not _ISO_DATE.match(text) or not FIRST_YEAR <= int(text[:4]) <= LAST_YEAR:
        return None
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, OverflowError):
        return None
    stamp = stamp.tz_localize(None) if stamp.tzinfo is not None else stamp
    return stamp.as_unit("ns")


def date_problem(text: str) -> str:
    """Why a date text was not read: not ISO, or outside the accepted years."""
    text = str(text).strip()
    shown = text if len(text) <= 200 else f"{text[:200]}… ({len(text)} characters)"
    if len(text) <= MAX_DATE_LENGTH and _ISO_DATE.match(text):
        if not FIRST_YEAR <= int(text[:4]) <= LAST_YEAR:
            return f"date outside the years {FIRST_YEAR}–{LAST_YEAR}: {shown!r}"
        return f"not a valid date: {shown!r}"
    if _PARTIAL_DATE.match(text):
        return f"a partial date (not a whole calendar day): {shown!r}"
    return f"not an ISO date: {shown!r}"


def check_as_of(day: dt.date | str) -> dt.date:
    """An ``as_of`` date as a date within the accepted years, else :class:`LabInputError`."""
    try:
        stamp = pd.Timestamp(day)
    except (ValueError, OverflowError, TypeError) as error:
        raise LabInputError(f"as_of: not an ISO date: {str(day)!r}") from error
    if pd.isna(stamp) or not FIRST_YEAR <= stamp.year <= LAST_YEAR:
        raise LabInputError(f"as_of: {str(day)!r} is outside the years {FIRST_YEAR}–{LAST_YEAR}")
    return stamp.date()


DATE_FORMATS = ("ISO", "DMY", "MDY")
"""How an export writes its dates: ISO 8601 only (the default), or also day-first
(``05/03/2021`` is 5 March) or month-first (US: ``03/05/2021`` is 5 March) with ``/``, ``.``
or ``-`` and an optional time."""
_NUMERIC_DATE = re.compile(
    r"^\s*(\d{1,2})[./-](\d{1,2})[./-](\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?\s*$"
)


def check_date_format(date_format: str | None) -> str:
    """``date_format`` as one of :data:`DATE_FORMATS` (any case); anything else is refused."""
    chosen = (date_format or "ISO").upper()
    if chosen not in DATE_FORMATS:
        raise LabInputError(
            f"date format {date_format!r}: one of {', '.join(DATE_FORMATS)} "
            "(DMY: 05/03/2021 is 5 March; MDY: 03/05/2021 is 5 March)"
        )
    return chosen


def as_iso(text: str, date_format: str) -> str:
    """A day-first or month-first date (and time) as ISO text; any other text as it is (an ISO
    date stays valid whatever the format)."""
    match = _NUMERIC_DATE.match(text) if date_format != "ISO" else None
    if match is None:
        return text
    a, b, year, hour, minute, second = match.groups()
    day, month = (a, b) if date_format == "DMY" else (b, a)
    iso = f"{year}-{int(month):02d}-{int(day):02d}"
    if hour is not None:
        iso += f"T{int(hour):02d}:{minute}" + (f":{second}" if second else "")
    return iso


def _iso_texts(raw: pd.Series, date_format: str) -> pd.Series:
    if date_format == "ISO" or pd.api.types.is_datetime64_any_dtype(raw.dtype):
        return raw
    return _as_text(raw).map(lambda text: as_iso(text, date_format))


def parse_dates(raw: pd.Series) -> pd.Series:
    """ISO dates or date-times (an offset is dropped, keeping local wall time); others → NaT."""
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        dates = pd.to_datetime(raw)
        dates = dates.dt.tz_localize(None) if dates.dt.tz is not None else dates
        outside = (dates.dt.year < FIRST_YEAR) | (dates.dt.year > LAST_YEAR)
        return dates.mask(outside).astype("datetime64[ns]")
    text = _as_text(raw)
    codes, uniques = pd.factorize(text.to_numpy(dtype=object), use_na_sentinel=False)
    parsed = [parse_date(str(value)) for value in uniques]
    stamps = np.array(
        [np.datetime64("NaT", "ns") if p is None else p.to_datetime64() for p in parsed],
        dtype="datetime64[ns]",
    )
    return pd.Series(stamps[codes], index=raw.index, name=raw.name)


def is_prepared(source: Any) -> bool:
    """A frame that already came out of :func:`prepare_labs` (it is used as it is, not copied)."""
    return (
        isinstance(source, pd.DataFrame)
        and all(column in source.columns for column in (*LAB_COLUMNS, "collected_at_raw"))
        and pd.api.types.is_datetime64_any_dtype(source["collected_at"].dtype)
        and isinstance(source.index, pd.RangeIndex)
        and source.index.start == 0
        and source.index.step == 1
    )


def prepare_labs(
    frame: pd.DataFrame,
    columns: Mapping[str, str] | None = None,
    name: str = "DataFrame",
    reserved: Collection[str] = (),
    date_format: str | None = None,
) -> pd.DataFrame:
    """The lab table in lemlabs' shape: required columns checked, text kept, dates parsed
    (``frame`` itself is not changed; ``name`` is how messages call it).

    Adds ``collected_at`` as datetimes (NaT where unreadable) and keeps the text in
    ``collected_at_raw``. Unknown extra columns are carried through untouched; one named like a
    column lemlabs adds (``reserved``: :func:`lemlabs.formats.labs.reserved_columns`) is carried
    as ``input_<name>``. ``date_format`` (:data:`DATE_FORMATS`) reads day-first or month-first
    dates too.
    """
    date_format = check_date_format(date_format)
    if columns is None and date_format == "ISO" and is_prepared(frame):
        return frame
    frame = _map_columns(frame, LAB_COLUMNS + LAB_OPTIONAL, LAB_COLUMNS, columns, name)
    frame = frame.reset_index(drop=True)
    if not _was_prepared(frame):
        frame = _carry_reserved(frame, ("collected_at_raw", *reserved))
    if "collected_at_raw" not in frame.columns:
        frame["collected_at_raw"] = _as_text(frame["collected_at"])
    frame["collected_at"] = parse_dates(_iso_texts(frame["collected_at"], date_format))
    for column in ("patient_id", "test", "value", "unit", *LAB_OPTIONAL):
        if column in frame.columns:
            frame[column] = _as_text(frame[column])
    frame["patient_id"] = _strip_ids(frame["patient_id"])
    return frame


def _was_prepared(frame: pd.DataFrame) -> bool:
    """A lab table that went through :func:`prepare_labs` before (its own columns are kept)."""
    return "collected_at_raw" in frame.columns and pd.api.types.is_datetime64_any_dtype(
        frame["collected_at"].dtype
    )


def _strip_ids(ids: pd.Series) -> pd.Series:
    """Patient ids without surrounding spaces, in labs and patients alike ("P1 " is "P1")."""
    codes, uniques = pd.factorize(ids.to_numpy(dtype=object), use_na_sentinel=False)
    stripped = [str(text).strip() for text in uniques]
    if all(a == b for a, b in zip(stripped, uniques, strict=True)):
        return ids
    return pd.Series(np.array(stripped, dtype=object)[codes], index=ids.index, name=ids.name)


def _course_list(text: str, date_format: str = "ISO") -> list[pd.Timestamp] | None:
    days = [part for part in re.split(r"[;|]", text) if part.strip()]
    parsed = [parse_date(as_iso(day, date_format)) for day in days]
    if any(day is None for day in parsed):
        return None
    return sorted(day.normalize() for day in parsed if day is not None)


def prepare_patients(
    frame: pd.DataFrame,
    columns: Mapping[str, str] | None = None,
    name: str = "DataFrame",
    date_format: str | None = None,
) -> pd.DataFrame:
    """The patient table: ``sex`` as F/M/'' , ``birth_date`` as datetimes, ``courses`` as lists
    (``frame`` itself is not changed).

    A course date that cannot be read is reported in ``problem`` for that patient, never guessed.
    ``date_format`` (:data:`DATE_FORMATS`) reads day-first or month-first dates too.
    """
    date_format = check_date_format(date_format)
    if columns is None and date_format == "ISO" and _patients_prepared(frame):
        return frame  # read before (with its own date format): used as it is
    attrs = dict(frame.attrs)  # a reader's table-level issues (SDTM EX), kept through the copies
    frame = _map_columns(frame, PATIENT_COLUMNS + PATIENT_OPTIONAL, PATIENT_COLUMNS, columns, name)
    frame = frame.reset_index(drop=True)
    if "courses" in frame.columns and all(isinstance(c, list) for c in frame["courses"]):
        frame = frame.drop(columns=[c for c in RESERVED_PATIENT_COLUMNS if c in frame.columns])
    frame = _carry_reserved(frame, RESERVED_PATIENT_COLUMNS)
    frame["patient_id"] = _strip_ids(_as_text(frame["patient_id"]))
    sex = _as_text(frame.get("sex", pd.Series("", index=frame.index))).str.strip().str.upper()
    frame["sex"] = sex.where(sex.isin(["F", "M"]), "")
    births = frame.get("birth_date", pd.Series("", index=frame.index))
    frame["birth_date"] = parse_dates(_iso_texts(births, date_format))
    raw_courses = _as_text(frame.get("course_dates", pd.Series("", index=frame.index)))
    courses = raw_courses.map(lambda text: _course_list(text, date_format))
    frame["problem"] = [
        ""
        if parsed is not None
        else f"unreadable course date in {raw!r} (ISO dates of the years "
        f"{FIRST_YEAR}–{LAST_YEAR} separated by ';')"
        for parsed, raw in zip(courses, raw_courses, strict=True)
    ]
    frame["courses"] = [parsed or [] for parsed in courses]
    out = stable_dtypes(frame)
    out.attrs.update(attrs)
    return out


def _patients_prepared(frame: pd.DataFrame) -> bool:
    """A patient table that came out of :func:`prepare_patients`."""
    return (
        {"patient_id", "courses", "problem", "birth_date"} <= set(frame.columns)
        and pd.api.types.is_datetime64_any_dtype(frame["birth_date"].dtype)
        and all(isinstance(c, list) for c in frame["courses"])
    )


def rows_as_frame(records: Any) -> pd.DataFrame:
    """Records (dicts or dataclasses with the lab columns) as a lab DataFrame."""
    rows = [record if isinstance(record, Mapping) else vars(record) for record in records]
    return pd.DataFrame(rows, columns=None if rows else list(LAB_COLUMNS))
