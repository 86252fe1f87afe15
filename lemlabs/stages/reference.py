"""Reference intervals: the row's own (converted with its value) or the catalogue default by sex."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lemlabs.packs.analytes import Analyte

SEXES = ("", "F", "M")


def default_interval(analyte: Analyte | None, sex: str) -> tuple[float, float]:
    """The analyte's default (low, high) in the canonical unit; NaN for an open side."""
    if analyte is None:
        return np.nan, np.nan
    ref = analyte.interval(sex)
    return (
        np.nan if ref.low is None else ref.low,
        np.nan if ref.high is None else ref.high,
    )


def reference_intervals(
    analytes: Sequence[Analyte | None],
    analyte_codes: np.ndarray,
    sex: np.ndarray,
    factor: np.ndarray,
    lab_low: np.ndarray,
    lab_high: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ref_low, ref_high, ref_source)`` per row, in the canonical unit.

    ``analyte_codes`` index into ``analytes`` (the unique analytes, ``None`` for rows not
    scored). A row's own bound
    (``lab_low``, ``lab_high``: numbers, NaN where it has none) is in the row's unit and converts
    with its value (``factor``, NaN where a lab bound cannot apply); a bound the row has not
    comes from the default for the patient's sex.
    """
    sex_codes = np.select([sex == "F", sex == "M"], [1, 2], 0)
    table = np.array([[default_interval(a, s) for s in SEXES] for a in analytes], dtype=float)
    table = table.reshape(len(analytes), len(SEXES), 2)
    defaults = table[analyte_codes, sex_codes] if len(analytes) else np.empty((0, 2))
    low = lab_low * factor
    high = lab_high * factor
    from_lab = ~np.isnan(low) | ~np.isnan(high)
    return (
        np.where(np.isnan(low), defaults[:, 0], low),
        np.where(np.isnan(high), defaults[:, 1], high),
        np.array(["default", "lab"], dtype=object)[from_lab.astype(np.intp)],
    )
