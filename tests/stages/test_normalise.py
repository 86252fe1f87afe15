"""Normalising: canonical units, reference intervals, and every row accounted for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import lab_frame, patient_frame

import lemlabs


def _one(test: str, value: str, unit: str, **extra: list[str]) -> dict[str, object]:
    results, issues = lemlabs.normalise(
        lab_frame([("P1", "2021-01-01", test, value, unit)], **extra)
    )
    assert issues.empty, issues.to_dict("records")
    return dict(results.iloc[0])


def test_result_keeps_raw_value_and_unit() -> None:
    row = _one("Creat", "1,0", "mg/dL")
    assert row["analyte"] == "creatinine"
    assert row["value"] == pytest.approx(88.40, rel=1e-3)
    assert (row["unit"], row["raw_value"], row["raw_unit"]) == ("umol/L", "1,0", "mg/dL")


@pytest.mark.parametrize(
    ("test", "loinc", "analyte"),
    [
        ("Thyrotropin", "", "tsh"),
        ("TSH 3rd gen", "", "tsh"),
        ("PLT", "", "platelets"),
        ("Platelet count", "", "platelets"),
        ("CREA", "", "creatinine"),
        ("U-Blood", "", "urine_blood"),
        ("Urine RBC", "", "urine_rbc"),
        ("something odd", "777-3", "platelets"),
        ("Creatinine", "14682-9", "creatinine"),  # name and LOINC agree
        ("3016-3", "", "tsh"),  # a LOINC code in the test column
    ],
)
def test_recognition_by_name_and_loinc(test: str, loinc: str, analyte: str) -> None:
    value, unit = {
        "creatinine": ("100", "umol/L"),
        "tsh": ("2", "mIU/L"),
        "platelets": ("200", "10^9/L"),
        "urine_rbc": ("2", "/HPF"),
        "urine_blood": ("2+", ""),
    }[analyte]
    row = _one(test, value, unit, loinc=[loinc])
    assert row["analyte"] == analyte


def test_censored_value_keeps_its_censoring() -> None:
    row = _one("TSH", "<0.01", "mIU/L")
    assert (row["value"], row["censor"]) == (0.01, "<")
    assert row["upper"] < 0.01 and row["lower"] == -np.inf


def test_ranges_tntc_and_dipsticks() -> None:
    rbc = _one("Urine RBC", "5-10", "/HPF")
    assert (rbc["value"], rbc["value_high"]) == (5.0, 10.0)
    tntc = _one("Urine RBC", "TNTC", "")
    assert (tntc["value"], tntc["censor"]) == (100.0, ">")
    blood = _one("U-Blood", "moderate", "")
    assert (blood["value"], blood["unit"]) == (2.0, "grade")
    protein = _one("Urine protein", "100", "mg/dL")
    assert protein["value"] == 2.0  # 100 mg/dL reads as 2+


def test_lab_reference_interval_converts_with_the_value() -> None:
    row = _one("Creat", "1.0", "mg/dL", ref_low=["0.5"], ref_high=["1,1"])
    assert row["ref_low"] == pytest.approx(44.2, rel=1e-3)
    assert row["ref_high"] == pytest.approx(97.24, rel=1e-3)
    assert row["ref_source"] == "lab"


@pytest.mark.parametrize(("sex", "low", "high"), [("F", 45, 90), ("M", 60, 110), ("", 45, 110)])
def test_default_creatinine_interval_is_sex_aware(sex: str, low: float, high: float) -> None:
    labs = lab_frame([("P1", "2021-01-01", "Creat", "80", "umol/L")])
    results, _ = lemlabs.normalise(labs, patient_frame(("P1", sex, "")))
    assert (results.loc[0, "ref_low"], results.loc[0, "ref_high"]) == (low, high)
    assert results.loc[0, "ref_source"] == "default"


def test_unscored_analytes_are_kept_not_rejected() -> None:
    results, issues = lemlabs.normalise(
        lab_frame([("P1", "2021-01-01", "Sodium", "140", "mmol/L")])
    )
    assert issues.empty
    assert results.loc[0, "status"] == "not_scored"


@pytest.mark.parametrize(
    ("test", "value", "unit", "field", "reason"),
    [
        ("PLT", "100", "mg/dL", "unit", "wrong dimension"),
        ("PLT", "100", "", "unit", "empty"),
        ("Creat", "80", "blorbs/L", "unit", "unknown unit"),
        ("TSH", "2100", "mIU/L", "value", "implausible"),
        ("PLT", "50000", "10^9/L", "value", "implausible"),
        ("PLT", "-5", "10^9/L", "value", "implausible"),
        ("PLT", "1,200", "10^9/L", "value", "ambiguous"),
        ("PLT", "trace", "10^9/L", "value", "expected a number"),
        ("U-Blood", "4+", "", "value", "above the dipstick scale"),
        ("U-Blood", "12", "", "value", "expected a dipstick grade"),
        ("Urine RBC", "2+", "/HPF", "value", "expected a count"),
    ],
)
def test_bad_rows_become_issues_naming_row_and_reason(
    test: str, value: str, unit: str, field: str, reason: str
) -> None:
    labs = lab_frame(
        [("P1", "2021-01-01", "PLT", "200", "10^9/L"), ("P1", "2021-01-02", test, value, unit)]
    )
    results, issues = lemlabs.normalise(labs)
    assert len(results) == 1 and len(issues) == 1
    issue = issues.iloc[0]
    assert (issue["row"], issue["field"], issue["patient_id"]) == (1, field, "P1")
    assert reason in issue["reason"]


def test_row_accounting_on_the_example_cohort() -> None:
    from lemlabs import examples

    report = lemlabs.score_frame(examples.path("labs"), examples.path("patients"))
    s = report.summary
    assert s["rows_in"] == len(lemlabs.read_labs(examples.path("labs")))
    assert s["rows_in"] == s["rows_normalised"] + s["rows_rejected"]
    rows = set(report.results["row"]) | set(
        report.issues.loc[report.issues["source"] == "labs", "row"]
    )
    assert rows == set(range(s["rows_in"]))


def test_a_decimal_comma_after_a_lone_zero_converts() -> None:
    row = _one("Creatinine", "0,125", "mmol/L")  # 125 µmol/L, not a data issue
    assert row["value"] == pytest.approx(125.0)


def test_an_issue_names_its_line_in_the_file(tmp_path: Path) -> None:
    """``line`` is 1-based with the header counted: the line a text editor shows."""
    path = tmp_path / "labs.csv"
    path.write_text(
        "patient_id,collected_at,test,value,unit\n"
        "P1,2021-01-01,PLT,200,10^9/L\n"
        "P1,2021-01-02,PLT,1,200,10^9/L\n".replace("1,200,10^9", '"1,200",10^9'),
        "utf-8",
    )
    report = lemlabs.score_frame(path)
    issue = report.issues.iloc[0]
    assert (issue["row"], issue["line"]) == (1, 3)
    assert path.read_text("utf-8").splitlines()[issue["line"] - 1].startswith("P1,2021-01-02")
    assert report.data_issues()[0].line == 3
