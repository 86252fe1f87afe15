"""The Excel workbook read back with openpyxl: sheets in order, frozen headers and filters, no JSON
and no formulas (a patient id ``=1+1`` stays text)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

openpyxl = pytest.importorskip("openpyxl", reason="the excel extra (openpyxl) is not installed")

import lemlabs  # noqa: E402
from lemlabs import cli, examples  # noqa: E402
from lemlabs.models import Severity  # noqa: E402
from lemlabs.packs import builtin_packs  # noqa: E402


@pytest.fixture(scope="module")
def report() -> lemlabs.Report:
    return lemlabs.score_frame(examples.path("labs"), examples.path("patients"))


@pytest.fixture(scope="module")
def book(report: lemlabs.Report, tmp_path_factory: pytest.TempPathFactory) -> object:
    path = tmp_path_factory.mktemp("xlsx") / "findings.xlsx"
    report.to_excel(path)
    return openpyxl.load_workbook(path)


def _rows(sheet: object) -> list[dict[str, object]]:
    values = list(sheet.iter_rows(values_only=True))  # type: ignore[attr-defined]
    return [dict(zip(values[0], row, strict=True)) for row in values[1:]]


def test_sheets_in_order_with_frozen_headers_and_filters(book: object) -> None:
    assert book.sheetnames == ["Findings", "Evidence", "Issues", "Summary", "Rules"]  # type: ignore[attr-defined]
    for sheet in book.worksheets:  # type: ignore[attr-defined]
        assert sheet.freeze_panes == "A2"
        assert sheet.auto_filter.ref and sheet.auto_filter.ref.startswith("A1:")


def test_findings_sorted_by_severity_then_the_most_recent_evidence(
    book: object, report: lemlabs.Report
) -> None:
    rows = _rows(book["Findings"])  # type: ignore[index]
    assert len(rows) == len(report.finding_list)
    keys = [(-int(Severity.parse(str(r["severity"]))), -r["latest"].toordinal()) for r in rows]
    assert keys == sorted(keys)
    first = rows[0]
    assert (
        first["severity"] == "urgent" and first["finding"] == builtin_packs().titles[first["code"]]
    )
    assert first["worst_value"]


def test_evidence_has_a_row_per_result_per_finding(book: object, report: lemlabs.Report) -> None:
    rows = _rows(book["Evidence"])  # type: ignore[index]
    assert len(rows) == sum(len(f.evidence) for f in report.finding_list)
    assert all(r["line"] == r["row"] + 2 for r in rows)  # type: ignore[operator]


def test_issues_carry_the_file_line(book: object, report: lemlabs.Report) -> None:
    rows = _rows(book["Issues"])  # type: ignore[index]
    assert len(rows) == len(report.issues)
    assert rows and rows[0]["line"] == rows[0]["row"] + 2  # type: ignore[operator]


def test_rules_sheet_lists_every_rule(book: object) -> None:
    rows = _rows(book["Rules"])  # type: ignore[index]
    assert len(rows) == len(builtin_packs().rules)
    assert {"id", "code", "severity", "sources"} <= set(rows[0])


def test_no_cell_holds_json_or_a_formula(book: object) -> None:
    for sheet in book.worksheets:  # type: ignore[attr-defined]
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str):
                    assert not cell.value.startswith(("[{", '{"')), (sheet.title, cell.coordinate)


def test_formula_like_text_stays_text(tmp_path: Path) -> None:
    labs = pd.DataFrame(
        {
            "patient_id": ["=1+1", "=1+1", "@SUM(A1)", "+1"],
            "collected_at": ["2021-01-01", "2021-02-01", "2021-01-01", "2021-01-01"],
            "test": ["PLT", "PLT", "PLT", "PLT"],
            "value": ["40", "30", "=HYPERLINK(1)", "-2+3"],
            "unit": ["10^9/L"] * 4,
        }
    )
    report = lemlabs.score_frame(labs)
    path = tmp_path / "f.xlsx"
    report.to_excel(path)
    book = openpyxl.load_workbook(path)
    texts = {
        cell.value: cell
        for sheet in book.worksheets
        for row in sheet.iter_rows()
        for cell in row
        if isinstance(cell.value, str)
    }
    for text in ("=1+1", "@SUM(A1)", "+1", "=HYPERLINK(1)", "-2+3"):
        assert text in texts, text
        assert texts[text].data_type == "s" and texts[text].quotePrefix
    assert _rows(book["Findings"])[0]["patient_id"] == "=1+1"


ANY_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(patient=ANY_TEXT, value=ANY_TEXT, unit=ANY_TEXT)
def test_any_text_in_any_field_gives_a_workbook_that_opens(
    tmp_path: Path, patient: str, value: str, unit: str
) -> None:
    """Control characters, lone BOMs, formulas: an id or a rejected raw value never stops the
    workbook; what XML cannot hold is written as its escape."""
    labs = pd.DataFrame(
        {
            "patient_id": [patient or "P", patient or "P"],
            "collected_at": ["2021-01-01", "2021-02-01"],
            "test": ["PLT", "PLT"],
            "value": ["30", value],
            "unit": ["10^9/L", unit],
        }
    )
    path = tmp_path / "any.xlsx"
    lemlabs.score_frame(labs).to_excel(path)
    book = openpyxl.load_workbook(path)
    assert [sheet.title for sheet in book.worksheets][:3] == ["Findings", "Evidence", "Issues"]


def test_cli_writes_xlsx(tmp_path: Path) -> None:
    path = tmp_path / "findings.xlsx"
    labs, patients = examples.path("labs"), examples.path("patients")
    code = cli.main(["score", str(labs), "--patients", str(patients), "-o", str(path), "-q"])
    assert code == 0
    assert openpyxl.load_workbook(path).sheetnames[0] == "Findings"
