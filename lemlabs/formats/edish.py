"""The eDISH view's numbers (FDA's evaluation of drug-induced serious hepatotoxicity;
safetyGraphics' hepatic explorer): per patient, the peak aminotransferase and the peak total
bilirubin, each × its own upper limit of normal, and the quadrant they fall in. Pandas only;
:func:`lemlabs.formats.plot.plot_edish` draws them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lemlabs.errors import LemlabsError

if TYPE_CHECKING:
    from lemlabs.pipeline import Report

ENZYMES = {"ALT": "alt", "AST": "ast"}
ENZYME_CUT = 3.0
"""× ULN: the FDA DILI guidance's aminotransferase cut-off (lines of the eDISH plot)."""
BILIRUBIN_CUT = 2.0
"""× ULN: the guidance's total bilirubin cut-off."""
QUADRANTS = {
    (True, True): "potential Hy's law",
    (True, False): "Temple's corollary",
    (False, True): "hyperbilirubinaemia",
    (False, False): "normal range",
}
"""The eDISH quadrants by (enzyme ≥ 3 × ULN, bilirubin > 2 × ULN)."""
_RANK = {"liver.bilirubin": 1, "liver.transaminases": 2, "liver.injury_with_jaundice": 3,
         "liver.hys_law": 4}  # fmt: skip
"""Among findings of one severity, which names the patient's point (Hy's law first)."""
COLUMNS = [
    "patient_id",
    "enzyme",
    "enzyme_x_uln",
    "enzyme_date",
    "bilirubin_x_uln",
    "bilirubin_date",
    "quadrant",
    "liver_code",
    "liver_severity",
]


def _peaks(results: pd.DataFrame, analyte: str, prefix: str) -> pd.DataFrame:
    """Per patient, the highest result × its ULN (what is certain from below) and its date."""
    mine = results[(results["analyte"] == analyte) & (results["status"] == "scored")]
    ratio = mine["lower"].astype(float) / mine["ref_high"].astype(float)
    table = mine.assign(ratio=ratio).dropna(subset=["ratio"])
    table = table[np.isfinite(table["ratio"])]
    table = table.sort_values(["patient_id", "ratio", "collected_at"], kind="mergesort")
    top = table.groupby("patient_id", sort=True).tail(1).set_index("patient_id")
    return pd.DataFrame(
        {
            f"{prefix}_x_uln": top["ratio"].astype(float),
            f"{prefix}_date": top["collected_at"].dt.normalize(),
        }
    )


def liver_peaks(report: Report, enzyme: str = "ALT") -> pd.DataFrame:
    """One row per patient with an ``enzyme`` (``"ALT"`` or ``"AST"``) or a total bilirubin
    result: the peak of each × its own ULN and its date, the eDISH quadrant (:data:`QUADRANTS`;
    '' when one of the two is missing) and the patient's most severe liver finding (its code
    and severity; '' without one). Sorted by the enzyme peak, highest first."""
    if enzyme.upper() not in ENZYMES:
        raise LemlabsError(f"enzyme must be ALT or AST, not {enzyme!r}")
    results = report.results
    enzymes = _peaks(results, ENZYMES[enzyme.upper()], "enzyme")
    bilirubin = _peaks(results, "bilirubin", "bilirubin")
    table = enzymes.join(bilirubin, how="outer")
    high_enzyme = table["enzyme_x_uln"] >= ENZYME_CUT
    high_bilirubin = table["bilirubin_x_uln"] > BILIRUBIN_CUT
    both = table["enzyme_x_uln"].notna() & table["bilirubin_x_uln"].notna()
    table["quadrant"] = [
        QUADRANTS[(bool(e), bool(b))] if known else ""
        for e, b, known in zip(high_enzyme, high_bilirubin, both, strict=True)
    ]
    findings = report.findings
    liver = findings[findings["condition"].astype(str) == "liver"]
    rank = liver["code"].map(_RANK).fillna(0)
    worst = (
        liver.assign(rank=rank)
        .sort_values(["patient_id", "severity", "rank", "date"], kind="mergesort")
        .groupby("patient_id", observed=True)
        .tail(1)
        .set_index("patient_id")
    )
    table["liver_code"] = worst["code"].astype(object).reindex(table.index).fillna("")
    table["liver_severity"] = worst["severity"].astype(str).reindex(table.index).fillna("")
    table["enzyme"] = enzyme.upper()
    table = table.rename_axis("patient_id").reset_index()
    order = table.sort_values(
        ["enzyme_x_uln", "patient_id"], ascending=[False, True], na_position="last"
    )
    return order[COLUMNS].reset_index(drop=True)
