"""A run's summary (``Report.summary``): counts kept in a :class:`Tally` that adds up over the
batches of one input, so that a file scored in batches is summed up as if scored in one pass."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from lemlabs.packs import Packs

CODE_COLUMNS = (("loinc", "loinc"), ("test_name", "names"))
"""The not-scored rows' code columns and the keys the summary lists them under."""


@dataclass
class Tally:
    """The counts behind a summary; :meth:`add` one scored part (a batch) after another."""

    rows_in: int = 0
    rows_normalised: int = 0
    rows_not_scored: int = 0
    patients: int = 0
    findings: int = 0
    skipped: Counter[tuple[str, str]] = field(default_factory=Counter)
    codes: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    conditions: Counter[str] = field(default_factory=Counter)
    severities: Counter[str] = field(default_factory=Counter)

    def add(self, rows_in: int, results: pd.DataFrame, findings: pd.DataFrame) -> None:
        """Count one part: its input rows, results and findings (its patients are in no other
        part)."""
        self.rows_in += rows_in
        self.rows_normalised += len(results)
        skipped = results[results["status"] == "not_scored"]
        self.rows_not_scored += len(skipped)
        self.patients += int(results["patient_id"].nunique())
        self.skipped.update(
            (str(test), str(reason))
            for test, reason in zip(skipped["test"], skipped["status_reason"], strict=True)
        )
        for column, key in CODE_COLUMNS:
            if column in skipped.columns:
                pairs = skipped[["test", column]].drop_duplicates()
                for test, value in zip(pairs["test"], pairs[column], strict=True):
                    code = str(value).strip()
                    if code:
                        self.codes.setdefault(str(test), {}).setdefault(key, set()).add(code)
        self.findings += len(findings)
        self.conditions.update(findings["condition"].tolist())
        self.severities.update(str(s) for s in findings["severity"].tolist())

    @classmethod
    def of(cls, summary: Mapping[str, Any]) -> Tally:
        """The counts behind a summary (what :meth:`summary` gave)."""
        tally = cls(
            rows_in=summary["rows_in"],
            rows_normalised=summary["rows_normalised"],
            rows_not_scored=summary["rows_not_scored"],
            patients=summary["patients"],
            findings=summary["findings"],
            conditions=Counter(summary["findings_by_condition"]),
            severities=Counter(summary["findings_by_severity"]),
        )
        for test, entry in summary["not_scored_by_test"].items():
            tally.skipped.update({(test, reason): n for reason, n in entry["reasons"].items()})
            codes = {key: set(entry[key]) for _, key in CODE_COLUMNS if key in entry}
            if codes:
                tally.codes[test] = codes
        return tally

    def merge(self, other: Tally) -> None:
        """Count another part, counted apart (a batch scored by another process)."""
        self.rows_in += other.rows_in
        self.rows_normalised += other.rows_normalised
        self.rows_not_scored += other.rows_not_scored
        self.patients += other.patients
        self.findings += other.findings
        self.skipped.update(other.skipped)
        for test, codes in other.codes.items():
            for key, found in codes.items():
                self.codes.setdefault(test, {}).setdefault(key, set()).update(found)
        self.conditions.update(other.conditions)
        self.severities.update(other.severities)

    def summary(self, issues: pd.DataFrame, packs: Packs) -> dict[str, Any]:
        """The summary of the parts added, with the run's whole ``issues`` table."""
        lab_issues = issues[issues["source"] == "labs"]
        return {
            "rows_in": self.rows_in,
            "rows_normalised": self.rows_normalised,
            "rows_rejected": int(lab_issues["row"].nunique()),
            "rows_not_scored": self.rows_not_scored,
            "not_scored_by_test": self._not_scored(packs),
            "patient_issues": int((issues["source"] == "patients").sum()),
            "patients": self.patients,
            "findings": self.findings,
            "findings_by_condition": dict(sorted(self.conditions.items())),
            "findings_by_severity": dict(sorted(self.severities.items())),
        }

    def _not_scored(self, packs: Packs) -> dict[str, dict[str, Any]]:
        """Every test name that was not scored, with its row count, reasons, codes (LOINC, SDTM
        ``LBTEST``) and the monitored analyte it looks like; those that look like one come
        first, then most rows first."""
        out: dict[str, dict[str, Any]] = {}
        ordered = sorted(self.skipped.items(), key=lambda item: (-item[1], item[0]))
        for (test, reason), rows in ordered:
            entry = out.setdefault(test, {"rows": 0, "reasons": {}, "looks_like": ""})
            entry["rows"] += rows
            entry["reasons"][reason] = rows
            entry["looks_like"] = entry["looks_like"] or packs.catalogue.looks_like(test, reason)
        for _, key in CODE_COLUMNS:
            for test, codes in self.codes.items():
                if key in codes:
                    out[test][key] = sorted(codes[key])
        return dict(
            sorted(
                out.items(), key=lambda item: (not item[1]["looks_like"], -item[1]["rows"], item[0])
            )
        )
