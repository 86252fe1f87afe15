"""How far apart in time the composites can join two facts, derived from the rule records
(issue #14: scoring a patient with very many facts in overlapping time windows)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from lemlabs.rules.conditions import day_bounds, parse
from lemlabs.rules.records import join_reach, read_packs, rule_book
from lemlabs.rules.thresholds import default_thresholds

THRESHOLDS = default_thresholds()
KEYS = set(THRESHOLDS.keys())


def _second(text: str) -> Any:
    return parse(text, KEYS, ("first",))


def test_the_bundled_composites_bound_the_day_of_their_second_fact() -> None:
    bounds = {
        rule.id: day_bounds(rule.when[1][1], THRESHOLDS) for rule in rule_book().phase("finding")
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
condition = "anti_gbm"
source = "test"
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
    return read_packs([text], KEYS).phase("finding")


def test_the_reach_is_the_longest_join_and_reads_the_facts_fields() -> None:
    composites = rule_book().phase("finding")
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
