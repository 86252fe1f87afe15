"""Thyroid rules (condition ``thyroid``): TSH with the nearest free T4 within 7 days.

``pair_flag`` is the paired result's interpretation (L/H/N, ``-`` when there is none).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from durable.lang import c, m

from lemlabs.models import Condition, Severity
from lemlabs.rules.base import Gate, Rule
from lemlabs.rules.thresholds import Thresholds

_TSH = m.analyte == "tsh"
_FT4_NOT_ABNORMAL = (m.pair_flag == "N") | (m.pair_flag == "-")
_SOURCE = "Lemtrada EU SmPC 4.4 (thyroid disorders); US PI 5.8"
_ENDO = "endocrinology"

RULES = [
    Rule(
        id="thyroid.overt_hyperthyroidism.action",
        code="thyroid.overt_hyperthyroidism",
        worst="lowest",
        condition=Condition.THYROID,
        severity=Severity.ACTION,
        when=lambda t: (_TSH & (m.flag == "L") & (m.pair_flag == "H"),),
        message="TSH below and free T4 above the reference interval: pattern of overt "
        "hyperthyroidism, consistent with Graves' disease after alemtuzumab.",
        action=f"Evaluate for Graves' disease: TSH-receptor antibodies and referral to {_ENDO}.",
        thresholds=("thyroid.pair_window_days",),
        sources=(_SOURCE,),
    ),
    Rule(
        id="thyroid.subclinical_hyperthyroidism.action",
        code="thyroid.subclinical_hyperthyroidism",
        worst="lowest",
        condition=Condition.THYROID,
        severity=Severity.ACTION,
        when=lambda t: (
            _TSH & (m.flag == "L") & _FT4_NOT_ABNORMAL & (m.upper < t["thyroid.tsh_action_below"]),
        ),
        message="TSH below {thyroid.tsh_action_below} mIU/L with free T4 normal or not measured: "
        "suppressed TSH, points toward hyperthyroidism.",
        action="Measure free T4 and T3 and TSH-receptor antibodies; evaluate for Graves' disease.",
        thresholds=("thyroid.tsh_action_below", "thyroid.pair_window_days"),
        sources=(_SOURCE,),
    ),
    Rule(
        id="thyroid.subclinical_hyperthyroidism.watch",
        code="thyroid.subclinical_hyperthyroidism",
        worst="lowest",
        condition=Condition.THYROID,
        severity=Severity.WATCH,
        when=lambda t: (
            _TSH & (m.flag == "L") & _FT4_NOT_ABNORMAL & (m.upper >= t["thyroid.tsh_action_below"]),
        ),
        message="TSH below the reference interval with free T4 normal or not measured: low TSH, "
        "consistent with subclinical hyperthyroidism.",
        action="Repeat TSH with free T4 (and T3) within weeks; keep the 3-monthly thyroid tests.",
        thresholds=("thyroid.tsh_action_below", "thyroid.pair_window_days"),
        sources=(_SOURCE,),
    ),
    Rule(
        id="thyroid.overt_hypothyroidism.action",
        code="thyroid.overt_hypothyroidism",
        worst="highest",
        condition=Condition.THYROID,
        severity=Severity.ACTION,
        when=lambda t: (_TSH & (m.flag == "H") & (m.pair_flag == "L"),),
        message="TSH above and free T4 below the reference interval: pattern of overt "
        "hypothyroidism.",
        action=f"Evaluate for autoimmune hypothyroidism (TPO antibodies) and refer to {_ENDO}.",
        thresholds=("thyroid.pair_window_days",),
        sources=(_SOURCE,),
    ),
    Rule(
        id="thyroid.subclinical_hypothyroidism.action",
        code="thyroid.subclinical_hypothyroidism",
        worst="highest",
        condition=Condition.THYROID,
        severity=Severity.ACTION,
        when=lambda t: (
            _TSH & (m.flag == "H") & _FT4_NOT_ABNORMAL & (m.lower >= t["thyroid.tsh_action_at"]),
        ),
        message="TSH at or above {thyroid.tsh_action_at} mIU/L with free T4 normal or not "
        "measured: points toward hypothyroidism.",
        action=f"Measure free T4 and TPO antibodies; evaluate for treatment with {_ENDO}.",
        thresholds=("thyroid.tsh_action_at", "thyroid.pair_window_days"),
        sources=(_SOURCE,),
    ),
    Rule(
        id="thyroid.subclinical_hypothyroidism.watch",
        code="thyroid.subclinical_hypothyroidism",
        worst="highest",
        condition=Condition.THYROID,
        severity=Severity.WATCH,
        when=lambda t: (
            _TSH & (m.flag == "H") & _FT4_NOT_ABNORMAL & (m.lower < t["thyroid.tsh_action_at"]),
        ),
        message="TSH above the reference interval with free T4 normal or not measured: "
        "consistent with subclinical hypothyroidism.",
        action="Repeat TSH with free T4 in 6–8 weeks; keep the 3-monthly thyroid tests.",
        thresholds=("thyroid.tsh_action_at", "thyroid.pair_window_days"),
        sources=(_SOURCE,),
    ),
    Rule(
        id="thyroid.discordant.tsh.watch",
        code="thyroid.discordant",
        condition=Condition.THYROID,
        severity=Severity.WATCH,
        when=lambda t: (
            _TSH
            & (((m.flag == "L") & (m.pair_flag == "L")) | ((m.flag == "H") & (m.pair_flag == "H"))),
        ),
        message="TSH and free T4 move the same way (both low or both high): a discordant pair.",
        action="Evaluate for central (pituitary) or non-thyroidal causes and assay interference; "
        "repeat both tests.",
        thresholds=("thyroid.pair_window_days",),
        sources=(_SOURCE,),
    ),
    Rule(
        id="thyroid.discordant.free_t4.watch",
        code="thyroid.discordant",
        condition=Condition.THYROID,
        severity=Severity.WATCH,
        when=lambda t: ((m.analyte == "free_t4") & (m.flag != "N") & (m.pair_flag == "N"),),
        message="Free T4 outside the reference interval with a normal TSH: a discordant pair.",
        action="Evaluate for central (pituitary) or non-thyroidal causes and assay interference; "
        "repeat both tests.",
        thresholds=("thyroid.pair_window_days",),
        sources=(_SOURCE,),
    ),
]


def _tsh(flag: str) -> Any:
    return (m.analyte == "tsh") & (m.flag == flag)


def _swing(first: str, second: str) -> Callable[[Thresholds], tuple[Any, ...]]:
    """TSH flagged ``first``, then flagged ``second`` within the fluctuation window (calendar
    months: each TSH fact carries the last day of its window as ``swing_until``)."""

    def when(t: Thresholds) -> tuple[Any, ...]:
        return (
            c.first << _tsh(first),
            c.second << (_tsh(second) & (m.day > c.first.day) & (m.day <= c.first.swing_until)),
        )

    return when


COMPOSITES = [
    Rule(
        id=f"thyroid.fluctuation.{name}",
        code="thyroid.fluctuation",
        condition=Condition.THYROID,
        severity=Severity.ACTION,
        phase="finding",
        aliases=("first", "second"),
        when=_swing(first, second),
        message=f"TSH {text} within {{thyroid.fluctuation_window_months}} months: a swing "
        "consistent with fluctuating thyroiditis or Graves' disease with blocking antibodies.",
        action=f"Refer to {_ENDO}; measure TSH-receptor antibodies and repeat thyroid tests "
        "monthly until stable.",
        thresholds=("thyroid.fluctuation_window_months",),
        sources=(_SOURCE,),
    )
    for name, first, second, text in (
        ("low_to_high", "L", "H", "went from below to above the reference interval"),
        ("high_to_low", "H", "L", "went from above to below the reference interval"),
    )
]

GATES = [
    Gate("tsh", "flag", "!=", literal="N"),
    Gate("free_t4", "flag", "!=", literal="N"),
]
