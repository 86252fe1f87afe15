"""Reference intervals: the row's own (converted with its value) or the catalogue default by sex."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd

from lemlabs.analytes import catalogue
from lemlabs.values import parse_number


@cache
def default_table() -> pd.DataFrame:
    """Default adult intervals in canonical units, one row per analyte and sex ('' = unknown)."""
    rows = []
    for analyte in catalogue().values():
        for sex in ("", "F", "M"):
            ref = analyte.ref_by_sex.get(sex, analyte.ref)
            rows.append((analyte.key, sex, ref.low, ref.high, analyte.ref_source))
    table = pd.DataFrame(rows, columns=["analyte", "sex", "ref_low", "ref_high", "ref_note"])
    return table.astype({"ref_low": float, "ref_high": float})


def _lab_bound(raw: pd.Series) -> pd.Series:
    numbers = {text: parse_number(text.strip()) for text in raw.unique()}
    return raw.map(numbers).astype(float)


def reference_intervals(
    analyte: pd.Series,
    sex: pd.Series,
    factor: pd.Series,
    lab_low: pd.Series,
    lab_high: pd.Series,
) -> pd.DataFrame:
    """``ref_low``, ``ref_high`` (canonical unit) and ``ref_source`` for each result row.

    A row's own bound is in the row's unit and converts with its value (``factor``); a bound the
    row leaves empty or unreadable comes from the default table for the patient's sex.
    """
    keys = pd.DataFrame({"analyte": analyte.to_numpy(), "sex": sex.to_numpy()})
    defaults = keys.merge(default_table(), on=["analyte", "sex"], how="left")
    defaults.index = analyte.index
    low = _lab_bound(lab_low) * factor
    high = _lab_bound(lab_high) * factor
    from_lab = low.notna() | high.notna()
    return pd.DataFrame(
        {
            "ref_low": low.fillna(defaults["ref_low"]),
            "ref_high": high.fillna(defaults["ref_high"]),
            "ref_source": np.where(from_lab, "lab", "default"),
        },
        index=analyte.index,
    )
