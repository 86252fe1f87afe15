"""The words findings are made of: how severe (``Severity``), what they point toward
(``Condition``), and values as people read them (:func:`format_value`). Severity and Condition
are re-exported by :mod:`lemlabs.models` and :mod:`lemlabs`."""

from __future__ import annotations

import re
from enum import IntEnum
from functools import cache
from typing import ClassVar

import numpy as np


class Severity(IntEnum):
    """How soon a finding needs attention; ordered ``info < watch < action < urgent``."""

    INFO = 0
    WATCH = 1
    ACTION = 2
    URGENT = 3

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str | Severity) -> Severity:
        """``"watch"`` (any case) or a Severity → Severity; anything else raises ValueError."""
        if isinstance(text, Severity):
            return text
        try:
            return cls[str(text).strip().upper()]
        except KeyError:
            names = ", ".join(str(s) for s in cls)
            raise ValueError(f"unknown severity {text!r} (one of {names})") from None


class Condition(str):
    """What a finding points toward: the condition of a pack (``thyroid``, ``itp``,
    ``anti_gbm``, ``monitoring``, a site pack's own, ...). A text: lower case letters, digits
    and ``_``. The built-in ones are named too (``Condition.THYROID``)."""

    THYROID: ClassVar[Condition]
    ITP: ClassVar[Condition]
    ANTI_GBM: ClassVar[Condition]
    MONITORING: ClassVar[Condition]

    def __new__(cls, name: str) -> Condition:
        text = str(name)
        if not re.fullmatch(r"[a-z][a-z0-9_]*", text):
            raise ValueError(f"{text!r} is not a condition (lower case letters, digits and '_')")
        return super().__new__(cls, text)

    def __repr__(self) -> str:
        return f"Condition({str(self)!r})"


Condition.THYROID = Condition("thyroid")
Condition.ITP = Condition("itp")
Condition.ANTI_GBM = Condition("anti_gbm")
Condition.MONITORING = Condition("monitoring")


_SUPERSCRIPTS = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


UNITLESS = "1"
"""The canonical unit of a ratio without one (the INR), as pint and UCUM write unity."""


@cache
def unit_text(unit: str) -> str:
    """A canonical unit as people read it: ``10^9/L`` → ``×10⁹/L``, ``umol/L`` → ``µmol/L``,
    ``1`` (a ratio without a unit: the INR) → nothing."""
    if unit == UNITLESS:
        return ""
    text = re.sub(r"^10\^(-?\d+)", lambda m: "×10" + m.group(1).translate(_SUPERSCRIPTS), unit)
    return re.sub(r"(?<![A-Za-z])u(?=[a-zA-Z])", "µ", text)


def format_value(value: float, unit: str, censor: str = "", high: float | None = None) -> str:
    """A value as people read it: dipstick grades as negative/trace/1+, others with their unit,
    a censored value with its sign (">1000 µmol/L") and a range with both ends ("5–10 /HPF")."""
    if unit == "grade":
        return {0.0: "negative", 0.5: "trace"}.get(value, f"{value:g}+")
    number = f"{value:.4g}"
    if high is not None and not np.isnan(high) and high != value:
        number += f"–{high:.4g}"
    return f"{censor}{number} {unit_text(unit)}".rstrip()


# C0 and C1 controls, DEL, and the invisible or bidirectional formatting characters that can
# disguise text on a terminal (zero-width, line/paragraph separators, embeddings, isolates)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def printable(text: object) -> str:
    """``text`` safe to print or draw: every control character (ANSI escapes, newlines,
    carriage returns, bidirectional overrides) shown as an escape (``\\x1b``) rather than
    obeyed."""

    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _CONTROL.sub(escape, str(text))
