"""Shared helpers and hypothesis profiles.

Profiles: ``dev`` (default, quick: 10 examples a property) and ``ci`` (120; .ci/run sets
HYPOTHESIS_PROFILE=ci in its thorough job).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import pandas as pd
from hypothesis import HealthCheck, settings

settings.register_profile(
    "dev", max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

LAB_COLUMNS = ["patient_id", "collected_at", "test", "value", "unit"]


def lab_frame(rows: Iterable[tuple[str, ...]], **extra: list[str]) -> pd.DataFrame:
    """A raw lab table from ``(patient_id, collected_at, test, value, unit)`` tuples."""
    frame = pd.DataFrame(list(rows), columns=LAB_COLUMNS, dtype=str)
    for column, values in extra.items():
        frame[column] = values
    return frame


def patient_frame(*rows: tuple[str, str, str]) -> pd.DataFrame:
    """A patients table from ``(patient_id, sex, course_dates)`` tuples."""
    return pd.DataFrame(list(rows), columns=["patient_id", "sex", "course_dates"], dtype=str)
