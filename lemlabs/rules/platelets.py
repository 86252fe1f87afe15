"""Platelet rules (condition ``itp``): thrombocytopenia, suspected ITP, a fall from baseline."""

from __future__ import annotations

from durable.lang import m

from lemlabs.models import Condition, Severity
from lemlabs.rules.base import Fact, Gate, Rule
from lemlabs.rules.thresholds import Thresholds

_PLT = m.analyte == "platelets"
_ITP_SOURCE = "Lemtrada EU SmPC 4.4 (immune thrombocytopenia); US PI boxed warning and 5.6"


def ctcae_grade(fact: Fact, t: Thresholds) -> int | None:
    """CTCAE v5 Platelet count decreased, from the count's upper bound (edges as CTCAE writes)."""
    count = fact["upper"]
    for grade, key in (
        (4, "ctcae.platelets_g4_below"),
        (3, "ctcae.platelets_g3_below"),
        (2, "ctcae.platelets_g2_below"),
    ):
        if count < t[key]:
            return grade
    return 1 if count < fact["ref_low"] else None


def infusion_note(fact: Fact, t: Thresholds) -> list[str]:
    """In the first 2 months after a course the fall may be infusion-associated."""
    days = fact["days_since_course"]
    if 0 <= days < t["itp.infusion_window_days"]:
        return [
            f"taken {days:g} days after the start of a course: may be infusion-associated "
            "thrombocytopenia; the severity still follows the count"
        ]
    return []


_GRADES = (
    "ctcae.version",
    "ctcae.platelets_g2_below",
    "ctcae.platelets_g3_below",
    "ctcae.platelets_g4_below",
)

RULES = [
    Rule(
        id="itp.suspected.urgent",
        code="itp.suspected",
        worst="lowest",
        condition=Condition.ITP,
        severity=Severity.URGENT,
        when=lambda t: (_PLT & (m.upper < t["itp.urgent_below"]),),
        message="Platelet count below {itp.urgent_below} ×10⁹/L: points toward immune "
        "thrombocytopenia with bleeding risk.",
        action="Same-day medical attention: repeat the full blood count with film today and refer "
        "to haematology urgently (Lemtrada label: ITP).",
        thresholds=("itp.urgent_below", "itp.suspected_below", *_GRADES),
        grade=ctcae_grade,
        notes=infusion_note,
        sources=(_ITP_SOURCE,),
    ),
    Rule(
        id="itp.suspected.action",
        code="itp.suspected",
        worst="lowest",
        condition=Condition.ITP,
        severity=Severity.ACTION,
        when=lambda t: (
            _PLT & (m.upper < t["itp.suspected_below"]) & (m.upper >= t["itp.urgent_below"]),
        ),
        message="Platelet count below {itp.suspected_below} ×10⁹/L: consistent with the IWG "
        "threshold for immune thrombocytopenia.",
        action="Repeat the full blood count at once, ask about bleeding and bruising, and refer to "
        "haematology (Lemtrada label: ITP).",
        thresholds=("itp.suspected_below", "itp.urgent_below", *_GRADES),
        grade=ctcae_grade,
        notes=infusion_note,
        sources=(_ITP_SOURCE,),
    ),
    Rule(
        id="itp.thrombocytopenia.watch",
        code="itp.thrombocytopenia",
        worst="lowest",
        condition=Condition.ITP,
        severity=Severity.WATCH,
        when=lambda t: (_PLT & (m.flag == "L") & (m.upper >= t["itp.suspected_below"]),),
        message="Platelet count below the reference interval but at least "
        "{itp.suspected_below} ×10⁹/L: mild thrombocytopenia.",
        action="Repeat the count and keep the monthly blood count; evaluate for ITP if it falls "
        "further.",
        thresholds=("itp.suspected_below", *_GRADES),
        grade=ctcae_grade,
        notes=infusion_note,
        sources=(_ITP_SOURCE,),
    ),
    Rule(
        id="itp.platelet_fall.watch",
        code="itp.platelet_fall",
        worst="lowest",
        condition=Condition.ITP,
        severity=Severity.WATCH,
        when=lambda t: (_PLT & (m.flag != "L") & (m.fall_fraction >= t["itp.fall_fraction"]),),
        message="Platelet count has fallen by at least half from baseline while still within "
        "the reference interval.",
        action="Repeat the count soon; a steady fall can precede immune thrombocytopenia.",
        thresholds=("itp.fall_fraction",),
        sources=(_ITP_SOURCE,),
    ),
]

GATES = [
    Gate("platelets", "flag", "!=", literal="N"),
    Gate("platelets", "upper", "<", key="itp.suspected_below"),
    Gate("platelets", "fall_fraction", ">=", key="itp.fall_fraction"),
]
