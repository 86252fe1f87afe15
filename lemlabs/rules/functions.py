"""The few grades and notes that need code, referenced by name from the rule records.

Each entry names the thresholds it reads, so that a finding cites their sources too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Fact = Mapping[str, Any]
Thresholds = Mapping[str, Any]


@dataclass(frozen=True)
class Function:
    """A named grade (``fact, thresholds → int | None``) or note (``→ list[str]``) function."""

    run: Callable[[Fact, Thresholds], Any]
    thresholds: tuple[str, ...]


def ctcae_platelets(fact: Fact, t: Thresholds) -> int | None:
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


def ctcae_creatinine(fact: Fact, t: Thresholds) -> int | None:
    """CTCAE v5 Creatinine increased: the higher of the ULN-based and the baseline-based grade."""
    value, uln, ratio = fact["lower"], fact["ref_high"], fact["rise_ratio"]
    by_uln = None
    if value > uln:
        by_uln = 1
        for grade, key in (
            (4, "ctcae.creatinine_uln_g4_above"),
            (3, "ctcae.creatinine_uln_g3_above"),
            (2, "ctcae.creatinine_uln_g2_above"),
        ):
            if value > t[key] * uln:
                by_uln = grade
                break
    by_baseline = None
    if ratio > t["ctcae.creatinine_baseline_g3_above"]:
        by_baseline = 3
    elif ratio > t["ctcae.creatinine_baseline_g2_above"]:
        by_baseline = 2
    grades = [g for g in (by_uln, by_baseline) if g is not None]
    return max(grades) if grades else None


def ctcae_proteinuria(fact: Fact, t: Thresholds) -> int | None:
    """CTCAE v5 Proteinuria (adult) from a dipstick grade; a ratio gets no grade."""
    if fact["analyte"] != "urine_protein":
        return None
    for grade, key in (
        (3, "ctcae.proteinuria_g3_grade"),
        (2, "ctcae.proteinuria_g2_grade"),
        (1, "ctcae.proteinuria_g1_grade"),
    ):
        if fact["lower"] >= t[key]:
            return grade
    return None


def infusion_note(fact: Fact, t: Thresholds) -> list[str]:
    """In the first 2 months after a course the fall may be infusion-associated."""
    days = fact["days_since_course"]
    if 0 <= days < t["itp.infusion_window_days"]:
        return [
            f"taken {days:g} days after the start of a course: may be infusion-associated "
            "thrombocytopenia; the severity still follows the count"
        ]
    return []


def haematuria_notes(fact: Fact, t: Thresholds) -> list[str]:
    """Haematuria in a woman may come from menstruation; a dipstick whose same-day microscopy is
    negative may not be red cells. Both are said; neither suppresses the finding."""
    notes = []
    if fact["micro_neg"]:
        notes.append(
            "microscopy negative on the same day: possible myoglobin or free haemoglobin, or "
            "contamination; repeat with microscopy (not counted toward persistent haematuria)"
        )
    if fact["sex"] == "F":
        notes.append(
            "menstruation can cause blood in the urine: repeat the sample outside menstruation"
        )
    return notes


def creatinine_notes(fact: Fact, t: Thresholds) -> list[str]:
    """KDIGO's words only for an acute rise; a low baseline's threefold rise within the interval
    says why it is not urgent (domain.md)."""
    notes = []
    acute_48h = fact["rise_48h"] >= t["renal.aki_rise_umol"]
    acute_baseline = (
        fact["rise_ratio"] >= t["renal.rise_ratio_action"]
        and fact["baseline_days"] <= t["renal.aki_baseline_days"]
    )
    if acute_48h or acute_baseline:
        notes.append(
            f"an acute rise (within {t['renal.aki_window_hours']:g} h, or against a baseline "
            f"from the {t['renal.aki_baseline_days']:g} days before): consistent with acute "
            "kidney injury (KDIGO)"
        )
    elif fact["rise_ratio"] >= t["renal.rise_ratio_action"]:
        notes.append(
            "a sustained rise from a baseline more than "
            f"{t['renal.aki_baseline_days']:g} days earlier, not acute kidney injury by "
            "KDIGO's definition"
        )
    if fact["rise_ratio"] >= t["renal.rise_ratio_urgent"] and fact["flag"] != "H":
        notes.append(
            f"at least {t['renal.rise_ratio_urgent']:g}× a low baseline while still within "
            "the reference interval: not urgent on its own"
        )
    return notes


_CTCAE_CREATININE = (
    "ctcae.version",
    "ctcae.creatinine_uln_g2_above",
    "ctcae.creatinine_uln_g3_above",
    "ctcae.creatinine_uln_g4_above",
    "ctcae.creatinine_baseline_g2_above",
    "ctcae.creatinine_baseline_g3_above",
)
FUNCTIONS: dict[str, Function] = {
    "ctcae_platelets": Function(
        ctcae_platelets,
        (
            "ctcae.version",
            "ctcae.platelets_g2_below",
            "ctcae.platelets_g3_below",
            "ctcae.platelets_g4_below",
        ),
    ),
    "ctcae_creatinine": Function(ctcae_creatinine, _CTCAE_CREATININE),
    "ctcae_proteinuria": Function(
        ctcae_proteinuria,
        (
            "ctcae.version",
            "ctcae.proteinuria_g1_grade",
            "ctcae.proteinuria_g2_grade",
            "ctcae.proteinuria_g3_grade",
        ),
    ),
    "infusion_note": Function(infusion_note, ("itp.infusion_window_days",)),
    "haematuria_notes": Function(haematuria_notes, ()),
    "creatinine_notes": Function(
        creatinine_notes,
        (
            "renal.rise_ratio_action",
            "renal.rise_ratio_urgent",
            "renal.aki_rise_umol",
            "renal.aki_window_hours",
            "renal.aki_baseline_days",
        ),
    ),
}
"""Every function a rule record may name in ``grade`` or ``notes``."""
