"""Monitoring rules (condition ``monitoring``): tests the label asks for that were not done.

They match schedule facts (one per patient and test group, see :mod:`lemlabs.schedule`), not
results: no clinical finding can come from a test never done.
"""

from __future__ import annotations

from durable.lang import m

from lemlabs.models import Condition, Severity
from lemlabs.rules.base import Rule

_SOURCE = "Lemtrada EU SmPC 4.4; US PI boxed warning, 5.1 and 5.8; Lemtrada REMS"
_MISSED = ("schedule.watch_after_missed", "schedule.action_after_missed")

RULES = [
    Rule(
        id="monitoring.overdue.action",
        code="monitoring.overdue",
        condition=Condition.MONITORING,
        severity=Severity.ACTION,
        phase="schedule",
        when=lambda t: ((m.missed >= t["schedule.action_after_missed"]),),
        message="Two or more scheduled tests missed: a gap in the label's monitoring.",
        action="Arrange the missed tests now and find out why results stopped arriving; missed "
        "months are how ITP and anti-GBM disease are found late.",
        thresholds=(*_MISSED, "schedule.monthly_days", "schedule.thyroid_days"),
        sources=(_SOURCE,),
    ),
    Rule(
        id="monitoring.overdue.watch",
        code="monitoring.overdue",
        condition=Condition.MONITORING,
        severity=Severity.WATCH,
        phase="schedule",
        when=lambda t: (
            (m.missed >= t["schedule.watch_after_missed"])
            & (m.missed < t["schedule.action_after_missed"]),
        ),
        message="A scheduled test is overdue.",
        action="Remind the patient and arrange the test; keep to the label's schedule until 48 "
        "months after the last infusion.",
        thresholds=(*_MISSED, "schedule.monthly_tolerance_days", "schedule.thyroid_tolerance_days"),
        sources=(_SOURCE,),
    ),
]
