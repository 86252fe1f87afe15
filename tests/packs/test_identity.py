"""Name, code and specimen must agree (domain.md): a disagreement is never scored by guess.

Each case is written from the clinical statement, not from lemlabs' output: urine creatinine is
not serum creatinine, whatever the row's name says.
"""

from __future__ import annotations

import pandas as pd
import pytest

import lemlabs

COLUMNS = ["patient_id", "collected_at", "test", "value", "unit", "loinc", "specimen"]


def _score(*rows: tuple[str, ...]) -> lemlabs.Report:
    frame = pd.DataFrame([("P1", "2021-03-01", *row) for row in rows], columns=COLUMNS)
    return lemlabs.score_frame(frame)


@pytest.mark.parametrize(
    ("value", "unit", "loinc"),
    [
        ("30", "mg/dL", "2161-8"),  # Creatinine [Mass/volume] in Urine
        ("3.2", "mmol/L", "14683-7"),  # Creatinine [Moles/volume] in Urine
        ("1.4", "g/(24.h)", "2162-6"),  # Creatinine [Mass/time] in 24 hour Urine
    ],
)
def test_urine_creatinine_named_creatinine_is_not_scored(value: str, unit: str, loinc: str) -> None:
    report = _score(("Creatinine", value, unit, loinc, ""))
    assert report.findings.empty and report.issues.empty
    (row,) = report.results.to_dict("records")
    assert row["status"] == "not_scored" and row["analyte"] == ""
    assert loinc in row["status_reason"] and "Urine" in row["status_reason"]
    assert report.summary["not_scored_by_test"]["Creatinine"]["rows"] == 1


def test_an_unknown_loinc_is_not_scored_by_its_name() -> None:
    report = _score(("Platelets", "40", "10^9/L", "99999-9", ""))
    assert report.findings.empty
    assert report.results.loc[0, "status"] == "not_scored"
    assert "99999-9" in report.results.loc[0, "status_reason"]


def test_a_loinc_of_one_analyte_with_the_name_of_another_is_a_data_issue() -> None:
    report = _score(("Platelets", "400", "umol/L", "2160-0", ""))  # 2160-0: serum creatinine
    assert report.findings.empty and report.results.empty
    (issue,) = report.issues.to_dict("records")
    assert issue["row"] == 0 and issue["field"] == "loinc"
    assert "test name and LOINC disagree" in issue["reason"]
    assert report.summary["rows_in"] == report.summary["rows_rejected"] == 1


@pytest.mark.parametrize("specimen", ["URINE", "urine", "Random urine", "Urine specimen"])
def test_creatinine_in_a_urine_specimen_is_not_serum_creatinine(specimen: str) -> None:
    report = _score(("Creatinine", "9000", "umol/L", "", specimen))
    assert report.findings.empty
    assert report.results.loc[0, "status"] == "not_scored"
    assert "urine" in report.results.loc[0, "status_reason"]


def test_an_unknown_specimen_is_not_scored() -> None:
    report = _score(("Platelets", "20", "10^9/L", "", "CSF"))
    assert report.findings.empty
    assert "CSF" in report.results.loc[0, "status_reason"]


@pytest.mark.parametrize(
    ("test", "loinc", "specimen", "code"),
    [
        ("Creatinine", "2160-0", "SERUM", "anti_gbm.creatinine_rise"),
        ("Creatinine", "", "Ser/Plas", "anti_gbm.creatinine_rise"),
        ("Creatinine", "n/a", "", "anti_gbm.creatinine_rise"),  # an empty code, spelt out
        ("Platelets", "777-3", "BLOOD", "itp.suspected"),
        ("Urine RBC", "13945-1", "URINE", "anti_gbm.haematuria"),
    ],
)
def test_agreeing_name_code_and_specimen_are_scored(
    test: str, loinc: str, specimen: str, code: str
) -> None:
    value, unit = {"Creatinine": ("400", "umol/L"), "Platelets": ("40", "10^9/L")}.get(
        test, ("10", "/HPF")
    )
    report = _score((test, value, unit, loinc, specimen))
    assert report.results.loc[0, "status"] == "scored"
    assert code in set(report.findings["code"])


def test_every_unscored_test_is_counted_by_name() -> None:
    report = _score(
        ("Sodium", "140", "mmol/L", "", ""),
        ("Sodium", "141", "mmol/L", "", ""),
        ("Creatinine", "30", "mg/dL", "2161-8", ""),
    )
    counted = report.summary["not_scored_by_test"]
    assert {name: entry["rows"] for name, entry in counted.items()} == {
        "Sodium": 2,
        "Creatinine": 1,
    }
    assert sum(entry["rows"] for entry in counted.values()) == report.summary["rows_not_scored"]
