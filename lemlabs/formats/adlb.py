"""ADaM ADLB-style output: one row per scored result (``Report.to_adlb()``), and the shift table
of baseline grade × worst post-baseline grade (``Report.shift_table(term)``).

Variables keep their ADaM meanings: ``ADT`` the collection date, ``ADY`` the study day relative to
the first alemtuzumab course day (day 1; no day 0), ``AVAL``/``AVALU`` in lemlabs' canonical unit,
``ANRLO``/``ANRHI`` the interval lemlabs applied, ``ANRIND`` LOW/NORMAL/HIGH, ``BASE`` lemlabs'
baseline (the last value on or before the first course day, else the first on record) with its
``BNRIND``, ``CHG``/``PCHG`` after the baseline, ``ATOXGRL``/``ATOXGRH`` the CTCAE grades of the
report's version ("0"–"4", empty where a result cannot be graded) with their terms
``ATOXDSCL``/``ATOXDSCH``, ``BTOXGRL``/``BTOXGRH`` the baseline's grades, ``ABLFL`` "Y" on the
baseline record, ``SHIFT1`` "NORMAL to LOW" (baseline to this result's range indicator).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lemlabs.ctcae import Criteria, CtcaeError, Term
from lemlabs.errors import MissingExtraError, OutputError
from lemlabs.packs import Packs
from lemlabs.stages.context import add_context

if TYPE_CHECKING:
    from lemlabs.pipeline import Report

ADLB_COLUMNS = {
    "USUBJID": "object",
    "PARAMCD": "object",
    "PARAM": "object",
    "ADT": "datetime64[ns]",
    "ADY": "Int64",
    "AVAL": "float64",
    "AVALU": "object",
    "ANRLO": "float64",
    "ANRHI": "float64",
    "ANRIND": "object",
    "BASE": "float64",
    "BNRIND": "object",
    "CHG": "float64",
    "PCHG": "float64",
    "ATOXGRL": "object",
    "ATOXGRH": "object",
    "ATOXDSCL": "object",
    "ATOXDSCH": "object",
    "BTOXGRL": "object",
    "BTOXGRH": "object",
    "ABLFL": "object",
    "SHIFT1": "object",
}
"""The ADLB columns and their dtypes (text columns hold ``""`` where empty)."""

_RANGE = {"L": "LOW", "H": "HIGH", "N": "NORMAL"}


def paramcd(analyte: str, packs: Packs) -> str:
    """The SDTM/ADaM code of an analyte (``platelets`` → ``PLAT``): its first SDTM code, else
    its key in capitals (8 characters at most)."""
    entry = packs.catalogue.get(analyte)
    return entry.sdtm[0].code if entry is not None and entry.sdtm else analyte.upper()[:8]


def _grade_text(grades: pd.Series) -> pd.Series:
    return grades.astype("Int64").astype(object).map(lambda g: "" if pd.isna(g) else str(g))


def to_adlb(report: Report) -> pd.DataFrame:
    """One row per scored result with ADaM ADLB names (see the module docstring)."""
    results = report.results[report.results["status"] == "scored"]
    packs = report.packs
    context = add_context(results, report.patients, packs.defaults, packs.book)
    if context.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in ADLB_COLUMNS.items()})
    out = pd.DataFrame(index=context.index)
    out["USUBJID"] = context["patient_id"].astype(str)
    out["PARAMCD"] = context["analyte"].map(lambda analyte: paramcd(analyte, packs))
    out["PARAM"] = [
        f"{packs.label(a)} ({u})" for a, u in zip(context["analyte"], context["unit"], strict=True)
    ]
    out["ADT"] = context["collected_at"].dt.normalize().astype("datetime64[ns]")
    out["ADY"] = _study_day(out["ADT"], context["patient_id"], report.patients)
    out["AVAL"] = context["value"].astype(float)
    out["AVALU"] = context["unit"].astype(str)
    out["ANRLO"] = pd.to_numeric(context["ref_low"], errors="coerce").astype(float)
    out["ANRHI"] = pd.to_numeric(context["ref_high"], errors="coerce").astype(float)
    out["ANRIND"] = context["flag"].map(_RANGE).fillna("")
    out["BASE"] = context["baseline"].astype(float)
    # the baseline record: the patient's result of the analyte at the baseline date and value
    at_base = (context["collected_at"] == context["baseline_date"]) & (
        context["value"] == context["baseline"]
    )
    keys = ["patient_id", "analyte"]
    base_rows = context[at_base].drop_duplicates(keys, keep="last")
    ablfl = pd.Series("", index=context.index, dtype=object)
    ablfl[base_rows.index] = "Y"
    out["ABLFL"] = ablfl
    base = base_rows[[*keys, "flag", "ctcae_grade_low", "ctcae_grade_high"]].rename(
        columns={"flag": "b_flag", "ctcae_grade_low": "b_low", "ctcae_grade_high": "b_high"}
    )
    joined = context[keys].merge(base, on=keys, how="left").set_index(context.index)
    out["BNRIND"] = joined["b_flag"].map(_RANGE).fillna("")
    after = (context["collected_at"] > context["baseline_date"]) & (ablfl != "Y")
    change = (out["AVAL"] - out["BASE"]).where(after)
    out["CHG"] = change.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["PCHG"] = (change / out["BASE"].where(out["BASE"] != 0) * 100).astype(float)
    out["ATOXGRL"] = _grade_text(context["ctcae_grade_low"])
    out["ATOXGRH"] = _grade_text(context["ctcae_grade_high"])
    out["ATOXDSCL"] = context["ctcae_term_low"].fillna("").astype(object)
    out["ATOXDSCH"] = context["ctcae_term_high"].fillna("").astype(object)
    out["BTOXGRL"] = _grade_text(joined["b_low"])
    out["BTOXGRH"] = _grade_text(joined["b_high"])
    shift = out["BNRIND"] + " to " + out["ANRIND"]
    out["SHIFT1"] = shift.where(after & (out["BNRIND"] != "") & (out["ANRIND"] != ""), "")
    out = out.sort_values(["USUBJID", "PARAMCD", "ADT"], kind="mergesort").reset_index(drop=True)
    return out[list(ADLB_COLUMNS)].astype(ADLB_COLUMNS)


def _study_day(adt: pd.Series, patient: pd.Series, patients: pd.DataFrame | None) -> pd.Series:
    """ADaM study day: ADT - first course day + 1 from the first course day on, else the
    (negative) difference; empty for a patient without courses."""
    first: dict[str, pd.Timestamp] = {}
    if patients is not None and "courses" in patients.columns:
        for pid, courses in zip(patients["patient_id"], patients["courses"], strict=True):
            if len(courses):
                first[str(pid)] = pd.Timestamp(min(courses)).normalize()
    start = pd.to_datetime(patient.astype(str).map(first)).astype("datetime64[ns]")
    days = (adt - start).dt.days
    return (days + (days >= 0).astype(int)).astype("Int64")


def shift_table(report: Report, term: str) -> pd.DataFrame:
    """Patients by baseline grade (rows: 0–4, then ``"Missing"`` for a patient whose baseline
    record has no grade) × worst post-baseline grade (columns, 0–4) of a CTCAE term, for the
    report's CTCAE version. ``term``: a term key or analyte (``"platelets"``), its CTCAE name
    (``"Platelet count decreased"``) or its PARAMCD (``"PLAT"``), any case; an unknown one is
    refused with the names accepted. Patients without a graded post-baseline result are not
    counted."""
    versions = report.results.get("ctcae_version")
    version = (
        str(versions.dropna().iloc[0]) if versions is not None and versions.notna().any() else None
    )
    table_of = report.packs.criteria(version)
    criterion = _term(table_of, term, report.packs)
    suffix = "L" if criterion.direction == "L" else "H"
    adlb = to_adlb(report)
    mine = adlb[adlb["PARAMCD"] == paramcd(criterion.analyte, report.packs)]
    grade = pd.to_numeric(mine[f"ATOXGR{suffix}"].replace("", np.nan), errors="coerce")
    base = pd.to_numeric(mine[f"BTOXGR{suffix}"].replace("", np.nan), errors="coerce")
    post = mine.assign(grade=grade, base=base)[mine["CHG"].notna() | mine["SHIFT1"].ne("")]
    post = post.dropna(subset=["grade"])
    worst = post.groupby("USUBJID").agg(base=("base", "first"), worst=("grade", "max"))
    levels: list[object] = [*range(5), "Missing"]
    rows = worst["base"].map(lambda g: "Missing" if pd.isna(g) else int(g))
    table = pd.crosstab(rows, worst["worst"].astype(int))
    table = table.reindex(index=levels, columns=list(range(5)), fill_value=0).astype("int64")
    table.index.name = f"baseline grade ({criterion.term}, CTCAE {table_of.version})"
    table.columns.name = "worst post-baseline grade"
    return table


def _term(table: Criteria, name: str, packs: Packs) -> Term:
    """The term a user names: its key, analyte, CTCAE name or PARAMCD, any case."""
    wanted = name.strip().casefold()
    for term in table.terms:
        names = (term.key, term.term, term.analyte, paramcd(term.analyte, packs))
        if wanted in {n.casefold() for n in names}:
            return term
    accepted = sorted({n for t in table.terms for n in (t.key, paramcd(t.analyte, packs))})
    raise CtcaeError(
        f"CTCAE {table.version} has no term {name!r}; name one by its key or PARAMCD "
        f"({', '.join(accepted)}) or its CTCAE name ({'; '.join(t.term for t in table.terms)})"
    )


def write_adlb(table: pd.DataFrame, path: str | Path) -> None:
    """Write an ADLB table as ``.csv`` (guarded against formula injection), ``.parquet``
    (``parquet`` extra) or ``.xpt`` (SAS transport v5, ``xpt`` extra: pyreadstat)."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix == ".csv":
        from lemlabs.formats.export import write_csv

        write_csv(table, target)
    elif suffix == ".parquet":
        try:
            table.to_parquet(target, index=False)
        except ImportError as error:
            raise MissingExtraError("writing Parquet", "parquet", "pyarrow") from error
    elif suffix == ".xpt":
        try:
            import pyreadstat
        except ImportError as error:
            raise MissingExtraError("writing SAS transport (.xpt)", "xpt", "pyreadstat") from error
        frame = table.copy()
        frame["ADY"] = frame["ADY"].astype(float)
        frame["ADT"] = frame["ADT"].dt.date
        pyreadstat.write_xport(
            frame,
            str(target),
            table_name="ADLB",
            file_format_version=5,
            variable_format={"ADT": "DATE9."},
        )
    else:
        raise OutputError(f"{target}: ADLB is written as .csv, .parquet or .xpt")
