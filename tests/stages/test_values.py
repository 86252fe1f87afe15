"""What labs send, parsed into value, censoring and dipstick grade."""

from __future__ import annotations

import math

import pytest

from lemlabs.stages.values import parse_value

CASES = [
    ("4.2", "number", 4.2, ""),
    ("4,2", "number", 4.2, ""),
    ("148,0", "number", 148.0, ""),
    ("4,25", "number", 4.25, ""),
    (" 4.2 ", "number", 4.2, ""),
    ("<0.01", "number", 0.01, "<"),
    ("< 0,01", "number", 0.01, "<"),
    ("≤0.01", "number", 0.01, "<="),
    ("<=0.01", "number", 0.01, "<="),
    (">1000", "number", 1000.0, ">"),
    ("≥5", "number", 5.0, ">="),
    (".5", "number", 0.5, ""),
    ("5-10", "range", 5.0, ""),
    ("5 - 10", "range", 5.0, ""),
    ("TNTC", "tntc", math.nan, ">"),
    ("too numerous to count", "tntc", math.nan, ">"),
    ("neg", "grade", 0.0, ""),
    ("Negative", "grade", 0.0, ""),
    ("trace", "grade", 0.5, ""),
    ("1+", "grade", 1.0, ""),
    ("+", "grade", 1.0, ""),
    ("++", "grade", 2.0, ""),
    ("+++", "grade", 3.0, ""),
    ("4+", "grade", 4.0, ""),
    ("small", "grade", 1.0, ""),
    ("moderate", "grade", 2.0, ""),
    ("large", "grade", 3.0, ""),
    ("positive", "grade", 1.0, ""),
    # after a lone 0 the comma can only be decimal (domain.md): no thousands start with 0
    ("0,125", "number", 0.125, ""),
    ("0,085", "number", 0.085, ""),
    ("<0,125", "number", 0.125, "<"),
    ("0,0125", "number", 0.0125, ""),
]


@pytest.mark.parametrize(("raw", "shape", "value", "censor"), CASES)
def test_values_labs_send(raw: str, shape: str, value: float, censor: str) -> None:
    parsed = parse_value(raw)
    assert parsed.problem is None
    assert parsed.shape == shape
    assert parsed.censor == censor
    if math.isnan(value):
        assert math.isnan(parsed.value)
    else:
        assert parsed.value == pytest.approx(value)


def test_range_keeps_both_bounds() -> None:
    parsed = parse_value("5-10")
    assert (parsed.value, parsed.high) == (5.0, 10.0)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("1,200", "ambiguous comma"),
        ("12,345", "ambiguous comma"),
        ("10,125", "ambiguous comma"),
        ("00,125", "ambiguous comma"),
        ("", "empty"),
        ("   ", "empty"),
        ("abc", "unreadable"),
        ("4.2.1", "unreadable"),
        ("10-5", "unreadable"),
        ("x" * 70, "too long"),
        ("1,2345", "unreadable"),
    ],
)
def test_unreadable_values_are_problems_never_guesses(raw: str, reason: str) -> None:
    parsed = parse_value(raw)
    assert parsed.shape == "invalid"
    assert parsed.problem is not None and reason in parsed.problem
