"""The records lemlabs hands out: Severity, Condition, Evidence, Finding, DataIssue (the Report
that holds them is :class:`lemlabs.pipeline.Report`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lemlabs.tables import FINDING_COLUMNS
from lemlabs.vocabulary import Condition, Severity


@dataclass(frozen=True)
class Evidence:
    """One result behind a finding, in canonical units, with what the lab sent."""

    analyte: str
    value: float
    unit: str
    raw_value: str
    raw_unit: str
    collected_at: dt.datetime
    row: int
    censor: str = ""
    value_high: float | None = None
    baseline: float | None = None
    baseline_kind: str | None = None
    source_id: str | None = None
    """Where the result came from, when the input said (a FHIR ``Observation/<id>``)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict; optional keys appear only when set."""
        out = {name: getattr(self, name) for name in _EVIDENCE_FIELDS}
        out["collected_at"] = self.collected_at.isoformat()
        return {key: item for key, item in out.items() if item is not None and item != ""}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evidence:
        """The inverse of :meth:`to_dict` (which leaves out empty text)."""
        values: dict[str, Any] = dict.fromkeys(("analyte", "unit", "raw_value", "raw_unit"), "")
        values.update(data)
        values["collected_at"] = dt.datetime.fromisoformat(str(values["collected_at"]))
        return cls(**values)


_EVIDENCE_FIELDS = tuple(Evidence.__dataclass_fields__)


@dataclass(frozen=True)
class Finding:
    """A pattern in one patient's results that points toward a condition. Never a diagnosis."""

    patient_id: str
    condition: Condition
    code: str
    severity: Severity
    ctcae_grade: int | None
    date: dt.date
    evidence: tuple[Evidence, ...]
    message: str
    action: str
    source: str
    rule_id: str
    rules_version: str
    episode_start: dt.date | None = None
    """Onset: the date of the episode's first evidence."""
    days_from_course: int | None = None
    """Time to onset: days from the first day of the latest course started on or before onset."""
    results_in_episode: int = 1
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def onset(self) -> dt.date:
        """The episode's first evidence (``episode_start``), or its date when that is unset."""
        return self.episode_start or self.date

    def to_fhir(self, packs: Any = None) -> Any:
        """This finding as a FHIR R4 DetectedIssue (needs the ``fhir`` extra); ``packs``: those
        it was scored with, when not the built-in ones (for its title)."""
        from lemlabs.formats.fhir import detected_issue

        return detected_issue(self, packs)

    def to_cds_card(self, packs: Any = None) -> dict[str, Any]:
        """This finding as a CDS Hooks card (needs the ``fhir`` extra); ``packs`` as for
        :meth:`to_fhir`."""
        from lemlabs.formats.fhir import cds_card

        return cds_card(self, packs)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict with the public field names."""
        return {
            "patient_id": self.patient_id,
            "condition": str(self.condition),
            "code": self.code,
            "severity": str(self.severity),
            "ctcae_grade": self.ctcae_grade,
            "date": self.date.isoformat(),
            "evidence": [item.to_dict() for item in self.evidence],
            "message": self.message,
            "action": self.action,
            "source": self.source,
            "rule_id": self.rule_id,
            "rules_version": self.rules_version,
            "episode_start": self.episode_start.isoformat() if self.episode_start else None,
            "days_from_course": self.days_from_course,
            "results_in_episode": self.results_in_episode,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """The inverse of :meth:`to_dict`."""
        start = data.get("episode_start")
        return cls(
            patient_id=str(data["patient_id"]),
            condition=Condition(data["condition"]),
            code=str(data["code"]),
            severity=Severity.parse(data["severity"]),
            ctcae_grade=data["ctcae_grade"],
            date=dt.date.fromisoformat(str(data["date"])),
            evidence=tuple(Evidence.from_dict(item) for item in data["evidence"]),
            message=str(data["message"]),
            action=str(data["action"]),
            source=str(data["source"]),
            rule_id=str(data["rule_id"]),
            rules_version=str(data["rules_version"]),
            episode_start=dt.date.fromisoformat(str(start)) if start else None,
            days_from_course=data.get("days_from_course"),
            results_in_episode=int(data.get("results_in_episode", 1)),
            notes=tuple(data.get("notes", ())),
        )


@dataclass(frozen=True)
class DataIssue:
    """A row lemlabs could not use: its 0-based ``row`` (and 1-based file ``line``), the ``field``
    and the ``reason``."""

    row: int
    patient_id: str
    field: str
    raw_value: str
    reason: str
    source: str = "labs"
    line: int | None = None
    """1-based line in the file, header counted (``row + 2`` for a CSV with one header line)."""


if list(Finding.__dataclass_fields__) != FINDING_COLUMNS:  # one order for records and tables
    raise AssertionError("lemlabs.tables.FINDING_COLUMNS differs from Finding's fields")

__all__ = ["Condition", "DataIssue", "Evidence", "Finding", "Severity"]
