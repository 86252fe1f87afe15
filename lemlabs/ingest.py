"""Reading lab and patient tables: column mapping, required columns, ISO dates; raw strings kept."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

import numpy as np
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
#: columns lemlabs adds to the lab table as it normalises and scores it; an input column of
#: the same name is carried as ``input_<name>`` instead of being overwritten
RESERVED_LAB_COLUMNS = (
    "row",
    "index",
    "collected_at_raw",
    "analyte",
    "status",
    "status_reason",
    "kind",
    "raw_value",
    "raw_unit",
    "value_high",
    "censor",
    "lower",
    "upper",
    "ref_source",
    "flag",
    "interpretation",
    "sex",
    "baseline",
    "baseline_date",
    "baseline_kind",
    "prev_value",
    "prev_date",
    "change_abs",
    "rise_ratio",
    "fall_fraction",
    "rise_48h",
    "rise",
    "key",
    "day",
    "baseline_days",
    "swing_until",
    "micro_neg",
    "course",
    "days_since_course",
    "window_end",
    "window",
    "pair_value",
    "pair_flag",
    "pair_collected_at",
    "pair_row",
)
#: columns lemlabs adds to the patients table
RESERVED_PATIENT_COLUMNS = ("problem", "courses")
INPUT_PREFIX = "input_"
#: dates lemlabs accepts (collected_at, course_dates, birth_date, --as-of): outside these years a
#: date is a data issue, far from the limits of pandas' nanosecond timestamps (1677–2262)
FIRST_YEAR, LAST_YEAR = 1900, 2199
#: no date, ISO or not, is longer than this; a longer text is not parsed (nor cached)
MAX_DATE_LENGTH = 40

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


_DELIMITERS = {";": "semicolon", "\t": "tab", ",": "comma"}


def _peek(source: Any) -> str:
    """The first 64 KiB of a file or seekable buffer as text ('' when it cannot be peeked)."""
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as handle:
            head: str | bytes = handle.read(65536)
    elif hasattr(source, "seek") and hasattr(source, "read") and source.seekable():
        start = source.tell()
        head = source.read(65536)
        source.seek(start)
    else:
        return ""
    if isinstance(head, bytes):
        head = head.decode("utf-8-sig", "replace")
    return head


def _fields(line: str, sep: str) -> int:
    """Fields of one CSV line split by ``sep``, outside double quotes."""
    quoted, count = False, 1
    for char in line:
        if char == '"':
            quoted = not quoted
        elif char == sep and not quoted:
            count += 1
    return count


def sniff_delimiter(text: str, name: str = "input") -> str:
    """``;``, tab or ``,``: the delimiter of a CSV text, decided by its header and confirmed by
    the rows (every sampled row splits into as many fields as the header). A text where no
    delimiter, or more than one, fits is a :class:`LabInputError` asking for ``sep``."""
    lines = [line for line in text.splitlines()[:50] if line.strip()]
    if not lines:
        return ","
    if len(text) >= 65536 and len(lines) > 1:
        lines = lines[:-1]  # the last line of a peek may be cut short
    header, rows = lines[0], lines[1:]
    counts = {sep: _fields(header, sep) for sep in _DELIMITERS}
    candidates = [sep for sep, n in counts.items() if n > 1]
    if len(candidates) <= 1:
        return candidates[0] if candidates else ","
    fitting = [sep for sep in candidates if all(_fields(row, sep) == counts[sep] for row in rows)]
    if len(fitting) == 1:
        return fitting[0]
    found = ", ".join(_DELIMITERS[sep] for sep in candidates)
    raise LabInputError(
        f"{name}: cannot tell the delimiter: the header splits on {found}"
        f"{' and the rows fit more than one' if fitting else ' and the rows fit none'}; "
        "pass it (--sep ';' on the command line, sep=';' in Python)"
    )


def _read_csv(source: Source, sep: str | None = None) -> pd.DataFrame:
    name = _describe(source)
    if isinstance(source, str | os.PathLike) and not Path(source).is_file():
        raise LabInputError(f"{name}: no such file")
    if isinstance(source, str | os.PathLike) and Path(source).suffix.lower() == ".parquet":
        return _read_parquet(Path(source))
    if isinstance(source, str | os.PathLike) and Path(source).suffix.lower() == ".xpt":
        from lemlabs.sdtm import read_table

        return read_table(source)
    if sep is None:
        sep = sniff_delimiter(_peek(source), name)
    sep = "\t" if sep in ("\\t", "tab", "TAB") else sep
    if len(sep) != 1:
        raise LabInputError(f"{name}: the delimiter {sep!r} is not one character")
    try:
        frame = pd.read_csv(
            source,  # type: ignore[arg-type]
            sep=sep,
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
    except (ValueError, OverflowError, MemoryError) as error:  # e.g. a NUL byte in a header
        raise LabInputError(f"{name}: not a readable CSV table ({error})") from error
    _check_mangled(frame, name)
    return unshift(frame, name)


def unshift(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """A data row with more fields than the header makes pandas take the first fields as the
    index, shifting every field; a trailing delimiter (an empty last field) is undone here, any
    other extra field is an error."""
    if isinstance(frame.index, pd.RangeIndex):
        return frame
    extra = frame.index.nlevels
    header = [str(column) for column in frame.columns]
    frame = frame.reset_index()
    frame.columns = pd.Index([*header, *(f"\x00extra{i}" for i in range(extra))])
    surplus = frame.iloc[:, len(header) :].astype(str)
    if (surplus != "").any().any():
        raise LabInputError(
            f"{name}: data rows have {extra} more field(s) than the header "
            f"({len(header)} columns); fix the header or the rows"
        )
    return frame.iloc[:, : len(header)].reset_index(drop=True)


def _check_mangled(frame: pd.DataFrame, name: str) -> None:
    """pandas renames a repeated header ``a`` to ``a.1``: that is a duplicate column."""
    names = {str(column) for column in frame.columns}
    for column in names:
        base, dot, number = column.rpartition(".")
        if dot and number.isdigit() and base in names:
            raise LabInputError(f"{name}: column {base!r} appears more than once")


def _check_duplicates(frame: pd.DataFrame, name: str) -> None:
    """Two columns whose names are equal up to case and surrounding spaces: lemlabs cannot
    tell which one is meant."""
    seen: dict[str, str] = {}
    for column in map(str, frame.columns):
        folded = column.strip().casefold()
        if folded in seen:
            raise LabInputError(
                f"{name}: columns {seen[folded]!r} and {column!r} have the same name "
                "(ignoring case and spaces); rename or drop one"
            )
        seen[folded] = column


def _carry_reserved(frame: pd.DataFrame, reserved: tuple[str, ...]) -> pd.DataFrame:
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


def _frame(source: Source, sep: str | None = None) -> tuple[pd.DataFrame, str]:
    if isinstance(source, pd.DataFrame):
        return source.copy(), "DataFrame"
    return _read_csv(source, sep), _describe(source)


def read_text_table(source: Source, sep: str | None = None) -> pd.DataFrame:
    """A CSV (delimiter sniffed unless ``sep`` is given: ``;``, tab or ``,``) as text columns."""
    return _read_csv(source, sep)


def _map_columns(
    frame: pd.DataFrame,
    known: tuple[str, ...],
    required: tuple[str, ...],
    columns: Mapping[str, str] | None,
    name: str,
) -> pd.DataFrame:
    _check_duplicates(frame, name)
    renames = {original: target for original, target in (columns or {}).items()}
    folded = {str(column).strip().casefold(): column for column in frame.columns}
    for wanted in known:
        if wanted not in renames.values() and wanted in folded and folded[wanted] != wanted:
            renames[folded[wanted]] = wanted
    frame = frame.rename(columns=renames)
    if frame.columns.duplicated().any():
        twice = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise LabInputError(f"{name}: column {twice[0]!r} appears more than once")
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


def _parse_date(text: str) -> pd.Timestamp | None:
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


def parse_dates(raw: pd.Series) -> pd.Series:
    """ISO dates or date-times (an offset is dropped, keeping local wall time); others → NaT."""
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        dates = pd.to_datetime(raw)
        dates = dates.dt.tz_localize(None) if dates.dt.tz is not None else dates
        outside = (dates.dt.year < FIRST_YEAR) | (dates.dt.year > LAST_YEAR)
        return dates.mask(outside).astype("datetime64[ns]")
    text = _as_text(raw)
    codes, uniques = pd.factorize(text.to_numpy(dtype=object), use_na_sentinel=False)
    parsed = [_parse_date(str(value)) for value in uniques]
    stamps = np.array(
        [np.datetime64("NaT", "ns") if p is None else p.to_datetime64() for p in parsed],
        dtype="datetime64[ns]",
    )
    return pd.Series(stamps[codes], index=raw.index, name=raw.name)


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


def prepare_labs(
    source: Source, columns: Mapping[str, str] | None = None, sep: str | None = None
) -> pd.DataFrame:
    """The lab table in lemlabs' shape: required columns checked, text kept, dates parsed.

    Adds ``collected_at`` as datetimes (NaT where unreadable) and keeps the text in
    ``collected_at_raw``. Unknown extra columns are carried through untouched.
    """
    if columns is None and _is_prepared(source):
        return source  # type: ignore[return-value]
    frame, name = _frame(source, sep)
    if columns is None:
        from lemlabs.sdtm import is_lb, lb_to_labs

        if is_lb(frame.columns) and "patient_id" not in frame.columns:
            frame = lb_to_labs(frame, name)  # SDTM LB, recognised by its columns
    frame = _map_columns(frame, LAB_COLUMNS + LAB_OPTIONAL, LAB_COLUMNS, columns, name)
    frame = frame.reset_index(drop=True)
    if not _was_prepared(frame):
        frame = _carry_reserved(frame, RESERVED_LAB_COLUMNS)
    if "collected_at_raw" not in frame.columns:
        frame["collected_at_raw"] = _as_text(frame["collected_at"])
    frame["collected_at"] = parse_dates(frame["collected_at"])
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


def read_labs(
    path_or_buffer: Source, columns: Mapping[str, str] | None = None, sep: str | None = None
) -> pd.DataFrame:
    """Read a long-format lab CSV or Parquet file (one result a row); see the README.

    ``columns`` maps other column names onto lemlabs' (``{"MRN": "patient_id"}``). The CSV
    delimiter (``;``, tab or ``,``) is sniffed unless ``sep`` gives it. An SDTM LB table (CSV,
    Parquet or SAS transport ``.xpt``) is recognised by its columns (:func:`lemlabs.read_sdtm`).
    Raises :class:`~lemlabs.errors.LabInputError` for a file that cannot be used at all.
    """
    return prepare_labs(path_or_buffer, columns, sep)


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
    if "courses" in frame.columns and all(isinstance(c, list) for c in frame["courses"]):
        frame = frame.drop(columns=[c for c in RESERVED_PATIENT_COLUMNS if c in frame.columns])
    frame = _carry_reserved(frame, RESERVED_PATIENT_COLUMNS)
    frame["patient_id"] = _strip_ids(_as_text(frame["patient_id"]))
    sex = _as_text(frame.get("sex", pd.Series("", index=frame.index))).str.strip().str.upper()
    frame["sex"] = sex.where(sex.isin(["F", "M"]), "")
    frame["birth_date"] = parse_dates(frame.get("birth_date", pd.Series("", index=frame.index)))
    raw_courses = _as_text(frame.get("course_dates", pd.Series("", index=frame.index)))
    courses = raw_courses.map(_course_list)
    frame["problem"] = [
        ""
        if parsed is not None
        else f"unreadable course date in {raw!r} (ISO dates of the years "
        f"{FIRST_YEAR}–{LAST_YEAR} separated by ';')"
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
