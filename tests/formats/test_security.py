"""Security guards (issue 17): CSV formula injection, terminal injection, bounded parsing; and
properties: any bytes as a CSV and any JSON as FHIR end in exit 0 or 2 (never a traceback), ids
round-trip through every output, and nothing printed holds a raw control character."""

from __future__ import annotations

import contextlib
import io
import json
import re
import string
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lemlabs
from lemlabs import cli
from lemlabs.formats.export import guard_cell, read_findings, unguard_cell, write_findings

HEADER = "patient_id,collected_at,test,value,unit\n"
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# each example writes files, so the shared tmp_path is fine: they are rewritten every time
SHARED_TMP = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(argv))
        except SystemExit as exit_:
            code = int(exit_.code or 0)
    return code, out.getvalue(), err.getvalue()


def urgent_rows(patient_id: str, value: str = "10") -> pd.DataFrame:
    """One platelet count low enough for an urgent finding, under ``patient_id``."""
    return pd.DataFrame(
        [[patient_id, "2020-01-01", "PLT", value, "10^9/L"]],
        columns=["patient_id", "collected_at", "test", "value", "unit"],
    )


# formula injection


FORMULAS = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(1)", "\tx", "\rx", "'quoted", "=", "-"]


@pytest.mark.parametrize("text", FORMULAS)
def test_a_formula_cell_is_guarded_and_the_guard_undone(text: str) -> None:
    assert guard_cell(text) == "'" + text
    assert unguard_cell(guard_cell(text)) == text


@pytest.mark.parametrize("text", ["-0.5", "+3", "1e-3", "P1", "", "a=b", "10^9/L"])
def test_numbers_and_plain_text_are_left_alone(text: str) -> None:
    assert guard_cell(text) == text


@pytest.mark.parametrize("patient_id", ['=HYPERLINK("http://x")', "+P1", "-P1", "@P1"])
def test_findings_and_issues_csv_are_guarded(tmp_path: Path, patient_id: str) -> None:
    labs = pd.concat([urgent_rows(patient_id), urgent_rows(patient_id, "=1+2")], ignore_index=True)
    labs_path = tmp_path / "labs.csv"
    labs.to_csv(labs_path, index=False)
    code, _, _ = run_cli(
        "score", str(labs_path), "-q", "-o", str(tmp_path / "f.csv"),
        "--issues", str(tmp_path / "i.csv"),
    )  # fmt: skip
    assert code == 0
    for name in ("f.csv", "i.csv"):
        table = pd.read_csv(tmp_path / name, dtype=str, keep_default_na=False)
        cells = [c for column in table.columns for c in table[column]]
        assert all(not c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells), name
    issues = pd.read_csv(tmp_path / "i.csv", dtype=str)
    assert issues.loc[0, "raw_value"] == "'=1+2"
    assert read_findings(tmp_path / "f.csv")[0]["patient_id"] == patient_id


def test_the_schedule_csv_is_guarded(tmp_path: Path) -> None:
    labs, patients, plan = tmp_path / "labs.csv", tmp_path / "p.csv", tmp_path / "plan.csv"
    urgent_rows("=P1").to_csv(labs, index=False)
    patients.write_text("patient_id,sex,course_dates\n=P1,F,2019-06-01\n")
    code, _, _ = run_cli("schedule", str(labs), "--patients", str(patients), "-o", str(plan),
                         "--as-of", "2020-06-01")  # fmt: skip
    assert code == 0
    table = pd.read_csv(plan, dtype=str)
    assert set(table["patient_id"]) == {"'=P1"}


# terminal injection

HOSTILE = ["\x1b[31mRED\x1b[0m", "P1\nrow 0: forged line", "P\r\x1b[2J", "\u202eevil", "P\x07"]


@pytest.mark.parametrize("patient_id", HOSTILE)
def test_printed_report_escapes_control_characters(tmp_path: Path, patient_id: str) -> None:
    labs = pd.concat([urgent_rows(patient_id), urgent_rows(patient_id, "zz")], ignore_index=True)
    path = tmp_path / "labs.csv"
    labs.to_csv(path, index=False)
    code, out, _err = run_cli("score", str(path), "-q")
    assert code == 0
    lines = out.split("\n")
    assert not any(CONTROL.search(line) for line in lines)
    assert not any(line.startswith("row 0: forged") for line in lines)
    assert "\\x1b" in out or "\\x0a" in out or "\\u202e" in out or "\\x07" in out


def test_the_html_report_command_writes_no_control_character_to_stderr(tmp_path: Path) -> None:
    pytest.importorskip("jinja2")
    labs = pd.concat([urgent_rows(p) for p in HOSTILE], ignore_index=True)
    path = tmp_path / "labs.csv"
    labs.to_csv(path, index=False)
    code, _, err = run_cli("report", str(path), "-o", str(tmp_path / "r.html"), "-q")
    assert code == 0
    assert not any(CONTROL.search(line) for line in err.split("\n"))


def test_a_library_warning_reaches_stderr_on_one_escaped_line() -> None:
    err = io.StringIO()
    cli._show_warning(UserWarning("Glyph 27 (\x1b[2J) missing"), UserWarning, "x.py", 1, err)
    assert err.getvalue() == "lemlabs: warning: UserWarning: Glyph 27 (\\x1b[2J) missing\n"


def test_error_messages_escape_control_characters(tmp_path: Path) -> None:
    code, _, err = run_cli("score", str(tmp_path / "\x1b[2Jmissing.csv"), "-q")
    assert code == 2
    assert not CONTROL.search(err.rstrip("\n"))
    assert "\\x1b" in err


def test_printable_escapes_everything_invisible() -> None:
    assert cli.printable("a\x1b[0m\nb\u202e") == "a\\x1b[0m\\x0ab\\u202e"
    assert cli.printable("Prüfung µmol/L ×10⁹") == "Prüfung µmol/L ×10⁹"


# properties

CSV_TEXT = st.text(alphabet=string.printable + "é\x00\x1b\ufeff", max_size=300)


@SHARED_TMP
@given(st.one_of(st.binary(max_size=300), CSV_TEXT.map(lambda t: t.encode("utf-8"))))
def test_any_bytes_as_a_csv_exit_0_or_2(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "labs.csv"
    path.write_bytes(data)
    code, _, err = run_cli("score", str(path), "-q", "--issues", str(tmp_path / "i.csv"))
    assert code in (0, 2), err
    assert "Traceback" not in err


@SHARED_TMP
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["P1", " P1", "=P2", "\x1bP3"]),
            st.sampled_from(["2020-01-01", "0001-01-01", "9999-12-31", "2020-13-01", ""]),
            st.sampled_from(["PLT", "TSH", "creatinine", "U-Blood", "x"]),
            st.sampled_from(["10", "1e999", "-1e999", "<1e999", "1+", "", "1,200", "nan"]),
            st.sampled_from(["10^9/L", "mIU/L", "umol/L", "0/L", "inf/L", "10^400/L", ""]),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_hostile_rows_are_accounted_for_and_never_infinite(
    tmp_path: Path, rows: list[tuple[str, ...]]
) -> None:
    path = tmp_path / "labs.csv"
    pd.DataFrame(rows, columns=HEADER.strip().split(",")).to_csv(path, index=False)
    out = tmp_path / "f.json"
    code, _, err = run_cli("score", str(path), "-q", "-o", str(out))
    report = lemlabs.score_frame(path)
    s = report.summary
    assert s["rows_in"] == s["rows_normalised"] + s["rows_rejected"] == len(rows)
    if s["rows_rejected"] == len(rows):  # no row could be used: one line, outputs written
        assert code == 2 and err.startswith("lemlabs: error: no row could be used"), err
    else:
        assert code == 0, err
    assert "Infinity" not in out.read_text() and "NaN" not in out.read_text()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "resourceType",
                    "entry",
                    "resource",
                    "id",
                    "subject",
                    "valueQuantity",
                    "code",
                    "status",
                    "effectiveDateTime",
                    "birthDate",
                    "value",
                    "x",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=12,
)
RESOURCE_TYPES = st.sampled_from(["Observation", "Bundle", "Patient", "MedicationStatement"])


@SHARED_TMP
@given(
    st.one_of(
        JSON,
        st.builds(
            lambda kind, body: {**body, "resourceType": kind},
            RESOURCE_TYPES,
            st.dictionaries(
                st.sampled_from(["entry", "id", "subject", "birthDate", "status", "valueQuantity"]),
                JSON,
            ),
        ),
    )
)
def test_any_json_as_fhir_exit_0_or_2(tmp_path: Path, data: object) -> None:
    pytest.importorskip("fhir.resources")
    path = tmp_path / "obs.json"
    path.write_text(json.dumps(data))
    code, _, err = run_cli("score", str(path), "-q")
    assert code in (0, 2), err
    assert not CONTROL.search(err.rstrip("\n"))


IDS = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
    min_size=1,
    max_size=20,
).filter(lambda text: text.strip() == text and text.strip() != "")


@SHARED_TMP
@given(IDS)
def test_any_id_round_trips_through_csv_and_json(tmp_path: Path, patient_id: str) -> None:
    report = lemlabs.score_frame(urgent_rows(patient_id))
    if not report.finding_list:  # an id longer than the bound is an issue: nothing to round-trip
        return
    for name in ("f.csv", "f.json", "f.jsonl"):
        write_findings(report.finding_list, tmp_path / name)
        assert [r["patient_id"] for r in read_findings(tmp_path / name)] == [patient_id], name
    raw = pd.read_csv(tmp_path / "f.csv", dtype=str, keep_default_na=False)["patient_id"][0]
    assert raw == guard_cell(patient_id)


@SHARED_TMP
@given(IDS, st.text(max_size=20))
def test_printed_output_never_holds_a_raw_control_character(
    tmp_path: Path, patient_id: str, value: str
) -> None:
    labs = pd.concat([urgent_rows(patient_id), urgent_rows(patient_id, value)], ignore_index=True)
    path = tmp_path / "labs.csv"
    labs.to_csv(path, index=False)
    code, out, err = run_cli("score", str(path), "-q")
    assert code in (0, 2)
    for text in (out, err):
        assert not any(CONTROL.search(line) for line in text.split("\n"))
