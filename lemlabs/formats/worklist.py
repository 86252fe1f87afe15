"""Findings as a reader's list, for every format that shows one (the Excel workbook, the HTML
report): their order, and the result behind each finding's extreme."""

from __future__ import annotations

from collections.abc import Iterable

from lemlabs.models import Evidence, Finding
from lemlabs.packs import Packs
from lemlabs.vocabulary import format_value


def worst_evidence(finding: Finding, packs: Packs) -> Evidence | None:
    """The result behind the finding's extreme: the lowest or highest value, as its rule says
    (for a rule that names no direction: the highest); None for a finding without evidence."""
    if not finding.evidence:
        return None
    rule = packs.book.by_id.get(finding.rule_id)
    direction = rule.worst if rule is not None and rule.worst else "highest"
    pick = min if direction == "lowest" else max
    return pick(finding.evidence, key=lambda e: (e.value, e.collected_at))


def shown_value(evidence: Evidence | None, packs: Packs) -> str:
    """A result as people read it ("34 ×10⁹/L (platelet count)"); empty without one."""
    if evidence is None:
        return ""
    value = format_value(evidence.value, evidence.unit, evidence.censor, evidence.value_high)
    return f"{value} ({packs.label(evidence.analyte)})"


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Most severe first; within a severity, the most recent evidence first (an urgent finding
    of 2021 above one of 2019), then the earliest onset, then by patient."""
    return sorted(
        findings,
        key=lambda f: (-int(f.severity), -f.date.toordinal(), f.onset, f.patient_id, f.code),
    )
