"""A patient with very many finding facts is scored in overlapping time windows (issue #14):
the reach of the composites is derived from the rule records, and the findings are those of
one pass."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import lab_frame, patient_frame
from hypothesis import given, settings
from hypothesis import strategies as st
from rules_helpers import book_of

import lemlabs
from lemlabs import pipeline as scoring
from lemlabs.engine.language import day_bounds, parse
from lemlabs.engine.rules import join_reach
from lemlabs.packs import builtin_packs, default_thresholds
from lemlabs.stages import facts as fact_module
from lemlabs.synthetic import generate

THRESHOLDS = default_thresholds()
KEYS = set(THRESHOLDS.keys())


def _second(text: str) -> Any:
    return parse(text, KEYS, ("first",))


def test_the_bundled_composites_bound_the_day_of_their_second_fact() -> None:
    bounds = {
        rule.id: day_bounds(rule.compiled[1][1], THRESHOLDS)
        for rule in builtin_packs().book.phase("finding")
    }
    assert bounds["anti_gbm.haematuria_persistent.action"] == ((("day", 7.0),), (("day", 90.0),))
    assert bounds["anti_gbm.pattern.urgent"] == ((("day", -30.0),), (("day", 30.0),))
    swing = ((("day", 0.0),), (("swing_until", 0.0),))  # day > first.day, <= first.swing_until
    assert bounds["thyroid.fluctuation.low_to_high"] == swing
    assert bounds["thyroid.fluctuation.high_to_low"] == swing


@pytest.mark.parametrize(
    "text",
    [
        "code == 'b'",  # no day bound at all
        "day >= first.day",  # bounded below only
        "day <= first.day + renal.pattern_window_days",  # above only
        "day != first.day",
        "(day <= first.day and day >= first.day) or code == 'b'",  # an or bounds nothing
        "swing_until <= first.day and swing_until >= first.day",  # another field
    ],
)
def test_a_join_without_a_day_bound_on_both_sides_has_none(text: str) -> None:
    assert day_bounds(_second(text), THRESHOLDS) is None


def test_equality_bounds_both_sides_and_a_strict_comparison_counts_as_wide() -> None:
    same = ((("day", 0.0),), (("day", 0.0),))
    assert day_bounds(_second("code == 'b' and day == first.day"), THRESHOLDS) == same
    assert day_bounds(_second("day > first.day - 3 and day < first.day + 3"), THRESHOLDS) == (
        (("day", -3.0),),
        (("day", 3.0),),
    )


def _facts(*rows: tuple[str, str, str, int, int]) -> pd.DataFrame:
    """Finding facts from (code, analyte, flag, day, swing_until)."""
    frame = pd.DataFrame(rows, columns=["code", "analyte", "flag", "day", "swing_until"])
    return frame.assign(micro_neg=0, rise=1)


def _pack(second: str) -> tuple[Any, ...]:
    text = f"""
[titles]
"anti_gbm.x" = "x"
[[rule]]
id = "x"
code = "anti_gbm.x"
severity = "watch"
phase = "finding"
first = ["code == 'a'"]
second = ["code == 'b'", {second!r}]
message = "m"
action = "a"
"""
    return book_of(text, "anti_gbm").phase("finding")


def test_the_reach_is_the_longest_join_and_reads_the_facts_fields() -> None:
    composites = builtin_packs().book.phase("finding")
    renal = _facts(("anti_gbm.haematuria", "urine_blood", "H", 100, 100))
    assert join_reach(composites, renal, THRESHOLDS) == 90  # haematuria persistence
    tsh = _facts(
        ("thyroid.overt_hyperthyroidism", "tsh", "L", 100, 284),
        ("anti_gbm.haematuria", "urine_blood", "H", 100, 100),
    )
    assert join_reach(composites, tsh, THRESHOLDS) == 184  # 6 calendar months, from the facts
    assert join_reach(composites, renal.iloc[:0], THRESHOLDS) == 0  # nothing can match


def test_a_composite_without_a_bounded_day_span_switches_the_windows_off() -> None:
    facts = _facts(("a", "x", "H", 1, 1), ("b", "x", "H", 900, 900))
    assert join_reach(_pack("day >= first.day"), facts, THRESHOLDS) is None
    assert join_reach(_pack("flag == 'H'"), facts, THRESHOLDS) is None
    assert join_reach(_pack("day <= first.day + 5 and day >= first.day - 2"), facts, {}) == 5
    whole = fact_module._windows(np.arange(5000), None, 100)
    assert len(whole) == 1 and whole[0][0].tolist() == list(range(5000))


def _kept_once(days: list[int], reach: int, size: int) -> Iterator[int]:
    """For every pair of facts at most ``reach`` days apart: how many windows keep it."""
    windows = fact_module._windows(np.array(days, dtype="int64"), reach, size)
    for i, a in enumerate(days):
        for j in range(i + 1, len(days)):
            if abs(days[j] - a) <= reach:
                earlier = min(a, days[j])
                yield sum(
                    1
                    for part, owned in windows
                    if {i, j} <= set(part.tolist()) and (owned is None or earlier <= owned)
                )


@given(
    st.lists(st.integers(0, 400), min_size=0, max_size=60),
    st.integers(0, 120),
    st.integers(1, 20),
)
def test_every_pair_within_the_reach_is_kept_by_exactly_one_window(
    days: list[int], reach: int, size: int
) -> None:
    assert all(count == 1 for count in _kept_once(days, reach, size))


def test_windows_are_bounded_and_only_where_they_help() -> None:
    days = np.repeat(np.arange(1000), 10)  # 10 facts a day for 1000 days
    windows = fact_module._windows(days, 30, 200)
    assert len(windows) > 30 and max(len(part) for part, _ in windows) <= 200 + 10 + 30 * 10
    assert len(fact_module._windows(days[:200], 30, 200)) == 1


@pytest.fixture(scope="module")
def one_patient() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A noisy cohort's rows under one patient id (a broken export): 3 320 rows, five
    hundred finding facts over 5.7 years, findings of every composite."""
    cohort = generate(patients=30, months=25, seed=7, variation=True, abnormal=0.25)
    return cohort.labs.assign(patient_id="ONE"), cohort.patients.head(1).assign(patient_id="ONE")


def _scored(
    labs: pd.DataFrame, people: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, size: int
) -> tuple[pd.DataFrame, list[tuple[str, str, tuple[int, ...]]], int]:
    """The findings table, the hits and the number of finding sessions with windows of about
    ``size`` facts."""
    seen: dict[str, Any] = {"sessions": 0}
    assemble, windows = scoring.assemble, fact_module._windows

    def keep(singles: Any, composites: Any, *rest: Any) -> Any:
        seen["hits"] = [
            (patient, hit.rule_id, hit.keys)
            for found in (singles, composites)
            for patient, hit in zip(found.patients.tolist(), found.hits, strict=True)
        ]
        return assemble(singles, composites, *rest)

    def count(*args: Any) -> Any:
        parts = windows(*args)
        seen["sessions"] += len(parts)
        return parts

    with monkeypatch.context() as patch:
        patch.setattr(fact_module, "_WINDOW_FACTS", size)
        patch.setattr(scoring, "assemble", keep)
        patch.setattr(fact_module, "_windows", count)
        report = lemlabs.score_frame(labs, people)
    return report.findings, seen["hits"], seen["sessions"]


def test_windows_give_the_findings_and_hits_of_one_pass(
    one_patient: tuple[pd.DataFrame, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    labs, people = one_patient
    once, once_hits, sessions = _scored(labs, people, monkeypatch, size=10**9)
    assert sessions == 1 and set(once["code"]) >= {
        "anti_gbm.pattern",
        "anti_gbm.haematuria_persistent",
        "anti_gbm.haematuria_proteinuria",
        "thyroid.fluctuation",
    }
    windowed, windowed_hits, sessions = _scored(labs, people, monkeypatch, size=40)
    assert sessions > 10  # 520 facts over 5.7 years: cores of ~40, overlaps of 184 days (~50)
    composites = {rule.id for rule in builtin_packs().book.phase("finding")}
    joined = [hit for hit in windowed_hits if hit[1] in composites]
    assert len(joined) == len(set(joined)) > 1000  # every repeat dropped
    assert sorted(windowed_hits) == sorted(once_hits)
    pd.testing.assert_frame_equal(windowed, once)


def test_too_short_an_overlap_loses_matches(
    one_patient: tuple[pd.DataFrame, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test above would see it: the cohort has matches across window edges that an overlap
    one day shorter than the pattern window (29 days) misses."""
    labs, people = one_patient
    once, _, _ = _scored(labs, people, monkeypatch, size=10**9)
    monkeypatch.setattr(fact_module, "join_reach", lambda *args: 29)
    monkeypatch.setattr(fact_module, "partnered", lambda facts, *args: np.ones(len(facts), bool))
    windowed, _, _ = _scored(labs, people, monkeypatch, size=40)
    assert not once.equals(windowed)


@pytest.mark.parametrize(("reach", "kept"), [(None, True), (183, False)])
def test_the_swing_reaches_six_calendar_months_from_the_facts(
    reach: int | None, kept: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1 March → 1 September is a swing (184 days, from the first TSH's ``swing_until``): a
    window of one day overlapping by the derived reach keeps it, one day less loses it."""
    labs = lab_frame(
        [
            ("P1", "2021-03-01", "TSH", "0.01", "mIU/L"),
            ("P1", "2021-09-01", "TSH", "12", "mIU/L"),
            ("P1", "2022-06-01", "TSH", "0.01", "mIU/L"),  # 9 months on: no swing
        ]
    )
    people = patient_frame(("P1", "F", "2020-01-06"))
    if reach is not None:
        monkeypatch.setattr(fact_module, "join_reach", lambda *args: reach)
    # every fact posted (a fact's partner is found by the windows alone, not by partnered)
    monkeypatch.setattr(fact_module, "partnered", lambda facts, *args: np.ones(len(facts), bool))
    findings, _, sessions = _scored(labs, people, monkeypatch, size=1)
    assert sessions == 3
    assert ("thyroid.fluctuation" in set(findings["code"])) == kept


_CODES = [
    "anti_gbm.haematuria",
    "anti_gbm.creatinine_rise",
    "anti_gbm.proteinuria",
    "anti_gbm.albuminuria",
    "thyroid.subclinical_hypothyroidism",
    "itp.suspected",
]


# days at and around each join's reach from day 0 (pattern 30, persistent haematuria 7 to 90,
# a swing to swing_until) and from day 300, so that many pairs sit on an edge
_DAYS = sorted(
    {base + edge for base in (0, 300) for e in (0, 7, 30, 90, 184) for edge in (e - 1, e, e + 1)}
)


@settings(max_examples=150)  # a few milliseconds each
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["P1", "P2"]),
            st.sampled_from(_CODES),
            st.sampled_from([("tsh", "L"), ("tsh", "H"), ("creatinine", "H"), ("urine", "N")]),
            st.sampled_from(_DAYS),
            st.sampled_from([183, 184]),  # swing_until - day
            st.integers(0, 1),  # micro_neg
            st.integers(0, 1),  # rise
        ),
        min_size=1,
        max_size=40,
    )
)
def test_facts_without_a_partner_within_reach_complete_no_match(
    rows: list[tuple[str, str, tuple[str, str], int, int, int, int]],
) -> None:
    """Posting only the finding facts :func:`~lemlabs.stages.facts.partnered` keeps gives exactly
    the composite hits of posting all (days drawn so that partners fall at, inside and just past
    each join's reach)."""
    facts = pd.DataFrame(
        [
            {
                "patient_id": patient,
                "code": code,
                "analyte": analyte,
                "flag": flag,
                "day": day,
                "swing_until": day + swing,
                "micro_neg": micro_neg,
                "rise": rise,
                "key": key,
            }
            for key, (patient, code, (analyte, flag), day, swing, micro_neg, rise) in enumerate(
                sorted(rows)
            )
        ]
    )
    composites = builtin_packs().book.phase("finding")
    book = builtin_packs().book
    engine = fact_module.engine_for(book.rules, THRESHOLDS, missing=book.missing)
    kept = fact_module.partnered(facts, composites, THRESHOLDS)

    def hits(posted: pd.DataFrame) -> list[tuple[str, str, tuple[int, ...]]]:
        found = fact_module._run_phase(engine, "finding", posted, lambda *_: None)
        pairs = zip(found.patients.tolist(), found.hits, strict=True)
        return sorted((patient, hit.rule_id, hit.keys) for patient, hit in pairs)

    assert hits(facts[kept]) == hits(facts)


def _pair(*facts: tuple[str, str, str, int, int]) -> pd.DataFrame:
    """Finding facts of one patient: (code, analyte, flag, day, micro_neg) each, rise 1, a swing
    reaching 184 days."""
    return pd.DataFrame(
        [
            {"patient_id": "P1", "code": code, "analyte": analyte, "flag": flag, "day": day}
            | {"swing_until": day + 184, "micro_neg": micro_neg, "rise": 1, "key": key}
            for key, (code, analyte, flag, day, micro_neg) in enumerate(facts)
        ]
    )


def _posted(facts: pd.DataFrame) -> list[bool]:
    return fact_module.partnered(facts, builtin_packs().book.phase("finding"), THRESHOLDS).tolist()


# haematuria whose microscopy was negative: only the pattern (not persistence) can join it
HAEM = ("anti_gbm.haematuria", "urine_blood", "H", 0, 1)
LOW, HIGH = ("thyroid.x", "tsh", "L"), ("thyroid.x", "tsh", "H")


@pytest.mark.parametrize(("day", "kept"), [(30, True), (-30, True), (31, False), (-31, False)])
def test_haematuria_is_posted_with_a_creatinine_rise_up_to_the_pattern_window(
    day: int, kept: bool
) -> None:
    assert _posted(_pair(HAEM, ("anti_gbm.creatinine_rise", "creatinine", "H", day, 0))) == [
        kept,
        kept,
    ]


def test_haematuria_is_posted_with_a_repeat_at_the_end_of_the_repeat_window() -> None:
    """(a haematuria fact is in both sides of the persistence join, so it is always posted:
    whether it can join itself is durable's to say)"""
    repeat = ("anti_gbm.haematuria", "urine_blood", "H", 90, 0)
    assert _posted(_pair((*HAEM[:4], 0), repeat)) == [True, True]


@pytest.mark.parametrize(("day", "kept"), [(184, True), (185, False)])
@pytest.mark.parametrize("swing", [(LOW, HIGH), (HIGH, LOW)])
def test_a_tsh_swing_is_posted_up_to_its_reach(
    day: int, kept: bool, swing: tuple[tuple[str, str, str], tuple[str, str, str]]
) -> None:
    assert _posted(_pair((*swing[0], 0, 0), (*swing[1], day, 0))) == [kept, kept]


def test_a_partner_must_be_the_same_patients() -> None:
    """One patient's haematuria on the last day, another's creatinine rise on the first."""
    facts = _pair(
        (*HAEM[:3], 100, 1), ("anti_gbm.creatinine_rise", "creatinine", "H", 0, 0)
    ).assign(patient_id=["P1", "P2"])
    assert _posted(facts) == [False, False]
