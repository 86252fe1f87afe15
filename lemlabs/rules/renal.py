"""Kidney rules (condition ``anti_gbm``): creatinine, haematuria, proteinuria, the composite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from durable.lang import c, m

from lemlabs.models import Condition, Severity
from lemlabs.rules.base import Fact, Gate, Rule
from lemlabs.rules.thresholds import Thresholds

_CREAT = m.analyte == "creatinine"
_SOURCE = "Lemtrada EU SmPC 4.4 (anti-GBM disease and other nephropathies); US PI 5.7"
_NEPHRO = "nephrology"


def creatinine_grade(fact: Fact, t: Thresholds) -> int | None:
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


def proteinuria_grade(fact: Fact, t: Thresholds) -> int | None:
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


def _rise(t: Thresholds) -> Any:
    return (m.rise_ratio >= t["renal.rise_ratio_action"]) | (m.rise_48h >= t["renal.aki_rise_umol"])


def _urgent(t: Thresholds) -> Any:
    """≥ 3× baseline and above the ULN, or any value ≥ 353.6 µmol/L (domain.md)."""
    return ((m.rise_ratio >= t["renal.rise_ratio_urgent"]) & (m.flag == "H")) | (
        m.lower >= t["renal.creatinine_urgent_umol"]
    )


def _not_urgent(t: Thresholds) -> Any:
    return ((m.rise_ratio < t["renal.rise_ratio_urgent"]) | (m.flag != "H")) & (
        m.lower < t["renal.creatinine_urgent_umol"]
    )


_CREATININE_GRADES = (
    "ctcae.version",
    "ctcae.creatinine_uln_g2_above",
    "ctcae.creatinine_uln_g3_above",
    "ctcae.creatinine_uln_g4_above",
    "ctcae.creatinine_baseline_g2_above",
    "ctcae.creatinine_baseline_g3_above",
)
_PROTEIN_GRADES = (
    "ctcae.version",
    "ctcae.proteinuria_g1_grade",
    "ctcae.proteinuria_g2_grade",
    "ctcae.proteinuria_g3_grade",
)
_TIMING = (
    "renal.rise_ratio_action",
    "renal.aki_rise_umol",
    "renal.aki_window_hours",
    "renal.aki_baseline_days",
)
_HAEMATURIA = (
    "renal.blood_dipstick_grade",
    "renal.rbc_haematuria_hpf",
)

RULES = [
    Rule(
        id="anti_gbm.creatinine_rise.urgent",
        code="anti_gbm.creatinine_rise",
        worst="highest",
        condition=Condition.ANTI_GBM,
        severity=Severity.URGENT,
        when=lambda t: (_CREAT & _urgent(t),),
        message="Creatinine at least {renal.rise_ratio_urgent}× baseline and above the reference "
        "interval, or at least {renal.creatinine_urgent_umol} µmol/L: a severe rise in creatinine.",
        action="Same-day medical attention: urinalysis with microscopy, anti-GBM antibodies and "
        f"urgent {_NEPHRO} referral.",
        thresholds=(
            "renal.rise_ratio_urgent",
            "renal.creatinine_urgent_umol",
            *_TIMING,
            *_CREATININE_GRADES,
        ),
        notes=creatinine_notes,
        grade=creatinine_grade,
        sources=(_SOURCE,),
    ),
    Rule(
        id="anti_gbm.creatinine_rise.action",
        code="anti_gbm.creatinine_rise",
        worst="highest",
        condition=Condition.ANTI_GBM,
        severity=Severity.ACTION,
        when=lambda t: (_CREAT & _rise(t) & _not_urgent(t),),
        message="Creatinine at least {renal.rise_ratio_action}× baseline, or up by at least "
        "{renal.aki_rise_umol} µmol/L within {renal.aki_window_hours} h: a rise in creatinine.",
        action="Repeat creatinine and urinalysis with microscopy promptly; evaluate for "
        f"nephropathy including anti-GBM disease ({_NEPHRO}).",
        thresholds=("renal.rise_ratio_urgent", *_TIMING, *_CREATININE_GRADES),
        notes=creatinine_notes,
        grade=creatinine_grade,
        sources=(_SOURCE,),
    ),
    Rule(
        id="anti_gbm.creatinine_high.watch",
        code="anti_gbm.creatinine_high",
        worst="highest",
        condition=Condition.ANTI_GBM,
        severity=Severity.WATCH,
        when=lambda t: (
            _CREAT
            & (m.flag == "H")
            & (m.rise_ratio < t["renal.rise_ratio_action"])
            & (m.rise_48h < t["renal.aki_rise_umol"])
            & _not_urgent(t),
        ),
        message="Creatinine above the reference interval without a rise from baseline.",
        action="Repeat creatinine with urinalysis; keep the monthly tests.",
        thresholds=("renal.rise_ratio_action", "renal.aki_rise_umol", *_CREATININE_GRADES),
        grade=creatinine_grade,
        sources=(_SOURCE,),
    ),
    Rule(
        id="anti_gbm.haematuria.watch",
        code="anti_gbm.haematuria",
        worst="highest",
        condition=Condition.ANTI_GBM,
        severity=Severity.WATCH,
        when=lambda t: (
            ((m.analyte == "urine_blood") & (m.lower >= t["renal.blood_dipstick_grade"]))
            | ((m.analyte == "urine_rbc") & (m.lower >= t["renal.rbc_haematuria_hpf"])),
        ),
        message="Blood in the urine (dipstick ≥ 1+ or ≥ {renal.rbc_haematuria_hpf} RBC/HPF).",
        action="Repeat urinalysis with microscopy; check creatinine and urine protein.",
        thresholds=_HAEMATURIA,
        notes=haematuria_notes,
        sources=(_SOURCE,),
    ),
    Rule(
        id="anti_gbm.proteinuria.action",
        code="anti_gbm.proteinuria",
        worst="highest",
        condition=Condition.ANTI_GBM,
        severity=Severity.ACTION,
        when=lambda t: (
            ((m.analyte == "urine_protein") & (m.lower >= t["renal.protein_action_grade"]))
            | ((m.analyte == "upcr") & (m.lower >= t["renal.upcr_action_at"])),
        ),
        message="Proteinuria (dipstick ≥ 2+ or UPCR ≥ {renal.upcr_action_at} mg/mmol).",
        action="Quantify with a urine protein/creatinine ratio, check creatinine and urine "
        f"microscopy; evaluate for glomerular disease ({_NEPHRO}).",
        thresholds=("renal.protein_action_grade", "renal.upcr_action_at", *_PROTEIN_GRADES),
        grade=proteinuria_grade,
        sources=(_SOURCE,),
    ),
    Rule(
        id="anti_gbm.proteinuria.watch",
        code="anti_gbm.proteinuria",
        worst="highest",
        condition=Condition.ANTI_GBM,
        severity=Severity.WATCH,
        when=lambda t: (
            (
                (m.analyte == "urine_protein")
                & (m.lower >= t["renal.protein_watch_grade"])
                & (m.lower < t["renal.protein_action_grade"])
            )
            | (
                (m.analyte == "upcr")
                & (m.lower > t["renal.upcr_watch_above"])
                & (m.lower < t["renal.upcr_action_at"])
            ),
        ),
        message="Proteinuria (dipstick 1+ or UPCR above {renal.upcr_watch_above} mg/mmol).",
        action="Repeat urinalysis and measure a urine protein/creatinine ratio.",
        thresholds=(
            "renal.protein_watch_grade",
            "renal.protein_action_grade",
            "renal.upcr_watch_above",
            "renal.upcr_action_at",
            *_PROTEIN_GRADES,
        ),
        grade=proteinuria_grade,
        sources=(_SOURCE,),
    ),
    Rule(
        id="anti_gbm.albuminuria.action",
        code="anti_gbm.albuminuria",
        worst="highest",
        condition=Condition.ANTI_GBM,
        severity=Severity.ACTION,
        when=lambda t: ((m.analyte == "uacr") & (m.lower >= t["renal.uacr_action_at"]),),
        message="Albumin/creatinine ratio at least {renal.uacr_action_at} mg/mmol "
        "(KDIGO category A3).",
        action="Check creatinine and urine microscopy; evaluate for glomerular disease "
        f"({_NEPHRO}).",
        thresholds=("renal.uacr_action_at",),
        sources=(_SOURCE,),
    ),
    Rule(
        id="anti_gbm.albuminuria.watch",
        code="anti_gbm.albuminuria",
        worst="highest",
        condition=Condition.ANTI_GBM,
        severity=Severity.WATCH,
        when=lambda t: (
            (m.analyte == "uacr")
            & (m.lower > t["renal.uacr_watch_above"])
            & (m.lower < t["renal.uacr_action_at"]),
        ),
        message="Albumin/creatinine ratio above {renal.uacr_watch_above} mg/mmol "
        "(KDIGO category A2).",
        action="Repeat the ratio on an early-morning sample; keep the monthly urinalysis.",
        thresholds=("renal.uacr_watch_above", "renal.uacr_action_at"),
        sources=(_SOURCE,),
    ),
]


def _within(t: Thresholds, key: str) -> Any:
    return (m.day >= c.first.day - t[key]) & (m.day <= c.first.day + t[key])


def _is_haematuria() -> Any:
    return m.code == "anti_gbm.haematuria"


def _with_haematuria(code: str, rising: bool = False) -> Callable[[Thresholds], tuple[Any, ...]]:
    """Haematuria, and a finding of ``code`` within the pattern window either side (with
    ``rising``: only a creatinine finding that is a rise, not a high value alone).

    One rule per alternative code: durable-rules 2.0.28 ignores the other conditions of a join
    whose first condition is an ``|`` (reproduced here), so composite joins never use ``|``.
    """

    def when(t: Thresholds) -> tuple[Any, ...]:
        second = (m.code == code) & _within(t, "renal.pattern_window_days")
        return (
            c.first << _is_haematuria(),
            c.second << ((second & (m.rise == 1)) if rising else second),
        )

    return when


COMPOSITES = [
    Rule(
        id="anti_gbm.haematuria_persistent.action",
        code="anti_gbm.haematuria_persistent",
        condition=Condition.ANTI_GBM,
        severity=Severity.ACTION,
        phase="finding",
        aliases=("first", "second"),
        when=lambda t: (
            c.first << (_is_haematuria() & (m.micro_neg == 0)),
            c.second
            << (
                _is_haematuria()
                & (m.micro_neg == 0)
                & (m.day >= c.first.day + t["renal.haematuria_repeat_min_days"])
                & (m.day <= c.first.day + t["renal.haematuria_repeat_max_days"])
            ),
        ),
        message="Haematuria on two samples at least {renal.haematuria_repeat_min_days} days "
        "apart within {renal.haematuria_repeat_max_days} days: persistent haematuria.",
        action="Evaluate for glomerular disease: creatinine, urine protein/creatinine ratio, "
        f"anti-GBM antibodies; refer to {_NEPHRO}.",
        thresholds=("renal.haematuria_repeat_min_days", "renal.haematuria_repeat_max_days"),
        sources=(_SOURCE,),
    ),
    Rule(
        id="anti_gbm.pattern.urgent",
        code="anti_gbm.pattern",
        condition=Condition.ANTI_GBM,
        severity=Severity.URGENT,
        phase="finding",
        aliases=("first", "second"),
        when=_with_haematuria("anti_gbm.creatinine_rise", rising=True),
        message="Haematuria with a creatinine rise within {renal.pattern_window_days} days: "
        "pattern consistent with glomerulonephritis such as anti-GBM disease.",
        action="Same-day evaluation: anti-GBM antibodies, urine microscopy, creatinine; urgent "
        f"{_NEPHRO} referral.",
        thresholds=("renal.pattern_window_days", "renal.rise_ratio_action", "renal.aki_rise_umol"),
        sources=(_SOURCE,),
    ),
    *(
        Rule(
            id=f"anti_gbm.haematuria_proteinuria.{kind}",
            code="anti_gbm.haematuria_proteinuria",
            condition=Condition.ANTI_GBM,
            severity=Severity.ACTION,
            phase="finding",
            aliases=("first", "second"),
            when=_with_haematuria(f"anti_gbm.{kind}"),
            message="Haematuria with proteinuria within {renal.pattern_window_days} days and a "
            "stable creatinine: evaluate for glomerular disease (not yet the anti-GBM pattern).",
            action="Prompt evaluation: creatinine, urine protein/creatinine ratio, anti-GBM "
            f"antibodies; refer to {_NEPHRO}.",
            thresholds=("renal.pattern_window_days",),
            sources=(_SOURCE,),
            superseded_by="anti_gbm.pattern",
        )
        for kind in ("proteinuria", "albuminuria")
    ),
]

GATES = [
    Gate("creatinine", "flag", "!=", literal="N"),
    Gate("creatinine", "rise_ratio", ">=", key="renal.rise_ratio_action"),
    Gate("creatinine", "rise_48h", ">=", key="renal.aki_rise_umol"),
    Gate("creatinine", "lower", ">=", key="renal.creatinine_urgent_umol"),
    Gate("urine_blood", "lower", ">=", key="renal.blood_dipstick_grade"),
    Gate("urine_rbc", "lower", ">=", key="renal.rbc_haematuria_hpf"),
    Gate("urine_protein", "lower", ">=", key="renal.protein_watch_grade"),
    Gate("upcr", "lower", ">", key="renal.upcr_watch_above"),
    Gate("uacr", "lower", ">", key="renal.uacr_watch_above"),
]
