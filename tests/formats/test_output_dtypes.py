"""The output tables have the same dtypes on every supported pandas (2.2 and 3.x): compared with
a stored expectation, tests/data/output_dtypes.json. Regenerate it with
LEMLABS_UPDATE_SNAPSHOTS=1 only after a deliberate change of the output contract."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import lemlabs
from lemlabs import examples

EXPECTED = Path(__file__).parents[1] / "data" / "output_dtypes.json"
PATIENTS = ["LEM-0001", "LEM-0013", "LEM-0021", "LEM-0027", "LEM-0033", "LEM-0150"]
AS_OF = "2021-06-01"


def dtypes(frame: pd.DataFrame) -> dict[str, str]:
    described = {}
    for column, dtype in frame.dtypes.items():
        text = str(dtype)
        if isinstance(dtype, pd.CategoricalDtype):
            text += f"[{dtype.categories.dtype}, ordered={dtype.ordered}]"
        described[str(column)] = text
    return described


def types(value: Any) -> Any:
    if isinstance(value, dict):
        return {"dict": {str(key): types(item) for key, item in sorted(value.items())}}
    return type(value).__name__


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A few patients of the example cohort as CSV files, with a lab and a patient issue."""
    folder = tmp_path_factory.mktemp("dtypes")
    labs = pd.read_csv(examples.path("labs"), dtype=str, keep_default_na=False)
    labs = labs[labs["patient_id"].isin(PATIENTS)]
    spoiled = labs.iloc[[0]].assign(value="1,200")  # an ambiguous value: a data issue
    unmonitored = labs.iloc[[0]].assign(test="Sodium", value="140", unit="mmol/L", loinc="")
    people = pd.read_csv(examples.path("patients"), dtype=str, keep_default_na=False)
    people = people[people["patient_id"].isin(PATIENTS)].reset_index(drop=True)
    people.loc[people["patient_id"] == "LEM-0150", "course_dates"] = "2019-13-45"  # an issue
    lab_path, patient_path = folder / "labs.csv", folder / "patients.csv"
    pd.concat([labs, spoiled, unmonitored]).to_csv(lab_path, index=False)
    people.to_csv(patient_path, index=False)
    return lab_path, patient_path


def observed(lab_path: Path, patient_path: Path) -> dict[str, Any]:
    labs, patients = lemlabs.read_labs(lab_path), lemlabs.read_patients(patient_path)
    report = lemlabs.score_frame(labs, patients, as_of=AS_OF)
    assert not report.findings.empty and not report.issues.empty
    assert set(report.issues["source"]) == {"labs", "patients"}
    empty = lemlabs.score_frame(labs[labs["patient_id"] == "LEM-0150"].head(3))
    assert empty.findings.empty and empty.issues.empty
    return {
        "read_labs": dtypes(labs),
        "read_patients": dtypes(patients),
        "report.findings": dtypes(report.findings),
        "report.findings (empty)": dtypes(empty.findings),
        "report.issues": dtypes(report.issues),
        "report.issues (empty)": dtypes(empty.issues),
        "report.results": dtypes(report.results),
        "report.patients": dtypes(report.patients) if report.patients is not None else None,
        "report.summary": types(report.summary),
        "schedule": dtypes(lemlabs.schedule(labs, patients, as_of=AS_OF)),
    }


def test_output_dtypes_match_the_stored_expectation(
    inputs: tuple[Path, Path],
) -> None:
    found = observed(*inputs)
    if os.environ.get("LEMLABS_UPDATE_SNAPSHOTS"):
        EXPECTED.write_text(json.dumps(found, indent=1) + "\n", "utf-8")
    expected = json.loads(EXPECTED.read_text("utf-8"))
    for table in expected:
        assert found[table] == expected[table], f"{table} (pandas {pd.__version__})"
    assert found.keys() == expected.keys()


def test_empty_and_full_tables_share_their_dtypes(
    inputs: tuple[Path, Path],
) -> None:
    found = observed(*inputs)
    assert found["report.findings (empty)"] == found["report.findings"]
    assert found["report.issues (empty)"] == found["report.issues"]
