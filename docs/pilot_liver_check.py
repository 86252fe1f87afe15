"""Grade the CDISC pilot's liver records with lemlabs and compare with admiral's grades.

The data: pharmaverse/pharmaverseadam ``data/adlb.rda`` (derived by admiral's ADLB template with
CTCAE v4.03), written to CSV first, e.g. with pyreadr::

    python -c "import pyreadr; pyreadr.read_r('adlb.rda')['adlb'].to_csv('adlb.csv', index=False)"
    python docs/pilot_liver_check.py adlb.csv v4

Each source record (``DTYPE`` empty, one per ``USUBJID``/``LBSEQ``) is scored as the lab sent it
(``LBORRES``/``LBORRESU`` with ``LBORNRLO``/``LBORNRHI``), courses from ``TRTSDT``; the per-result
grade (``ctcae_grade_high``) is compared with ``ATOXGRH``. Prints the agreement per parameter,
every record that differs, and the liver findings.
"""

from __future__ import annotations

import sys

import pandas as pd

import lemlabs

PARAMETERS = ["ALT", "AST", "ALKPH", "BILI", "GGT"]


def main(path: str, version: str = "v4") -> None:
    adlb = pd.read_csv(path, dtype=str, keep_default_na=False)
    mine = adlb["PARAMCD"].isin(PARAMETERS) & (adlb["DTYPE"] == "")
    liver = adlb[mine].drop_duplicates(["USUBJID", "LBSEQ"]).reset_index(drop=True)
    labs = pd.DataFrame(
        {
            "patient_id": liver["USUBJID"],
            "collected_at": liver["LBDTC"],
            "test": liver["LBTESTCD"],
            "value": liver["LBORRES"],
            "unit": liver["LBORRESU"],
            "ref_low": liver["LBORNRLO"],
            "ref_high": liver["LBORNRHI"],
        }
    )
    people = adlb.drop_duplicates("USUBJID")
    patients = pd.DataFrame(
        {
            "patient_id": people["USUBJID"],
            "sex": people["SEX"],
            "course_dates": people["TRTSDT"].str[:10],
        }
    )
    report = lemlabs.score_frame(labs, patients[patients["course_dates"] != ""], ctcae=version)
    results = report.results.sort_values("row")
    ours = results["ctcae_grade_high"].astype("Int64").to_numpy()
    theirs = pd.to_numeric(liver["ATOXGRH"], errors="coerce").astype("Int64")
    liver = liver.assign(lemlabs=ours, admiral=theirs)
    liver["same"] = liver["lemlabs"].fillna(-1) == liver["admiral"].fillna(-1)
    print(f"CTCAE {version}: {len(liver)} records")
    print(liver.groupby("PARAMCD")["same"].agg(["sum", "count"]).to_string())
    shown = ["USUBJID", "PARAMCD", "LBDTC", "LBORRES", "LBORRESU", "LBORNRHI", "AVAL", "ATOXGRH"]
    print(liver.loc[~liver["same"], [*shown, "lemlabs"]].to_string())
    for finding in report.finding_list:
        if finding.condition == "liver" and finding.severity >= lemlabs.Severity.ACTION:
            print(finding.patient_id, finding.code, finding.severity, finding.date)


if __name__ == "__main__":
    main(*sys.argv[1:])
