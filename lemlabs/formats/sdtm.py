"""CDISC SDTM in: ``LB`` (labs), ``DM`` (sex, birth date) and ``EX`` (alemtuzumab courses).

``read_sdtm(lb, dm=None, ex=None)`` returns ``(labs, patients)`` in lemlabs' shape. The test code
(``LBTESTCD``) stays the test's name, with the specimen (``LBSPEC``), ``LBTEST`` (as
``test_name``) and ``LBLOINC``: which analyte a code is, and whether the specimen fits, is decided
by the packs' analytes (their ``sdtm`` codes: ``PROT`` in urine is urine protein, in blood it is
not scored).
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from lemlabs.errors import LabInputError
from lemlabs.formats.files import read_dataset
from lemlabs.packs import builtin_packs, load_thresholds
from lemlabs.packs.thresholds import Thresholds
from lemlabs.stages.ingest import parse_dates, prepare_labs, prepare_patients

SdtmSource = str | os.PathLike[str] | pd.DataFrame

#: SDTM LB column → lemlabs lab column
LB_COLUMNS = {
    "USUBJID": "patient_id",
    "LBDTC": "collected_at",
    "LBTESTCD": "test",
    "LBORRES": "value",
    "LBORRESU": "unit",
    "LBORNRLO": "ref_low",
    "LBORNRHI": "ref_high",
    "LBSPEC": "specimen",
    "LBLOINC": "loinc",
    "LBTEST": "test_name",
}
LB_REQUIRED = ("USUBJID", "LBDTC", "LBTESTCD", "LBORRES")


def is_lb(columns: Any) -> bool:
    """A table with SDTM LB's columns (``USUBJID``, ``LBTESTCD``, ``LBORRES``, ``LBDTC``)."""
    names = {str(column).strip().upper() for column in columns}
    return all(column in names for column in LB_REQUIRED)


def lb_to_labs(lb: pd.DataFrame, name: str = "LB") -> pd.DataFrame:
    """SDTM LB rows as lemlabs' lab table (columns of :data:`LB_COLUMNS`; others carried)."""
    frame = lb.copy()
    frame.columns = [str(column).strip().upper() for column in frame.columns]
    for column in LB_REQUIRED:
        if column not in frame.columns:
            raise LabInputError(f"{name}: SDTM LB needs column {column!r}")
    if "LBORRESU" not in frame.columns:
        frame["LBORRESU"] = ""
    frame = frame.rename(columns=LB_COLUMNS)
    # LBTESTCD is case-exact in SDTM; a trailing space from a fixed-width export is not a new code
    frame["test"] = frame["test"].astype(str).str.strip()
    return frame


def _courses(ex: pd.DataFrame, gap: float) -> dict[str, str]:
    """Alemtuzumab infusion days (EXSTDTC) grouped into courses: days less than ``gap`` days
    apart are one course, whose first day is the course date (as
    :func:`lemlabs.formats.fhir.read_patients`)."""
    names = [name.casefold() for name in builtin_packs().treatment["names"]]
    for column in ("USUBJID", "EXTRT", "EXSTDTC"):
        if column not in ex.columns:
            raise LabInputError(f"EX: SDTM EX needs column {column!r}")
    treatment = ex["EXTRT"].astype(str).str.strip().str.casefold()
    mine = ex[treatment.map(lambda text: any(name in text for name in names))]
    days = parse_dates(mine["EXSTDTC"].astype(str).str.strip()).dt.normalize()
    out: dict[str, str] = {}
    frame = pd.DataFrame({"patient_id": mine["USUBJID"].astype(str).str.strip(), "day": days})
    for patient, group in frame.dropna().groupby("patient_id", sort=True):
        starts, previous = [], None
        for day in sorted(set(group["day"])):
            if previous is None or (day - previous).days >= gap:
                starts.append(day)
            previous = day
        out[str(patient)] = ";".join(day.date().isoformat() for day in starts)
    return out


def patients_from(
    dm: pd.DataFrame | None,
    ex: pd.DataFrame | None,
    subjects: Any = (),
    thresholds: Thresholds | None = None,
) -> pd.DataFrame:
    """The patients table from DM (``SEX``, ``BRTHDTC``) and EX (alemtuzumab courses), with a
    row for every subject of ``subjects`` too."""
    gap = (thresholds or load_thresholds())["fhir.course_gap_days"]
    people: dict[str, dict[str, str]] = {}
    if dm is not None:
        if "USUBJID" not in dm.columns:
            raise LabInputError("DM: SDTM DM needs column 'USUBJID'")
        for record in dm.to_dict("records"):
            patient = str(record["USUBJID"]).strip()
            people[patient] = {
                "patient_id": patient,
                "sex": str(record.get("SEX", "")).strip().upper(),
                "birth_date": str(record.get("BRTHDTC", "")).strip(),
                "course_dates": "",
            }
    for patient in subjects:
        people.setdefault(
            str(patient),
            {"patient_id": str(patient), "sex": "", "birth_date": "", "course_dates": ""},
        )
    if ex is not None:
        for patient, dates in _courses(ex, gap).items():
            entry = people.setdefault(
                patient, {"patient_id": patient, "sex": "", "birth_date": "", "course_dates": ""}
            )
            entry["course_dates"] = dates
    return pd.DataFrame(
        list(people.values()), columns=["patient_id", "sex", "birth_date", "course_dates"]
    )


def read_sdtm(
    lb: SdtmSource,
    dm: SdtmSource | None = None,
    ex: SdtmSource | None = None,
    thresholds: Any = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """SDTM ``LB`` (and optionally ``DM``, ``EX``) as lemlabs' ``(labs, patients)``:

    ``USUBJID`` → ``patient_id``, ``LBDTC`` → ``collected_at``, ``LBTESTCD`` → ``test`` (with
    ``LBSPEC`` → ``specimen``, ``LBTEST`` → ``test_name``, ``LBLOINC`` → ``loinc``),
    ``LBORRES``/``LBORRESU`` → ``value``/``unit``, ``LBORNRLO``/``LBORNRHI`` →
    ``ref_low``/``ref_high``; sex and birth date from DM; courses from EX rows whose ``EXTRT`` is
    alemtuzumab (infusion days less than ``fhir.course_gap_days`` apart are one course). Each
    argument is a DataFrame or a path to ``.xpt``, ``.csv`` or ``.parquet``.
    """
    labs = prepare_labs(lb_to_labs(read_dataset(lb, "SDTM LB"), _name(lb, "LB")))
    table = load_thresholds(thresholds)
    people = patients_from(
        None if dm is None else read_dataset(dm, "SDTM DM"),
        None if ex is None else read_dataset(ex, "SDTM EX"),
        sorted(set(labs["patient_id"])),
        table,
    )
    return labs, prepare_patients(people)


def _name(source: SdtmSource, default: str) -> str:
    return default if isinstance(source, pd.DataFrame) else os.fspath(source)
