"""Reading tables: typed errors for unusable files, never a traceback from deep inside pandas."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

import lemlabs
from lemlabs.errors import LabInputError, MissingColumnError

HEADER = "patient_id,collected_at,test,value,unit\n"


def test_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(LabInputError, match="empty"):
        lemlabs.read_labs(path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LabInputError, match="no such file"):
        lemlabs.read_labs(tmp_path / "absent.csv")


def test_header_only_gives_an_empty_report(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text(HEADER)
    report = lemlabs.score_frame(path)
    assert report.summary["rows_in"] == 0
    assert report.findings.empty and report.issues.empty


@pytest.mark.parametrize("column", ["patient_id", "collected_at", "test", "value", "unit"])
def test_missing_required_column_is_named(column: str) -> None:
    names = [c for c in HEADER.strip().split(",") if c != column]
    text = ",".join(names) + "\n" + ",".join("x" for _ in names) + "\n"
    with pytest.raises(MissingColumnError) as caught:
        lemlabs.read_labs(io.StringIO(text))
    assert caught.value.column == column
    assert column in str(caught.value)


def test_every_missing_column_is_named_at_once_with_the_header_and_a_mapping() -> None:
    text = "MRN,Date,Analyse,Result,Units\nP1,2021-01-01,TSH,1,mIU/L\n"
    with pytest.raises(MissingColumnError) as caught:
        lemlabs.read_labs(io.StringIO(text))
    assert caught.value.columns == ("patient_id", "collected_at", "test", "value", "unit")
    message = str(caught.value)
    assert "the header found: 'MRN', 'Date', 'Analyse', 'Result', 'Units'" in message
    assert "--columns MRN=patient_id,Date=collected_at,Analyse=test,Result=value,Units=unit" in (
        message
    )
    mapping = {"MRN": "patient_id", "Date": "collected_at", "Analyse": "test"}
    mapping |= {"Result": "value", "Units": "unit"}
    assert len(lemlabs.read_labs(io.StringIO(text), columns=mapping)) == 1  # the hint works


def test_a_column_without_a_likely_name_gets_the_general_hint() -> None:
    text = "patient_id,collected_at,test,value,x\nP1,2021-01-01,TSH,1,mIU/L\n"
    with pytest.raises(MissingColumnError, match=r"'unit' is missing; the header found: .*'x'; "
                       r"map a column of another name: --columns NAME="):  # fmt: skip
        lemlabs.read_labs(io.StringIO(text))


def test_a_mapping_of_a_column_the_file_lacks_is_refused_by_name() -> None:
    with pytest.raises(LabInputError, match=r"names 'MRN' \(→ patient_id\), which is not a col"):
        lemlabs.read_labs(
            io.StringIO(HEADER + "P1,2021-01-01,TSH,1,mIU/L\n"), columns={"MRN": "patient_id"}
        )


def test_a_pipe_delimited_export_is_read() -> None:
    text = HEADER.replace(",", "|") + "P1|2021-01-01|TSH|1,5|mIU/L\n"
    labs = lemlabs.read_labs(io.StringIO(text))
    assert labs.loc[0, "value"] == "1,5" and labs.loc[0, "unit"] == "mIU/L"


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz"])
def test_a_compressed_semicolon_export_is_sniffed_on_its_text(tmp_path: Path, suffix: str) -> None:
    import bz2
    import gzip
    import lzma

    compress = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}[suffix]
    path = tmp_path / f"labs.csv{suffix}"
    path.write_bytes(
        compress((HEADER.replace(",", ";") + "P1;2021-01-01;TSH;1,5;mIU/L\n").encode())
    )
    labs = lemlabs.read_labs(path)
    assert labs.loc[0, "value"] == "1,5" and labs.loc[0, "unit"] == "mIU/L"


def test_one_column_read_with_the_wrong_delimiter_says_so() -> None:
    text = HEADER.replace(",", "|") + "P1|2021-01-01|TSH|1|mIU/L\n"
    with pytest.raises(MissingColumnError, match="is the delimiter another"):
        lemlabs.read_labs(io.StringIO(text), sep=",")


def test_non_utf8_bytes_are_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + "P1,2021-01-01,Créatinine,80,µmol/L\n").encode("latin-1"))
    with pytest.raises(LabInputError, match="not UTF-8"):
        lemlabs.read_labs(path)


def test_a_10_mb_field_becomes_a_data_issue(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    path.write_text(
        HEADER + "P1,2021-01-01,PLT," + "9" * 10_000_000 + ",10^9/L\nP1,2021-02-01,PLT,200,10^9/L\n"
    )
    report = lemlabs.score_frame(path)
    assert report.summary["rows_rejected"] == 1
    issue = report.issues.iloc[0]
    assert issue["row"] == 0 and "too long" in issue["reason"]
    assert len(issue["raw_value"]) < 300


def test_columns_match_case_insensitively_and_extras_are_kept() -> None:
    text = "Patient_ID,COLLECTED_AT,Test,Value,Unit,Site\nP1,2021-01-01,PLT,200,10^9/L,north\n"
    labs = lemlabs.read_labs(io.StringIO(text))
    assert {"patient_id", "collected_at", "test", "value", "unit", "Site"} <= set(labs.columns)
    results, _ = lemlabs.normalise(labs)
    assert results.loc[0, "Site"] == "north"


def test_column_mapping() -> None:
    text = "MRN,Drawn,Analyte,Result,Units\nP1,2021-01-01,PLT,200,10^9/L\n"
    mapping = {
        "MRN": "patient_id",
        "Drawn": "collected_at",
        "Analyte": "test",
        "Result": "value",
        "Units": "unit",
    }
    labs = lemlabs.read_labs(io.StringIO(text), columns=mapping)
    assert labs.loc[0, "patient_id"] == "P1"


def test_dates_are_parsed_and_raw_text_kept() -> None:
    text = HEADER + "P1,2021-01-01,PLT,200,10^9/L\nP1,2021-01-02T08:30:00+02:00,PLT,200,10^9/L\n"
    labs = lemlabs.read_labs(io.StringIO(text))
    assert labs["collected_at"].tolist() == [
        pd.Timestamp("2021-01-01"),
        pd.Timestamp("2021-01-02 08:30:00"),
    ]
    assert labs["collected_at_raw"].tolist() == ["2021-01-01", "2021-01-02T08:30:00+02:00"]
    assert labs.loc[0, "value"] == "200"


# SDTMIG: an ISO 8601 date-time at any precision down to the day is valid, hours only included;
# a date that is not a whole calendar day is a data issue (domain.md, "Values")
DATES = [
    ("2021-03-01", "2021-03-01 00:00"),
    ("2021-03-01T08", "2021-03-01 08:00"),
    ("2021-03-01T08Z", "2021-03-01 08:00"),
    ("2021-03-01T08+02:00", "2021-03-01 08:00"),
    ("2021-03-01T08:30", "2021-03-01 08:30"),
    ("2021-03-01T08:30:15.5-05:00", "2021-03-01 08:30:15.5"),
    ("2021-03", "a partial date (not a whole calendar day)"),
    ("2021", "a partial date (not a whole calendar day)"),
    ("2021-03-01T25", "not a valid date"),
    ("2021-03-01T8", "not an ISO date"),
    ("03/05/2021", "not an ISO date"),
]


@pytest.mark.parametrize(("text", "expected"), DATES)
def test_a_date_at_any_precision_down_to_the_day_is_read(text: str, expected: str) -> None:
    labs = pd.DataFrame(
        {"patient_id": ["P1"], "collected_at": [text], "test": ["PLT"], "value": ["200"]}
    )
    results, issues = lemlabs.normalise(labs.assign(unit="10^9/L"))
    if expected[0].isdigit():
        assert issues.empty, issues.to_dict("records")
        assert results.loc[0, "collected_at"] == pd.Timestamp(expected)
    else:
        assert results.empty
        assert issues.loc[0, "field"] == "collected_at"
        assert issues.loc[0, "reason"].startswith(expected), issues.loc[0, "reason"]


def test_patients_course_dates_and_sex() -> None:
    text = "patient_id,sex,course_dates\nP1,f,2020-01-06;2021-01-11\nP2,X,\nP3,M,2020-13-01\n"
    patients = lemlabs.read_patients(io.StringIO(text))
    assert patients["sex"].tolist() == ["F", "", "M"]
    assert patients.loc[0, "courses"] == [pd.Timestamp("2020-01-06"), pd.Timestamp("2021-01-11")]
    assert patients.loc[1, "courses"] == []
    assert "unreadable course date" in patients.loc[2, "problem"]


def test_unreadable_course_date_is_reported_not_guessed() -> None:
    labs = io.StringIO(HEADER + "P3,2021-01-01,PLT,200,10^9/L\n")
    patients = io.StringIO("patient_id,sex,course_dates\nP3,M,2020-13-01\n")
    report = lemlabs.score_frame(labs, patients)
    issue = report.issues[report.issues["source"] == "patients"].iloc[0]
    assert issue["field"] == "course_dates" and issue["raw_value"] == "2020-13-01"


@pytest.mark.parametrize(
    ("text", "date_format", "expected"),
    [
        ("05/03/2021", "DMY", "2021-03-05 00:00"),
        ("05/03/2021", "MDY", "2021-05-03 00:00"),
        ("05/03/2021", "ISO", None),  # the default reads ISO only: a data issue, never a guess
        ("31.03.2021 08:30", "DMY", "2021-03-31 08:30"),
        ("3-31-2021", "MDY", "2021-03-31 00:00"),
        ("31/03/2021", "MDY", None),  # no month 31
        ("29/02/2021", "DMY", None),  # no 29 February in 2021
        ("2021-03-05", "DMY", "2021-03-05 00:00"),  # ISO stays valid whatever the format
        ("2021-03-05T08", "mdy", "2021-03-05 08:00"),
    ],
)
def test_a_date_format_reads_day_first_or_us_dates(
    text: str, date_format: str, expected: str | None
) -> None:
    frame = pd.DataFrame([("P1", text, "PLT", "250", "10^9/L")], columns=HEADER.strip().split(","))
    labs = lemlabs.read_labs(frame, date_format=date_format)
    read = labs.loc[0, "collected_at"]
    assert (None if pd.isna(read) else read.strftime("%Y-%m-%d %H:%M")) == expected
    assert labs.loc[0, "collected_at_raw"] == text  # the text as sent is kept


def test_an_unknown_date_format_is_refused_naming_the_choices() -> None:
    with pytest.raises(LabInputError, match=r"date format 'YMD': one of ISO, DMY, MDY"):
        lemlabs.read_labs(io.StringIO(HEADER + "P1,2021-01-01,PLT,1,10^9/L\n"), date_format="YMD")


def test_course_dates_follow_the_date_format(tmp_path: Path) -> None:
    from lemlabs.cli import main

    labs_path, patients_path = tmp_path / "labs.csv", tmp_path / "patients.csv"
    labs_path.write_text(HEADER + "P1,05/03/2021,PLT,15,10^9/L\n")
    patients_path.write_text("patient_id,sex,course_dates\nP1,F,01/02/2021;03/02/2022\n")
    people = lemlabs.read_patients(patients_path, date_format="DMY")
    assert [d.date().isoformat() for d in people.loc[0, "courses"]] == ["2021-02-01", "2022-02-03"]
    report = lemlabs.score_frame(lemlabs.read_labs(labs_path, date_format="DMY"), people)
    (finding,) = report.finding_list
    assert finding.days_from_course == 32 and report.issues.empty
    out = tmp_path / "f.csv"
    args = ["score", str(labs_path), "--patients", str(patients_path), "-o", str(out), "-q"]
    assert main([*args, "--date-format", "DMY"]) == 0
    assert "itp.suspected" in out.read_text()
    assert main(args) == 2  # ISO only: every row rejected, one line naming --date-format
