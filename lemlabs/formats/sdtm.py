"""CDISC SDTM in: ``LB`` (labs), ``DM`` (sex, birth date) and ``EX`` (the treatment's courses).

``read_sdtm(lb, dm=None, ex=None)`` returns ``(labs, patients)`` in lemlabs' shape. The test code
(``LBTESTCD``) stays the test's name, with the specimen (``LBSPEC``), ``LBTEST`` (as
``test_name``) and ``LBLOINC``: which analyte a code is, and whether the specimen fits, is decided
by the packs' analytes (their ``sdtm`` codes: ``PROT`` in urine is urine protein, in blood it is
not scored).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pandas as pd

from lemlabs.errors import LabInputError
from lemlabs.formats.files import read_dataset
from lemlabs.packs import builtin_packs, load_thresholds
from lemlabs.packs.thresholds import Thresholds
from lemlabs.stages.ingest import date_problem, parse_dates, prepare_labs, prepare_patients

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
#: DM's arm variables, carried into the patients table (and the ADLB) when DM has them
DM_ARMS = ("ARM", "ACTARM")


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


def _treated(ex: pd.DataFrame, treatment: Sequence[str] | None) -> pd.Series:
    """The EX rows that name the treatment: ``EXTRT`` equal (ignoring case and surrounding
    spaces) to one of ``treatment``, or by default containing an alemtuzumab name."""
    given = ex["EXTRT"].astype(str).str.strip().str.casefold()
    if treatment:
        return given.isin([name.strip().casefold() for name in treatment])
    names = [name.casefold() for name in builtin_packs().treatment["names"]]
    return given.map(lambda text: any(name in text for name in names))


def _courses(
    ex: pd.DataFrame, gap: float, treatment: Sequence[str] | None
) -> tuple[dict[str, str], dict[str, str], list[dict[str, str]]]:
    """The treatment's days (EXSTDTC) grouped into courses: days less than ``gap`` days apart
    are one course, whose first day is the course date (as
    :func:`lemlabs.formats.fhir.read_patients`). Also each patient's EX rows of the treatment
    whose date is not a whole day (partial: ``2020-02``), and, per study whose EX names no row
    of the treatment, the issue that says which ``EXTRT`` values it holds."""
    for column in ("USUBJID", "EXTRT", "EXSTDTC"):
        if column not in ex.columns:
            raise LabInputError(f"EX: SDTM EX needs column {column!r}")
    treated = _treated(ex, treatment)
    study = (
        ex["STUDYID"].astype(str).str.strip()
        if "STUDYID" in ex.columns
        else pd.Series("", index=ex.index)
    )
    studies: list[dict[str, str]] = []
    wanted = ", ".join(treatment) if treatment else "alemtuzumab (by name)"
    for name, rows in ex.groupby(study, sort=True):
        if not treated[rows.index].any():
            seen = sorted(set(rows["EXTRT"].astype(str).str.strip()) - {""})
            studies.append(
                {
                    "study": str(name),
                    "raw_value": "; ".join(seen)[:200],
                    "reason": f"no EX row{' of study ' + str(name) if name else ''} names the "
                    f"treatment ({wanted}): EXTRT holds {', '.join(seen[:8]) or 'nothing'}"
                    f"{' ...' if len(seen) > 8 else ''}; name it with --treatment NAME "
                    "(read_sdtm(..., treatment=[...])): its patients have no course",
                }
            )
    mine = ex[treated]
    text = mine["EXSTDTC"].astype(str).str.strip()
    days = parse_dates(text).dt.normalize()
    patients = mine["USUBJID"].astype(str).str.strip()
    problems: dict[str, str] = {}
    for patient, raw in zip(patients[days.isna()], text[days.isna()], strict=True):
        entry = f"EX row not counted as a course day, EXSTDTC {date_problem(raw)}"
        problems[patient] = "; ".join(filter(None, [problems.get(patient, ""), entry]))
    out: dict[str, str] = {}
    frame = pd.DataFrame({"patient_id": patients, "day": days})
    for patient, group in frame.dropna().groupby("patient_id", sort=True):
        starts, previous = [], None
        for day in sorted(set(group["day"])):
            if previous is None or (day - previous).days >= gap:
                starts.append(day)
            previous = day
        out[str(patient)] = ";".join(day.date().isoformat() for day in starts)
    return out, problems, studies


def patients_from(
    dm: pd.DataFrame | None,
    ex: pd.DataFrame | None,
    subjects: Any = (),
    thresholds: Thresholds | None = None,
    treatment: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The patients table from DM (``SEX``, ``BRTHDTC``) and EX (the courses of the treatment:
    ``EXTRT`` one of ``treatment``, by default alemtuzumab by name), with a row for every
    subject of ``subjects`` too. Without EX, DM's ``RFXSTDTC`` (the first exposure) is the
    course date. EX rows of the treatment without a whole-day date are the patient's
    ``ex_problem``; a study whose EX names no row of the treatment is in ``attrs["issues"]``."""
    gap = (thresholds or load_thresholds())["fhir.course_gap_days"]
    people: dict[str, dict[str, str]] = {}

    def entry(patient: str) -> dict[str, str]:
        blank = {"sex": "", "birth_date": "", "course_dates": "", "ex_problem": ""}
        return people.setdefault(patient, {"patient_id": patient, **blank})

    if dm is not None:
        if "USUBJID" not in dm.columns:
            raise LabInputError("DM: SDTM DM needs column 'USUBJID'")
        for record in dm.to_dict("records"):
            person = entry(str(record["USUBJID"]).strip())
            person["sex"] = str(record.get("SEX", "")).strip().upper()
            person["birth_date"] = str(record.get("BRTHDTC", "")).strip()
            for name in DM_ARMS:
                if name in dm.columns:
                    person[name] = "" if pd.isna(record[name]) else str(record[name]).strip()
            if ex is None:  # no EX: the first exposure DM records, when it does
                person["course_dates"] = str(record.get("RFXSTDTC", "") or "").strip()[:10]
    for patient in subjects:
        entry(str(patient))
    studies: list[dict[str, str]] = []
    if ex is not None:
        courses, problems, studies = _courses(ex, gap, treatment)
        for patient, dates in courses.items():
            entry(patient)["course_dates"] = dates
        for patient, problem in problems.items():
            entry(patient)["ex_problem"] = problem
    arms = [name for name in DM_ARMS if dm is not None and name in dm.columns]
    frame = pd.DataFrame(
        list(people.values()),
        columns=["patient_id", "sex", "birth_date", "course_dates", "ex_problem", *arms],
    ).fillna({name: "" for name in arms})
    frame.attrs["issues"] = studies
    return frame


def read_sdtm(
    lb: SdtmSource,
    dm: SdtmSource | None = None,
    ex: SdtmSource | None = None,
    thresholds: Any = None,
    treatment: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """SDTM ``LB`` (and optionally ``DM``, ``EX``) as lemlabs' ``(labs, patients)``:

    ``USUBJID`` → ``patient_id``, ``LBDTC`` → ``collected_at``, ``LBTESTCD`` → ``test`` (with
    ``LBSPEC`` → ``specimen``, ``LBTEST`` → ``test_name``, ``LBLOINC`` → ``loinc``),
    ``LBORRES``/``LBORRESU`` → ``value``/``unit``, ``LBORNRLO``/``LBORNRHI`` →
    ``ref_low``/``ref_high``; sex, birth date and the arm (``ARM``, ``ACTARM``) from DM;
    courses from EX rows whose ``EXTRT`` names the treatment (``treatment``: the exact ``EXTRT``
    values, any case, e.g. ``["IMP"]``; by default any value containing an alemtuzumab name):
    infusion days less than
    ``fhir.course_gap_days`` apart are one course; without EX, DM's ``RFXSTDTC``. An EX row of
    the treatment without a whole-day date, and a study whose EX names no row of it, are data
    issues. Each argument is a DataFrame or a path to ``.xpt``, ``.csv`` or ``.parquet``.
    """
    labs = prepare_labs(lb_to_labs(read_dataset(lb, "SDTM LB"), _name(lb, "LB")))
    table = load_thresholds(thresholds)
    people = patients_from(
        None if dm is None else read_dataset(dm, "SDTM DM"),
        None if ex is None else read_dataset(ex, "SDTM EX"),
        sorted(set(labs["patient_id"])),
        table,
        treatment,
    )
    return labs, prepare_patients(people)


def _name(source: SdtmSource, default: str) -> str:
    return default if isinstance(source, pd.DataFrame) else os.fspath(source)
