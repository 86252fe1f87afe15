"""The liver terms graded like admiral's own tests (data/admiral_liver_grades.csv: every row of
pharmaverse/admiral tests/testthat/test-derive_var_atoxgr.R, commit 6eb5125, Tests 11-18b, 29,
30a/b and 130, for ALT, AST, alkaline phosphatase, blood bilirubin and GGT increased under
CTCAE v4.03, v5.0 and v6.0; rows the R code derives from others, e.g. ANRHI = BASE - 1 for an
abnormal baseline, written out). Each row is one patient: the baseline record (BASE, against
ANRHI) when there is one, then the graded result (AVAL, against ANRHI), in U/L or µmol/L. Where
lemlabs reads a row otherwise than admiral, ``DIFFERS`` says why (README, "Trial data")."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from rules_helpers import GradeCase, grades_of

ROWS = list(
    csv.DictReader((Path(__file__).parents[1] / "data" / "admiral_liver_grades.csv").open())
)
TEST = {
    "alanine aminotransferase increased": ("ALT", "U/L"),
    "aspartate aminotransferase increased": ("AST", "U/L"),
    "alkaline phosphatase increased": ("ALP", "U/L"),
    "blood bilirubin increased": ("Total bilirubin", "µmol/L"),
    "ggt increased": ("GGT", "U/L"),
}


def _differs(row: dict[str, str]) -> str | None:
    """Why lemlabs' grade of this row is not admiral's, or None where they must be equal."""
    if row["aval"] and not row["anrhi"] and not row["expected"]:
        return "no ULN: lemlabs grades against the analyte's default interval and says so"
    v6_alp = row["version"] == "6" and row["term"].startswith("Alkaline")
    if v6_alp and row["aval"] and row["anrhi"] and not row["base"] and not row["expected"]:
        return "no baseline in admiral; in lemlabs the result is the first on record, its own"
    if (row["version"], row["term"], row["aval"], row["base"]) == (
        "5",
        "GGT increased",
        "80",
        "40",
    ):
        return "v5 GGT abnormal baseline grade 1 reads '2.0 - 2.5 x baseline': 2.0 × is in it"
    return None


@pytest.fixture(scope="module")
def grades() -> dict[int, str]:
    """Row number → lemlabs' grade ('' for none), one scoring run per CTCAE version."""
    found: dict[int, str] = {}
    for version in ("4", "5", "6"):
        cases = [
            GradeCase(number, *TEST[row["term"].lower()], row["base"], row["aval"], "",
                      row["anrhi"], "H")
            for number, row in enumerate(ROWS)
            if row["version"] == version
        ]  # fmt: skip
        found.update(grades_of(cases, f"v{version}"))
    return found


@pytest.mark.parametrize(
    "number",
    range(len(ROWS)),
    ids=[f"v{r['version']}-{r['admiral_test'].split(':')[0]}-{r['comment']}" for r in ROWS],
)
def test_the_grade_is_admirals(grades: dict[int, str], number: int) -> None:
    row = ROWS[number]
    mine = grades.get(number, "")
    if _differs(row) is None:
        assert mine == row["expected"], row
    else:
        assert mine != row["expected"], f"no longer differs: {row}"


def test_the_differences_are_few_and_named() -> None:
    differing = [row for row in ROWS if _differs(row)]
    assert len(ROWS) == 268
    assert len(differing) == 30
