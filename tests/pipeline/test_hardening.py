"""Malformed input (issue 17): each case is one clear line (exit 2, a typed error) or a data issue
naming the row and the reason; never a traceback (exit 1), a shifted row or a silent change.

The CLI runs in-process (``lemlabs.cli.main`` returns the exit status), so the tables are quick.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pandas as pd
import pytest

import lemlabs
from lemlabs import cli
from lemlabs.errors import LabInputError, LemlabsError, OutputError

HEADER = "patient_id,collected_at,test,value,unit\n"


def run_cli(*argv: str) -> tuple[int, str, str]:
    """``lemlabs ARGV`` in-process: (exit status, stdout, stderr); a traceback fails the test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(argv))
        except SystemExit as exit_:  # argparse
            code = int(exit_.code or 0)
    return code, out.getvalue(), err.getvalue()


def score_file(tmp_path: Path, name: str, data: bytes | str, *extra: str) -> tuple[int, str, Path]:
    """Score one input file; (exit status, stderr, issues CSV path)."""
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    issues = tmp_path / "issues.csv"
    code, _, err = run_cli(
        "score", str(path), "-q", "-o", str(tmp_path / "out.json"), "--issues", str(issues), *extra
    )
    return code, err, issues


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith(("lemlabs: error:", "lemlabs score: error:")), err
    assert "Traceback" not in err
    return lines[-1]


# --- unusable files: exit 2, one line naming the problem

UNUSABLE_CSV = [
    ("same header twice, case", HEADER.rstrip() + ",PATIENT_ID\nP1,2020-01-01,TSH,1,mIU/L,P1\n",
     "same name"),
    ("same header twice, spaces", "patient_id,collected_at,test,value,unit, unit \n"
     "P1,2020-01-01,TSH,1,mIU/L,x\n", "same name"),
    ("same header twice, exact", HEADER.rstrip() + ",unit\nP1,2020-01-01,TSH,1,mIU/L,x\n",
     "more than once"),
    ("extra non-empty field", HEADER + "P1,2020-01-01,TSH,1,mIU/L,x\n", "more field"),
    ("0-byte file", "", "empty"),
    ("Latin-1 file", "patient_id,collected_at,test,value,unit\nPé,2020-01-01,TSH,1,mIU/L\n"
     .encode("latin-1"), "not UTF-8"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "data", "says"), UNUSABLE_CSV, ids=[c[0] for c in UNUSABLE_CSV])
def test_an_unusable_csv_is_one_line_and_exit_2(
    tmp_path: Path, case: str, data: str | bytes, says: str
) -> None:
    code, err, _ = score_file(tmp_path, "labs.csv", data)
    assert code == 2
    assert says in one_line_error(err)


def test_duplicate_headers_raise_a_typed_error() -> None:
    with pytest.raises(LabInputError, match="same name"):
        lemlabs.read_labs(io.StringIO(HEADER.rstrip() + ",Patient_ID\n"))
    frame = pd.DataFrame([["P1", "2020-01-01", "TSH", "1", "mIU/L", "x"]])
    frame.columns = ["patient_id", "collected_at", "test", "value", "unit", "unit"]
    with pytest.raises(LabInputError):
        lemlabs.score_frame(frame)
    with pytest.raises(LabInputError, match="more than once"):  # two columns mapped onto one
        lemlabs.read_labs(
            io.StringIO(HEADER.rstrip() + ",MRN\nP1,2020-01-01,TSH,1,mIU/L,P2\n"),
            columns={"MRN": "patient_id"},
        )


# --- a trailing delimiter on every data row


def test_a_trailing_comma_on_every_row_is_read_unshifted() -> None:
    text = HEADER + "P1,2020-01-01,PLT,12,10^9/L,\nP1,2020-02-01,PLT,14,10^9/L,\n"
    labs = lemlabs.read_labs(io.StringIO(text))
    assert list(labs["patient_id"]) == ["P1", "P1"]
    assert list(labs["value"]) == ["12", "14"]
    report = lemlabs.score_frame(labs)
    assert report.summary["rows_rejected"] == 0
    assert {f.patient_id for f in report.finding_list} == {"P1"}


def test_a_trailing_comma_on_some_rows_only_is_read_unshifted() -> None:
    text = HEADER + "P1,2020-01-01,PLT,12,10^9/L,\nP2,2020-02-01,PLT,14,10^9/L\n"
    labs = lemlabs.read_labs(io.StringIO(text))
    assert list(labs["patient_id"]) == ["P1", "P2"]
    assert list(labs["unit"]) == ["10^9/L", "10^9/L"]


# --- user columns named like lemlabs' own

RESERVED = ["row", "window", "baseline", "status", "flag", "sex", "analyte", "day", "kind",
            "value_high", "collected_at_raw", "rise_ratio", "pair_flag",
            "ctcae_grade_low"]  # fmt: skip


@pytest.mark.parametrize("name", RESERVED)
def test_a_user_column_named_like_lemlabs_own_is_carried_as_input_name(name: str) -> None:
    text = (
        HEADER.rstrip() + f",{name}\n"
        "P1,2020-01-01,PLT,12,10^9/L,mine\nP1,2020-01-05,PLT,14,10^9/L,mine too\n"
    )
    report = lemlabs.score_frame(io.StringIO(text))
    assert report.summary["rows_normalised"] == 2
    assert list(report.results[f"input_{name}"]) == ["mine", "mine too"]
    assert report.finding_list  # the platelets still score
    assert report.results["row"].tolist() == [0, 1]


@pytest.mark.parametrize("name", ["course", "index", "prev_value"])
def test_a_user_column_named_like_nothing_lemlabs_makes_is_kept_as_it_is(name: str) -> None:
    text = HEADER.rstrip() + f",{name}\nP1,2020-01-01,PLT,12,10^9/L,mine\n"
    report = lemlabs.score_frame(io.StringIO(text))
    assert list(report.results[name]) == ["mine"] and f"input_{name}" not in report.results


def test_reserved_names_cover_every_column_lemlabs_adds() -> None:
    """A column lemlabs adds to the lab table (normalising, context, facts) is reserved, so
    that a user column of that name is renamed rather than overwritten."""
    from lemlabs import examples
    from lemlabs.formats.labs import reserved_columns
    from lemlabs.packs import builtin_packs
    from lemlabs.stages.context import add_context
    from lemlabs.stages.facts import result_facts
    from lemlabs.stages.ingest import LAB_COLUMNS, LAB_OPTIONAL
    from lemlabs.stages.normalise import normalise_prepared

    packs = builtin_packs()
    labs = lemlabs.read_labs(examples.path("labs"))
    people = lemlabs.read_patients(examples.path("patients"))
    results, _ = normalise_prepared(labs, people, packs.defaults, packs)
    scored = results[results["status"] == "scored"]
    context = add_context(scored, people, packs.defaults, packs.book)
    facts = result_facts(context, packs.defaults, packs.book)
    graded = lemlabs.score_frame(labs, people).results
    added = (
        set(results.columns) | set(context.columns) | set(facts.columns) | set(graded.columns)
    ) - set(pd.read_csv(examples.path("labs"), nrows=0).columns)
    assert added - set(LAB_COLUMNS) - set(LAB_OPTIONAL) <= set(reserved_columns())


def test_a_patients_column_named_problem_or_courses_is_kept() -> None:
    people = pd.DataFrame(
        {"patient_id": ["P1"], "course_dates": ["2020-01-01"], "problem": ["x"], "courses": ["y"]}
    )
    table = lemlabs.read_patients(people)
    assert table.loc[0, "input_problem"] == "x" and table.loc[0, "input_courses"] == "y"
    assert table.loc[0, "problem"] == ""
    assert [d.date().isoformat() for d in table.loc[0, "courses"]] == ["2020-01-01"]
    again = lemlabs.read_patients(table)  # a table read before is read the same
    assert again.loc[0, "courses"] == table.loc[0, "courses"]


# --- dates outside the accepted years

DATES = ["0001-01-01", "9999-12-31", "1677-09-22", "1677-09-21", "2262-04-12", "1899-12-31"]


@pytest.mark.parametrize("day", DATES)
def test_a_collection_date_outside_the_years_is_a_data_issue(tmp_path: Path, day: str) -> None:
    code, _, issues_path = score_file(
        tmp_path, "labs.csv", HEADER + f"P1,{day},PLT,12,10^9/L\nP1,2020-01-01,PLT,12,10^9/L\n"
    )
    assert code == 0
    issues = pd.read_csv(issues_path, dtype=str)
    assert issues["row"].tolist() == ["0"]
    assert issues.loc[0, "field"] == "collected_at"
    assert "outside the years" in issues.loc[0, "reason"]


@pytest.mark.parametrize("day", DATES)
def test_a_course_date_outside_the_years_is_a_patient_issue(tmp_path: Path, day: str) -> None:
    patients = tmp_path / "patients.csv"
    patients.write_text(f"patient_id,sex,course_dates\nP1,F,{day};2020-01-01\n")
    code, _, issues_path = score_file(
        tmp_path, "labs.csv", HEADER + "P1,2020-03-01,PLT,12,10^9/L\n", "--patients", str(patients)
    )
    assert code == 0
    issues = pd.read_csv(issues_path, dtype=str)
    assert issues.loc[0, "source"] == "patients" and issues.loc[0, "field"] == "course_dates"


@pytest.mark.parametrize("day", [*DATES, "2021-02-30", "tomorrow"])
def test_an_as_of_outside_the_years_is_exit_2(tmp_path: Path, day: str) -> None:
    code, err, _ = score_file(
        tmp_path, "labs.csv", HEADER + "P1,2020-03-01,PLT,12,10^9/L\n", "--as-of", day
    )
    assert code == 2
    assert "--as-of" in one_line_error(err)


def test_as_of_outside_the_years_is_a_typed_error_in_python() -> None:
    labs = io.StringIO(HEADER + "P1,2020-03-01,PLT,12,10^9/L\n")
    with pytest.raises(LabInputError, match="outside the years"):
        lemlabs.score_frame(labs, as_of="0001-01-01")


def test_datetime_columns_outside_the_years_are_issues() -> None:
    frame = pd.DataFrame(
        {
            "patient_id": ["P1", "P1"],
            "collected_at": pd.to_datetime(["1677-09-22", "2020-01-01"]),
            "test": ["PLT", "PLT"],
            "value": ["12", "12"],
            "unit": ["10^9/L", "10^9/L"],
        }
    )
    report = lemlabs.score_frame(frame)
    assert report.issues["row"].tolist() == [0]


# --- values and units that are not finite, or zero

VALUES = [
    ("1e999", "10^9/L", "value", "out of range"),
    ("-1e999", "10^9/L", "value", "out of range"),
    ("<1e999", "10^9/L", "value", "out of range"),
    (">-1e999", "10^9/L", "value", "out of range"),
    ("1-1e999", "10^9/L", "value", "out of range"),
    ("1e308", "10^9/L", "value", ""),  # implausible (finite), or out of range once converted
    ("1e308", "10^9/mL", "value", "out of range once converted"),
    ("100", "10^400/L", "unit", "not a usable scale"),
    ("100", "inf/L", "unit", "not a usable scale"),
    ("100", "nan/L", "unit", "not a usable scale"),
    ("100", "0/L", "unit", "not a usable scale"),
    ("100", "10^-400/L", "unit", "not a usable scale"),
    ("100", "-1/nL", "unit", "not a usable scale"),
    ("100", "L" * 1_000_000, "unit", "too long"),
    ("1" * 100, "10^9/L", "value", "too long"),
]


@pytest.mark.parametrize(
    ("value", "unit", "field", "says"), VALUES, ids=[v[0] + " " + v[1][:12] for v in VALUES]
)
def test_a_non_finite_or_zero_value_is_a_data_issue(
    tmp_path: Path, value: str, unit: str, field: str, says: str
) -> None:
    code, err, issues_path = score_file(
        tmp_path, "labs.csv", HEADER + f"P1,2020-01-01,PLT,{value},{unit}\n"
    )
    assert code == 2  # the one row could not be used; the outputs are still written
    assert "no row could be used" in one_line_error(err)
    issues = pd.read_csv(issues_path, dtype=str)
    assert len(issues) == 1
    assert issues.loc[0, "field"] == field
    assert says in issues.loc[0, "reason"]
    written = (tmp_path / "out.json").read_text()
    assert "Infinity" not in written and "NaN" not in written


def test_a_million_character_unit_costs_nothing() -> None:
    import time

    start = time.perf_counter()
    report = lemlabs.score_frame(io.StringIO(HEADER + f"P1,2020-01-01,PLT,12,{'L' * 10**6}\n"))
    assert time.perf_counter() - start < 5
    assert "too long" in report.issues.loc[0, "reason"]
    assert len(report.issues.loc[0, "raw_value"]) < 300


@pytest.mark.parametrize("field", ["patient_id", "test", "loinc", "specimen", "ref_low"])
def test_an_over_long_field_is_a_data_issue(field: str) -> None:
    row = {"patient_id": "P1", "collected_at": "2020-01-01", "test": "PLT", "value": "12",
           "unit": "10^9/L", "loinc": "", "specimen": "", "ref_low": ""}  # fmt: skip
    row[field] = "x" * 10_000
    report = lemlabs.score_frame(pd.DataFrame([row]))
    assert report.summary["rows_rejected"] == 1
    assert report.issues.loc[0, "field"] == field
    assert "too long" in report.issues.loc[0, "reason"]


# --- patient ids with surrounding spaces


def test_ids_with_surrounding_spaces_are_one_patient() -> None:
    labs = io.StringIO(
        HEADER + "P1 ,2019-12-01,PLT,250,10^9/L\n P1,2020-06-01,PLT,90,10^9/L\n"
        "P1,2020-06-20,PLT,80,10^9/L\n"
    )
    patients = pd.DataFrame({"patient_id": [" P1 "], "sex": ["F"], "course_dates": ["2020-01-01"]})
    report = lemlabs.score_frame(labs, patients)
    assert report.summary["patients"] == 1
    assert set(report.results["patient_id"]) == {"P1"}
    assert {f.patient_id for f in report.finding_list} == {"P1"}
    assert all(f.days_from_course is not None for f in report.finding_list)  # course found


# --- the lab's own reference bounds

BOUNDS = [
    ("creatinine", "80", "umol/L", "0", "0", "ref_high", "implausible"),
    ("creatinine", "80", "umol/L", "120", "45", "ref_low", "inverted"),
    ("creatinine", "80", "umol/L", "45", "45", "ref_low", "inverted"),
    ("creatinine", "80", "umol/L", "-5", "110", "ref_low", "implausible"),
    ("creatinine", "80", "umol/L", "45", "1e999", "ref_high", "implausible"),
    ("creatinine", "80", "umol/L", "45", "99999", "ref_high", "implausible"),
    ("creatinine", "80", "umol/L", "abc", "110", "ref_low", "unreadable"),
    ("PLT", "200", "10^9/L", "", "0", "ref_high", "implausible"),
]


@pytest.mark.parametrize(("test", "value", "unit", "low", "high", "field", "says"), BOUNDS)
def test_an_implausible_lab_bound_is_an_issue_and_the_result_keeps_the_default(
    test: str, value: str, unit: str, low: str, high: str, field: str, says: str
) -> None:
    labs = pd.DataFrame(
        [["P1", "2020-01-01", test, value, unit, low, high]],
        columns=["patient_id", "collected_at", "test", "value", "unit", "ref_low", "ref_high"],
    )
    report = lemlabs.score_frame(labs)
    s = report.summary
    assert s["rows_in"] == s["rows_normalised"] + s["rows_rejected"] == 1
    assert s["rows_rejected"] == 0
    result = report.results.iloc[0]
    assert result["ref_source"] == "default"
    assert "default interval applies" in result["ref_note"]
    issue = report.issues.iloc[0]
    assert (issue["source"], issue["field"], issue["row"]) == ("reference", field, 0)
    assert says in issue["reason"]
    assert not report.finding_list  # a normal value stays normal


def test_a_plausible_lab_bound_is_used() -> None:
    labs = pd.DataFrame(
        [["P1", "2020-01-01", "creatinine", "80", "umol/L", "0", "70"]],
        columns=["patient_id", "collected_at", "test", "value", "unit", "ref_low", "ref_high"],
    )
    report = lemlabs.score_frame(labs)
    assert report.issues.empty
    assert report.results.loc[0, "ref_source"] == "lab"
    assert report.results.loc[0, "flag"] == "H"


# --- FHIR

OBSERVATION = {
    "resourceType": "Observation",
    "id": "o1",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "777-3"}], "text": "Platelets"},
    "subject": {"reference": "Patient/P1"},
    "effectiveDateTime": "2020-01-01",
    "valueQuantity": {"value": 10, "unit": "10*9/L", "code": "10*9/L"},
}
BAD_FHIR = [
    ("latin-1", json.dumps({**OBSERVATION, "id": "é"}, ensure_ascii=False).encode("latin-1"),
     "not UTF-8"),
    ("42", b"42", "not a FHIR resource"),
    ("null", b"null", "not a FHIR resource"),
    ("string", b'"Observation"', "not a FHIR resource"),
    ("entry 5", b'{"resourceType": "Bundle", "entry": 5}', "entry is not a list"),
    ("deep list", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("deep object", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply"),
    ("deep ndjson", b"{}\n" + b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("birthDate 1980-02-30", json.dumps(
        [OBSERVATION, {"resourceType": "Patient", "id": "P1", "birthDate": "1980-02-30"}]
    ).encode(), "Patient/P1"),
    ("0-byte", b"", "not valid JSON"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "data", "says"), BAD_FHIR, ids=[c[0] for c in BAD_FHIR])
def test_unusable_fhir_is_one_line_and_exit_2(
    tmp_path: Path, case: str, data: bytes, says: str
) -> None:
    pytest.importorskip("fhir.resources")
    code, err, _ = score_file(tmp_path, "obs.json", data)
    assert code == 2
    assert says in one_line_error(err)


def test_fhir_items_that_are_not_resources_become_issues(tmp_path: Path) -> None:
    pytest.importorskip("fhir.resources")
    code, err, issues_path = score_file(tmp_path, "obs.json", b"[1, 2, 3, null]")
    assert code == 2  # no item could be used; each is still named in the issues
    assert "no row could be used" in one_line_error(err)
    assert len(pd.read_csv(issues_path)) == 4


def test_fhir_read_patients_raises_a_typed_error_for_an_invalid_patient() -> None:
    fhir = pytest.importorskip("lemlabs.formats.fhir")
    with pytest.raises(LemlabsError, match="birthDate"):
        fhir.read_patients([{"resourceType": "Patient", "id": "P1", "birthDate": "1980-02-30"}])


def test_a_fhir_file_whose_name_starts_with_a_bracket_is_a_file(tmp_path: Path) -> None:
    fhir = pytest.importorskip("lemlabs.formats.fhir")
    path = tmp_path / "[2021] export.json"
    path.write_text(json.dumps([OBSERVATION]))
    assert fhir.read_observations(path)["patient_id"].tolist() == ["P1"]
    assert fhir.read_observations(str(path))["patient_id"].tolist() == ["P1"]
    code, _, _ = score_file(tmp_path, "[x].json", json.dumps([OBSERVATION]))
    assert code == 0


def test_versioned_references_keep_the_patient_id_not_the_version() -> None:
    fhir = pytest.importorskip("lemlabs.formats.fhir")
    resources = [
        {**OBSERVATION, "id": "o1", "subject": {"reference": "Patient/P1/_history/3"}},
        {**OBSERVATION, "id": "o2", "subject": {"reference": "Patient/P2/_history/3"}},
        {**OBSERVATION, "id": "o3", "subject": {"reference": "https://h/fhir/Patient/P3"}},
    ]
    assert fhir.read_observations(resources)["patient_id"].tolist() == ["P1", "P2", "P3"]


# --- Dask

DASK_CASES = [
    ("0-byte", b"", "empty"),
    ("Latin-1", "patient_id,collected_at,test,value,unit\nPé,2020-01-01,PLT,10,10^9/L\n"
     .encode("latin-1"), "not UTF-8"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "data", "says"), DASK_CASES, ids=[c[0] for c in DASK_CASES])
def test_dask_input_that_cannot_be_read_is_one_line(
    tmp_path: Path, case: str, data: bytes, says: str
) -> None:
    dask = pytest.importorskip("lemlabs.dask")
    path = tmp_path / "labs.csv"
    path.write_bytes(data)
    with pytest.raises(LabInputError, match=says):
        dask.score_dask(path).compute()


def test_a_dask_glob_matching_nothing_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("lemlabs.dask")
    code, _, err = run_cli("score", str(tmp_path / "none*.csv"), "--dask", "-q")
    assert code == 2
    assert "no file matches" in one_line_error(err)


# --- threshold tables that pass validation but break later

THRESHOLDS = [
    '[schedule.monthly_days]\nvalue = 0\nsource = "x"\n',
    '[thyroid.pair_window_days]\nvalue = -1\nsource = "x"\n',
    '[thyroid.pair_window_days]\nvalue = 1e12\nsource = "x"\n',
    '[fhir.course_gap_days]\nvalue = 1000000000000\nsource = "x"\n',
]


@pytest.mark.parametrize("text", THRESHOLDS)
def test_a_threshold_table_that_would_break_later_is_exit_2(tmp_path: Path, text: str) -> None:
    table = tmp_path / "site.toml"
    table.write_text(text)
    code, err, _ = score_file(
        tmp_path, "labs.csv", HEADER + "P1,2020-01-01,PLT,12,10^9/L\n", "--thresholds", str(table)
    )
    assert code == 2
    one_line_error(err)


@pytest.mark.parametrize("text", ["[1, 2]", "[" * 100_000 + "]" * 100_000, "null"])
def test_a_json_threshold_table_of_the_wrong_shape_is_exit_2(tmp_path: Path, text: str) -> None:
    table = tmp_path / "site.json"
    table.write_text(text)
    code, err, _ = score_file(
        tmp_path, "labs.csv", HEADER + "P1,2020-01-01,PLT,12,10^9/L\n", "--thresholds", str(table)
    )
    assert code == 2
    one_line_error(err)


# --- unusable output


def test_unusable_output_raises_output_error(tmp_path: Path) -> None:
    from lemlabs.formats.export import read_findings, write_findings, write_findings_table

    with pytest.raises(OutputError):
        write_findings([], tmp_path / "out.docx")
    with pytest.raises(OutputError):
        write_findings_table(pd.DataFrame(), tmp_path / "out.fhir.json")
    with pytest.raises(OutputError):
        write_findings_table(pd.DataFrame(), tmp_path / "out.xlsx")
    with pytest.raises(OutputError):
        read_findings(tmp_path / "out.xlsx")
    with pytest.raises(OutputError):
        read_findings(tmp_path / "out.fhir.json")
    assert issubclass(OutputError, ValueError)
