"""The anti-GBM / glomerulonephritis pattern and its neighbours."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st
from rules_helpers import findings, summary

from lemlabs.stages.findings import fast as findings_module

HAEM = ("anti_gbm.haematuria", "watch", None)
BASELINE = (-5, "Creat", "60", "umol/L")


def codes(rows: list[tuple[int, str, str, str]]) -> set[str]:
    return {f.code for f in findings(rows, sex="M")}


def test_haematuria_alone_is_watch() -> None:
    assert summary(findings([BASELINE, (200, "U-Blood", "2+", "")], sex="M")) == {HAEM}


def test_haematuria_with_proteinuria_is_action_but_not_yet_the_pattern() -> None:
    found = findings(
        [BASELINE, (200, "U-Blood", "2+", ""), (210, "Urine protein", "1+", "")], sex="M"
    )
    (both,) = [f for f in found if f.code == "anti_gbm.haematuria_proteinuria"]
    assert str(both.severity) == "action"
    assert "anti_gbm.pattern" not in {f.code for f in found}
    assert {e.analyte for e in both.evidence} == {"urine_blood", "urine_protein"}


def test_adding_a_creatinine_rise_makes_the_urgent_pattern() -> None:
    rows = [
        BASELINE,
        (200, "U-Blood", "2+", ""),
        (210, "Urine protein", "1+", ""),
        (220, "Creat", "1.02", "mg/dL"),
    ]  # 90.2 µmol/L ≥ 1.5 × 60 µmol/L
    found = findings(rows, sex="M")
    (pattern,) = [f for f in found if f.code == "anti_gbm.pattern"]
    assert str(pattern.severity) == "urgent"
    assert "anti-GBM" in pattern.message and "consistent with" in pattern.message
    assert pattern.date.isoformat() == "2020-08-13"  # the creatinine, the latest evidence
    # the pattern supersedes "haematuria with proteinuria"; the components stay
    assert "anti_gbm.haematuria_proteinuria" not in {f.code for f in found}
    assert {"anti_gbm.haematuria", "anti_gbm.proteinuria", "anti_gbm.creatinine_rise"} <= {
        f.code for f in found
    }


def test_the_creatinine_rise_may_come_before_the_haematuria() -> None:
    rows = [BASELINE, (200, "Creat", "95", "umol/L"), (230, "Urine RBC", "10-20", "/HPF")]
    assert "anti_gbm.pattern" in codes(rows)


def test_a_high_creatinine_without_a_rise_is_not_the_pattern() -> None:
    rows = [
        (-5, "Creat", "120", "umol/L"),
        (200, "Creat", "125", "umol/L"),
        (205, "U-Blood", "1+", ""),
    ]
    assert "anti_gbm.pattern" not in codes(rows)


def test_the_same_three_spread_over_60_days_make_no_composite() -> None:
    rows = [
        BASELINE,
        (200, "U-Blood", "2+", ""),
        (231, "Urine protein", "2+", ""),
        (262, "Creat", "100", "umol/L"),
    ]
    found = codes(rows)
    assert found == {"anti_gbm.haematuria", "anti_gbm.proteinuria", "anti_gbm.creatinine_rise"}


def test_pattern_window_edges() -> None:
    at_30 = [BASELINE, (200, "U-Blood", "2+", ""), (230, "Creat", "95", "umol/L")]
    at_31 = [BASELINE, (200, "U-Blood", "2+", ""), (231, "Creat", "95", "umol/L")]
    assert "anti_gbm.pattern" in codes(at_30)
    assert "anti_gbm.pattern" not in codes(at_31)


def test_one_pattern_per_episode_and_separate_episodes_stay_separate() -> None:
    monthly = [BASELINE]
    for month in range(3):
        monthly += [
            (200 + 30 * month, "U-Blood", "2+", ""),
            (205 + 30 * month, "Creat", "100", "umol/L"),
        ]
    patterns = [f for f in findings(monthly, sex="M") if f.code == "anti_gbm.pattern"]
    assert len(patterns) == 1 and patterns[0].results_in_episode >= 3
    apart = [
        BASELINE,
        (200, "U-Blood", "2+", ""),
        (205, "Creat", "100", "umol/L"),
        (205 + 120, "Creat", "60", "umol/L"),
        (400, "U-Blood", "2+", ""),
        (405, "Creat", "100", "umol/L"),
    ]
    patterns = [f for f in findings(apart, sex="M") if f.code == "anti_gbm.pattern"]
    assert len(patterns) == 2


@settings(max_examples=300)  # microseconds each
@given(
    st.lists(st.integers(0, 3), min_size=1, max_size=6),
    st.lists(st.integers(0, 3), min_size=1, max_size=6),
)
def test_the_deciding_pairs_are_the_lowest_at_the_earliest_and_the_latest_date(
    first_hours: list[int], second_hours: list[int]
) -> None:
    """Two finding facts' rows at a few times of one day: of all pairs (dated by their later
    result), the lowest pair at the latest date and the lowest at the earliest, as counted
    over every pair."""
    day = dt.datetime(2024, 5, 1)
    first = tuple(range(len(first_hours)))
    second = tuple(range(10, 10 + len(second_hours)))
    hours = dict(zip(first + second, first_hours + second_hours, strict=True))
    records = {row: {"collected_at": day + dt.timedelta(hours=h)} for row, h in hours.items()}
    dated = [(max(hours[a], hours[b]), (a, b)) for a in first for b in second]
    latest = min(pair for when, pair in dated if when == max(dated)[0])
    earliest = min(pair for when, pair in dated if when == min(dated)[0])
    one, two = (findings_module._Span.of(rows, records) for rows in (first, second))
    assert findings_module._deciding_pairs(one, two) == {latest, earliest}
