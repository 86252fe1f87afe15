"""FHIR R4 in (Observations, Patients, alemtuzumab administrations) and out (DetectedIssue,
Bundle, CDS Hooks cards)."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.detectedissue import DetectedIssue
from hypothesis import given, settings
from rules_helpers import essence, labs, patients

import lemlabs
from lemlabs import examples
from lemlabs import strategies as ls
from lemlabs.formats import fhir
from lemlabs.packs import builtin_packs
from lemlabs.stages.values import parse_value


def observation(index: int, row: dict[str, str]) -> dict[str, Any]:
    """A lab CSV row as a FHIR Observation, the way a FHIR server would hold it."""
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"obs{index}",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
    }
    book = builtin_packs().catalogue
    analyte = book.recognise(row["test"], row.get("loinc") or None)
    coding = [{"system": fhir.LOINC, "code": book[analyte].loinc[0]}] if analyte else []
    resource["code"] = {"coding": coding, "text": row["test"]}
    if row["patient_id"]:
        resource["subject"] = {"reference": f"Patient/{row['patient_id']}"}
    if re.match(r"^\d{4}-\d{2}-\d{2}$", row["collected_at"]):
        resource["effectiveDateTime"] = row["collected_at"]
    elif re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$", row["collected_at"]):
        resource["effectiveDateTime"] = row["collected_at"] + "+01:00"  # FHIR times need a zone
    parsed = parse_value(row["value"])
    if parsed.shape == "number" and row["unit"] and analyte:
        quantity: dict[str, Any] = {
            "value": parsed.value,
            "unit": row["unit"],
            "code": row["unit"],
            "system": "http://unitsofmeasure.org",
        }
        if parsed.censor:
            quantity["comparator"] = parsed.censor
        resource["valueQuantity"] = quantity
    elif row["value"]:
        resource["valueString"] = row["value"]
    limits = {
        key: {"value": float(text.replace(",", ".")), "unit": row["unit"], "code": row["unit"],
              "system": "http://unitsofmeasure.org"}
        for key in ("low", "high")
        if (text := str(row.get(f"ref_{key}") or ""))
    }  # fmt: skip
    if limits and row["unit"]:
        resource["referenceRange"] = [limits]  # the lab's own interval, as the CSV row has it
    return resource


def bundle(
    frame: pd.DataFrame, people: pd.DataFrame | None = None, observations: bool = True
) -> dict[str, Any]:
    rows = frame.fillna("").to_dict("records") if observations else []
    entries = [{"resource": observation(i, r)} for i, r in enumerate(rows)]
    for person in [] if people is None else people.to_dict("records"):
        entries.append(
            {
                "resource": {
                    "resourceType": "Patient",
                    "id": person["patient_id"],
                    "gender": {"F": "female", "M": "male"}.get(person["sex"], "unknown"),
                }
            }
        )
        for number, start in enumerate(d for d in person["course_dates"].split(";") if d):
            for offset in range(5 if number == 0 else 3):
                day = (dt.date.fromisoformat(start) + dt.timedelta(days=offset)).isoformat()
                entries.append(
                    {
                        "resource": {
                            "resourceType": "MedicationAdministration",
                            "id": f"ma-{person['patient_id']}-{day}",
                            "status": "completed",
                            "subject": {"reference": f"Patient/{person['patient_id']}"},
                            "medicationCodeableConcept": {
                                "coding": [
                                    {
                                        "system": fhir.ATC,
                                        "code": "L04AG06",
                                        "display": "alemtuzumab",
                                    }
                                ]
                            },
                            "effectiveDateTime": day,
                        }
                    }
                )
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


@pytest.mark.slow
def test_the_example_cohort_through_fhir_gives_the_csv_findings() -> None:
    frame = lemlabs.read_labs(examples.path("labs"))
    people = pd.read_csv(examples.path("patients"), dtype=str, keep_default_na=False)
    resources = bundle(
        frame[
            [
                "patient_id",
                "collected_at_raw",
                "test",
                "value",
                "unit",
                "loinc",
                "ref_low",
                "ref_high",
            ]
        ].rename(columns={"collected_at_raw": "collected_at"})
    )
    from_csv = lemlabs.score_frame(examples.path("labs"), examples.path("patients"))
    from_fhir = lemlabs.score_frame(
        fhir.read_observations(resources),
        fhir.read_patients(bundle(frame, people, observations=False)),
    )
    assert essence(from_fhir.finding_list) == essence(from_csv.finding_list)
    assert from_fhir.summary["rows_in"] == from_csv.summary["rows_in"]
    assert from_fhir.summary["rows_rejected"] == from_csv.summary["rows_rejected"]
    evidence = from_fhir.finding_list[0].evidence[0]
    assert evidence.source_id and evidence.source_id.startswith("Observation/obs")


@settings(max_examples=15)
@given(ls.cohorts(size=(1, 3), months=(3, 12)))
def test_round_trip_on_generated_cohorts(cohort: ls.Cohort) -> None:
    from_csv = lemlabs.score_frame(cohort.labs, cohort.patients)
    from_fhir = lemlabs.score_frame(
        fhir.read_observations(bundle(cohort.labs)),
        fhir.read_patients(bundle(cohort.labs, cohort.patients, observations=False)),
    )
    assert essence(from_fhir.finding_list) == essence(from_csv.finding_list)


def test_unusable_resources_are_data_issues_naming_the_resource() -> None:
    good = observation(
        1,
        {
            "patient_id": "P1",
            "collected_at": "2021-01-01",
            "test": "PLT",
            "value": "40",
            "unit": "10*9/L",
        },
    )
    no_value = {**good, "id": "novalue"}
    del no_value["valueQuantity"]
    wrong = {**good, "id": "err", "status": "entered-in-error"}
    vitals = {**good, "id": "vital", "category": [{"coding": [{"code": "vital-signs"}]}]}
    unknown_unit = {**good, "id": "ucum", "valueQuantity": {"value": 40, "code": "furlong/[ft_i]"}}
    resources = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"resource": good},
            {"resource": no_value},
            {"resource": wrong},
            {"resource": vitals},
            {"resource": unknown_unit},
            {"resource": {"resourceType": "Patient", "id": "P1"}},
        ],
    }
    report = lemlabs.score_frame(fhir.read_observations(resources))
    issues = report.issues.set_index("raw_value")["reason"].to_dict()
    assert report.summary["rows_in"] == 6 and report.summary["rows_rejected"] == 5
    assert "no value" in issues["Observation/novalue"]
    assert "entered-in-error" in issues["Observation/err"]
    assert "not a laboratory Observation" in issues["Observation/vital"]
    assert "not a lab Observation" in issues["Patient/P1"]
    assert any("furlong" in reason for reason in report.issues["reason"])
    (finding,) = report.finding_list
    assert finding.evidence[0].source_id == "Observation/obs1"


def test_ndjson_lines_and_lists_are_read() -> None:
    rows = [
        observation(
            i,
            {
                "patient_id": "P1",
                "collected_at": f"2021-0{i + 1}-01",
                "test": "TSH",
                "value": "0.01",
                "unit": "m[IU]/L",
            },
        )
        for i in range(3)
    ]
    text = "\n".join(json.dumps(r) for r in rows)
    assert len(fhir.read_observations(text)) == 3
    assert len(fhir.read_observations(rows)) == 3


def test_malformed_json_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"resourceType": "Bundle", "entry": [')
    with pytest.raises(lemlabs.LabInputError, match="not valid JSON"):
        fhir.read_observations(path)


def test_courses_are_grouped_from_infusion_days() -> None:
    people = pd.DataFrame(
        [("P1", "F", "2020-01-06;2021-01-11")], columns=["patient_id", "sex", "course_dates"]
    )
    found = fhir.read_patients(bundle(labs([]), people))
    assert found.to_dict("records") == [
        {"patient_id": "P1", "sex": "F", "birth_date": "", "course_dates": "2020-01-06;2021-01-11"}
    ]


def _findings() -> list[lemlabs.Finding]:
    rows = [
        (-5, "PLT", "250", "10^9/L"),
        (100, "PLT", "40", "10^9/L"),
        (120, "U-Blood", "2+", ""),
        (125, "Creat", "150", "umol/L"),
        (-5, "Creat", "60", "umol/L"),
    ]
    frame = labs(rows)
    report = lemlabs.score_frame(fhir.read_observations(bundle(frame)), patients())
    return list(report.finding_list)


def test_detected_issues_validate_and_reference_their_observations() -> None:
    for finding in _findings():
        issue = finding.to_fhir()
        assert isinstance(issue, DetectedIssue)
        data = json.loads(issue.model_dump_json(exclude_none=True))
        DetectedIssue.model_validate(data)
        assert (
            data["status"] == "final"
            and data["patient"]["reference"] == f"Patient/{finding.patient_id}"
        )
        assert (
            data["severity"]
            == {"urgent": "high", "action": "moderate", "watch": "low"}[str(finding.severity)]
        )
        assert data["code"]["coding"][0]["code"] == finding.code
        assert (
            data["detail"] == finding.message
            and data["mitigation"][0]["action"]["text"] == finding.action
        )
        assert all(ref["reference"].startswith("Observation/") for ref in data["implicated"])


def test_the_bundle_of_detected_issues_validates(tmp_path: Path) -> None:
    bundle_resource = fhir.findings_bundle(_findings())
    Bundle.model_validate(json.loads(bundle_resource.model_dump_json()))
    assert bundle_resource.type == "collection" and len(bundle_resource.entry or []) == len(
        _findings()
    )


def test_cds_cards_have_the_required_fields() -> None:
    for finding in _findings():
        card = finding.to_cds_card()
        assert {"summary", "indicator", "source"} <= set(card)
        assert 0 < len(card["summary"]) <= 140
        assert card["indicator"] in {"info", "warning", "critical"}
        assert card["source"]["label"] and finding.rule_id in card["source"]["label"]
        assert finding.action in card["detail"]


def test_interpretation_flags_on_results() -> None:
    rows = [
        (1, "PLT", "40", "10^9/L"),
        (1, "PLT", "120", "10^9/L"),
        (1, "PLT", "250", "10^9/L"),
        (1, "PLT", "500", "10^9/L"),
        (1, "Creat", "400", "umol/L"),
        (1, "U-Blood", "1+", ""),
        (1, "U-Blood", "neg", ""),
    ]
    results, _ = lemlabs.normalise(labs(rows))
    assert results["interpretation"].tolist() == ["LL", "L", "N", "H", "HH", "A", "N"]


def test_the_command_line_reads_fhir_and_writes_a_bundle(tmp_path: Path) -> None:
    people = pd.DataFrame(
        [("P1", "F", "2020-01-06;2021-01-11")], columns=["patient_id", "sex", "course_dates"]
    )
    source = tmp_path / "labs.json"
    source.write_text(json.dumps(bundle(labs([(100, "PLT", "40", "10^9/L")]), people)))
    out = tmp_path / "findings.fhir.json"
    done = subprocess.run(
        [sys.executable, "-m", "lemlabs", "score", str(source), "-o", str(out), "-q"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    written = Bundle.model_validate_json(out.read_text())
    assert written.entry and written.entry[0].resource.get_resource_type() == "DetectedIssue"
    broken = tmp_path / "broken.ndjson"
    broken.write_text('{"resourceType": "Observation"}\n{oops\n')
    done = subprocess.run(
        [sys.executable, "-m", "lemlabs", "score", str(broken)], capture_output=True, text=True
    )
    assert done.returncode == 2 and "line 2" in done.stderr and "Traceback" not in done.stderr


def _tsh_with_range(value: float, quantity: dict[str, str], range_unit: dict[str, str]) -> Any:
    resource = observation(
        0,
        {
            "patient_id": "P1",
            "collected_at": "2021-03-01",
            "test": "TSH",
            "value": str(value),
            "unit": "mIU/L",
        },
    )
    resource["valueQuantity"] |= quantity
    resource["referenceRange"] = [
        {"low": {"value": 0.3, **range_unit}, "high": {"value": 5.0, **range_unit}}
    ]
    return lemlabs.score_frame(fhir.read_observations(resource))


def test_a_reference_range_in_another_spelling_of_the_unit_is_converted() -> None:
    # the value says UCUM m[IU]/L, the range says mIU/L: the same unit, so the lab's range holds
    report = _tsh_with_range(4.5, {"code": "m[IU]/L"}, {"unit": "mIU/L"})
    (result,) = report.results.to_dict("records")
    assert (result["ref_low"], result["ref_high"], result["ref_source"]) == (0.3, 5.0, "lab")
    assert report.findings.empty  # 4.5 is inside the lab's 0.3–5.0: no false watch


def test_a_reference_range_in_a_convertible_unit_is_converted() -> None:
    report = _tsh_with_range(4.5, {"code": "mIU/L"}, {"unit": "uIU/mL", "code": "u[IU]/mL"})
    (result,) = report.results.to_dict("records")
    assert (result["ref_low"], result["ref_high"]) == (0.3, 5.0)


def test_a_reference_range_that_cannot_be_converted_is_a_note_not_a_silent_fallback() -> None:
    report = _tsh_with_range(4.5, {"code": "mIU/L"}, {"unit": "mg/dL"})
    (result,) = report.results.to_dict("records")
    assert result["ref_source"] == "default" and result["ref_high"] == 4.0
    assert "mg/dL" in result["ref_note"] and "default interval" in result["ref_note"]


def test_findings_from_csv_input_carry_their_results_as_contained_observations() -> None:
    report = lemlabs.score_frame(
        labs([(-5, "Creat", "60", "umol/L"), (100, "Creat", ">400", "umol/L")]), patients()
    )
    (finding,) = report.finding_list
    data = json.loads(finding.to_fhir().model_dump_json(exclude_none=True))
    contained = {resource["id"]: resource for resource in data["contained"]}
    assert [ref["reference"] for ref in data["implicated"]] == [f"#{key}" for key in contained]
    assert data["evidence"][0]["detail"] == data["implicated"]
    quantities = [resource["valueQuantity"] for resource in contained.values()]
    assert {"value": 400.0, "comparator": ">", "code": "umol/L"}.items() <= quantities[-1].items()
    assert data["identifiedPeriod"] == {
        "start": finding.episode_start.isoformat(),  # type: ignore[union-attr]
        "end": finding.date.isoformat(),
    }
    assert data["extension"][0]["valueInteger"] == finding.days_from_course


def test_a_cds_card_opens_with_words_a_clinician_reads() -> None:
    (finding,) = findings_for([(100, "PLT", "40", "10^9/L")])
    card = finding.to_cds_card()
    assert card["summary"].startswith("Suspected immune thrombocytopenia (ITP) (urgent; since ")
    assert "itp.suspected" not in card["summary"] and "itp.suspected" in card["detail"]


def findings_for(rows: list[tuple[int, str, str, str]]) -> list[lemlabs.Finding]:
    return list(lemlabs.score_frame(labs(rows), patients()).finding_list)
