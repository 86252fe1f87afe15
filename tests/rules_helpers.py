"""Small builders for rule tests: a patient's labs from (day, test, value, unit) tuples."""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

import lemlabs
from lemlabs.engine.rules import RuleBook, Source, compile_book
from lemlabs.models import Finding
from lemlabs.packs import builtin_packs

START = dt.date(2020, 1, 6)  # first day of the first course in these tests


def day(n: int) -> str:
    """ISO date ``n`` days after the first course started (negative: before it)."""
    return (START + dt.timedelta(days=n)).isoformat()


def labs(rows: Iterable[tuple[int, str, str, str]], patient: str = "P1") -> pd.DataFrame:
    frame = pd.DataFrame(
        [(patient, day(d), test, value, unit) for d, test, value, unit in rows],
        columns=["patient_id", "collected_at", "test", "value", "unit"],
    )
    return frame


def patients(sex: str = "F", courses: str | None = None, patient: str = "P1") -> pd.DataFrame:
    courses = courses if courses is not None else f"{START.isoformat()};{day(365)}"
    return pd.DataFrame([(patient, sex, courses)], columns=["patient_id", "sex", "course_dates"])


def findings(rows: Iterable[tuple[int, str, str, str]], sex: str = "F", **kw: str) -> list[Finding]:
    report = lemlabs.score_frame(labs(rows), patients(sex, **kw))
    assert report.issues.empty, report.issues.to_dict("records")
    return list(report.finding_list)


def summary(found: Iterable[Finding]) -> set[tuple[str, str, int | None]]:
    """``{(code, severity, ctcae_grade)}`` of findings."""
    return {(f.code, str(f.severity), f.ctcae_grade) for f in found}


def essence(found: Iterable[Finding]) -> list[tuple[object, ...]]:
    """Findings without what legitimately differs between spellings, orders or sources of the same
    data (raw text, row numbers, source ids)."""
    return sorted(
        (
            f.patient_id,
            f.code,
            str(f.severity),
            f.ctcae_grade,
            f.date,
            f.rule_id,
            tuple(sorted((e.analyte, round(e.value, 6), e.collected_at) for e in f.evidence)),
        )
        for f in found
    )


def score_cases(cases: Iterable[dict[str, Any]]) -> lemlabs.Report:
    """An independent reader's cases scored in one run, one patient per case (``id``), with its
    sex and course date; each row's lab interval where it gives one."""
    cases = list(cases)
    rows = [
        (case["id"], r["date"], r["test"], r["value"], r["unit"], r["ref_low"], r["ref_high"])
        for case in cases
        for r in case["rows"]
    ]
    columns = ["patient_id", "collected_at", "test", "value", "unit", "ref_low", "ref_high"]
    patients = pd.DataFrame(
        [(case["id"], case["sex"], case["course_date"]) for case in cases],
        columns=["patient_id", "sex", "course_dates"],
    )
    return lemlabs.score_frame(pd.DataFrame(rows, columns=columns), patients)


@dataclass(frozen=True)
class GradeCase:
    """One row of admiral's grading tests as one patient: a baseline record (``base``, when
    given) on 2021-01-01, then the graded ``value`` on 2021-02-01, both against the row's own
    interval; ``direction`` L or H picks the grade read."""

    number: int
    test: str
    unit: str
    base: str
    value: str
    low: str
    high: str
    direction: str


def grades_of(cases: Iterable[GradeCase], version: str) -> dict[int, str]:
    """Each case's grade under CTCAE ``version`` ('' for none), all cases scored in one run."""
    cases = list(cases)
    labs = []
    for case in cases:
        patient, interval = f"R{case.number}", (case.low, case.high)
        if case.base:
            labs.append((patient, "2021-01-01", case.test, case.base, case.unit, *interval))
        labs.append((patient, "2021-02-01", case.test, case.value, case.unit, *interval))
    columns = ["patient_id", "collected_at", "test", "value", "unit", "ref_low", "ref_high"]
    results = lemlabs.score_frame(pd.DataFrame(labs, columns=columns), ctcae=version).results
    graded = results[results["collected_at"] == pd.Timestamp("2021-02-01")]
    by_patient = graded.set_index("patient_id")
    found = {}
    for case in cases:
        column = {"L": "ctcae_grade_low", "H": "ctcae_grade_high"}[case.direction]
        grade = by_patient[column].get(f"R{case.number}", pd.NA)
        found[case.number] = "" if pd.isna(grade) else str(int(grade))
    return found


def book_of(text: str, condition: str = "itp") -> RuleBook:
    """The rules of one rules file (TOML ``text``: ``[titles]``, ``[[rule]]``, ...) checked
    against the built-in packs' thresholds, analytes and CTCAE terms."""
    packs = builtin_packs()
    source = Source("test/rules.toml", "test", condition, "a test", tomllib.loads(text))
    terms = set(packs.criteria().term_keys())
    return compile_book([source], set(packs.defaults), set(packs.catalogue), terms)
