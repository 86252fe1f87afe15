"""The words findings are made of: how severe (``Severity``) and what they point toward
(``Condition``). Both are re-exported by :mod:`lemlabs.models` and :mod:`lemlabs`."""

from __future__ import annotations

from enum import IntEnum, StrEnum


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


class Condition(StrEnum):
    """What a finding points toward."""

    THYROID = "thyroid"
    ITP = "itp"
    ANTI_GBM = "anti_gbm"
    MONITORING = "monitoring"
