"""Writing findings and issues (CSV, JSON, JSON Lines, Parquet, FHIR) and reading findings back.

The flat form of findings, ``findings_table``, has the evidence and notes as JSON text: it is what
CSV and Parquet files hold and what :mod:`lemlabs.dask` returns.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lemlabs.errors import OutputError
from lemlabs.models import Finding
from lemlabs.packs import Packs
from lemlabs.tables import FINDING_COLUMNS, rows_of_frame

FORMATS = (".csv", ".json", ".jsonl", ".parquet", ".fhir.json", ".xlsx")
JSON_COLUMNS = ("evidence", "notes")
FLAT_TYPES = {"ctcae_grade": "Int64", "days_from_course": "Int64", "results_in_episode": "int64"}
"""The flat findings table's typed columns (the others hold text)."""
#: a spreadsheet reads a cell that begins with one of these as a formula (OWASP CSV injection)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
GUARD = "'"
_TEXT = json.JSONEncoder(ensure_ascii=False).encode
"""``json.dumps(item, ensure_ascii=False)``, the encoder made once (not once per cell)."""
_PLAIN_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")


def guard_cell(text: str) -> str:
    """A text cell made safe for a spreadsheet: one that begins with ``=``, ``+``, ``-``,
    ``@``, a tab or a carriage return (a formula to Excel or LibreOffice) gets a leading ``'``;
    so does one that already begins with ``'``, so that :func:`unguard_cell` gives the text back
    exactly. A plain number (``-0.5``, ``+3``) is left as it is: it cannot hold a formula."""
    if text.startswith(GUARD) or (
        text.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.match(text)
    ):
        return GUARD + text
    return text


def unguard_cell(text: str) -> str:
    """The text :func:`guard_cell` was given."""
    return text[1:] if text.startswith(GUARD) else text


def guard_table(table: pd.DataFrame) -> pd.DataFrame:
    """Every text cell of ``table`` through :func:`guard_cell` (numbers and dates untouched):
    what lemlabs writes to any CSV file (findings, issues, schedule)."""
    out = table.copy()
    for column in _text_columns(out):
        out[column] = _guard_column(out[column])
    return out


def _guard_column(cells: pd.Series) -> pd.Series:
    """A text column through :func:`guard_cell`: only the cells that begin with a character
    it looks at are read one by one."""
    try:
        starts = cells.str.startswith((*FORMULA_STARTS, GUARD))
    except AttributeError:  # no text in it (all empty)
        return cells
    flagged = starts.to_numpy(dtype=bool, na_value=False)  # a cell that is not text: False
    if not flagged.any():
        return cells
    out = cells.astype(object)
    out[flagged] = [guard_cell(text) for text in out[flagged]]
    return out.astype(cells.dtype)


def _text_columns(table: pd.DataFrame) -> list[Any]:
    return [
        column
        for column in table.columns
        if table[column].dtype == object or pd.api.types.is_string_dtype(table[column].dtype)
    ]


def write_csv(table: pd.DataFrame, path: str | Path, dates: str | None = None) -> None:
    """A table as CSV with every text cell guarded against formula injection; ``dates``: the
    ``strftime`` format of its datetimes (by default pandas' shortest for the column).

    Lines end in ``\\n``; when a cell holds a carriage return, in ``\\r\\n`` (RFC 4180), the
    only way to have the CSV writer quote that cell, so that it reads back as one cell.
    """
    out = CsvFile(path, dates)
    try:
        out.write(table)
    finally:
        out.close()


RESULT_DATES = "%Y-%m-%dT%H:%M:%S"
"""How results files write their datetimes: the same in every batch of a run."""


def _has_cr(table: pd.DataFrame) -> bool:
    """Whether a text cell of ``table`` holds a carriage return."""
    for column in _text_columns(table):
        try:
            found = table[column].str.contains("\r", regex=False)
            if found.to_numpy(dtype=bool, na_value=False).any():
                return True
        except AttributeError:  # no text in it
            continue
    return False


def _format(path: Path) -> str:
    suffix = ".fhir.json" if path.name.lower().endswith(".fhir.json") else path.suffix.lower()
    if suffix not in FORMATS:
        raise OutputError(f"{path}: unknown output format {suffix!r} (use {', '.join(FORMATS)})")
    return suffix


def findings_table(findings: Sequence[Finding]) -> pd.DataFrame:
    """Findings as a flat table, evidence and notes as JSON text."""
    rows = [finding.to_dict() for finding in findings]
    for row in rows:
        for column in JSON_COLUMNS:
            row[column] = _TEXT(row[column])
    return pd.DataFrame(rows, columns=FINDING_COLUMNS).astype(FLAT_TYPES)


def flat_findings(findings: pd.DataFrame) -> pd.DataFrame:
    """A typed findings table (``Report.findings``) as :func:`findings_table` gives it for the
    same findings, without making a :class:`Finding` of each row: what the writers write."""
    if findings.empty:
        return findings_table(())
    columns: dict[str, list[Any]] = {}
    for name in FINDING_COLUMNS:
        column = findings[name]
        if name in JSON_COLUMNS:
            columns[name] = [_TEXT(list(items)) if items else "[]" for items in column.tolist()]
        elif name in ("date", "episode_start"):
            days = column.dt.strftime("%Y-%m-%d")
            columns[name] = days.astype(object).where(days.notna(), None).tolist()
        elif name in ("ctcae_grade", "days_from_course"):
            columns[name] = [None if pd.isna(n) else int(n) for n in column.tolist()]
        else:  # text, the severity's name, the count
            columns[name] = (column.astype(str) if name == "severity" else column).tolist()
    return pd.DataFrame(columns, columns=FINDING_COLUMNS).astype(FLAT_TYPES)


def table_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """A flat findings table (text, or typed as :func:`lemlabs.models.typed_findings` makes it)
    back to the dicts ``Finding.to_dict()`` gives."""
    records = []
    for row in table.to_dict("records"):
        record: dict[str, Any] = {str(key): item for key, item in row.items()}
        for column in JSON_COLUMNS:
            record[column] = json.loads(record[column])
        for column in ("ctcae_grade", "days_from_course"):
            number = record[column]
            record[column] = None if number in ("", None) or pd.isna(number) else int(number)
        for column in ("date", "episode_start"):
            day = record[column]
            missing = day in ("", None) or pd.isna(day)
            shown = day.date().isoformat() if isinstance(day, pd.Timestamp) else str(day)
            record[column] = None if missing else shown
        record["severity"] = str(record["severity"])
        record["results_in_episode"] = int(record["results_in_episode"])
        records.append(record)
    return records


class CsvFile:
    """A CSV file written a table at a time, as :func:`write_csv` writes the tables' rows at
    once: text cells guarded, lines ending in ``\\r\\n`` when a cell holds a carriage
    return (the lines written before are rewritten so), dates in one ``dates`` format."""

    def __init__(self, path: str | Path, dates: str | None = None) -> None:
        self.path, self.dates = Path(path), dates
        self.started = self._crlf = False
        self._handle = self.path.open("w", encoding="utf-8", newline="")

    def write(self, table: pd.DataFrame) -> None:
        """Append ``table``'s rows (its header first, when it is the first table)."""
        guarded = guard_table(table)
        if not self._crlf and _has_cr(guarded):
            self._handle.close()
            with self.path.open(encoding="utf-8", newline="") as handle:
                rows = list(csv.reader(handle))  # no carriage return in a cell before this one
            self._handle = self.path.open("w", encoding="utf-8", newline="")
            csv.writer(self._handle, lineterminator="\r\n").writerows(rows)
            self._crlf = True
        guarded.to_csv(
            self._handle,
            index=False,
            header=not self.started,
            lineterminator="\r\n" if self._crlf else "\n",
            date_format=self.dates,
        )
        self.started = True

    def close(self) -> None:
        self._handle.close()


class FindingsFile:
    """A findings file written a part at a time (CSV, JSON or JSON Lines), the parts one
    after the other: the same bytes as the parts' findings written at once.
    :meth:`write` each part's typed findings table (``Report.findings``), or :meth:`write_table`
    its flat table (:func:`findings_table`), then :meth:`close`."""

    FORMATS = (".csv", ".json", ".jsonl")

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.suffix = _format(self.path)
        if self.suffix not in self.FORMATS:
            raise OutputError(
                f"{self.path}: findings are written a batch at a time as "
                f"{', '.join(self.FORMATS)}, not {self.suffix}"
            )
        self._csv = CsvFile(self.path) if self.suffix == ".csv" else None
        self._handle = None if self._csv else self.path.open("w", encoding="utf-8")
        self._records = 0

    def write(self, findings: pd.DataFrame) -> None:
        """Append one part's findings."""
        if not findings.empty:
            self.write_table(flat_findings(findings))

    def write_table(self, table: pd.DataFrame) -> None:
        """Append one part's flat findings table (a CSV's header with the first)."""
        if self._csv is not None:
            self._csv.write(table)
            return
        assert self._handle is not None
        for record in table_records(table):
            if self.suffix == ".jsonl":
                self._handle.write(_TEXT(record) + "\n")
            else:  # an item of json.dumps(records, indent=1)
                text = json.dumps(record, ensure_ascii=False, indent=1).replace("\n", "\n ")
                self._handle.write(("[\n " if self._records == 0 else ",\n ") + text)
                self._records += 1

    def close(self) -> None:
        """End the file: the header of a CSV without findings, a JSON array's bracket."""
        if self._csv is not None:
            if not self._csv.started:
                self._csv.write(findings_table(()))
            self._csv.close()
        elif self._handle is not None:
            if self.suffix == ".json":
                self._handle.write("\n]\n" if self._records else "[]\n")
            self._handle.close()


def write_findings_table(table: pd.DataFrame, path: str | Path) -> None:
    """Write a flat findings table as CSV, Parquet, JSON or JSON Lines (by the file's suffix)."""
    path = Path(path)
    suffix = _format(path)
    if suffix == ".fhir.json":
        raise OutputError(f"{path}: FHIR output needs the findings, not the flat table")
    if suffix == ".xlsx":
        raise OutputError(f"{path}: Excel output needs the findings, not the flat table")
    if suffix == ".parquet":
        table.to_parquet(path, index=False)
        return
    out = FindingsFile(path)
    try:
        out.write_table(table)
    finally:
        out.close()


def write_findings(
    findings: Sequence[Finding] | pd.DataFrame, path: str | Path, packs: Packs | None = None
) -> None:
    """Write findings (format by suffix): records, or a typed findings table
    (``Report.findings``); a ``.fhir.json`` file is a FHIR Bundle of DetectedIssues (``fhir``
    extra). ``packs``: those the findings were scored with (titles), the built-in ones unless
    given."""
    path = Path(path)
    if isinstance(findings, pd.DataFrame):
        if _format(path) not in (".fhir.json", ".xlsx"):
            write_findings_table(flat_findings(findings), path)
            return
        findings = [Finding.from_dict(row) for row in rows_of_frame(findings)]
    if _format(path) == ".fhir.json":
        from lemlabs.formats.fhir import findings_bundle

        bundle = findings_bundle(findings, packs)
        path.write_text(bundle.model_dump_json(indent=1, exclude_none=True), "utf-8")
    elif _format(path) == ".xlsx":  # Report.to_excel adds the issues and the summary
        from lemlabs.formats.excel import write_workbook

        write_workbook(path, findings, packs=packs)
    else:
        write_findings_table(findings_table(findings), path)


def read_findings(path: str | Path) -> list[dict[str, Any]]:
    """Findings written by :func:`write_findings`, as the dicts ``Finding.to_dict()`` gives."""
    path = Path(path)
    suffix = _format(path)
    if suffix == ".fhir.json":
        raise OutputError(
            f"{path}: a FHIR Bundle of DetectedIssues cannot be read back as findings"
        )
    if suffix == ".xlsx":
        raise OutputError(f"{path}: an Excel workbook cannot be read back as findings")
    if suffix == ".json":
        rows: list[dict[str, Any]] = json.loads(path.read_text("utf-8"))
        return rows
    if suffix == ".jsonl":
        lines = path.read_text("utf-8").split("\n")  # not splitlines(): "\x85" may be in a text
        return [json.loads(line) for line in lines if line.strip()]
    if suffix == ".parquet":
        return table_records(pd.read_parquet(path))
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    return table_records(table.map(unguard_cell))


def write_issues(issues: pd.DataFrame, path: str | Path) -> None:
    """Write the data issues table as CSV (text cells guarded: :func:`guard_cell`)."""
    write_csv(issues, path)
