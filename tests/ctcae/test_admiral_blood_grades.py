"""The blood count and clotting terms graded like admiral's own tests
(data/admiral_blood_grades.csv: every row of pharmaverse/admiral
tests/testthat/test-derive_var_atoxgr.R, commit 6eb5125, for anaemia, neutrophil, lymphocyte and
white blood cell count decreased, aPTT prolonged, INR increased, fibrinogen decreased and
hypertriglyceridemia under CTCAE v4.03, v5.0 and v6.0, SI units; extracted by a reader who did
not read lemlabs, each row checked against admiral's own criteria). Each row is one patient: a
baseline record (when the row has BASE, or a PCHG that gives one: AVAL ÷ (1 + PCHG/100)), then
the graded result, against ANRLO/ANRHI as the row's own interval. Where lemlabs reads a row
otherwise than admiral, :func:`_differs` says why (README, "What lemlabs looks for")."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from rules_helpers import GradeCase, grades_of

ROWS = list(
    csv.DictReader((Path(__file__).parents[1] / "data" / "admiral_blood_grades.csv").open())
)
TEST = {  # admiral's term → lemlabs' test name, unit, direction
    "anemia": ("HGB", "g/L", "L"),
    "neutrophil count decreased": ("NEUT", "10^9/L", "L"),
    "lymphocyte count decreased": ("LYM", "10^9/L", "L"),
    "white blood cell decreased": ("WBC", "10^9/L", "L"),
    "activated partial thromboplastin time prolonged": ("APTT", "s", "H"),
    "inr increased": ("INR", "", "H"),
    "fibrinogen decreased": ("FIBRINO", "g/L", "L"),
    "hypertriglyceridemia": ("TRIG", "mmol/L", "H"),
}
GRADED = [
    (number, row) for number, row in enumerate(ROWS) if row["term"].lower() in TEST and row["aval"]
]


def _inputs(row: dict[str, str]) -> tuple[str, str, str, str]:
    """AVAL, its unit and the interval as lemlabs reads them: the row's unit where it names one
    (admiral's wrong-unit rows keep theirs); v4.03's INR rows are written × 100 (AVAL 251, ULN
    100): the same ratios at their real scale."""
    test, unit, _ = TEST[row["term"].lower()]
    aval, low, high = row["aval"], row["anrlo"], row["anrhi"]
    if test == "INR" and row["version"] == "4":
        aval, high = (f"{float(x) / 100:g}" if x else "" for x in (aval, high))
    if row["avalu"] and row["avalu"].lower() != unit.lower():
        unit = row["avalu"]
    elif "avalu" in row and not row["avalu"] and test not in ("APTT", "INR"):
        unit = ""
    return aval, unit, low, high


def _baseline(row: dict[str, str]) -> str:
    if row["base"]:
        return row["base"]
    if row["pchg"]:
        return repr(float(row["aval"]) / (1 + float(row["pchg"]) / 100))
    return ""


def _differs(row: dict[str, str], mine: str) -> str | None:
    """Why lemlabs' grade of this row is not admiral's, or None where they must be equal."""
    test, unit, _ = TEST[row["term"].lower()]
    aval, given, low, high = _inputs(row)
    if given != unit and given.lower() != unit.lower():
        if not given or mine == "":
            return None if not row["expected"] else "no or an unknown unit: a data issue"
        return f"unit {given!r}: admiral grades {unit} only, lemlabs converts it"
    if test == "INR" and row["base"] and row["expected"] != mine:
        return "admiral grades the 'x baseline if on anticoagulation' arms; lemlabs does not"
    no_base = not row["base"] and not row["pchg"]
    if row["version"] == "4" and test in ("INR", "FIBRINO") and no_base and mine == "0":
        return "no baseline: admiral calls no v4.03 result normal without one; lemlabs grades 0"
    needs = {"L": low, "H": high}[TEST[row["term"].lower()][2]]
    if not needs and row["expected"] == "" and mine != "":
        return "no interval: lemlabs grades against the analyte's default interval"
    if test == "TRIG" and aval == "1.71":
        return "grade 1 is '1.71 mmol/L - 3.42 mmol/L': admiral reads > 1.71, lemlabs ≥ 1.71"
    return None


@pytest.fixture(scope="module")
def grades() -> dict[int, str]:
    """Row number → lemlabs' grade ('' for none), one scoring run per CTCAE version."""
    found: dict[int, str] = {}
    for version in ("4", "5", "6"):
        cases = []
        for number, row in GRADED:
            if row["version"] == version:
                test, _, direction = TEST[row["term"].lower()]
                aval, unit, low, high = _inputs(row)
                cases.append(GradeCase(number, test, unit, _baseline(row), aval, low, high,
                                       direction))  # fmt: skip
        found.update(grades_of(cases, version))
    return found


@pytest.mark.parametrize(
    ("number", "row"), GRADED, ids=[f"v{r['version']}-{n}-{r['term'][:12]}" for n, r in GRADED]
)
def test_graded_like_admiral(grades: dict[int, str], number: int, row: dict[str, str]) -> None:
    mine = grades[number]
    why = _differs(row, mine)
    if why is None:
        assert mine == row["expected"], (row["admiral_test"], row["comment"])
    else:
        assert mine != row["expected"], f"said to differ ({why}) but equal"


def test_every_term_and_version_is_covered() -> None:
    covered = {(row["version"], row["term"].lower()) for _, row in GRADED}
    assert len(covered) == 3 * len(TEST) - 1  # v6.0 has no lymphocyte term
