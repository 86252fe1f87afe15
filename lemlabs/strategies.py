"""Hypothesis strategies for realistic alemtuzumab monitoring data (extra ``strategies``).

Use them to test code that embeds lemlabs::

    from hypothesis import given
    from lemlabs import strategies as ls

    @given(ls.histories(condition="itp"))
    def test_my_alerting(history):
        report = lemlabs.score_frame(history.labs(), history.patients())
        ...

Every strategy builds on small integers and sampled choices, so failures shrink to short,
readable examples (a few rows, round values, the first spelling).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

try:
    from hypothesis import strategies as st
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "lemlabs.strategies needs hypothesis: pip install 'lemlabs[strategies]'"
    ) from error

import pandas as pd

from lemlabs.packs import Packs, builtin_packs
from lemlabs.packs.analytes import Analyte
from lemlabs.packs.units import conversion

CONDITIONS = ("itp", "graves", "hypothyroidism", "anti_gbm")
"""What :func:`histories` can plant (scenarios of the built-in packs)."""


def name_spellings(analyte: Analyte) -> tuple[str, ...]:
    """The test names labs send for an analyte: its aliases (the first is the plainest), then
    its LOINC codes."""
    return (*analyte.aliases, *analyte.loinc)


def unit_spellings(analyte: Analyte) -> tuple[str, ...]:
    """The unit spellings labs send for an analyte (its ``units``; the canonical unit when it
    lists none)."""
    return analyte.units or (analyte.unit,)


def typical(analyte: Analyte) -> tuple[float, float]:
    """Where its values usually lie in the canonical unit: its ``typical`` range, else from a
    tenth of its reference interval's low end to ten times its high end, within what is
    plausible."""
    if analyte.typical is not None:
        return analyte.typical
    ref_low, ref_high = analyte.ref.low, analyte.ref.high
    high = 10 * ref_high if ref_high else 10 * (ref_low or 1.0)
    low = ref_low / 10 if ref_low else high / 1000
    if analyte.plausible is not None:
        low, high = max(low, analyte.plausible[0]), min(high, analyte.plausible[1])
    return low, high


GRADE_WORDS = {
    0.0: ("neg", "negative"),
    0.5: ("trace",),
    1.0: ("1+", "+", "small"),
    2.0: ("2+", "++", "moderate"),
    3.0: ("3+", "+++", "large"),
    4.0: ("4+", "++++"),
}
BAD_VALUES = ("see comment", "1,200", "ERR", "4.2.1", "", "--")
START = dt.date(2018, 1, 1)


@dataclass(frozen=True)
class LabValue:
    """A raw value and unit as a lab could send them, and the canonical value lemlabs reads."""

    value: str
    unit: str
    canonical: float


def _sig(value: float, digits: int = 6) -> str:
    return f"{value:.{digits}g}"


@st.composite
def lab_values(
    draw: st.DrawFn,
    analyte: str,
    units: Sequence[str] | None = None,
    within_reference: bool | None = None,
    censored: bool = False,
    packs: Packs | None = None,
) -> LabValue:
    """A value of ``analyte`` (of the built-in packs, or of ``packs``) in one of its accepted
    units (or of ``units``).

    ``within_reference``: True draws inside the default adult reference interval, False outside
    it, None anywhere typical. ``censored`` writes it as ``<x`` or ``>x``.
    """
    entry = (packs or builtin_packs()).catalogue[analyte]
    if entry.kind == "ordinal":
        grades = [g for g in GRADE_WORDS if g <= (entry.max_grade or 0)]
        if within_reference is not None:
            grades = [g for g in grades if (g <= (entry.ref.high or 0)) is within_reference]
        grade = draw(st.sampled_from(grades))
        return LabValue(draw(st.sampled_from(GRADE_WORDS[grade])), "", grade)
    low, high = typical(entry)
    ref_low = entry.ref.low if entry.ref.low is not None else low
    ref_high = entry.ref.high if entry.ref.high is not None else high
    if within_reference is True:  # strictly inside: a value on the edge may round across it
        low, high = ref_low + 0.01 * (ref_high - ref_low), ref_high - 0.01 * (ref_high - ref_low)
    steps = 1000
    fraction = draw(st.integers(0, steps)) / steps
    if within_reference is False:
        below = entry.ref.low is not None and draw(st.booleans())
        low, high = (low, ref_low * 0.95) if below else (ref_high * 1.05, high)
    canonical = float(_sig(low + fraction * (high - low), 4))
    if entry.kind == "count_per_hpf":
        canonical = float(round(canonical))
    unit = draw(st.sampled_from(list(units or unit_spellings(entry))))
    factor = conversion(entry, unit).factor if unit else 1.0
    assert factor is not None, (analyte, unit)
    raw = _sig(canonical / factor)
    if censored:
        sign = draw(st.sampled_from(["<", ">"]))
        return LabValue(sign + raw, unit, float(raw) * factor)
    return LabValue(raw, unit, float(raw) * factor)


def _messy(draw: st.DrawFn, text: str) -> str:
    """Case, spaces and decimal commas the way exports vary (never changing the meaning)."""
    if draw(st.booleans()):
        text = text.upper() if text.isascii() else text
    if draw(st.booleans()):
        text = f" {text} "
    return text


@st.composite
def lab_rows(
    draw: st.DrawFn,
    analytes: Sequence[str] | None = None,
    patient_id: str | None = None,
    messy: bool = True,
    invalid: bool = False,
    packs: Packs | None = None,
) -> dict[str, str]:
    """One raw lab row (the lab CSV columns) of an analyte of ``analytes`` (default: every
    analyte of the built-in packs, or of ``packs``). ``messy`` varies spellings (its aliases and
    LOINC codes), case, spacing and decimal commas; ``invalid`` spoils it the way exports get
    spoiled (a data issue, never a crash)."""
    book = (packs or builtin_packs()).catalogue
    analyte = draw(st.sampled_from(list(analytes or book)))
    entry = book[analyte]
    lab = draw(lab_values(analyte, packs=packs))
    spellings = name_spellings(entry)
    test = draw(st.sampled_from(spellings)) if messy else spellings[0]
    value = lab.value
    if messy and "." in value and "e" not in value and len(value.split(".")[1]) <= 2:
        value = value.replace(".", ",") if draw(st.booleans()) else value
    day = START + dt.timedelta(days=draw(st.integers(0, 6 * 365)))
    row = {
        "patient_id": patient_id or draw(st.sampled_from(["P1", "P2", "P3"])),
        "collected_at": day.isoformat(),
        "test": _messy(draw, test) if messy and not test[0].isdigit() else test,
        "value": _messy(draw, value) if messy else value,
        "unit": lab.unit,
    }
    if invalid:
        spoil = draw(st.sampled_from(["value", "unit", "collected_at", "patient_id"]))
        row[spoil] = {
            "value": draw(st.sampled_from(BAD_VALUES)),
            "unit": "furlongs" if entry.kind == "quantitative" else row["unit"],
            "collected_at": draw(st.sampled_from(["2021-02-30", "yesterday", "03/04/2021"])),
            "patient_id": "",
        }[spoil]
        if spoil == "unit" and entry.kind != "quantitative":
            row["value"] = draw(st.sampled_from(BAD_VALUES))
    return row


@st.composite
def patients(
    draw: st.DrawFn, patient_id: str | None = None, courses: tuple[int, int] = (1, 3)
) -> dict[str, str]:
    """A patient row: id, sex (F, M or unknown), birth date and course dates 12 months apart."""
    first = START + dt.timedelta(days=draw(st.integers(0, 365)))
    count = draw(st.integers(*courses))
    days = [
        first + dt.timedelta(days=365 * i + draw(st.integers(0, 20)) * (i > 0))
        for i in range(count)
    ]
    return {
        "patient_id": patient_id or f"P{draw(st.integers(1, 999))}",
        "sex": draw(st.sampled_from(["F", "M", ""])),
        "birth_date": (first - dt.timedelta(days=365 * draw(st.integers(18, 60)))).isoformat(),
        "course_dates": ";".join(d.isoformat() for d in days),
    }


@dataclass(frozen=True)
class History:
    """One patient's monitoring history: the patient row and the lab rows."""

    patient: dict[str, str]
    rows: tuple[dict[str, str], ...]
    condition: str | None = None
    onset: dt.date | None = None

    def labs(self) -> pd.DataFrame:
        """The lab rows as a DataFrame (the public lab CSV columns)."""
        return pd.DataFrame(
            list(self.rows), columns=["patient_id", "collected_at", "test", "value", "unit"]
        )

    def patients(self) -> pd.DataFrame:
        """The patient row as a one-row DataFrame."""
        return pd.DataFrame([self.patient])


def _canonical_row(
    patient_id: str, day: dt.date, analyte: str, canonical: float, unit_index: int
) -> dict[str, str]:
    entry = builtin_packs().catalogue[analyte]
    if entry.kind == "ordinal":
        return {
            "patient_id": patient_id,
            "collected_at": day.isoformat(),
            "test": name_spellings(entry)[0],
            "value": GRADE_WORDS[canonical][0],
            "unit": "",
        }
    spellings = unit_spellings(entry)
    unit = spellings[unit_index % len(spellings)]
    factor = conversion(entry, unit).factor if unit else 1.0
    assert factor is not None
    return {
        "patient_id": patient_id,
        "collected_at": day.isoformat(),
        "test": name_spellings(entry)[0],
        "value": _sig(canonical / factor, 8),
        "unit": unit,
    }


def histories(
    months: tuple[int, int] = (6, 60),
    condition: str | None = None,
    mixed_units: bool = True,
    patient_id: str | None = None,
) -> st.SearchStrategy[History]:
    """Monthly platelets, creatinine and urinalysis and 3-monthly TSH from a pre-treatment visit
    on, stable and inside the reference intervals, following the label's schedule.

    ``condition`` plants a pattern at a drawn month: ``"itp"`` (platelets falling below
    50 ×10⁹/L), ``"graves"`` (TSH < 0.1 with free T4 above range), ``"hypothyroidism"`` (TSH ≥ 10
    with free T4 below range) or ``"anti_gbm"`` (haematuria, then proteinuria and creatinine
    ≥ 1.5 × baseline). ``mixed_units`` lets each visit come in another accepted unit.
    """
    if condition is not None and condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {CONDITIONS}, not {condition!r}")
    return _histories(months, condition, mixed_units, patient_id)


@st.composite
def _histories(
    draw: st.DrawFn,
    months: tuple[int, int],
    condition: str | None,
    mixed_units: bool,
    patient_id: str | None,
) -> History:
    patient = draw(patients(patient_id=patient_id, courses=(1, 2)))
    pid = patient["patient_id"]
    first = dt.date.fromisoformat(patient["course_dates"].split(";")[0])
    count = draw(st.integers(*months))
    onset = None
    if condition:  # the planted pattern needs three visits from its onset
        count = max(count, 3)
        onset = draw(st.integers(1, count - 2))
    platelets = float(draw(st.integers(200, 350)))
    creatinine = float(draw(st.integers(60, 80)))
    tsh = draw(st.sampled_from([0.8, 1.2, 1.6, 2.0, 2.5]))
    rows: list[dict[str, str]] = []
    for month in range(count + 1):
        day = first + dt.timedelta(days=-7 if month == 0 else 30 * month)
        unit_index = draw(st.integers(0, 7)) if mixed_units else 0
        since = month - onset if onset is not None else -1
        values = {
            "platelets": platelets * draw(st.sampled_from([0.95, 1.0, 1.05])),
            "creatinine": creatinine * draw(st.sampled_from([0.97, 1.0, 1.03])),
            "urine_blood": 0.0,
            "urine_protein": draw(st.sampled_from([0.0, 0.5])),
        }
        if month % 3 == 0:
            values["tsh"] = tsh
        if condition == "itp" and since >= 0:
            values["platelets"] = [90.0, 45.0, 20.0][min(since, 2)]
        if condition == "anti_gbm" and since >= 0:
            values["urine_blood"] = 2.0
            if since >= 1:
                values["urine_protein"] = 2.0
                values["creatinine"] = creatinine * 1.8
        if condition in ("graves", "hypothyroidism") and since in (0, 1):
            values["tsh"] = 0.03 if condition == "graves" else 14.0
            values["free_t4"] = 35.0 if condition == "graves" else 8.0
        for analyte, canonical in values.items():
            rows.append(_canonical_row(pid, day, analyte, canonical, unit_index))
    onset_day = first + dt.timedelta(days=30 * onset) if onset is not None else None
    return History(patient, tuple(rows), condition, onset_day)


@dataclass(frozen=True)
class Cohort:
    """Several histories as the two public tables."""

    labs: pd.DataFrame
    patients: pd.DataFrame
    histories: tuple[History, ...]


@st.composite
def cohorts(
    draw: st.DrawFn,
    size: tuple[int, int] = (1, 6),
    months: tuple[int, int] = (3, 24),
    conditions: Sequence[str | None] = (None, *CONDITIONS),
) -> Cohort:
    """A cohort of ``size`` patients, each healthy or with one planted condition."""
    count = draw(st.integers(*size))
    people = [
        draw(
            histories(
                months=months,
                condition=draw(st.sampled_from(list(conditions))),
                patient_id=f"P{i + 1:03d}",
            )
        )
        for i in range(count)
    ]
    labs = pd.concat([h.labs() for h in people], ignore_index=True)
    return Cohort(labs, pd.concat([h.patients() for h in people], ignore_index=True), tuple(people))


__all__ = [
    "CONDITIONS",
    "Cohort",
    "History",
    "LabValue",
    "cohorts",
    "histories",
    "lab_rows",
    "lab_values",
    "name_spellings",
    "patients",
    "typical",
    "unit_spellings",
]
