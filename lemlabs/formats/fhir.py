"""FHIR R4 in and out (extra ``fhir``: the fhir.resources models, R4B, which R4 resources fit).

In: ``read_observations`` turns Observations (a Bundle, a list of resources, NDJSON lines or a
``.json``/``.ndjson`` file) into the public lab table, one row per resource: a resource lemlabs
cannot use (not a lab Observation, entered-in-error or cancelled, no value) keeps a row whose
``problem`` says why, so that it becomes a data issue naming its ``source_id`` — nothing is
skipped silently. ``read_patients`` reads Patient resources and alemtuzumab administrations.

Out: ``detected_issue(finding)`` (a DetectedIssue), ``cds_card(finding)`` (a CDS Hooks card) and
``findings_bundle(findings)`` (a collection Bundle); also as ``Finding.to_fhir()`` and
``Finding.to_cds_card()``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from lemlabs.errors import LabInputError
from lemlabs.packs import Packs, builtin_packs, load_thresholds
from lemlabs.packs.thresholds import Thresholds
from lemlabs.stages.ingest import FIRST_YEAR, LAB_OPTIONAL, LAST_YEAR, parse_date
from lemlabs.stages.ingest import LAB_COLUMNS as INGEST_REQUIRED
from lemlabs.vocabulary import format_value

if TYPE_CHECKING:  # lemlabs.models calls into this module: no import back at run time
    from lemlabs.models import Evidence, Finding

try:
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.detectedissue import DetectedIssue
    from fhir.resources.R4B.medicationadministration import MedicationAdministration
    from fhir.resources.R4B.medicationstatement import MedicationStatement
    from fhir.resources.R4B.observation import Observation
    from fhir.resources.R4B.patient import Patient
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "lemlabs.formats.fhir needs fhir.resources: pip install 'lemlabs[fhir]'"
    ) from error

LOINC = "http://loinc.org"
ATC = "http://www.whocc.no/atc"
LEMLABS_CODES = "urn:lemlabs:finding-code"
LEMLABS_RULES = "urn:lemlabs:rule"
LEMLABS_ANALYTES = "urn:lemlabs:analyte"
LEMLABS_DAYS_FROM_COURSE = "urn:lemlabs:days-from-course"
UCUM = "http://unitsofmeasure.org"
SEVERITY = {
    "urgent": "high",
    "action": "moderate",
    "watch": "low",
    "info": "low",
}
INDICATOR = {
    "urgent": "critical",
    "action": "warning",
    "watch": "info",
    "info": "info",
}
LAB_COLUMNS = [*INGEST_REQUIRED, *LAB_OPTIONAL]  # every column a reader may fill

FhirSource = Mapping[str, Any] | Sequence[Mapping[str, Any]] | str | os.PathLike[str]


def _is_json_text(source: str) -> bool:
    """JSON text rather than a file name: it begins with ``{`` or ``[`` and names no file (a
    file may well be called ``[2021] export.json``)."""
    if not source.lstrip().startswith(("{", "[")):
        return False
    try:
        return len(source) > 4096 or "\n" in source or not os.path.isfile(source)
    except (OSError, ValueError):
        return True


def _parse_json(text: str, name: str, where: str = "") -> Any:
    try:
        return json.loads(text)
    except RecursionError as error:
        raise LabInputError(f"{name}: {where}JSON nested too deeply") from error


def load_resources(source: FhirSource) -> list[Any]:
    """Resources from a Bundle, a list, JSON or NDJSON text, or a ``.json``/``.ndjson`` file.

    An item that is not a JSON object is kept (a reader turns it into a row with a ``problem``);
    input that holds no resource at all (``42``, ``null``, a Bundle whose ``entry`` is not a
    list) raises :class:`~lemlabs.errors.LabInputError`.
    """
    if isinstance(source, os.PathLike) or (isinstance(source, str) and not _is_json_text(source)):
        path = Path(source)
        if not path.is_file():
            raise LabInputError(f"{path}: no such file")
        name = str(path)
        try:
            text = path.read_text("utf-8-sig")
        except UnicodeDecodeError as error:
            raise LabInputError(
                f"{name}: not UTF-8 text (byte {error.object[error.start]:#04x} at offset"
                f" {error.start}); FHIR JSON is UTF-8"
            ) from error
    elif isinstance(source, str):
        text, name = source, "FHIR input"
    else:
        return _unpack(source, "FHIR input")
    try:
        return _unpack(_parse_json(text, name), name)
    except json.JSONDecodeError as whole:
        if whole.msg != "Extra data":
            raise LabInputError(
                f"{name}: not valid JSON ({whole.msg}, line {whole.lineno})"
            ) from whole
    # lines end in "\n" (or "\r\n"); not splitlines(), which also splits at "\x85" or "\u2028"
    lines = [line for line in text.split("\n") if line.strip()]
    resources = []
    for number, line in enumerate(lines, start=1):
        try:
            resources.append(_parse_json(line, name, f"line {number}: "))
        except json.JSONDecodeError as error:
            raise LabInputError(f"{name}: line {number} is not valid JSON ({error.msg})") from error
    return resources


def _unpack(data: Any, name: str) -> list[Any]:
    if isinstance(data, Mapping) and data.get("resourceType") == "Bundle":
        entries = data.get("entry") or []
        if not isinstance(entries, list):
            raise LabInputError(f"{name}: Bundle.entry is not a list")
        return [
            entry.get("resource") or {} if isinstance(entry, Mapping) else entry
            for entry in entries
        ]
    if isinstance(data, Mapping):
        return [data]
    if isinstance(data, list):
        return list(data)
    raise LabInputError(
        f"{name}: not a FHIR resource, Bundle or list of resources (a JSON {_json_type(data)})"
    )


def _as_resource(item: Any) -> dict[str, Any] | None:
    """A resource as a dict, or ``None`` for an item that is not a JSON object."""
    return dict(item) if isinstance(item, Mapping) else None


def _text(concept: Any) -> str:
    if concept is None:
        return ""
    if concept.text:
        return str(concept.text)
    for coding in concept.coding or []:
        if coding.display or coding.code:
            return str(coding.display or coding.code)
    return ""


def _loinc(concept: Any) -> str:
    for coding in (concept.coding or []) if concept is not None else []:
        if coding.system == LOINC and coding.code:
            return str(coding.code)
    return ""


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value or "")


def _reference_id(reference: Any) -> str:
    """The id a reference names: ``Patient/P1``, ``Patient/P1/_history/3`` and
    ``https://host/fhir/Patient/P1`` all name ``P1`` (a version is not an id)."""
    text = str(reference.reference or "") if reference is not None else ""
    text = text.split("/_history/", 1)[0].rstrip("/")
    return text.rsplit("/", 1)[-1] if text else ""


def _number(value: Any) -> str:
    return "" if value is None else format(value, "f") if hasattr(value, "as_tuple") else str(value)


def _reference_range(row: dict[str, str], interval: Any) -> None:
    """The lab's range into ``row``; its unit, when the range names one other than the value's,
    into ``ref_unit`` (normalising converts it with pint, or notes why it cannot)."""
    bounds = [bound for bound in (interval.low, interval.high) if bound is not None]
    units = {str(bound.code or bound.unit) for bound in bounds if bound.code or bound.unit}
    if len(units) > 1:
        row["ref_note"] = (
            f"the lab's reference range has bounds in different units ({', '.join(sorted(units))}):"
            " the default interval applies"
        )
        return
    row["ref_low"] = _number(interval.low.value) if interval.low else ""
    row["ref_high"] = _number(interval.high.value) if interval.high else ""
    unit = units.pop() if units else ""
    if unit and unit != row["unit"]:
        row["ref_unit"] = unit


def _observation_row(item: Any) -> dict[str, str]:
    resource = _as_resource(item)
    if resource is None:
        row = dict.fromkeys(LAB_COLUMNS, "")
        row["source_id"] = "resource/"
        row["problem"] = f"not a FHIR resource (a JSON {_json_type(item)})"
        return row
    kind = str(resource.get("resourceType", ""))
    source_id = f"{kind or 'resource'}/{resource.get('id', '')}"
    row = dict.fromkeys(LAB_COLUMNS, "")
    row["source_id"] = source_id
    if kind != "Observation":
        row["problem"] = f"not a lab Observation: {source_id}"
        return row
    try:
        observation = Observation.model_validate(resource)
    except Exception as error:  # the model library's validation error, any shape
        row["problem"] = f"not a valid FHIR Observation ({_first_line(error)})"
        return row
    categories = [c.code for concept in observation.category or [] for c in concept.coding or []]
    row["patient_id"] = _reference_id(observation.subject)
    row["test"] = _text(observation.code) or _loinc(observation.code)
    row["loinc"] = _loinc(observation.code)
    effective = observation.effectiveDateTime or (
        observation.effectivePeriod.start if observation.effectivePeriod else None
    )
    row["collected_at"] = _iso(effective)
    quantity = observation.valueQuantity
    if quantity is not None:
        comparator = str(quantity.comparator or "")  # "<", "<=", ">=", ">"
        row["value"] = comparator + _number(quantity.value) if quantity.value is not None else ""
        row["unit"] = str(quantity.code or quantity.unit or "")
    else:
        row["value"] = str(observation.valueString or "") or _text(observation.valueCodeableConcept)
    for interval in (observation.referenceRange or [])[:1]:
        _reference_range(row, interval)
    if observation.specimen is not None:
        row["specimen"] = str(observation.specimen.display or "")
    if observation.status in ("entered-in-error", "cancelled"):
        row["problem"] = f"Observation status is {observation.status}"
    elif categories and "laboratory" not in categories:
        row["problem"] = (
            f"not a laboratory Observation (category {', '.join(map(str, categories))})"
        )
    elif not row["value"]:
        row["problem"] = (
            "Observation has no value (valueQuantity, valueString or valueCodeableConcept)"
        )
    return row


def _first_line(error: BaseException) -> str:
    """The gist of a validation error on one line (pydantic's first three lines: the count,
    the field, the reason)."""
    lines = [line.strip() for line in str(error).splitlines()[:3] if line.strip()]
    text = "; ".join(lines) or type(error).__name__
    return text if len(text) <= 300 else text[:300] + "…"


def _json_type(value: Any) -> str:
    names = {bool: "boolean", int: "number", float: "number", str: "string", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _validated(model: Any, resource: Mapping[str, Any]) -> Any:
    """``model.model_validate(resource)``, a resource that is not valid raising
    :class:`~lemlabs.errors.LabInputError` naming it."""
    try:
        return model.model_validate(resource)
    except RecursionError as error:
        raise LabInputError(f"{resource.get('resourceType')}: nested too deeply") from error
    except Exception as error:  # the model library's validation error, any shape
        name = f"{resource.get('resourceType')}/{resource.get('id', '')}"
        raise LabInputError(f"{name}: not a valid FHIR resource ({_first_line(error)})") from error


def read_observations(source: FhirSource) -> pd.DataFrame:
    """The public lab table from FHIR Observations, one row per resource (see the module doc).

    ``source_id`` (``Observation/<id>``) travels into each finding's evidence.
    """
    rows = [_observation_row(resource) for resource in load_resources(source)]
    return pd.DataFrame(rows, columns=LAB_COLUMNS)


def _is_alemtuzumab(concept: Any) -> bool:
    if concept is None:
        return False
    words = " ".join(
        [str(concept.text or "")] + [str(c.display or "") for c in concept.coding or []]
    )
    atc = {str(c.code) for c in concept.coding or [] if c.system == ATC}
    treatment = builtin_packs().treatment  # rules/treatment.toml: names and ATC codes
    return bool(atc & set(treatment["atc"])) or any(
        name in words.lower() for name in treatment["names"]
    )


def _administrations(resources: Iterable[Any]) -> list[tuple[str, pd.Timestamp]]:
    days = []
    for item in resources:
        resource = _as_resource(item)
        if resource is None:
            continue
        model: Any
        if resource.get("resourceType") == "MedicationAdministration":
            model = _validated(MedicationAdministration, resource)
        elif resource.get("resourceType") == "MedicationStatement":
            model = _validated(MedicationStatement, resource)
        else:
            continue
        if model.status in ("entered-in-error", "not-done") or not _is_alemtuzumab(
            model.medicationCodeableConcept
        ):
            continue
        effective = model.effectiveDateTime or (
            model.effectivePeriod.start if model.effectivePeriod else None
        )
        if effective is not None:
            day = parse_date(_iso(effective)[:10])
            if day is None:
                raise LabInputError(
                    f"{resource.get('resourceType')}/{resource.get('id', '')}: administration "
                    f"date {_iso(effective)!r} is outside the years {FIRST_YEAR}–{LAST_YEAR}"
                )
            days.append((_reference_id(model.subject), day))
    return days


def read_patients(source: FhirSource, thresholds: Thresholds | None = None) -> pd.DataFrame:
    """The patients table from Patient resources (gender, birthDate) and alemtuzumab
    MedicationAdministration/MedicationStatement resources: infusion days less than
    ``fhir.course_gap_days`` (30) apart form one course, whose first day becomes a course date."""
    gap = (thresholds or load_thresholds())["fhir.course_gap_days"]
    resources = load_resources(source)
    people: dict[str, dict[str, str]] = {}
    for item in resources:
        resource = _as_resource(item)
        if resource is not None and resource.get("resourceType") == "Patient":
            patient = _validated(Patient, resource)
            people[str(patient.id)] = {
                "patient_id": str(patient.id),
                "sex": {"female": "F", "male": "M"}.get(str(patient.gender), ""),
                "birth_date": _iso(patient.birthDate),
                "course_dates": "",
            }
    by_patient: dict[str, list[pd.Timestamp]] = {}
    for patient_id, day in _administrations(resources):
        by_patient.setdefault(patient_id, []).append(day)
    for patient_id, days in by_patient.items():
        starts, previous = [], None
        for day in sorted(set(days)):
            if previous is None or (day - previous).days >= gap:
                starts.append(day)
            previous = day
        entry = people.setdefault(
            patient_id, {"patient_id": patient_id, "sex": "", "birth_date": ""}
        )
        entry["course_dates"] = ";".join(day.date().isoformat() for day in starts)
    return pd.DataFrame(
        list(people.values()), columns=["patient_id", "sex", "birth_date", "course_dates"]
    )


def _contained_observation(
    finding: Finding, number: int, evidence: Evidence, packs: Packs
) -> dict[str, Any]:
    """A result without a FHIR source as a contained Observation, so that its value travels."""
    entry = packs.catalogue.get(evidence.analyte)
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"result{number}",
        "status": "final",
        "code": {
            "coding": [{"system": LEMLABS_ANALYTES, "code": evidence.analyte}],
            "text": entry.label if entry else evidence.analyte,
        },
        "subject": {"reference": f"Patient/{finding.patient_id}"},
        # FHIR needs a time zone with a time; lemlabs keeps local wall time, so the date is
        # given and the time of day goes into a note
        "effectiveDateTime": evidence.collected_at.date().isoformat(),
    }
    notes = []
    if evidence.collected_at.time() != dt.time(0):
        notes.append(f"collected at {evidence.collected_at.time().isoformat()} local time")
    if evidence.unit == "grade" or (entry is not None and entry.ucum is None):
        observation["valueString"] = format_value(evidence.value, evidence.unit)
    else:
        quantity: dict[str, Any] = {"value": evidence.value, "unit": evidence.unit}
        if entry is not None and entry.ucum:
            quantity |= {"system": UCUM, "code": entry.ucum}
        if evidence.censor:
            quantity["comparator"] = evidence.censor
        observation["valueQuantity"] = quantity
    if evidence.value_high is not None:
        notes.append(f"reported as a range: {evidence.raw_value}")
    if notes:
        observation["note"] = [{"text": text} for text in notes]
    return observation


def detected_issue(finding: Finding, packs: Packs | None = None) -> DetectedIssue:
    """A finding as a FHIR DetectedIssue, validated by the model library; titles and labels from
    ``packs`` (the built-in ones unless given: a site pack's finding needs its packs).

    Each result behind it is ``implicated`` and listed as ``evidence``: by reference when it came
    from a FHIR Observation, else as a contained Observation carrying the value. The period
    runs from onset to the latest evidence; time to onset is an extension.
    """
    packs = packs or builtin_packs()
    references, contained = [], []
    for number, item in enumerate(finding.evidence, start=1):
        if item.source_id:
            references.append({"reference": item.source_id})
        else:
            contained.append(_contained_observation(finding, number, item, packs))
            references.append({"reference": f"#result{number}"})
    onset = finding.onset
    resource: dict[str, Any] = {
        "resourceType": "DetectedIssue",
        "id": str(
            uuid.uuid5(
                uuid.NAMESPACE_URL,
                f"lemlabs:{finding.patient_id}:{finding.code}:"
                f"{finding.episode_start}:{finding.date}",
            )
        ),
        "identifier": [
            {"system": LEMLABS_RULES, "value": f"{finding.rule_id}@{finding.rules_version}"}
        ],
        "status": "final",
        "code": {
            "coding": [{"system": LEMLABS_CODES, "code": finding.code}],
            "text": packs.titles.get(finding.code, finding.code),
        },
        "severity": SEVERITY[str(finding.severity)],
        "patient": {"reference": f"Patient/{finding.patient_id}"},
        "identifiedPeriod": {"start": onset.isoformat(), "end": finding.date.isoformat()},
        "detail": finding.message,
        "mitigation": [{"action": {"text": finding.action}}],
    }
    if finding.days_from_course is not None:
        resource["extension"] = [
            {"url": LEMLABS_DAYS_FROM_COURSE, "valueInteger": finding.days_from_course}
        ]
    if contained:
        resource["contained"] = contained
    if references:
        resource["implicated"] = references
        resource["evidence"] = [{"detail": references}]
    return DetectedIssue.model_validate(resource)


def cds_card(finding: Finding, packs: Packs | None = None) -> dict[str, Any]:
    """A finding as a CDS Hooks card: the summary (under 140 characters) opens with what was
    found in words (its title in ``packs``, the built-in ones unless given), then the severity
    and the onset; the detail holds the whole message."""
    titles = (packs or builtin_packs()).titles
    onset = finding.onset
    since = (
        f", day {finding.days_from_course} after a course"
        if finding.days_from_course is not None
        else ""
    )
    summary = f"{titles.get(finding.code, finding.code)} ({finding.severity}; since {onset}{since})"
    if len(summary) > 140:
        summary = summary[:139].rstrip() + "…"
    return {
        "uuid": str(
            uuid.uuid5(
                uuid.NAMESPACE_URL,
                f"lemlabs-card:{finding.patient_id}:{finding.code}:{finding.date}",
            )
        ),
        "summary": summary,
        "detail": f"{finding.message}\n\n**Suggested next step:** {finding.action}\n\n"
        f"Finding code {finding.code}; onset {onset}, latest evidence {finding.date}. "
        f"Source: {finding.source}. Rule {finding.rule_id}, rules version {finding.rules_version}.",
        "indicator": INDICATOR[str(finding.severity)],
        "source": {"label": f"lemlabs rule {finding.rule_id}: {finding.source.split('; ')[0]}"},
    }


def findings_bundle(findings: Iterable[Finding], packs: Packs | None = None) -> Bundle:
    """A collection Bundle of DetectedIssues (titles from ``packs``, as :func:`detected_issue`)."""
    entries = [
        {"resource": detected_issue(f, packs).model_dump(mode="json", exclude_none=True)}
        for f in findings
    ]
    return Bundle.model_validate({"resourceType": "Bundle", "type": "collection", "entry": entries})
