"""Put the CDISC pilot's SDTM through lemlabs and compare its ADLB with admiral's, record by record.

The data: pharmaverse/pharmaversesdtm ``data/lb.rda``, ``dm.rda``, ``ex.rda`` and
pharmaverse/pharmaverseadam ``data/adlb.rda`` (admiral's ADLB template, CTCAE v4.03), each
written to CSV first, e.g. with pyreadr::

    python -c "import pyreadr; pyreadr.read_r('lb.rda')['lb'].to_csv('lb.csv', index=False)"
    python docs/pilot_adlb_check.py lb.csv dm.csv ex.csv adlb.csv

The pilot's EX names XANOMELINE and PLACEBO: both are the treatment (``--treatment``). Records
are matched on ``USUBJID`` + ``LBSEQ`` (lemlabs' ``SRCSEQ``; admiral's source records, ``DTYPE``
empty). Prints, per variable, how many matched records agree, and the first that differ.
"""

from __future__ import annotations

import sys

import pandas as pd

import lemlabs

NUMBERS = ("AVAL", "ADY", "BASE", "ANRLO", "ANRHI")
TEXTS = (
    "ABLFL",
    "BASETYPE",
    "AVALC",
    "ANRIND",
    "BNRIND",
    "ATOXGRL",
    "ATOXGRH",
    "ATOXGR",
    "BTOXGRL",
    "BTOXGRH",
    "ONTRTFL",
    "ANL01FL",
    "LVOTFL",
)


def main(lb: str, dm: str, ex: str, adlb: str) -> None:
    def read(path: str) -> pd.DataFrame:
        return pd.read_csv(path, dtype=str, keep_default_na=False)

    labs, patients = lemlabs.read_sdtm(
        read(lb), read(dm), read(ex), treatment=["XANOMELINE", "PLACEBO"]
    )
    ours = lemlabs.score_frame(labs, patients, ctcae="v4").to_adlb()
    theirs = read(adlb)
    theirs = theirs[theirs["DTYPE"] == ""].assign(LBSEQ=lambda t: pd.to_numeric(t["LBSEQ"]))
    both = ours.assign(LBSEQ=ours["SRCSEQ"].astype(float)).merge(
        theirs, on=["USUBJID", "LBSEQ"], suffixes=("", "_admiral"), validate="one_to_one"
    )
    print(f"lemlabs: {len(ours)} records; matched with admiral's: {len(both)}")
    both["AVALU_admiral"] = both["LBSTRESU"]
    for name in (*NUMBERS, *TEXTS, "AVALU"):
        mine, other = both[name], both[f"{name}_admiral"]
        if name in NUMBERS:
            mine, other = mine.astype(float), pd.to_numeric(other, errors="coerce")
            same = ((mine - other).abs() < 1e-9) | (mine.isna() & other.isna())
        else:
            same = mine.astype(str) == other.astype(str)
        print(f"{name:8} {int(same.sum()):6} / {len(same)} equal")
        if not same.all():
            shown = ["USUBJID", "LBSEQ", "PARAMCD", "ADY", "LBORRES", "LBORRESU", name]
            differ = both.loc[~same, [*shown, f"{name}_admiral"]]
            print("  by parameter:", differ["PARAMCD"].value_counts().to_dict())
            print(differ.head(5).to_string(index=False))


if __name__ == "__main__":
    main(*sys.argv[1:])
