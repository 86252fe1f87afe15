"""Values and analytes as people read them in messages, reports and FHIR text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lemlabs.analytes import catalogue

_DISPLAY_UNITS = {"10^9/L": "×10⁹/L", "umol/L": "µmol/L"}


def format_value(value: float, unit: str, censor: str = "", high: float | None = None) -> str:
    """A value as people read it: dipstick grades as negative/trace/1+, others with their unit,
    a censored value with its sign (">1000 µmol/L") and a range with both ends ("5–10 /HPF")."""
    if unit == "grade":
        return {0.0: "negative", 0.5: "trace"}.get(value, f"{value:g}+")
    number = f"{value:.4g}"
    if high is not None and not np.isnan(high) and high != value:
        number += f"–{high:.4g}"
    return f"{censor}{number} {_DISPLAY_UNITS.get(unit, unit)}"


def shown(record: Mapping[str, Any]) -> str:
    """A result (a row of the results table) as people read it."""
    high = record["value_high"]
    return format_value(
        record["value"],
        record["unit"],
        str(record["censor"]),
        float(high) if high is not None and high == high else None,  # NaN is not itself
    )


def label_of(analyte: str) -> str:
    """The analyte's label for messages ("serum creatinine", "TSH")."""
    entry = catalogue().get(analyte)
    return entry.label if entry else analyte
