"""The fields of the facts rules read, each declared once with its kind: what the rule compiler
checks names against, what the facts carry to the engine, what the context computes and what
findings read back. A pack adds its own (:class:`FactField` from ``[fields]`` and
``[[feature]]``, see :mod:`lemlabs.engine.rules`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["number", "integer", "text"]


@dataclass(frozen=True)
class FactField:
    """One field a condition may name."""

    name: str
    kind: Kind
    meaning: str
    column: str = ""
    """The context column it reads (``""``: the column of its name)."""
    missing: bool = False
    """It may be missing (no baseline yet, no interval, no pair): then a comparison of it does not
    hold, and ``not`` of one does."""

    @property
    def source(self) -> str:
        return self.column or self.name


RESULT_FIELDS = (
    FactField("analyte", "text", "the analyte key (tsh, platelets, creatinine, ...)"),
    FactField("value", "number", "the result in the canonical unit (the number the lab wrote)"),
    FactField("lower", "number", "what is certain of the value from below ('<50': -inf)"),
    FactField("upper", "number", "what is certain of the value from above ('<50': below 50)"),
    FactField(
        "lln", "number", "the lower limit of normal, converted with the value", "ref_low", True
    ),
    FactField(
        "uln", "number", "the upper limit of normal, converted with the value", "ref_high", True
    ),
    FactField("flag", "text", "L, H or N: below, above or within the reference interval"),
    FactField(
        "baseline",
        "number",
        "the patient's baseline of the analyte, for a result on or after its date",
        "comparable_baseline",
        True,
    ),
    FactField(
        "baseline_flag",
        "text",
        "the baseline record's own flag (L, H or N) for a result taken after it; '-' otherwise",
    ),
    FactField("baseline_days", "integer", "days from the baseline to the result"),
    FactField("day", "integer", "the result's day, in days since 1970-01-01"),
    FactField(
        "days_since_course",
        "number",
        "days from the first day of the latest course started on or before the result",
        missing=True,
    ),
    FactField("sex", "text", "F, M or '' (unknown)"),
)
"""What every result fact holds, whatever the packs declare."""
PHASE_FIELDS: dict[str, tuple[FactField, ...]] = {
    "finding": (FactField("code", "text", "the finding's code (itp.suspected, ...)"),),
    "schedule": (FactField("missed", "integer", "scheduled intervals missed"),),
}
"""What the facts of the other phases hold besides: a finding fact is a result fact with its
code; a schedule fact is one patient's test group."""

MISSING = -2e15
"""How a missing number reaches durable-rules (it reads no NaN): below every number a fact holds
(those are kept within ±1e15), and the compiled conditions treat it as missing."""
