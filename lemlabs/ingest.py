"""Reading lab and patient tables: column mapping, required columns, ISO dates; raw strings kept."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

import pandas as pd

from lemlabs.errors import LabInputError, MissingColumnError
from lemlabs.models import stable_dtypes

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

Source = str | os.PathLike[str] | IO[str] | IO[bytes] | pd.DataFrame

_ISO_DATE = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
)


def _describe(source: Source) -> str:
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    return getattr(source, "name", "input")


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except ImportError as error:
        raise LabInputError(
            f"{path}: reading Parquet needs the 'parquet' extra (pip install 'lemlabs[parquet]')"
        ) from error
    except Exception as error:  # pyarrow raises many types for a file that is not Parquet
        raise LabInputError(f"{path}: not a readable Parquet file ({error})") from error
    return frame.astype(object).where(frame.notna(), "").astype(str)


def _read_csv(source: Source) -> pd.DataFrame:
    name = _describe(source)
    if isinstance(source, str | os.PathLike) and not Path(source).is_file():
        raise LabInputError(f"{name}: no such file")
    if isinstance(source, str | os.PathLike) and Path(source).suffix.lower() == ".parquet":
        return _read_parquet(Path(source))
    try:
        return pd.read_csv(
            source,  # type: ignore[arg-type]
            dtype=object,
            keep_default_na=False,
            na_filter=False,
            encoding="utf-8-sig",
            skipinitialspace=False,
        )
    except pd.errors.EmptyDataError as error:
        raise LabInputError(f"{name}: the file is empty (no header row)") from error
    except UnicodeDecodeError as error:
        raise LabInputError(
            f"{name}: not UTF-8 text (byte {error.object[error.start]:#04x} at offset"
            f" {error.start}); re-export the file as UTF-8"
        ) from error
    except pd.errors.ParserError as error:
        raise LabInputError(f"{name}: not a readable CSV table ({str(error).strip()})") from error


def _frame(source: Source) -> tuple[pd.DataFrame, str]:
    if isinstance(source, pd.DataFrame):
        return source.copy(), "DataFrame"
    return _read_csv(source), _describe(source)


def _map_columns(
    frame: pd.DataFrame,
    known: tuple[str, ...],
    required: tuple[str, ...],
    columns: Mapping[str, str] | None,
    name: str,
) -> pd.DataFrame:
    renames = {original: target for original, target in (columns or {}).items()}
    folded = {str(column).strip().casefold(): column for column in frame.columns}
    for wanted in known:
        if wanted not in renames.values() and wanted in folded and folded[wanted] != wanted:
            renames[folded[wanted]] = wanted
    frame = frame.rename(columns=renames)
    for column in required:
        if column not in frame.columns:
            raise MissingColumnError(column, name)
    return frame


def _as_text(series: pd.Series) -> pd.Series:
    """Text as plain Python strings (object dtype): the numpy paths of normalising are several
    times faster on them than on pandas' Arrow-backed strings."""
    if series.dtype == object and pd.api.types.infer_dtype(series, skipna=False) == "string":
        return series  # already all str (what read_csv(dtype=object) gives)
    if pd.api.types.is_string_dtype(series.dtype) and series.dtype != object:
        return series.astype(object).where(series.notna(), "")
    return series.where(series.notna(), "").astype(object).map(str)


@lru_cache(maxsize=1_000_000)
def _parse_date(text: str) -> pd.Timestamp | None:
    text = text.strip()
    if not _ISO_DATE.match(text):
        return None
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, OverflowError):
        return None
    return stamp.tz_localize(None) if stamp.tzinfo is not None else stamp


def parse_dates(raw: pd.Series) -> pd.Series:
    """ISO dates or date-times (an offset is dropped, keeping local wall time); others → NaT."""
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        dates = pd.to_datetime(raw)
        return dates.dt.tz_localize(None) if dates.dt.tz is not None else dates
    text = _as_text(raw)
    uniques = text.unique()
    parsed = {value: _parse_date(value) for value in uniques}
    return pd.to_datetime(text.map(parsed), errors="coerce").astype("datetime64[ns]")


def _is_prepared(source: Source) -> bool:
    """A frame that already came out of :func:`prepare_labs` (it is used as it is, not copied)."""
    return (
        isinstance(source, pd.DataFrame)
        and all(column in source.columns for column in (*LAB_COLUMNS, "collected_at_raw"))
        and pd.api.types.is_datetime64_any_dtype(source["collected_at"].dtype)
        and isinstance(source.index, pd.RangeIndex)
        and source.index.start == 0
        and source.index.step == 1
    )


def prepare_labs(source: Source, columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The lab table in lemlabs' shape: required columns checked, text kept, dates parsed.

    Adds ``collected_at`` as datetimes (NaT where unreadable) and keeps the text in
    ``collected_at_raw``. Unknown extra columns are carried through untouched.
    """
    if columns is None and _is_prepared(source):
        return source  # type: ignore[return-value]
    frame, name = _frame(source)
    frame = _map_columns(frame, LAB_COLUMNS + LAB_OPTIONAL, LAB_COLUMNS, columns, name)
    frame = frame.reset_index(drop=True)
    if "collected_at_raw" not in frame.columns:
        frame["collected_at_raw"] = _as_text(frame["collected_at"])
    frame["collected_at"] = parse_dates(frame["collected_at"])
    for column in ("patient_id", "test", "value", "unit", *LAB_OPTIONAL):
        if column in frame.columns:
            frame[column] = _as_text(frame[column])
    return frame


def read_labs(path_or_buffer: Source, columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Read a long-format lab CSV or Parquet file (one result a row); see the README.

    ``columns`` maps other column names onto lemlabs' (``{"MRN": "patient_id"}``).
    Raises :class:`~lemlabs.errors.LabInputError` for a file that cannot be used at all.
    """
    return prepare_labs(path_or_buffer, columns)


def _course_list(text: str) -> list[pd.Timestamp] | None:
    days = [part for part in re.split(r"[;|]", text) if part.strip()]
    parsed = [_parse_date(day) for day in days]
    if any(day is None for day in parsed):
        return None
    return sorted(day.normalize() for day in parsed if day is not None)


def prepare_patients(source: Source, columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The patient table: ``sex`` as F/M/'' , ``birth_date`` as datetimes, ``courses`` as lists.

    A course date that cannot be read is reported in ``problem`` for that patient, never guessed.
    """
    frame, name = _frame(source)
    frame = _map_columns(frame, PATIENT_COLUMNS + PATIENT_OPTIONAL, PATIENT_COLUMNS, columns, name)
    frame = frame.reset_index(drop=True)
    frame["patient_id"] = _as_text(frame["patient_id"]).str.strip()
    sex = _as_text(frame.get("sex", pd.Series("", index=frame.index))).str.strip().str.upper()
    frame["sex"] = sex.where(sex.isin(["F", "M"]), "")
    frame["birth_date"] = parse_dates(frame.get("birth_date", pd.Series("", index=frame.index)))
    raw_courses = _as_text(frame.get("course_dates", pd.Series("", index=frame.index)))
    courses = raw_courses.map(_course_list)
    frame["problem"] = [
        ""
        if parsed is not None
        else f"unreadable course date in {raw!r} (ISO dates separated by ';')"
        for parsed, raw in zip(courses, raw_courses, strict=True)
    ]
    frame["courses"] = [parsed or [] for parsed in courses]
    return stable_dtypes(frame)


def read_patients(path_or_buffer: Source, columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Read the patients CSV: patient_id, sex, birth_date, course_dates (``;``-separated)."""
    return prepare_patients(path_or_buffer, columns)


def rows_as_frame(records: Any) -> pd.DataFrame:
    """Records (dicts or dataclasses with the lab columns) as a lab DataFrame."""
    rows = [record if isinstance(record, Mapping) else vars(record) for record in records]
    return pd.DataFrame(rows, columns=None if rows else list(LAB_COLUMNS))
