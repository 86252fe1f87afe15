"""Refactoring oracle: the findings of fixed cohorts, frozen as JSON, must not change.

The cohorts: the bundled example (0.4 % abnormal, lymphocytes excepted) and a noisy copy of it,
where a seeded share of the numeric results is scaled up or down, a share of the dipsticks
regraded and a few visits' liver panels raised together, so that every rule
fires many times, episodes mix severities and composites join (about a fifth of the results
abnormal, as in real exports). The oracle is rewritten only by a change that means to change
findings (a clinical correction): ``python tests/pipeline/test_equivalence.py --write``; never
to make a refactoring pass. Every field is compared as it is, except ``source``: the rule records
derive which thresholds a rule cites (so their order may change and a citation may be added),
and no citation may be lost.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import lemlabs
from lemlabs import examples
from lemlabs.packs import builtin_packs

ORACLE = Path(__file__).parents[1] / "data" / "findings_oracle.json.gz"
GRADES = ["neg", "trace", "1+", "2+", "3+"]
LIVER_TESTS = ["ALT", "SGPT", "P-ALAT", "AST", "SGOT", "P-ASAT", "Alkaline phosphatase", "Alk Phos",
               "P-ALP", "Bilirubin total", "T-Bili", "P-Bilirubin"]  # fmt: skip
COUNT_TESTS = ["Neutrophils", "ANC", "B-Neut", "Lymphocytes", "Absolute lymphocyte count",
               "B-Lymph", "WBC", "White blood cells", "B-Leuk"]  # fmt: skip


def noisy(labs: pd.DataFrame, seed: int = 11, share: float = 0.25) -> pd.DataFrame:
    """The example's labs with a ``share`` of results moved far from where they were, and urine
    albumin/creatinine ratios (which the example lacks) on some visits. The blood count panel
    (white cells, neutrophils, lymphocytes: added to the example after the rest) is moved with
    a stream of its own, so that the other rows are moved as they were before it; the tests a
    clinician sends when a count worries (:func:`_worried`) come from a third stream."""
    counts = labs["test"].isin(COUNT_TESTS).to_numpy()
    rest = _noisy(labs[~counts], seed, share)
    moved = pd.concat([rest, _noisy(labs[counts], seed + 1, share, urine=False)], ignore_index=True)
    return pd.concat([moved, _worried(moved, seed + 2)], ignore_index=True)


# what a clinician sends when a count worries: (test, unit, typical value, spread of its log)
WORRY_TESTS = [
    ("LDH", "U/L", 230.0, 0.5), ("Haptoglobin", "g/L", 0.8, 1.0), ("Ferritin", "ng/mL", 200.0, 1.5),
    ("Triglycerides", "mmol/L", 1.6, 0.6), ("Fibrinogen", "g/L", 2.6, 0.5),
    ("aPTT", "s", 33.0, 0.25), ("PT", "s", 12.5, 0.15), ("INR", "", 1.0, 0.15),
]  # fmt: skip


def _worried(labs: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Haemolysis markers, ferritin, triglycerides, fibrinogen and a coagulation panel on
    visits whose haemoglobin or platelet count is low (and on a few others), drawn around
    their usual values with a wide spread; PT and INR move together and are sometimes absent."""
    rng = np.random.default_rng(seed)
    numbers = pd.to_numeric(labs["value"].str.replace(",", ".", regex=False), errors="coerce")
    g_dl = labs["unit"].str.lower().eq("g/dl")
    low_hb = labs["test"].eq("Haemoglobin") & (numbers < np.where(g_dl, 10.0, 100.0))
    low_plt = labs["test"].isin(["PLT", "Platelet count"]) & (numbers < 100)
    visit = labs["patient_id"] + "|" + labs["collected_at"].str[:10]
    worried = sorted(set(visit[low_hb | low_plt]))
    others = sorted(set(visit) - set(worried))
    worried += [others[i] for i in rng.choice(len(others), len(others) // 50, replace=False)]
    rows = []
    for where in worried:
        patient, day = where.split("|")
        coagulation = rng.normal(0, 1)
        for test, unit, usual, spread in WORRY_TESTS:
            if test in ("PT", "INR") and rng.random() < 0.3:
                continue
            z = coagulation if test in ("PT", "INR") else rng.normal(0, 1)
            rows.append((patient, day, test, f"{usual * np.exp(spread * z):.3g}", unit))
    columns = ["patient_id", "collected_at", "test", "value", "unit"]
    return pd.DataFrame(rows, columns=columns).reindex(columns=labs.columns, fill_value="")


def _noisy(labs: pd.DataFrame, seed: int, share: float, urine: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = labs.copy()
    numbers = pd.to_numeric(out["value"].str.replace(",", ".", regex=False), errors="coerce")
    picked = rng.random(len(out)) < share
    scale = np.exp(rng.normal(0, 0.9, len(out)))
    moved = picked & numbers.notna().to_numpy()
    out.loc[moved, "value"] = [f"{v:.4g}" for v in (numbers[moved] * scale[moved])]
    quiet_dipstick = out["value"].str.lower().isin(["neg", "negative", "trace", "1+"])
    dipsticks = picked & quiet_dipstick.to_numpy()
    out.loc[dipsticks, "value"] = rng.choice(GRADES, int(dipsticks.sum()))
    if not urine:
        return out
    uacr = out[rng.random(len(out)) < 0.04].assign(test="UACR", unit="mg/mmol", loinc="")
    uacr["value"] = [f"{v:.3g}" for v in np.exp(rng.normal(1.0, 1.3, len(uacr)))]
    # liver injury moves the panel together: on a few visits every liver test of the visit is
    # scaled by one factor (so that Hy's law and injury with jaundice meet their partners)
    liver = out["test"].isin(LIVER_TESTS).to_numpy()
    visit = out["patient_id"] + "|" + out["collected_at"].str[:10]
    hit = set(visit[liver].drop_duplicates().sample(frac=0.03, random_state=seed))
    together = liver & visit.isin(hit).to_numpy() & numbers.notna().to_numpy()
    factor = visit[together].map({v: np.exp(rng.normal(1.5, 0.6)) for v in sorted(hit)})
    out.loc[together, "value"] = [
        f"{v:.4g}" for v in numbers[together] * factor.to_numpy(dtype=float)
    ]
    return pd.concat([out, uacr], ignore_index=True)


def cohorts() -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    labs = pd.read_csv(examples.path("labs"), dtype=str, keep_default_na=False)
    patients = lemlabs.read_patients(examples.path("patients"))
    return {"example": (labs, patients), "noisy": (noisy(labs), patients)}


def findings_of(labs: pd.DataFrame, patients: pd.DataFrame) -> list[dict[str, Any]]:
    """Every finding as ``to_dict()`` gives it, without the rules version (a hash of the table,
    which gains keys as the rules do)."""
    report = lemlabs.score_frame(labs, patients)
    return [
        {key: item for key, item in finding.to_dict().items() if key != "rules_version"}
        for finding in report.finding_list
    ]


@pytest.fixture(scope="module")
def oracle() -> dict[str, list[dict[str, Any]]]:
    with gzip.open(ORACLE, "rt", encoding="utf-8") as file:
        frozen: dict[str, list[dict[str, Any]]] = json.load(file)
    return frozen


@pytest.mark.parametrize("name", ["example", "noisy"])
def test_findings_equal_the_frozen_oracle(
    name: str, oracle: dict[str, list[dict[str, Any]]]
) -> None:
    labs, patients = cohorts()[name]
    now = findings_of(labs, patients)
    frozen = oracle[name]
    assert len(now) == len(frozen)
    for current, expected in zip(now, frozen, strict=True):
        cited, was_cited = (set(f.pop("source").split("; ")) for f in (current, expected))
        assert current == expected
        assert was_cited <= cited, sorted(was_cited - cited)  # no citation lost


def test_the_noisy_cohort_exercises_every_result_rule(oracle: dict[str, Any]) -> None:
    fired = {finding["rule_id"] for finding in oracle["noisy"]}
    result_rules = {rule.id for rule in builtin_packs().rules if rule.phase == "result"}
    assert result_rules <= fired, sorted(result_rules - fired)


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    frozen = {name: findings_of(*tables) for name, tables in cohorts().items()}
    with gzip.open(ORACLE, "wt", encoding="utf-8") as file:
        json.dump(frozen, file, ensure_ascii=False, sort_keys=True)
    print({name: len(items) for name, items in frozen.items()})
