"""The records lemlabs hands out: Severity, Condition, Evidence, Finding, DataIssue, Report."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

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

    def to_fhir(self) -> Any:
        """This finding as a FHIR R4 DetectedIssue (needs the ``fhir`` extra)."""
        from lemlabs.fhir import detected_issue

        return detected_issue(self)

    def to_cds_card(self) -> dict[str, Any]:
        """This finding as a CDS Hooks card (needs the ``fhir`` extra)."""
        from lemlabs.fhir import cds_card

        return cds_card(self)

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


FINDING_COLUMNS = list(Finding.__dataclass_fields__)


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


ISSUE_TEXT = ("patient_id", "field", "raw_value", "reason", "source")  # object, even when empty


def stable_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """The same dtypes on pandas 2.2 and 3.x: text as object (plain Python str, never pandas 3's
    inferred ``str`` dtype, which pandas 2.2 lacks), datetimes in nanoseconds, categoricals with
    object categories."""
    changes: dict[Any, Any] = {}
    categoricals: dict[Any, pd.CategoricalDtype] = {}
    for column, dtype in frame.dtypes.items():
        if isinstance(dtype, pd.StringDtype):
            changes[column] = object
        elif isinstance(dtype, pd.CategoricalDtype) and isinstance(
            dtype.categories.dtype, pd.StringDtype
        ):
            categories = pd.Index(list(dtype.categories), dtype=object)
            categoricals[column] = pd.CategoricalDtype(categories, ordered=dtype.ordered)
        elif (
            dtype.kind == "M"
            and not isinstance(dtype, pd.DatetimeTZDtype)
            and (str(dtype) != "datetime64[ns]")
        ):
            changes[column] = "datetime64[ns]"
    if not changes and not categoricals:
        return frame
    frame = frame.astype(changes)
    for column, categorical in categoricals.items():  # astype keeps "equal" categories as they are
        codes = frame[column].cat.codes.to_numpy()
        frame[column] = pd.Categorical.from_codes(codes, dtype=categorical)
    return frame


def typed_findings(frame: pd.DataFrame) -> pd.DataFrame:
    """The one set of dtypes of every findings table (``score_frame``, ``score_dask``): text as
    object, dates as ``datetime64[ns]``, severity an ordered categorical, grades and days as
    nullable integers — the same on pandas 2.2 and 3.x."""
    text = [c for c in FINDING_COLUMNS if c not in (*_TYPED_COLUMNS, "evidence", "notes")]
    frame = frame.astype(
        {
            **dict.fromkeys(text, object),
            "ctcae_grade": "Int64",
            "days_from_course": "Int64",
            "results_in_episode": "int64",
        }
    )
    for column in ("date", "episode_start"):
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ns]")
    frame["severity"] = pd.Categorical(
        frame["severity"], categories=[str(s) for s in Severity], ordered=True
    )
    return stable_dtypes(frame)


_TYPED_COLUMNS = (
    "severity",
    "ctcae_grade",
    "date",
    "episode_start",
    "days_from_course",
    "results_in_episode",
)


def findings_frame(findings: Sequence[Finding]) -> pd.DataFrame:
    """Findings as a tidy DataFrame (see :func:`typed_findings`); evidence and notes as lists."""
    return frame_of_rows([finding.to_dict() for finding in findings])


def frame_of_rows(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Findings as :meth:`Finding.to_dict` gives them → the typed findings table."""
    return frame_of_columns({name: [row.get(name) for row in rows] for name in FINDING_COLUMNS})


def frame_of_columns(columns: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    """Findings as columns (a list per field of :data:`FINDING_COLUMNS`, values as
    :meth:`Finding.to_dict` gives them) → the typed findings table."""
    return typed_findings(pd.DataFrame(columns, columns=FINDING_COLUMNS, dtype=object))


def rows_of_frame(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A typed findings table (:func:`typed_findings`) → the dicts :meth:`Finding.to_dict` gives."""
    columns = [frame[name].tolist() for name in FINDING_COLUMNS]
    rows = []
    for values in zip(*columns, strict=True):
        row = dict(zip(FINDING_COLUMNS, values, strict=True))
        for name in ("ctcae_grade", "days_from_course"):
            row[name] = None if pd.isna(row[name]) else int(row[name])
        for name in ("date", "episode_start"):
            row[name] = None if pd.isna(row[name]) else row[name].date().isoformat()
        row["severity"] = str(row["severity"])
        row["results_in_episode"] = int(row["results_in_episode"])
        row["evidence"] = [dict(item) for item in row["evidence"]]
        row["notes"] = list(row["notes"])
        rows.append(row)
    return rows


@dataclass(frozen=True)
class Report:
    """What :func:`lemlabs.score_frame` returns."""

    findings: pd.DataFrame
    issues: pd.DataFrame
    results: pd.DataFrame
    summary: dict[str, Any]
    patients: pd.DataFrame | None = None
    """The patients table as read (with ``courses`` as lists of dates), when one was given."""

    def __post_init__(self) -> None:
        """The tables' dtypes do not depend on the pandas version (see :func:`stable_dtypes`)."""
        for name in ("findings", "issues", "results", "patients"):
            table = getattr(self, name)
            if table is not None:
                object.__setattr__(self, name, stable_dtypes(table))
        text = [column for column in ISSUE_TEXT if column in self.issues.columns]
        object.__setattr__(self, "issues", self.issues.astype(dict.fromkeys(text, object)))

    @cached_property
    def finding_list(self) -> tuple[Finding, ...]:
        """The findings table as :class:`Finding` records, built when first asked for."""
        return tuple(Finding.from_dict(row) for row in rows_of_frame(self.findings))

    def to_html(self, path: str | Path, **options: Any) -> None:
        """This report as one self-contained HTML file (the ``report`` extra); ``options`` go to
        :func:`lemlabs.report.write_html` (``as_of``, ``thresholds``, ``inputs``)."""
        from lemlabs.report import write_html

        write_html(self, path, **options)

    def to_excel(self, path: str | Path, thresholds: Any = None) -> None:
        """Findings, evidence, issues, summary and rules as an Excel workbook (``excel`` extra)."""
        from lemlabs.excel import write_workbook

        write_workbook(path, self.finding_list, self.issues, self.summary, thresholds)

    def to_adlb(self) -> pd.DataFrame:
        """One row per scored result with ADaM ADLB names (:func:`lemlabs.adlb.to_adlb`)."""
        from lemlabs.adlb import to_adlb

        return to_adlb(self)

    def shift_table(self, term: str) -> pd.DataFrame:
        """Patients by baseline × worst post-baseline CTCAE grade of ``term`` (``"platelets"``,
        ``"creatinine"``, ``"proteinuria"`` or a CTCAE term name)."""
        from lemlabs.adlb import shift_table

        return shift_table(self, term)

    def data_issues(self) -> list[DataIssue]:
        """The issues table as :class:`DataIssue` records."""
        records = self.issues.to_dict("records")
        return [DataIssue(**{str(k): v for k, v in record.items()}) for record in records]


__all__ = [
    "FINDING_COLUMNS",
    "Condition",
    "DataIssue",
    "Evidence",
    "Finding",
    "Report",
    "Severity",
    "findings_frame",
    "frame_of_rows",
    "rows_of_frame",
    "stable_dtypes",
    "typed_findings",
]
