"""Realistic five-year histories, one per condition, with the expected findings written by hand.

Each patient: two courses (day 0 and day 365), a pre-treatment visit, then monthly platelets,
creatinine and urinalysis and 3-monthly TSH for 60 months; even months come from lab A (SI units,
urine microscopy), odd months from lab B (US units, dipsticks, mg/dL).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from rules_helpers import START, patients

import lemlabs
from lemlabs.models import Finding

MONTHS = 60


def visit(month: int) -> dt.date:
    return START + dt.timedelta(days=-14 if month < 0 else 14 + 30 * month)


def _spell(month: int, analyte: str, value: float | str) -> tuple[str, str, str]:
    lab_a = month % 2 == 0
    if analyte == "platelets":
        return (
            ("Platelet count", f"{value:g}", "10^9/L") if lab_a else ("PLT", f"{value:g}", "K/uL")
        )
    if analyte == "creatinine":
        assert isinstance(value, float | int)
        return (
            ("Creatinine", f"{value:g}", "µmol/L")
            if lab_a
            else ("CREAT", f"{value / 88.4:.2f}", "mg/dL")
        )
    if analyte == "tsh":
        return ("TSH", str(value), "mIU/L") if lab_a else ("TSH 3rd gen", str(value), "uIU/mL")
    if analyte == "free_t4":
        assert isinstance(value, float | int)
        return (
            ("Free T4", f"{value:g}", "pmol/L")
            if lab_a
            else ("FT4", f"{value / 12.87:.2f}", "ng/dL")
        )
    if analyte == "haematuria":  # a dipstick grade: microscopy in lab A
        rbc = {0: "0-2", 1: "3-5", 2: "10-20", 3: "TNTC"}
        dip = {0: "neg", 1: "1+", 2: "2+", 3: "3+"}
        return ("Urine RBC", rbc[int(value)], "/HPF") if lab_a else ("U-Blood", dip[int(value)], "")
    if analyte == "proteinuria":
        dip = {0: "neg", 1: "1+", 2: "2+", 3: "3+"}
        mg = {0: "0", 1: "30", 2: "100", 3: "300"}
        return (
            ("Urine protein", dip[int(value)], "")
            if lab_a
            else ("U-Protein", mg[int(value)], "mg/dL")
        )
    raise ValueError(analyte)


def history(changes: dict[tuple[int, str], float | str], creatinine: float = 70) -> pd.DataFrame:
    normal: dict[str, float | str] = {
        "platelets": 240,
        "creatinine": creatinine,
        "haematuria": 0,
        "proteinuria": 0,
    }
    rows = []
    for month in range(-1, MONTHS):
        tests = dict(normal)
        if month % 3 == 0 or month < 0:
            tests["tsh"] = "1.8"
        tests.update({a: v for (m, a), v in changes.items() if m == month})
        for analyte, value in tests.items():
            rows.append(("P1", visit(month).isoformat(), *_spell(month, analyte, value)))
    return pd.DataFrame(rows, columns=["patient_id", "collected_at", "test", "value", "unit"])


def expected(found: list[Finding]) -> list[tuple[str, str, int | None, str, int]]:
    return sorted(
        (f.code, str(f.severity), f.ctcae_grade, f.date.isoformat(), f.results_in_episode)
        for f in found
    )


def score(frame: pd.DataFrame, sex: str) -> list[Finding]:
    report = lemlabs.score_frame(frame, patients(sex))
    assert report.issues.empty
    return list(report.finding_list)


def test_immune_thrombocytopenia_history() -> None:
    frame = history(
        {
            (20, "platelets"): 130,
            (21, "platelets"): 85,
            (22, "platelets"): 40,
            (23, "platelets"): 160,
        }
    )
    found = score(frame, "F")
    assert expected(found) == [
        ("itp.suspected", "urgent", 3, visit(22).isoformat(), 2),
        ("itp.thrombocytopenia", "watch", 1, visit(20).isoformat(), 1),
    ]
    suspected = next(f for f in found if f.code == "itp.suspected")
    assert "lowest 40" in suspected.message
    assert [e.raw_unit for e in suspected.evidence] == ["K/uL", "10^9/L"]
    assert all(e.baseline == 240 and e.baseline_kind == "pre-treatment" for e in suspected.evidence)


def test_graves_then_hypothyroid_history() -> None:
    changes: dict[tuple[int, str], float | str] = {}
    for month in (18, 19, 20):
        changes[(month, "tsh")] = "<0.01"
        changes[(month, "free_t4")] = 35.0
    changes[(24, "tsh")] = "6.5"
    changes[(24, "free_t4")] = 14.0
    found = score(history(changes), "F")
    assert expected(found) == [
        # the swing: three suppressed TSH results, then the raised one
        ("thyroid.fluctuation", "action", None, visit(24).isoformat(), 4),
        # three TSH results, each with its free T4
        ("thyroid.overt_hyperthyroidism", "action", None, visit(20).isoformat(), 6),
        ("thyroid.subclinical_hypothyroidism", "watch", None, visit(24).isoformat(), 2),
    ]
    overt = next(f for f in found if f.code == "thyroid.overt_hyperthyroidism")
    assert "Graves" in overt.action and "consistent with" in overt.message
    assert {e.analyte for e in overt.evidence} == {"tsh", "free_t4"}


def test_anti_gbm_history() -> None:
    changes: dict[tuple[int, str], float | str] = {
        (30, "haematuria"): 2,
        (31, "haematuria"): 3,
        (31, "proteinuria"): 2,
        (31, "creatinine"): 133.0,
        (32, "haematuria"): 3,
        (32, "proteinuria"): 3,
        (32, "creatinine"): 283.0,
    }
    found = score(history(changes, creatinine=85), "M")
    assert expected(found) == [
        ("anti_gbm.creatinine_rise", "urgent", 3, visit(32).isoformat(), 2),
        ("anti_gbm.haematuria", "watch", None, visit(32).isoformat(), 3),
        ("anti_gbm.haematuria_persistent", "action", None, visit(32).isoformat(), 3),
        # three haematuria samples and two creatinine rises, within 30 days of each other
        ("anti_gbm.pattern", "urgent", None, visit(32).isoformat(), 5),
        ("anti_gbm.proteinuria", "action", 2, visit(32).isoformat(), 2),
    ]


def test_a_healthy_four_year_history_has_no_findings() -> None:
    assert score(history({}), "F") == []
