"""Results and analytes as people read them in messages, reports and FHIR text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lemlabs.packs import Packs, builtin_packs
from lemlabs.vocabulary import format_value


def shown(record: Mapping[str, Any]) -> str:
    """A result (a row of the results table) as people read it."""
    high = record["value_high"]
    return format_value(
        record["value"],
        record["unit"],
        str(record["censor"]),
        float(high) if high is not None and high == high else None,  # NaN is not itself
    )


def label_of(analyte: str, packs: Packs | None = None) -> str:
    """The analyte's label for messages ("serum creatinine", "TSH"), of the built-in packs
    unless ``packs`` are given."""
    return (packs or builtin_packs()).label(analyte)
