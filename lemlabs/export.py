"""Writing findings and issues (CSV, JSON, JSON Lines, Parquet, FHIR) and reading findings back.

The flat form of findings, ``findings_table``, has the evidence and notes as JSON text: it is what
CSV and Parquet files hold and what :mod:`lemlabs.dask` returns.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lemlabs.models import FINDING_COLUMNS, Finding

FORMATS = (".csv", ".json", ".jsonl", ".parquet", ".fhir.json", ".xlsx")
JSON_COLUMNS = ("evidence", "notes")


def _format(path: Path) -> str:
    suffix = ".fhir.json" if path.name.lower().endswith(".fhir.json") else path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: unknown output format {suffix!r} (use {', '.join(FORMATS)})")
    return suffix


def findings_table(findings: Sequence[Finding]) -> pd.DataFrame:
    """Findings as a flat table, evidence and notes as JSON text."""
    rows = [finding.to_dict() for finding in findings]
    for row in rows:
        for column in JSON_COLUMNS:
            row[column] = json.dumps(row[column], ensure_ascii=False)
    frame = pd.DataFrame(rows, columns=FINDING_COLUMNS)
    return frame.astype(
        {"ctcae_grade": "Int64", "days_from_course": "Int64", "results_in_episode": "int64"}
    )


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


def write_findings_table(table: pd.DataFrame, path: str | Path) -> None:
    """Write a flat findings table as CSV, Parquet, JSON or JSON Lines (by the file's suffix)."""
    path = Path(path)
    suffix = _format(path)
    if suffix == ".fhir.json":
        raise ValueError(f"{path}: FHIR output needs the findings, not the flat table")
    if suffix == ".xlsx":
        raise ValueError(f"{path}: Excel output needs the findings, not the flat table")
    if suffix == ".csv":
        table.to_csv(path, index=False)
    elif suffix == ".parquet":
        table.to_parquet(path, index=False)
    elif suffix == ".json":
        path.write_text(
            json.dumps(table_records(table), ensure_ascii=False, indent=1) + "\n", "utf-8"
        )
    else:
        lines = (json.dumps(record, ensure_ascii=False) + "\n" for record in table_records(table))
        path.write_text("".join(lines), "utf-8")


def write_findings(findings: Sequence[Finding], path: str | Path) -> None:
    """Write findings (format by suffix); a ``.fhir.json`` file is a FHIR Bundle of
    DetectedIssues (``fhir`` extra)."""
    path = Path(path)
    if _format(path) == ".fhir.json":
        from lemlabs.fhir import findings_bundle

        bundle = findings_bundle(findings)
        path.write_text(bundle.model_dump_json(indent=1, exclude_none=True), "utf-8")
    elif _format(path) == ".xlsx":  # Report.to_excel adds the issues and the summary
        from lemlabs.excel import write_workbook

        write_workbook(path, findings)
    else:
        write_findings_table(findings_table(findings), path)


def read_findings(path: str | Path) -> list[dict[str, Any]]:
    """Findings written by :func:`write_findings`, as the dicts ``Finding.to_dict()`` gives."""
    path = Path(path)
    suffix = _format(path)
    if suffix == ".fhir.json":
        raise ValueError(f"{path}: a FHIR Bundle of DetectedIssues cannot be read back as findings")
    if suffix == ".xlsx":
        raise ValueError(f"{path}: an Excel workbook cannot be read back as findings")
    if suffix == ".json":
        rows: list[dict[str, Any]] = json.loads(path.read_text("utf-8"))
        return rows
    if suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    if suffix == ".parquet":
        return table_records(pd.read_parquet(path))
    return table_records(pd.read_csv(path, dtype=str, keep_default_na=False))


def write_issues(issues: pd.DataFrame, path: str | Path) -> None:
    """Write the data issues table as CSV."""
    issues.to_csv(Path(path), index=False)
