"""A seeded synthetic cohort of alemtuzumab-treated patients, in the shapes labs send.

Used for the bundled example data (``lemlabs/examples``) and for the benchmarks. Each patient has
two courses 12 months apart, monthly platelets, creatinine and urinalysis and 3-monthly TSH (free T4
whenever TSH is abnormal) until 48 months after the last infusion, from one of three labs that
spell names, units and numbers differently. Some visits are missed and a few rows are corrupted.
Planted conditions (``conditions`` table): Graves' hyperthyroidism, hypothyroidism, ITP with a
slow decline or an abrupt fall, infusion-associated thrombocytopenia and anti-GBM disease; and,
in a monthly liver panel appended after the other rows (ALT, AST, alkaline phosphatase, total
bilirubin), autoimmune hepatitis and Gilbert's syndrome.
Every value is synthetic; no real patient is described.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

CONDITIONS = (
    "autoimmune_hepatitis",
    "gilbert",
    "autoimmune_neutropenia",
    "autoimmune_haemolytic_anaemia",
    "graves",
    "hypothyroidism",
    "itp_slow",
    "itp_abrupt",
    "infusion_thrombocytopenia",
    "anti_gbm",
    "healthy",
)
# Share of a cohort planted with each condition (the rest is healthy); at least one patient each.
_SHARES = {
    "graves": 0.06,
    "hypothyroidism": 0.04,
    "itp_slow": 0.015,
    "itp_abrupt": 0.015,
    "infusion_thrombocytopenia": 0.03,
    "anti_gbm": 0.005,
}
_BAD_VALUES = ("ERR", "see comment", "1,200")


@dataclass(frozen=True)
class Cohort:
    """A generated cohort: lab rows, patients, and the planted condition of each patient."""

    labs: pd.DataFrame
    patients: pd.DataFrame
    conditions: pd.DataFrame


def _assign(n: int) -> np.ndarray:
    labels = []
    for name, share in _SHARES.items():
        labels += [name] * max(1, round(share * n))
    labels += ["healthy"] * max(0, n - len(labels))
    return np.array(labels[:n], dtype=object)


def generate(
    patients: int = 200,
    months: int = 62,
    seed: int = 20261126,
    bad_rows: float = 0.003,
    first_id: int = 1,
    variation: bool = False,
    abnormal: float = 0.0,
) -> Cohort:
    """Generate ``patients`` histories of ``months`` monthly visits (visit 0 is pre-treatment);
    patient ids count from ``first_id`` (to build a large cohort in chunks).

    The defaults give the bundled example (healthy patients stay in range: about 0.4 % of its
    results are abnormal, lymphocytes and white cells excepted: alemtuzumab lowers them on
    purpose, for months after each course). ``variation`` adds within-person biological
    variation and assay imprecision (:data:`VARIATION`); ``abnormal`` replaces that share of the
    scored results with spurious values outside the reference interval, as noisy real exports
    have them.
    """
    rng = np.random.default_rng(seed)
    n, m = patients, months
    ids = np.array([f"LEM-{first_id + i:04d}" for i in range(n)], dtype=object)
    condition = _assign(n)
    sex = np.where(rng.random(n) < 0.68, "F", "M")
    birth = pd.to_datetime("1970-01-01") + pd.to_timedelta(rng.integers(0, 25 * 365, n), unit="D")
    course1 = pd.to_datetime("2016-01-04") + pd.to_timedelta(rng.integers(0, 4 * 365, n), unit="D")
    course2 = course1 + pd.to_timedelta(365 + rng.integers(0, 21, n), unit="D")
    lab = np.arange(n) % 3
    onset = rng.integers(14, 40, n)

    month = np.arange(m)[None, :].repeat(n, axis=0)
    offset = np.where(month == 0, -20, 14 + (month - 1) * 30.44 + rng.integers(-3, 4, (n, m)))
    dates = course1.to_numpy()[:, None] + (offset.astype(int) * np.timedelta64(1, "D"))
    since2 = (dates - course2.to_numpy()[:, None]) / np.timedelta64(1, "D")
    since = month - onset[:, None]
    is_ = {name: (condition == name)[:, None] for name in CONDITIONS}

    plt_base = np.clip(rng.normal(250, 40, n), 175, 380)[:, None]
    plt = plt_base * (1 + rng.normal(0, 0.05, (n, m)))
    early = (month == 1) | ((since2 >= 0) & (since2 < 40))
    plt = np.where(is_["infusion_thrombocytopenia"] & early, rng.normal(95, 12, (n, m)), plt)
    slow = np.clip(1 - 0.22 * since, 0.12, 1)
    plt = np.where(is_["itp_slow"] & (since >= 0) & (since < 6), plt_base * slow, plt)
    plt = np.where(is_["itp_slow"] & (since >= 6), plt_base * 0.8, plt)
    abrupt = np.select([since == 0, since == 1], [12.0, 60.0], plt_base * 0.85)
    plt = np.where(is_["itp_abrupt"] & (since >= 0), abrupt, plt)

    creat_base = np.where(sex == "F", rng.normal(66, 6, n), rng.normal(84, 7, n))[:, None]
    creat = creat_base * (1 + rng.normal(0, 0.03, (n, m)))
    gbm = is_["anti_gbm"]
    # haematuria first, then proteinuria and a rising creatinine; treated from month 4 on
    rise = np.select([since == 1, since == 2, since == 3, since >= 4], [1.6, 2.4, 3.5, 2.0], 1.0)
    creat = np.where(gbm, creat * rise, creat)
    haem = gbm & (since >= 0) & (since < 4)
    protein = gbm & (since >= 1) & (since < 4)

    tsh = np.exp(rng.normal(np.log(1.6), 0.3, (n, m)))
    tsh = np.clip(tsh, 0.6, 3.6)
    ft4 = rng.normal(16, 1.5, (n, m))
    graves = is_["graves"] & (since >= 0) & (since < 8)
    hypo = is_["hypothyroidism"] & (since >= 0) & (since < 6)
    tsh = np.where(graves, rng.uniform(0.005, 0.05, (n, m)), tsh)
    ft4 = np.where(graves, rng.normal(36, 4, (n, m)), ft4)
    tsh = np.where(hypo, rng.normal(14, 2.5, (n, m)), tsh)
    ft4 = np.where(hypo, rng.normal(9.5, 0.8, (n, m)), ft4)
    thyroid_episode = graves | hypo
    tsh_due = (month % 3 == 0) | thyroid_episode

    attended = rng.random((n, m)) > 0.05
    attended[:, 0] = True
    frames = []
    base = {
        "patient_id": ids[:, None].repeat(m, 1),
        "date": dates,
        "lab": lab[:, None].repeat(m, 1),
    }

    def add(analyte: str, values: np.ndarray, mask: np.ndarray) -> None:
        frames.append(_visit_rows(base, attended & mask, analyte, values))

    everywhere = np.ones((n, m), dtype=bool)
    add("platelets", plt, everywhere)
    add("creatinine", creat, everywhere)
    # the draw haemoglobin once took from this stream, so that the rows after it stay as they were
    rng.normal(13.5, 1.0, (n, m))
    # the liver and blood count conditions, each planted from a stream of its own (the liver's
    # first, as before the blood count was added; no patient gets both)
    liver_rng = np.random.default_rng([seed, 2])
    hepatitis = _plant(condition, liver_rng, _LIVER_SHARES)
    blood_rng = np.random.default_rng([seed, 4])
    cytopenia = _plant(condition, blood_rng, _BLOOD_SHARES, eligible=(lab == 0) & (hepatitis == ""))
    # the blood count: haemoglobin here (lab A's rows, in g/dL); white cells, neutrophils and
    # lymphocytes appended after the rest, as the liver panel is
    courses = np.stack([course1.to_numpy(), course2.to_numpy()], axis=1)
    blood = _blood_count(month, onset, cytopenia, sex, dates, courses, blood_rng)
    add("haemoglobin", blood.pop("haemoglobin") / 10, everywhere)
    add(
        "haematuria", np.where(haem, 2.0, np.where(rng.random((n, m)) < 0.08, 0.5, 0.0)), everywhere
    )
    add(
        "proteinuria",
        np.where(protein, 2.0, np.where(rng.random((n, m)) < 0.05, 0.5, 0.0)),
        everywhere,
    )
    add("tsh", tsh, tsh_due)
    add("free_t4", ft4, tsh_due & ((tsh < 0.4) | (tsh > 4.0)))
    rows = pd.concat(frames, ignore_index=True)
    if variation or abnormal:  # drawn from their own stream: the defaults stay as they were
        rows = _noisy(rows, np.random.default_rng([seed, 1]), variation, abnormal)
    labs = _spell(rows, rng)
    labs = _corrupt(labs, rng, bad_rows)
    labs = labs.sort_values(["patient_id", "collected_at", "test"], kind="mergesort")
    # the liver panel, from streams of its own and after the rest (the rows above stay as they
    # were before it was added): a second export, as a lab's liver tests often arrive
    condition = np.where(hepatitis != "", hepatitis, condition)
    condition = np.where(cytopenia != "", cytopenia, condition)
    liver = _liver_rows(base, attended, month, onset, hepatitis, sex, liver_rng)
    if variation or abnormal:
        liver = _noisy(liver, np.random.default_rng([seed, 3]), variation, abnormal)
    liver_labs = _spell(liver, liver_rng)
    liver_labs = liver_labs.sort_values(["patient_id", "collected_at", "test"], kind="mergesort")
    counts = pd.concat(
        [_visit_rows(base, attended, key, values) for key, values in blood.items()],
        ignore_index=True,
    )
    if variation or abnormal:
        counts = _noisy(counts, np.random.default_rng([seed, 5]), variation, abnormal, _COUNTS)
    count_labs = _spell(counts, blood_rng)
    count_labs = count_labs.sort_values(["patient_id", "collected_at", "test"], kind="mergesort")
    labs = pd.concat([labs, liver_labs, count_labs], ignore_index=True)
    patient_table = pd.DataFrame(
        {
            "patient_id": ids,
            "sex": sex,
            "birth_date": birth.strftime("%Y-%m-%d"),
            "course_dates": course1.strftime("%Y-%m-%d") + ";" + course2.strftime("%Y-%m-%d"),
        }
    )
    planted = dates[np.arange(n), np.clip(onset, 0, m - 1)]
    conditions = pd.DataFrame(
        {
            "patient_id": ids,
            "condition": condition,
            "onset": np.where(
                condition == "infusion_thrombocytopenia",
                course1.strftime("%Y-%m-%d"),
                pd.to_datetime(planted).strftime("%Y-%m-%d"),
            ),
            "lab": np.array(["A", "B", "C"])[lab],
        }
    )
    conditions.loc[conditions["condition"] == "healthy", "onset"] = ""
    return Cohort(labs.reset_index(drop=True), patient_table, conditions)


_LIVER_SHARES = {"autoimmune_hepatitis": 0.01, "gilbert": 0.005}
# Planted liver conditions, among the healthy (their share of the cohort, at least one patient
# each): autoimmune hepatitis (aminotransferases up to 12 × ULN, in one of two patients with
# jaundice: a Hy's law pattern) and Gilbert's syndrome (an isolated, fluctuating bilirubin).


def _plant(
    condition: np.ndarray,
    rng: np.random.Generator,
    shares: dict[str, float],
    eligible: np.ndarray | None = None,
) -> np.ndarray:
    """Conditions planted among the healthy patients (``eligible`` ones only, when given; ''
    for the others)."""
    planted = np.full(len(condition), "", dtype=object)
    healthy = condition == "healthy"
    free = list(np.flatnonzero(healthy if eligible is None else healthy & eligible))
    for name, share in shares.items():
        count = min(len(free), max(1, round(share * len(condition))))
        chosen = rng.choice(np.array(free, dtype=np.intp), count, replace=False)
        planted[chosen] = name
        free = [i for i in free if i not in set(chosen.tolist())]
    return planted


def _liver_rows(
    base: dict[str, np.ndarray],
    attended: np.ndarray,
    month: np.ndarray,
    onset: np.ndarray,
    planted: np.ndarray,
    sex: np.ndarray,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Monthly ALT, AST, alkaline phosphatase and total bilirubin (canonical units: U/L, µmol/L)."""
    n, m = attended.shape
    male = (sex == "M")[:, None]
    alt = np.clip(np.exp(rng.normal(np.log(np.where(male, 26.0, 19.0)), 0.25, (n, m))), 7, 38)
    ast = np.clip(np.exp(rng.normal(np.log(22.0), 0.2, (n, m))), 10, 36)
    alp = np.clip(rng.normal(72, 14, (n, m)), 40, 125)
    bili = np.clip(np.exp(rng.normal(np.log(9.0), 0.35, (n, m))), 3, 19)
    since = month - onset[:, None]
    aih = (planted == "autoimmune_hepatitis")[:, None]
    jaundiced = aih & (np.cumsum(aih[:, 0]) % 2 == 1)[:, None]  # the first, third, ... of them
    rise = np.select([since == 0, since == 1, since == 2, since == 3], [6.0, 12.0, 7.0, 3.0], 1.0)
    alt = np.where(aih & (since >= 0), alt * rise * 1.6, alt)
    ast = np.where(aih & (since >= 0), ast * rise * 1.1, ast)
    bili = np.where(jaundiced & ((since == 1) | (since == 2)), rng.normal(65, 8, (n, m)), bili)
    gilbert = (planted == "gilbert")[:, None] & (rng.random((n, m)) < 0.3)
    bili = np.where(gilbert, rng.normal(50, 5, (n, m)), bili)
    panel = (("alt", alt), ("ast", ast), ("alp", alp), ("bilirubin", bili))
    frames = [_visit_rows(base, attended, analyte, values) for analyte, values in panel]
    return pd.concat(frames, ignore_index=True)


_BLOOD_SHARES = {"autoimmune_neutropenia": 0.01, "autoimmune_haemolytic_anaemia": 0.005}
# Planted cytopenias, among the healthy (the anaemia among lab A's patients, the only lab that
# sends haemoglobin): neutrophils falling to 0.9, 0.4 and 1.2 ×10⁹/L, haemoglobin to 10.5, 8.8
# and 7.6 g/dL, from the onset month on, then recovering.


def _blood_count(
    month: np.ndarray,
    onset: np.ndarray,
    planted: np.ndarray,
    sex: np.ndarray,
    dates: np.ndarray,
    courses: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Monthly haemoglobin (g/L), neutrophils, lymphocytes and white cells (10⁹/L). Every
    patient's lymphocytes fall to about a tenth after each course and recover over a year, as
    alemtuzumab intends (graded, never a finding)."""
    n, m = month.shape
    male = (sex == "M")[:, None]
    hb_mean = np.where(
        male,
        np.clip(rng.normal(151, 9, n), 142, 172)[:, None],
        np.clip(rng.normal(136, 8, n), 129, 158)[:, None],
    )
    hb = hb_mean + rng.normal(0, 3, (n, m))
    neut_mean = np.clip(np.exp(rng.normal(np.log(3.6), 0.25, n)), 2.4, 6.5)[:, None]
    neut = np.clip(neut_mean * np.exp(rng.normal(0, 0.12, (n, m))), 1.9, 7.4)
    since = month - onset[:, None]
    aiha = (planted == "autoimmune_haemolytic_anaemia")[:, None]
    hb = np.where(
        aiha & (since >= 0) & (since < 3), np.choose(np.clip(since, 0, 2), [105, 88, 76]), hb
    )
    an = (planted == "autoimmune_neutropenia")[:, None]
    neut = np.where(
        an & (since >= 0) & (since < 3), np.choose(np.clip(since, 0, 2), [0.9, 0.4, 1.2]), neut
    )
    # months since the latest course on or before each visit (before the first: none)
    days = (dates[:, :, None] - courses[:, None, :]) / np.timedelta64(1, "D")
    latest = np.where(days >= 0, days, np.inf).min(axis=2) / 30.44
    lymph_base = np.clip(rng.normal(2.0, 0.4, n), 1.2, 3.2)[:, None]
    recovered = np.where(np.isfinite(latest), np.clip(0.08 + 0.075 * latest, 0.08, 1.0), 1.0)
    lymph = lymph_base * recovered * np.exp(rng.normal(0, 0.1, (n, m)))
    wbc = neut + lymph + np.clip(rng.normal(0.8, 0.15, (n, m)), 0.4, 1.3)
    return {"haemoglobin": hb, "neutrophils": neut, "lymphocytes": lymph, "wbc": wbc}


def _visit_rows(
    base: dict[str, np.ndarray], keep: np.ndarray, analyte: str, values: np.ndarray
) -> pd.DataFrame:
    """One analyte's results at the visits ``keep`` selects (patients × months)."""
    return pd.DataFrame(
        {
            "patient_id": base["patient_id"][keep],
            "date": base["date"][keep],
            "lab": base["lab"][keep],
            "analyte": analyte,
            "number": np.asarray(values, dtype=float)[keep],
        }
    )


VARIATION = {
    # analyte: (within-person biological CV, its source)
    "platelets": (0.077, "Arch Pathol Lab Med 1992;116:825 (6.7 % men, 8.6 % women)"),
    "creatinine": (0.044, "EuBIVAS, Carobene et al., Clin Chem 2017;63:1527 (4.4 %)"),
    "tsh": (0.177, "EuBIVAS, Bottani et al., Clin Chem Lab Med 2022 (17.7 %)"),
    "free_t4": (0.048, "EuBIVAS, Bottani et al., Clin Chem Lab Med 2022 (4.8 %)"),
}
"""Within-person biological variation (CVI) per analyte with its source; with it an assay
imprecision (CVA) of :data:`ASSAY_CV` — an assumption of typical analyser imprecision, not a
measured figure — combined as sqrt(CVI² + CVA²)."""
ASSAY_CV = 0.02
# spurious values land this far outside the default interval (canonical units; dipsticks grades)
_OUTSIDE = {
    "platelets": (150.0, 400.0),
    "creatinine": (45.0, 110.0),
    "tsh": (0.4, 4.0),
    "free_t4": (12.0, 22.0),
    "alt": (7.0, 40.0),
    "ast": (10.0, 40.0),
    "alp": (30.0, 130.0),
    "bilirubin": (3.0, 21.0),
}
_COUNTS = {  # the blood count panel's own (its stream draws for these alone)
    "neutrophils": (1.8, 7.5),
    "lymphocytes": (1.0, 4.0),
    "wbc": (4.0, 11.0),
}


def _noisy(
    rows: pd.DataFrame,
    rng: np.random.Generator,
    variation: bool,
    abnormal: float,
    outside: dict[str, tuple[float, float]] | None = None,
) -> pd.DataFrame:
    """Biological variation and assay noise on every result, then a share of spurious values."""
    rows = rows.copy()
    number = rows["number"].to_numpy(dtype=float).copy()
    analyte = rows["analyte"].to_numpy(dtype=object)
    if variation:
        for key, (cvi, _) in VARIATION.items():
            mine = analyte == key
            sd = np.sqrt(cvi**2 + ASSAY_CV**2)
            number[mine] *= np.exp(rng.normal(-(sd**2) / 2, sd, int(mine.sum())))
    spurious = rng.random(len(rows)) < abnormal
    high = rng.random(len(rows)) < 0.5
    for key, (low_bound, high_bound) in (outside or _OUTSIDE).items():
        mine = spurious & (analyte == key)
        low_value = low_bound * rng.uniform(0.25, 0.95, len(rows))
        high_value = high_bound * rng.uniform(1.05, 3.0, len(rows))
        number = np.where(mine, np.where(high, high_value, low_value), number)
    dipstick = spurious & np.isin(analyte, ["haematuria", "proteinuria"])
    number = np.where(dipstick, rng.integers(1, 4, len(rows)).astype(float), number)
    rows["number"] = number
    return rows


def _fmt(values: np.ndarray, decimals: int, comma: bool = False) -> np.ndarray:
    text = np.char.mod(f"%.{decimals}f", np.round(values, decimals))
    return np.char.replace(text, ".", ",") if comma else text


_DIPSTICK = {0.0: "neg", 0.5: "trace", 1.0: "1+", 2.0: "2+", 3.0: "3+"}


def _spell(rows: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Write each result as lab A (SI), B (US conventional) or C (UCUM, decimal comma) sends it."""
    out = []
    for key, group in rows.groupby(["lab", "analyte"], sort=True):
        lab_key, analyte_key = cast(tuple[int, str], key)
        lab, analyte = int(lab_key), str(analyte_key)
        x = group["number"].to_numpy()
        comma = lab == 2
        spec = _SPELLINGS[(lab, analyte)]
        if spec is None:
            continue
        test, unit, loinc, scale, decimals, specimen = spec
        if analyte in ("haematuria", "proteinuria"):
            value = _urine(int(lab), str(analyte), x)
        else:
            value = _fmt(x * scale, decimals, comma)
            if analyte == "tsh":
                floor = 0.01 if lab != 1 else 0.005
                censored = "<" + _fmt(np.array([floor]), 3 if lab == 1 else 2, comma)[0]
                value = np.where(x < floor, censored, value)
        frame = pd.DataFrame(
            {
                "patient_id": group["patient_id"].to_numpy(),
                "collected_at": _dates(group["date"], int(lab)),
                "test": test,
                "value": value,
                "unit": unit,
                "loinc": loinc,
                "ref_low": "",
                "ref_high": "",
                "specimen": specimen,
                "lab": "ABC"[int(lab)],
            }
        )
        if (int(lab), str(analyte)) in _LAB_RANGES:
            frame["ref_low"], frame["ref_high"] = _LAB_RANGES[(int(lab), str(analyte))]
        out.append(frame)
    return pd.concat(out, ignore_index=True)


def _dates(dates: pd.Series, lab: int) -> np.ndarray:
    stamps = pd.to_datetime(dates)
    if lab == 1:
        return np.asarray(
            (stamps + pd.Timedelta(hours=8, minutes=30)).dt.strftime("%Y-%m-%dT%H:%M:%S")
        )
    return np.asarray(stamps.dt.strftime("%Y-%m-%d"))


def _urine(lab: int, analyte: str, grade: np.ndarray) -> np.ndarray:
    if analyte == "haematuria" and lab == 0:  # microscopy, RBC per HPF
        return np.select([grade >= 2, grade >= 1, grade > 0], ["10-20", "3-5", "0-2"], "0")
    if analyte == "proteinuria" and lab == 1:  # mg/dL
        return np.select([grade >= 2, grade >= 1, grade > 0], ["100", "30", "10"], "0")
    if analyte == "proteinuria" and lab == 2:  # UPCR mg/mmol
        return _fmt(np.select([grade >= 2, grade > 0], [85.0, 9.0], 6.0), 1, comma=True)
    return np.array([_DIPSTICK[g] for g in grade], dtype=object)


# (lab, analyte) → (test, unit, loinc, scale from canonical, decimals, specimen); None: not sent
_SPELLINGS: dict[tuple[int, str], tuple[str, str, str, float, int, str] | None] = {
    (0, "platelets"): ("Platelet count", "10^9/L", "", 1.0, 0, "blood"),
    (1, "platelets"): ("PLT", "K/uL", "", 1.0, 0, "blood"),
    (2, "platelets"): ("Thrombocytes", "10*9/L", "777-3", 1.0, 0, "blood"),
    (0, "creatinine"): ("Creatinine", "µmol/L", "", 1.0, 0, "serum"),
    (1, "creatinine"): ("CREAT", "mg/dL", "", 1 / 88.4, 2, "serum"),
    (2, "creatinine"): ("CREA", "umol/L", "14682-9", 1.0, 0, "serum"),
    (0, "haemoglobin"): ("Haemoglobin", "g/dL", "", 1.0, 1, "blood"),
    (1, "haemoglobin"): None,
    (2, "haemoglobin"): None,
    (0, "neutrophils"): ("Neutrophils", "10^9/L", "", 1.0, 2, "blood"),
    (1, "neutrophils"): ("ANC", "K/uL", "", 1.0, 2, "blood"),
    (2, "neutrophils"): ("B-Neut", "10*9/L", "751-8", 1.0, 2, "blood"),
    (0, "lymphocytes"): ("Lymphocytes", "10^9/L", "", 1.0, 2, "blood"),
    (1, "lymphocytes"): ("Absolute lymphocyte count", "K/uL", "", 1.0, 2, "blood"),
    (2, "lymphocytes"): ("B-Lymph", "10*9/L", "731-0", 1.0, 2, "blood"),
    (0, "wbc"): ("WBC", "10^9/L", "", 1.0, 1, "blood"),
    (1, "wbc"): ("White blood cells", "K/uL", "", 1.0, 1, "blood"),
    (2, "wbc"): ("B-Leuk", "10*9/L", "6690-2", 1.0, 1, "blood"),
    (0, "tsh"): ("TSH", "mIU/L", "", 1.0, 2, "serum"),
    (1, "tsh"): ("TSH 3rd gen", "uIU/mL", "", 1.0, 3, "serum"),
    (2, "tsh"): ("Thyrotropin", "m[IU]/L", "3016-3", 1.0, 2, "serum"),
    (0, "free_t4"): ("Free T4", "pmol/L", "", 1.0, 1, "serum"),
    (1, "free_t4"): ("FT4", "ng/dL", "", 1 / 12.87, 2, "serum"),
    (2, "free_t4"): ("fT4", "pmol/L", "14920-3", 1.0, 1, "serum"),
    (0, "haematuria"): ("Urine RBC", "/HPF", "", 1.0, 0, "urine"),
    (1, "haematuria"): ("U-Blood", "", "", 1.0, 0, "urine"),
    (2, "haematuria"): ("Urine blood", "", "5794-3", 1.0, 0, "urine"),
    (0, "proteinuria"): ("Urine protein", "", "", 1.0, 0, "urine"),
    (1, "proteinuria"): ("U-Protein", "mg/dL", "", 1.0, 0, "urine"),
    (2, "proteinuria"): ("UPCR", "mg/mmol", "2890-2", 1.0, 1, "urine"),
    (0, "alt"): ("ALT", "U/L", "", 1.0, 0, "serum"),
    (1, "alt"): ("SGPT", "IU/L", "", 1.0, 0, "serum"),
    (2, "alt"): ("P-ALAT", "µkat/L", "1742-6", 1 / 60, 2, "plasma"),
    (0, "ast"): ("AST", "U/L", "", 1.0, 0, "serum"),
    (1, "ast"): ("SGOT", "IU/L", "", 1.0, 0, "serum"),
    (2, "ast"): ("P-ASAT", "µkat/L", "1920-8", 1 / 60, 2, "plasma"),
    (0, "alp"): ("Alkaline phosphatase", "U/L", "", 1.0, 0, "serum"),
    (1, "alp"): ("Alk Phos", "IU/L", "", 1.0, 0, "serum"),
    (2, "alp"): ("P-ALP", "µkat/L", "6768-6", 1 / 60, 2, "plasma"),
    (0, "bilirubin"): ("Bilirubin total", "µmol/L", "", 1.0, 0, "serum"),
    (1, "bilirubin"): ("T-Bili", "mg/dL", "", 1 / 17.1, 1, "serum"),
    (2, "bilirubin"): ("P-Bilirubin", "umol/L", "1975-2", 1.0, 0, "plasma"),
}
_LAB_RANGES = {
    (0, "platelets"): ("150", "400"),
    (1, "tsh"): ("0.45", "4.5"),
    (0, "alt"): ("", "45"),
    (1, "alt"): ("7", "56"),
    (2, "alt"): ("", "0,75"),
    (1, "ast"): ("10", "40"),
    (2, "ast"): ("", "0,60"),
    (1, "bilirubin"): ("0.1", "1.2"),
}


def _corrupt(labs: pd.DataFrame, rng: np.random.Generator, share: float) -> pd.DataFrame:
    """Spoil a few rows the way real exports are spoiled (each one must become a data issue)."""
    labs = labs.copy()
    spoil = rng.random(len(labs)) < share
    kind = rng.integers(0, 4, len(labs))
    bad_value = np.array(_BAD_VALUES, dtype=object)[rng.integers(0, 3, len(labs))]
    labs["value"] = np.where(spoil & (kind == 0), bad_value, labs["value"])
    labs["collected_at"] = np.where(spoil & (kind == 1), "2021-02-30", labs["collected_at"])
    labs["patient_id"] = np.where(spoil & (kind == 2), "", labs["patient_id"])
    labs["unit"] = np.where(spoil & (kind == 3), "furlongs", labs["unit"])
    return labs


def main() -> None:
    """Write labs.csv.gz, patients.csv and conditions.csv (by default: the bundled example)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--months", type=int, default=62)
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "examples")
    args = parser.parse_args()
    cohort = generate(args.patients, args.months, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    gzip = {"method": "gzip", "mtime": 0}  # reproducible bytes
    cohort.labs.to_csv(args.out / "labs.csv.gz", index=False, compression=gzip)
    cohort.patients.to_csv(args.out / "patients.csv", index=False)
    cohort.conditions.to_csv(args.out / "conditions.csv", index=False)
    print(f"{len(cohort.labs)} lab rows for {args.patients} patients written to {args.out}")


if __name__ == "__main__":
    main()
