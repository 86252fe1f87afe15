"""The pandas accessor: ``labs.lemlabs.score(patients)`` on any lab DataFrame.

Registered when :mod:`lemlabs` is imported.
"""

from __future__ import annotations

import pandas as pd

from lemlabs.formats.files import Source
from lemlabs.pipeline import Report, ThresholdInput, normalise, score_frame


@pd.api.extensions.register_dataframe_accessor("lemlabs")
class LabsAccessor:
    """``df.lemlabs.score(...)`` and ``df.lemlabs.normalise(...)`` for a lab DataFrame."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame

    def score(self, patients: Source | None = None, thresholds: ThresholdInput = None) -> Report:
        """Score this lab table: :func:`lemlabs.score_frame` on it."""
        return score_frame(self._frame, patients, thresholds)

    def normalise(self, patients: Source | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Normalise this lab table: ``(results, issues)``."""
        return normalise(self._frame, patients)
