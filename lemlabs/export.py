"""Writing findings and issues to CSV, JSON or JSON Lines, and reading findings back."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from lemlabs.models import Finding

FORMATS = (".csv", ".json", ".jsonl", ".fhir.json")


def _format(path: Path) -> str:
    suffix = ".fhir.json" if path.name.lower().endswith(".fhir.json") else path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: unknown output format {suffix!r} (use {', '.join(FORMATS)})")
    return suffix


def write_findings(findings: Sequence[Finding], path: str | Path) -> None:
    """Write findings; in CSV the evidence and notes columns hold JSON text; a ``.fhir.json``
    file is a FHIR Bundle of DetectedIssues (``fhir`` extra)."""
    path = Path(path)
    suffix = _format(path)
    rows = [finding.to_dict() for finding in findings]
    if suffix == ".fhir.json":
        from lemlabs.fhir import findings_bundle

        path.write_text(
            findings_bundle(findings).model_dump_json(indent=1, exclude_none=True), "utf-8"
        )
    elif suffix == ".json":
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", "utf-8")
    elif suffix == ".jsonl":
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        path.write_text(text, "utf-8")
    else:
        frame = pd.DataFrame(rows, columns=list(Finding.__dataclass_fields__))
        for column in ("evidence", "notes"):
            frame[column] = [json.dumps(v, ensure_ascii=False) for v in frame[column]]
        frame["ctcae_grade"] = frame["ctcae_grade"].astype("Int64")
        frame.to_csv(path, index=False)


def read_findings(path: str | Path) -> list[dict[str, object]]:
    """Findings written by :func:`write_findings`, as the dicts ``Finding.to_dict()`` gives."""
    path = Path(path)
    suffix = _format(path)
    if suffix == ".fhir.json":
        raise ValueError(f"{path}: a FHIR Bundle of DetectedIssues cannot be read back as findings")
    text = path.read_text("utf-8")
    if suffix == ".json":
        rows: list[dict[str, object]] = json.loads(text)
        return rows
    if suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    out = []
    for row in frame.to_dict("records"):
        record: dict[str, object] = {str(key): item for key, item in row.items()}
        record["evidence"] = json.loads(row["evidence"])
        record["notes"] = json.loads(row["notes"])
        record["ctcae_grade"] = int(row["ctcae_grade"]) if row["ctcae_grade"] else None
        record["episode_start"] = row["episode_start"] or None
        record["results_in_episode"] = int(row["results_in_episode"])
        out.append(record)
    return out


def write_issues(issues: pd.DataFrame, path: str | Path) -> None:
    """Write the data issues table as CSV."""
    issues.to_csv(Path(path), index=False)
