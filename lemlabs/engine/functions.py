"""The few grades and notes that need code, referenced by name from the rule records.

Grades are computed for many results at once (a table of result columns in, one integer per
row out, 0 for none); notes for one result at a time. Each entry names the thresholds it reads,
so that a finding cites their sources too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lemlabs.ctcae import criteria, grade_rows

Fact = Mapping[str, Any]
Thresholds = Mapping[str, Any]


@dataclass(frozen=True)
class Function:
    """A named grade (``results, thresholds → int array``) or note (``fact, thresholds →
    list[str]``) function."""

    run: Callable[[Any, Thresholds], Any]
    thresholds: tuple[str, ...]
    cites: Callable[[Thresholds], tuple[str, ...]] | None = None
    """Sources cited after the function's thresholds (a CTCAE term's criteria, by version)."""


def _version(t: Thresholds) -> str:
    return str(t["ctcae.version"])


def ctcae_platelets(results: pd.DataFrame, t: Thresholds) -> np.ndarray:
    """CTCAE Platelet count decreased (v6: Thrombocytopenia), of ``ctcae.version``."""
    return grade_rows("platelets", results, _version(t))


def ctcae_creatinine(results: pd.DataFrame, t: Thresholds) -> np.ndarray:
    """CTCAE Creatinine increased, of ``ctcae.version``: the highest grade any arm (ULN or
    baseline) reaches."""
    return grade_rows("creatinine", results, _version(t))


def ctcae_proteinuria(results: pd.DataFrame, t: Thresholds) -> np.ndarray:
    """CTCAE Proteinuria (adult) from a dipstick grade; a ratio gets no grade."""
    return grade_rows("proteinuria", results, _version(t))


def _cites(key: str) -> Callable[[Thresholds], tuple[str, ...]]:
    def cites(t: Thresholds) -> tuple[str, ...]:
        return criteria(_version(t)).term(key).cites

    return cites


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


FUNCTIONS: dict[str, Function] = {
    "ctcae_platelets": Function(ctcae_platelets, ("ctcae.version",), _cites("platelets")),
    "ctcae_creatinine": Function(ctcae_creatinine, ("ctcae.version",), _cites("creatinine")),
    "ctcae_proteinuria": Function(ctcae_proteinuria, ("ctcae.version",), _cites("proteinuria")),
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
