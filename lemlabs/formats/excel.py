"""Findings as an Excel workbook (the ``excel`` extra, openpyxl): sheets Findings, Evidence,
Issues, Summary and Rules, each with a frozen header and filters, no JSON in any cell.

Text that begins with ``=``, ``+``, ``-``, ``@`` (or a tab or carriage return) is written as
text with Excel's quote prefix, never as a formula (OWASP: CSV/formula injection): a patient id
``=1+1`` stays the text ``=1+1``. A control character that XML cannot hold (in an id or a
rejected raw value) is written as its escape, ``\\x01``: the workbook opens, and shows it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lemlabs.formats.worklist import shown_value, sort_findings, worst_evidence
from lemlabs.models import Finding
from lemlabs.packs import Packs, builtin_packs
from lemlabs.packs.listing import rules_table
from lemlabs.packs.thresholds import Thresholds
from lemlabs.vocabulary import format_value

try:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.worksheet import Worksheet
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "lemlabs.formats.excel needs openpyxl: pip install 'lemlabs[excel]'"
    ) from error

SHEETS = ("Findings", "Evidence", "Issues", "Summary", "Rules")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_WIDE = {"message": 80, "action": 60, "source": 50, "sources": 50, "when": 60, "reason": 50}


def _findings_rows(findings: Sequence[Finding], packs: Packs) -> list[dict[str, Any]]:
    return [
        {
            "patient_id": f.patient_id,
            "severity": str(f.severity),
            "finding": packs.titles.get(f.code, f.code),
            "onset": f.episode_start,
            "days_from_course": f.days_from_course,
            "latest": f.date,
            "worst_value": shown_value(worst_evidence(f, packs), packs),
            "ctcae_grade": f.ctcae_grade,
            "results_in_episode": f.results_in_episode,
            "message": f.message,
            "action": f.action,
            "notes": "; ".join(f.notes),
            "condition": str(f.condition),
            "code": f.code,
            "rule_id": f.rule_id,
            "source": f.source,
            "rules_version": f.rules_version,
        }
        for f in findings
    ]


def _evidence_rows(findings: Sequence[Finding], packs: Packs) -> list[dict[str, Any]]:
    return [
        {
            "patient_id": f.patient_id,
            "severity": str(f.severity),
            "finding": packs.titles.get(f.code, f.code),
            "onset": f.episode_start,
            "collected_at": e.collected_at,
            "analyte": packs.label(e.analyte),
            "shown": format_value(e.value, e.unit, e.censor, e.value_high),
            "value": e.value,
            "value_high": e.value_high,
            "censor": e.censor,
            "unit": e.unit,
            "raw_value": e.raw_value,
            "raw_unit": e.raw_unit,
            "baseline": e.baseline,
            "baseline_kind": e.baseline_kind,
            "row": e.row,
            "line": e.row + 2,
            "source_id": e.source_id,
            "code": f.code,
            "rule_id": f.rule_id,
        }
        for f in findings
        for e in f.evidence
    ]


def _summary_rows(summary: Mapping[str, Any], extra: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Flat ``item, value`` rows: nested counts as ``findings_by_severity: urgent``."""
    rows: list[dict[str, Any]] = [{"item": k, "value": v} for k, v in extra.items()]
    for key, value in summary.items():
        if key == "not_scored_by_test":
            for test, entry in value.items():
                reasons = "; ".join(f"{why} ({n})" for why, n in entry["reasons"].items())
                rows.append({"item": f"not scored: {test}", "value": entry["rows"]})
                rows.append({"item": f"not scored: {test}: reasons", "value": reasons})
        elif isinstance(value, Mapping):
            rows += [{"item": f"{key}: {name}", "value": n} for name, n in value.items()]
        else:
            rows.append({"item": key, "value": value})
    return rows


def _cell_value(value: Any) -> Any:
    if value is None or (not isinstance(value, str | list | tuple) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime) and value.time() == dt.time(0):
        return value.date()
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        return value.item()
    return value


def _sheet(
    book: Workbook, title: str, rows: Sequence[Mapping[Any, Any]], columns: Sequence[str]
) -> None:
    sheet: Worksheet = book.create_sheet(title)
    sheet.append(list(columns))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append([None] * len(columns))
        for index, column in enumerate(columns, start=1):
            write_cell(sheet, sheet.max_row, index, _cell_value(row.get(column)))
    sheet.freeze_panes = "A2"
    last = get_column_letter(max(len(columns), 1))
    sheet.auto_filter.ref = f"A1:{last}{max(sheet.max_row, 1)}"
    for index, column in enumerate(columns, start=1):
        width = _WIDE.get(column, min(max(len(column) + 2, 12), 30))
        sheet.column_dimensions[get_column_letter(index)].width = width
        if column in _WIDE:
            for (cell,) in sheet.iter_rows(min_row=2, min_col=index, max_col=index):
                cell.alignment = Alignment(wrap_text=True, vertical="top")


_NOT_IN_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def write_cell(sheet: Worksheet, row: int, column: int, value: Any) -> None:
    """One cell; text that Excel would read as a formula is kept as text (quote prefix), a
    character XML cannot hold is written as its escape."""
    cell = sheet.cell(row=row, column=column)
    if isinstance(value, str):
        value = _NOT_IN_XML.sub(lambda match: f"\\x{ord(match.group()):02x}", value)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        cell.value = value
        cell.data_type = "s"
        cell.quotePrefix = True
        return
    cell.value = value
    if isinstance(value, dt.datetime):
        cell.number_format = "yyyy-mm-dd hh:mm"
    elif isinstance(value, dt.date):
        cell.number_format = "yyyy-mm-dd"


def write_workbook(
    path: str | Path,
    findings: Sequence[Finding],
    issues: pd.DataFrame | None = None,
    summary: Mapping[str, Any] | None = None,
    thresholds: Thresholds | Mapping[str, Any] | str | None = None,
    packs: Packs | None = None,
) -> None:
    """Write the workbook: Findings (most severe first, then the most recent evidence),
    Evidence (one row per result per finding), Issues (with the file ``line``), Summary and
    Rules (of ``packs``, the built-in ones unless given)."""
    packs = packs or builtin_packs()
    table = packs.thresholds(thresholds)
    ordered = sort_findings(findings)
    book = Workbook()
    book.remove(book.worksheets[0])
    rows = _findings_rows(ordered, packs)
    _sheet(book, "Findings", rows, FINDING_SHEET)
    evidence = _evidence_rows(ordered, packs)
    _sheet(book, "Evidence", evidence, EVIDENCE_SHEET)
    issue_table = issues if issues is not None else pd.DataFrame()
    _sheet(
        book,
        "Issues",
        issue_table.to_dict("records"),
        [str(c) for c in issue_table.columns] or ["line", "row", "reason"],
    )
    extra = {"CTCAE version": table["ctcae.version"], "findings written": len(ordered)}
    _sheet(book, "Summary", _summary_rows(summary or {}, extra), ["item", "value"])
    rules = rules_table(table, packs)
    rule_columns = ["id", "code", "title", "condition", "severity", "matches", "when", "sources"]
    _sheet(book, "Rules", rules.to_dict("records"), rule_columns)
    book.save(Path(path))


FINDING_SHEET = [
    "patient_id",
    "severity",
    "finding",
    "onset",
    "days_from_course",
    "latest",
    "worst_value",
    "ctcae_grade",
    "results_in_episode",
    "message",
    "action",
    "notes",
    "condition",
    "code",
    "rule_id",
    "source",
    "rules_version",
]
EVIDENCE_SHEET = [
    "patient_id",
    "severity",
    "finding",
    "onset",
    "collected_at",
    "analyte",
    "shown",
    "value",
    "value_high",
    "censor",
    "unit",
    "raw_value",
    "raw_unit",
    "baseline",
    "baseline_kind",
    "row",
    "line",
    "source_id",
    "code",
    "rule_id",
]
