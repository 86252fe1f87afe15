"""ADaM ADLB-style output: one row per scored result (``Report.to_adlb()``), and the shift table
of baseline grade × worst post-baseline grade (``Report.shift_table(term)``).

The variables, their labels, types and derivations are one specification table,
``lemlabs/formats/specs/adlb.csv`` (:data:`ADLB_SPEC`): the columns, their order and dtypes, and
the labels of the SAS transport file all come from it.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lemlabs.ctcae import Criteria, CtcaeError, Term
from lemlabs.errors import MissingExtraError, OutputError
from lemlabs.formats.sdtm import DM_ARMS
from lemlabs.packs import Packs
from lemlabs.packs.units import conversion
from lemlabs.stages.context import add_context, course_table
from lemlabs.vocabulary import UNITLESS

if TYPE_CHECKING:
    from lemlabs.pipeline import Report


@dataclass(frozen=True, slots=True)
class Variable:
    """One ADLB variable of the specification: its name, ADaM label, type and derivation."""

    name: str
    label: str
    type: str  # text, integer, number or date
    derivation: str


_DTYPES = {"text": "object", "integer": "Int64", "number": "float64", "date": "datetime64[ns]"}


def _spec() -> tuple[Variable, ...]:
    text = resources.files("lemlabs").joinpath("formats/specs/adlb.csv").read_text("utf-8")
    return tuple(Variable(**row) for row in csv.DictReader(text.splitlines()))


ADLB_SPEC = _spec()
"""The ADLB variables in order (``lemlabs/formats/specs/adlb.csv``)."""
ADLB_COLUMNS = {variable.name: _DTYPES[variable.type] for variable in ADLB_SPEC}
"""The ADLB columns and their dtypes (text columns hold ``""`` where empty)."""
ADLB_LABEL = "Lab Analysis Dataset"
"""The dataset label of the SAS transport file."""

_RANGE = {"L": "LOW", "H": "HIGH", "N": "NORMAL"}


def paramcd(analyte: str, packs: Packs) -> str:
    """The SDTM/ADaM code of an analyte (``platelets`` → ``PLAT``): its first SDTM code, else
    its key in capitals (8 characters at most)."""
    entry = packs.catalogue.get(analyte)
    return entry.sdtm[0].code if entry is not None and entry.sdtm else analyte.upper()[:8]


def _grade_number(grades: pd.Series) -> pd.Series:
    """Grade texts ("0"-"4", "" for none) as numbers (NaN for none)."""
    return pd.to_numeric(grades.where(grades != ""), errors="coerce")


def _grade_text(grades: pd.Series) -> pd.Series:
    return grades.astype("Int64").astype(object).map(lambda g: "" if pd.isna(g) else str(g))


def _text(context: pd.DataFrame, column: str) -> pd.Series:
    """An input column carried into the results as text (``""`` where missing or absent)."""
    if column not in context.columns:
        return pd.Series("", index=context.index, dtype=object)
    values = context[column]
    return values.astype(object).where(values.notna(), "").astype(str).str.strip()


def _standard(context: pd.DataFrame, packs: Packs) -> pd.DataFrame:
    """Per record, the unit and value of ADLB's AVAL: the input's standard unit (SDTM
    ``LBSTRESU``) where it is a unit of the analyte's dimension, with the standard result
    (``LBSTRESN``), or lemlabs' value converted to it where that is empty; else lemlabs'
    canonical unit and value. ``factor``: canonical unit → AVALU; ``used``: the standard unit
    taken. A censored result (``<0.2``) has no value: its text is AVALC."""
    canonical = context["value"].astype(float)
    out = pd.DataFrame(
        {"value": canonical, "unit": context["unit"].astype(str), "factor": 1.0, "used": False},
        index=context.index,
    )
    if "LBSTRESU" in context.columns:
        unit = _text(context, "LBSTRESU")
        factors: dict[tuple[str, str], float] = {}
        for analyte, given in set(zip(context["analyte"], unit, strict=True)):
            entry = packs.catalogue.get(analyte)
            if entry is None or entry.kind != "quantitative" or not given:
                continue
            found = conversion(entry, given)
            if found.factor is not None:
                factors[(analyte, given)] = 1 / found.factor
        keys = zip(context["analyte"], unit, strict=True)
        factor = pd.Series([factors.get(key, np.nan) for key in keys], index=context.index)
        used = factor.notna()
        given_value = _number(context, "LBSTRESN")
        out["value"] = given_value.where(used & given_value.notna(), canonical * factor)
        out["value"] = out["value"].where(used, canonical)
        out["unit"] = unit.where(used, out["unit"])
        out["factor"] = factor.where(used, 1.0)
        out["used"] = used
    converted = ~out["used"] & (context["raw_unit"].astype(str) != out["unit"])
    digits = _text(context, "raw_value").map(significant_digits)
    out["value"] = out["value"].where(~converted, round_significant(out["value"], digits))
    censored = _text(context, "censor") != ""
    bound = [
        f"{sign}{value:.4g}"
        for sign, value in zip(_text(context, "censor"), out["value"], strict=True)
    ]
    text = _text(context, "LBSTRESC").where(
        lambda given: given != "", pd.Series(bound, index=context.index)
    )
    out["text"] = text.where(censored, "")
    out["value"] = out["value"].where(~censored)
    return out


_NUMBER = re.compile(r"^[<>=≤≥\s]*[+-]?(\d*)[.,]?(\d*)(?:[eE][+-]?\d+)?\s*$")


def significant_digits(text: str) -> float:
    """The significant digits of a number as the lab wrote it (``"0.90"`` → 2, ``"250"`` → 3,
    ``"1,9"`` → 2, ``"<0.2"`` → 1); NaN for a text that is not a plain number."""
    found = _NUMBER.match(text)
    if found is None or not (found[1] or found[2]):
        return math.nan
    digits = (found[1] + found[2]).lstrip("0")
    return float(len(digits)) if digits else 1.0


def round_significant(values: pd.Series, digits: pd.Series) -> pd.Series:
    """``values`` rounded to ``digits`` significant digits each (unchanged where NaN)."""
    number = values.to_numpy(dtype=float)
    keep = digits.to_numpy(dtype=float)
    usable = np.isfinite(number) & np.isfinite(keep) & (number != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(usable, keep - 1 - np.floor(np.log10(np.abs(number))), 0)
        factor = 10.0**scale
        rounded = np.where(usable, np.round(number * factor) / factor, number)
    return pd.Series(rounded, index=values.index)


def _by_patient(patients: pd.DataFrame, column: str) -> pd.Series:
    """A patients column as text (``""`` where missing), indexed by patient id (the first row
    of a patient listed twice)."""
    values = _text(patients, column).set_axis(patients["patient_id"].astype(str))
    return values[~values.index.duplicated()]


def _patient_text(patients: pd.DataFrame | None, column: str, ids: pd.Series) -> pd.Series:
    """Each record's patient's value of a patients column (``""`` where missing or absent)."""
    if patients is None or column not in patients.columns:
        return pd.Series("", index=ids.index, dtype=object)
    return ids.map(_by_patient(patients, column)).fillna("").astype(object)


def _number(context: pd.DataFrame, column: str) -> pd.Series:
    """An input column carried into the results as a number (NaN where missing or absent)."""
    if column not in context.columns:
        return pd.Series(np.nan, index=context.index)
    return pd.to_numeric(context[column], errors="coerce").astype(float)


def signed_grade(
    low: pd.Series, high: pd.Series, low_term: pd.Series, high_term: pd.Series
) -> pd.Series:
    """ATOXGR from the grades of each direction ("0"-"4" or ""), as admiral's
    ``derive_var_atoxgr``: ``-`` and the low grade when it is 1-4, else the high grade when it
    is 1-4, else "0" when each direction that has a term is graded "0", else ""."""
    graded = {"1", "2", "3", "4"}
    low_zero = (low == "0") | ((low_term == "") & (low == ""))
    high_zero = (high == "0") | ((high_term == "") & (high == ""))
    normal = (low_zero & (high == "0")) | (high_zero & (low == "0"))
    signed = np.select(
        [low.isin(graded), high.isin(graded), normal],
        ["-" + low, high, "0"],
        default="",
    )
    return pd.Series(signed, index=low.index, dtype=object)


def to_adlb(report: Report) -> pd.DataFrame:
    """One row per scored result with ADaM ADLB variables (:data:`ADLB_SPEC`)."""
    results = report.results[report.results["status"] == "scored"]
    packs = report.packs
    context = add_context(results, report.patients, packs.defaults, packs.book)
    if context.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in ADLB_COLUMNS.items()})
    out = pd.DataFrame(index=context.index)
    out["STUDYID"] = _text(context, "STUDYID")
    out["USUBJID"] = context["patient_id"].astype(str)
    for name in DM_ARMS:
        out[name] = _patient_text(report.patients, name, out["USUBJID"])
    out["LBSEQ"] = _number(context, "LBSEQ").round().astype("Int64")
    out["SRCSEQ"] = out["LBSEQ"]
    out["SRCDOM"] = np.where(out["SRCSEQ"].notna(), "LB", "")
    out["PARAMCD"] = context["analyte"].map(lambda analyte: paramcd(analyte, packs))
    standard = _standard(context, packs)
    out["AVALU"] = standard["unit"].replace(UNITLESS, "")  # a ratio without a unit: the INR
    out["PARAM"] = [
        f"{packs.label(a)} ({u})" if u else packs.label(a)
        for a, u in zip(context["analyte"], out["AVALU"], strict=True)
    ]
    order = {analyte: number for number, analyte in enumerate(packs.catalogue, start=1)}
    out["PARAMN"] = context["analyte"].map(order).astype("Int64")
    out["AVISIT"] = _text(context, "VISIT")
    out["AVISITN"] = _number(context, "VISITNUM")
    out["ADT"] = context["collected_at"].dt.normalize().astype("datetime64[ns]")
    courses = course_table(report.patients, packs.defaults).groupby("patient_id")
    first = _per_record(courses["start"].min(), out["USUBJID"])
    out["ADY"] = _study_day(out["ADT"], first)
    out["AVAL"] = standard["value"]
    out["AVALC"] = standard["text"]
    for name, lemlabs_name, sdtm_name in (
        ("ANRLO", "ref_low", "LBSTNRLO"),
        ("ANRHI", "ref_high", "LBSTNRHI"),
    ):
        applied = pd.to_numeric(context[lemlabs_name], errors="coerce").astype(float)
        out[name] = (
            _number(context, sdtm_name).where(standard["used"]).fillna(applied * standard["factor"])
        )
    out["ANRIND"] = context["flag"].map(_RANGE).fillna("")
    out["ATOXGRL"] = _grade_text(context["ctcae_grade_low"])
    out["ATOXGRH"] = _grade_text(context["ctcae_grade_high"])
    out["ATOXDSCL"] = context["ctcae_term_low"].fillna("").astype(object)
    out["ATOXDSCH"] = context["ctcae_term_high"].fillna("").astype(object)
    out["ATOXGR"] = signed_grade(out["ATOXGRL"], out["ATOXGRH"], out["ATOXDSCL"], out["ATOXDSCH"])
    # the baseline record: the patient's result of the analyte at the baseline date and value,
    # not after the first course day (ADaM's baseline is before treatment: a patient whose
    # results all follow it has none; lemlabs' own rules then take the first on record)
    pre_treatment = first.isna() | (context["baseline_date"].dt.normalize() <= first)
    at_base = (
        (context["collected_at"] == context["baseline_date"])
        & (context["value"] == context["baseline"])
        & pre_treatment
    )
    keys = ["patient_id", "analyte"]
    base_rows = context[at_base].drop_duplicates(keys, keep="last")
    ablfl = pd.Series("", index=context.index, dtype=object)
    ablfl[base_rows.index] = "Y"
    out["ABLFL"] = ablfl
    base = pd.DataFrame(
        {
            **{key: base_rows[key] for key in keys},
            "BNRIND": out.loc[base_rows.index, "ANRIND"],
            "b_aval": out.loc[base_rows.index, "AVAL"],
            "b_avalu": out.loc[base_rows.index, "AVALU"],
            **{
                f"B{name}": out.loc[base_rows.index, f"A{name}"]
                for name in ("TOXGRL", "TOXGRH", "TOXGR")
            },
        }
    )
    joined = context[keys].merge(base, on=keys, how="left").set_index(context.index)
    for name in ("BNRIND", "BTOXGRL", "BTOXGRH", "BTOXGR"):
        out[name] = joined[name].fillna("").astype(object)
    # BASE is the baseline record's AVAL; where that record is in another unit, lemlabs'
    # baseline converted to this record's unit; empty without a baseline record
    same_unit = joined["b_avalu"] == out["AVALU"]
    converted = (context["baseline"].astype(float) * standard["factor"]).where(
        joined["b_avalu"].notna()
    )
    out["BASE"] = joined["b_aval"].astype(float).where(same_unit, converted)
    after = (context["collected_at"] > context["baseline_date"]) & (ablfl != "Y")
    change = (out["AVAL"] - out["BASE"]).where(after)
    out["CHG"] = change.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["PCHG"] = (change / out["BASE"].where(out["BASE"] != 0) * 100).astype(float)
    shift = out["BNRIND"] + " to " + out["ANRIND"]
    out["SHIFT1"] = shift.where(after & (out["BNRIND"] != "") & (out["ANRIND"] != ""), "")
    out["BASETYPE"] = "LAST"
    until = _per_record(courses["window_end"].max().dt.normalize(), out["USUBJID"])
    on_treatment = (out["ADT"] >= first) & (out["ADT"] <= until) & (out["ABLFL"] != "Y")
    out["ONTRTFL"] = np.where(on_treatment, "Y", "")
    out = out.sort_values(["USUBJID", "PARAMCD", "ADT"], kind="mergesort").reset_index(drop=True)
    out["ASEQ"] = (out.groupby("USUBJID", sort=False).cumcount() + 1).astype("Int64")
    on = out["ONTRTFL"] == "Y"
    out["ANL01FL"] = _last_flag(out, on & (out["AVISIT"] != ""), ["AVISIT"], ["ADT", "AVAL"])
    out["LVOTFL"] = _last_flag(out, on, [], ["ADT", "AVAL"])
    for flag, direction in (("WGRLOFL", "L"), ("WGRHIFL", "H")):
        grade = _grade_number(out[f"ATOXGR{direction}"])
        out[flag] = _last_flag(out.assign(grade=grade), on & grade.notna(), [], ["grade", "ADT"])
    return out[list(ADLB_COLUMNS)].astype(ADLB_COLUMNS)


def _last_flag(
    adlb: pd.DataFrame, eligible: pd.Series, by: list[str], order: list[str]
) -> pd.Series:
    """ "Y" on the last eligible record of each USUBJID, PARAMCD (and ``by``) in ``order``
    (admiral's ``derive_var_extreme_flag(mode = "last")``), else ""."""
    flag = pd.Series("", index=adlb.index, dtype=object)
    chosen = adlb[eligible].sort_values(order, kind="mergesort")
    last = chosen.drop_duplicates(["USUBJID", "PARAMCD", *by], keep="last").index
    flag[last] = "Y"
    return flag


def _per_record(per_patient: pd.Series, ids: pd.Series) -> pd.Series:
    """A value per patient id (a day of the course table) for each record's patient (NaT for
    a patient without courses)."""
    return pd.Series(per_patient.reindex(ids).to_numpy(), index=ids.index)


def _study_day(adt: pd.Series, first: pd.Series) -> pd.Series:
    """ADaM study day: ADT - first course day + 1 from the first course day on, else the
    (negative) difference; empty for a patient without courses."""
    days = (adt - first).dt.days
    return (days + (days >= 0).astype(int)).astype("Int64")


SHIFT_LEVELS: tuple[object, ...] = (0, 1, 2, 3, 4, "Missing")
"""The baseline grades of a shift table's rows; its columns are the worst grades 0-4."""


def shift_table(
    report: Report,
    term: str,
    by: str | None = None,
    direction: str | None = None,
    form: str = "wide",
) -> pd.DataFrame:
    """Patients by baseline grade (0-4, then ``"Missing"`` for a patient whose baseline record
    has no grade) × worst post-baseline grade (0-4) of a CTCAE term, for the report's CTCAE
    version. Patients without a graded post-baseline result are not counted.

    ``term``: a term key or analyte (``"platelets"``), its CTCAE name or its PARAMCD
    (``"PLAT"``), any case; an unknown one is refused with the names accepted; ``direction``
    (``"low"``/``"high"``) picks one where an analyte has a term in each. ``by``: a patients
    column (the arm: DM's ``ACTARM``), its values split the counts (an empty value is
    ``"Missing"``). ``form="wide"``: counts, baseline grades as rows, worst grades as columns
    (under each group's name with ``by``); ``form="long"``: one row per group, baseline level
    and worst grade, totals included (``"Total"``), with ``n``, ``N`` (the group's patients in
    the table) and ``percent`` (``n`` / ``N`` × 100)."""
    if form not in ("wide", "long"):
        raise OutputError(f"form must be 'wide' or 'long', not {form!r}")
    versions = report.results.get("ctcae_version")
    version = (
        str(versions.dropna().iloc[0]) if versions is not None and versions.notna().any() else None
    )
    table_of = report.packs.criteria(version)
    criterion = _term(table_of, term, report.packs, direction)
    suffix = "L" if criterion.direction == "L" else "H"
    adlb = to_adlb(report)
    mine = adlb[adlb["PARAMCD"] == paramcd(criterion.analyte, report.packs)]
    grade = _grade_number(mine[f"ATOXGR{suffix}"])
    base = _grade_number(mine[f"BTOXGR{suffix}"])
    post = mine.assign(grade=grade, base=base)[mine["CHG"].notna() | mine["SHIFT1"].ne("")]
    post = post.dropna(subset=["grade"])
    worst = post.groupby("USUBJID").agg(base=("base", "first"), worst=("grade", "max"))
    worst["base"] = worst["base"].map(lambda g: "Missing" if pd.isna(g) else int(g))
    worst["worst"] = worst["worst"].astype(int)
    groups = _groups(report, by, worst.index)
    worst["group"] = groups.reindex(worst.index).to_numpy() if by is not None else ""
    name = f"{criterion.term}, CTCAE {table_of.version}"
    if form == "long":
        return _long(worst, [*groups.unique()] if by is not None else [""], by)
    if by is None:
        table = pd.crosstab(worst["base"], worst["worst"])
        table = table.reindex(index=list(SHIFT_LEVELS), columns=list(range(5)), fill_value=0)
        table.columns.name = "worst post-baseline grade"
    else:
        columns = pd.MultiIndex.from_product(
            [sorted(set(groups)), range(5)], names=[by, "worst post-baseline grade"]
        )
        table = pd.crosstab(worst["base"], [worst["group"], worst["worst"]])
        table = table.reindex(index=list(SHIFT_LEVELS), columns=columns, fill_value=0)
    table = table.astype("int64")
    table.index.name = f"baseline grade ({name})"
    return table


def _groups(report: Report, by: str | None, counted: pd.Index) -> pd.Series:
    """Each patient's value of the patients column ``by`` (``"Missing"`` where empty),
    indexed by patient id; refused by name when the column is not there."""
    if by is None:
        return pd.Series("", index=counted, dtype=object)
    patients = report.patients
    if patients is None or by not in patients.columns:
        have = [] if patients is None else [str(c) for c in patients.columns]
        raise OutputError(
            f"shift_table(by={by!r}): the patients table has no column {by!r} "
            f"(it has: {', '.join(have) or 'no patients table'})"
        )
    groups = _by_patient(patients, by).replace("", "Missing")
    missing = counted.difference(groups.index)
    found: pd.Series = pd.concat([groups, pd.Series("Missing", index=missing, dtype=object)])
    return found


def _long(worst: pd.DataFrame, groups: list[object], by: str | None) -> pd.DataFrame:
    """The tidy shift table: every group × baseline level (and Total) × worst grade (and
    Total), with n, N and percent of N."""
    rows = []
    baselines: list[object] = [*SHIFT_LEVELS, "Total"]
    worsts: list[object] = [*range(5), "Total"]
    for group in sorted(set(groups), key=str):
        mine = worst[worst["group"] == group]
        total = len(mine)
        for level in baselines:
            at = mine if level == "Total" else mine[mine["base"] == level]
            for grade in worsts:
                n = len(at) if grade == "Total" else int((at["worst"] == grade).sum())
                rows.append(
                    {
                        **({by: group} if by is not None else {}),
                        "baseline": level,
                        "worst": grade,
                        "n": n,
                        "N": total,
                        "percent": n / total * 100 if total else np.nan,
                    }
                )
    out = pd.DataFrame(rows)
    return out.astype({"n": "int64", "N": "int64", "percent": "float64"})


def _term(table: Criteria, name: str, packs: Packs, direction: str | None = None) -> Term:
    """The term a user names: its key, analyte, CTCAE name or PARAMCD, any case; ``direction``
    ("low"/"high") chooses where the name fits a term in each direction."""
    wanted = name.strip().casefold()
    found = [
        term
        for term in table.terms
        if wanted
        in {n.casefold() for n in (term.key, term.term, term.analyte, paramcd(term.analyte, packs))}
    ]
    if direction is not None:
        if direction.casefold() not in ("low", "high"):
            raise CtcaeError(f"direction must be 'low' or 'high', not {direction!r}")
        found = [t for t in found if t.direction == direction[0].upper()]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise CtcaeError(
            f"CTCAE {table.version}: {name!r} has a term in each direction "
            f"({'; '.join(t.term for t in found)}); choose one with direction='low' or 'high'"
        )
    accepted = sorted({n for t in table.terms for n in (t.key, paramcd(t.analyte, packs))})
    raise CtcaeError(
        f"CTCAE {table.version} has no term {name!r}"
        f"{f' in the {direction} direction' if direction else ''}; name one by its key or "
        f"PARAMCD ({', '.join(accepted)}) or its CTCAE name "
        f"({'; '.join(t.term for t in table.terms)})"
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
        for name in frame.columns[frame.dtypes == "Int64"]:  # transport numbers are doubles
            frame[name] = frame[name].astype(float)
        frame["ADT"] = frame["ADT"].dt.date
        labels = {variable.name: variable.label for variable in ADLB_SPEC}
        pyreadstat.write_xport(
            frame,
            str(target),
            file_label=ADLB_LABEL,
            column_labels=[labels.get(str(name), "") for name in frame.columns],
            table_name="ADLB",
            file_format_version=5,
            variable_format={"ADT": "DATE9."},
        )
    else:
        raise OutputError(f"{target}: ADLB is written as .csv, .parquet or .xpt")
