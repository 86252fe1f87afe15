"""Tables as text columns from files: CSV (the delimiter sniffed and checked), Parquet and SAS
transport (``.xpt``); a DataFrame is taken as it is."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pandas as pd

from lemlabs.errors import LabInputError

Source = str | os.PathLike[str] | IO[str] | IO[bytes] | pd.DataFrame
"""What the readers and ``score_frame`` take: a path, an open file or buffer, or a DataFrame."""


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


_DELIMITERS = {";": "semicolon", "\t": "tab", ",": "comma", "|": "pipe"}


COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zip", ".zst", ".tar")
"""Suffixes of the compressed files pandas reads (``.tar.gz`` ends in ``.gz``)."""
_OPENERS: dict[str, Any] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
"""The compressed files opened here to peek at their text (the others are not peeked)."""


def _peek(source: Any) -> str:
    """The first 64 KiB of a file or seekable buffer as text ('' when it cannot be peeked)."""
    if isinstance(source, str | os.PathLike):
        suffix = Path(source).suffix.lower()
        if suffix in COMPRESSED_SUFFIXES and suffix not in _OPENERS:
            return ""  # zip, zstd, tar: not peeked, the delimiter defaults to ","
        with _OPENERS.get(suffix, open)(source, "rb") as handle:
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
    """``;``, tab, ``,`` or ``|``: the delimiter of a CSV text, decided by its header and
    confirmed by the rows (every sampled row splits into as many fields as the header). A text
    where no delimiter, or more than one, fits is a :class:`LabInputError` asking for ``sep``."""
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
        return read_dataset(source)
    with _csv_errors(name):
        options = _csv_options(source, sep, name)
        frame: pd.DataFrame = pd.read_csv(source, **options)  # type: ignore[arg-type,assignment]
    _check_mangled(frame, name)
    return unshift(frame, name)


def read_csv_chunks(
    path: str | os.PathLike[str], rows: int, sep: str | None = None
) -> Iterator[pd.DataFrame]:
    """A CSV file (not Parquet or SAS) as :func:`read_frame` reads it, ``rows`` rows at a
    time; errors as there, raised where the chunk that has them is read."""
    name = _describe(path)
    if not Path(path).is_file():
        raise LabInputError(f"{name}: no such file")
    with _csv_errors(name):
        reader = pd.read_csv(path, chunksize=rows, **_csv_options(path, sep, name))
        with reader:
            for frame in reader:
                _check_mangled(frame, name)
                yield unshift(frame, name).reset_index(drop=True)


def _csv_options(source: Source, sep: str | None, name: str) -> dict[str, Any]:
    """How lemlabs reads a CSV: text columns, the delimiter sniffed unless given."""
    if sep is None:
        sep = sniff_delimiter(_peek(source), name)
    sep = "\t" if sep in ("\\t", "tab", "TAB") else sep
    if len(sep) != 1:
        raise LabInputError(f"{name}: the delimiter {sep!r} is not one character")
    return {
        "sep": sep,
        "dtype": object,
        "keep_default_na": False,
        "na_filter": False,
        "encoding": "utf-8-sig",
        "skipinitialspace": False,
    }


@contextmanager
def _csv_errors(name: str) -> Iterator[None]:
    """pandas' errors for a file that is not a readable CSV table, as :class:`LabInputError`."""
    try:
        yield
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


def read_frame(source: Source, sep: str | None = None) -> tuple[pd.DataFrame, str]:
    """A table as read (a DataFrame as it is) and the name messages call it by."""
    if isinstance(source, pd.DataFrame):
        return source, "DataFrame"
    return _read_csv(source, sep), _describe(source)


def read_text_table(source: Source, sep: str | None = None) -> pd.DataFrame:
    """A CSV (delimiter sniffed unless ``sep`` is given: ``;``, tab, ``,`` or ``|``) as text
    columns."""
    return _read_csv(source, sep)


def read_dataset(source: str | os.PathLike[str] | pd.DataFrame, what: str = "SDTM") -> pd.DataFrame:
    """A data set as text columns: a DataFrame, or a path to ``.xpt`` (SAS transport, read by
    pandas), ``.parquet`` or ``.csv``."""
    if isinstance(source, pd.DataFrame):
        frame = source.copy()
    else:
        path = Path(source)
        if not path.is_file():
            raise LabInputError(f"{path}: no such file")
        suffix = path.suffix.lower()
        try:
            if suffix == ".xpt":
                frame = pd.read_sas(path, format="xport", encoding="utf-8")
            elif suffix == ".parquet":
                frame = pd.read_parquet(path)
            else:
                frame = read_text_table(path)
        except LabInputError:
            raise
        except ImportError as error:
            raise LabInputError(
                f"{path}: reading Parquet needs the 'parquet' extra (pip install "
                "'lemlabs[parquet]')"
            ) from error
        except Exception as error:  # pandas' SAS and Parquet readers raise many types
            raise LabInputError(f"{path}: not a readable {what} data set ({error})") from error
    frame.columns = [str(column).strip().upper() for column in frame.columns]
    return frame.astype(object).where(frame.notna(), "").map(_text)


def _text(value: Any) -> str:
    """A cell as text; a SAS number that is whole prints without ``.0`` (``92.0`` → ``92``)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
