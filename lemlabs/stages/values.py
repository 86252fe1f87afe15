"""Parsing of raw result strings ("4,2", "<0.01", "5-10", "TNTC", "1+", "trace") into values."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

Censor = Literal["", "<", "<=", ">", ">="]
Shape = Literal["number", "range", "tntc", "grade", "invalid"]

MAX_VALUE_LENGTH = 64
_NUMBER = r"[+-]?(?:\d+(?:[.,]\d+)?|[.,]\d+)(?:[eE][+-]?\d+)?"
_PLAIN_NUMBER = re.compile(rf"^{_NUMBER}$")
_CENSORED = re.compile(rf"^(<=|>=|=<|=>|≤|≥|<|>)?\s*({_NUMBER})$")
_RANGE = re.compile(rf"^({_NUMBER})\s*(?:-|–|to)\s*({_NUMBER})$")
# A comma followed by exactly three digits may be a thousands separator ("1,200"); after a lone
# "0" it can only be a decimal comma ("0,125").
_THREE_DIGIT_COMMA = re.compile(r"(?<!\d)(\d+),\d{3}(?!\d)")
_CENSOR_SPELLING: dict[str, Censor] = {
    "": "",
    "<": "<",
    ">": ">",
    "<=": "<=",
    "=<": "<=",
    "≤": "<=",
    ">=": ">=",
    "=>": ">=",
    "≥": ">=",
}
_TNTC = {"tntc", "too numerous to count", "numerous", "innumerable"}
_GRADES: dict[str, float] = {
    "neg": 0,
    "negative": 0,
    "nil": 0,
    "none": 0,
    "not detected": 0,
    "nd": 0,
    "-": 0,
    "trace": 0.5,
    "tr": 0.5,
    "±": 0.5,
    "+/-": 0.5,
    "+-": 0.5,
    "pos": 1,
    "positive": 1,
    "small": 1,
    "+": 1,
    "1+": 1,
    "+1": 1,
    "moderate": 2,
    "mod": 2,
    "++": 2,
    "2+": 2,
    "+2": 2,
    "large": 3,
    "+++": 3,
    "3+": 3,
    "+3": 3,
    "++++": 4,
    "4+": 4,
    "+4": 4,
}


@dataclass(frozen=True)
class ParsedValue:
    """What a raw value says: a number (maybe censored), a range, TNTC, a dipstick grade."""

    shape: Shape
    value: float = float("nan")
    high: float = float("nan")
    censor: Censor = ""
    problem: str | None = None


def parse_number(text: str) -> float | None:
    """A decimal with '.', or with a decimal comma followed by one or two digits (any number of
    digits after a lone "0": "0,125"); else ``None``."""
    if not _PLAIN_NUMBER.match(text):
        return None
    if "," in text:
        whole, _, fraction = text.partition(",")
        lone_zero = whole.lstrip("+-") in ("0", "")
        if not fraction.isdigit() or not (lone_zero or 1 <= len(fraction) <= 2):
            return None
        text = f"{whole}.{fraction}"
    return float(text)


def parse_value(raw: str) -> ParsedValue:
    """Parse one raw result string; a value lemlabs cannot read gets ``problem`` set.

    A number must be finite: ``1e999`` is out of range, never infinity.
    """
    text = raw.strip()
    if not text:
        return ParsedValue("invalid", problem="value is empty")
    if len(text) > MAX_VALUE_LENGTH:  # checked before the cache: a long text is never kept
        return ParsedValue("invalid", problem=f"value is too long ({len(text)} characters)")
    parsed = _parse_short_value(text)
    if not (math.isfinite(parsed.value) or math.isnan(parsed.value)) or math.isinf(parsed.high):
        return ParsedValue("invalid", problem=f"number out of range in {text!r}")
    return parsed


@lru_cache(maxsize=65536)
def _parse_short_value(text: str) -> ParsedValue:
    folded = re.sub(r"\s+", " ", text.casefold())
    if folded in _GRADES:
        return ParsedValue("grade", value=float(_GRADES[folded]))
    if folded in _TNTC:
        return ParsedValue("tntc", censor=">")
    if any(whole != "0" for whole in _THREE_DIGIT_COMMA.findall(text)):
        return ParsedValue(
            "invalid", problem=f"ambiguous comma in {text!r} (thousands or decimal?)"
        )
    match = _CENSORED.match(text)
    if match:
        number = parse_number(match.group(2))
        if number is not None:
            return ParsedValue(
                "number", value=number, censor=_CENSOR_SPELLING[match.group(1) or ""]
            )
    match = _RANGE.match(text)
    if match:
        low, high = parse_number(match.group(1)), parse_number(match.group(2))
        if low is not None and high is not None and low <= high:
            return ParsedValue("range", value=low, high=high)
    return ParsedValue("invalid", problem=f"unreadable value {text!r}")
