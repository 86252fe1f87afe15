"""What a rule is: a durable-rules condition built from the threshold table, plus its wording.

A rule pack (thyroid, platelets, renal) is a list of :class:`Rule`. Single-test rules match result
facts; composite rules match the findings those produce (``alias`` names each matched finding).
Schedule rules match one fact per patient and test group (:mod:`lemlabs.schedule`). Conditions
use durable-rules' ``m``/``c`` expressions; only :mod:`lemlabs.engine` runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from lemlabs.models import Condition, Severity
from lemlabs.rules.thresholds import Thresholds

Fact = Mapping[str, Any]
Phase = Literal["result", "finding", "schedule"]


@dataclass(frozen=True)
class Gate:
    """A cheap pandas pre-test: a result that passes no gate of its analyte can match no rule.

    Compares ``column`` with the threshold ``key``, or with ``literal`` when no key is given.
    A test checks that scoring with the gates equals scoring with every result posted.
    """

    analyte: str
    column: str
    op: Literal["<", ">", ">=", "!="]
    key: str | None = None
    literal: str | None = None


@dataclass(frozen=True)
class Rule:
    """One rule: when it matches, what it says, which thresholds (and so which sources) it uses."""

    id: str
    code: str
    condition: Condition
    severity: Severity
    when: Callable[[Thresholds], tuple[Any, ...]]
    message: str
    action: str
    thresholds: tuple[str, ...]
    phase: Phase = "result"
    aliases: tuple[str, ...] = ("m",)
    grade: Callable[[Fact, Thresholds], int | None] | None = None
    notes: Callable[[Fact, Thresholds], list[str]] | None = None
    sources: tuple[str, ...] = field(default_factory=tuple)
    worst: Literal["lowest", "highest"] | None = None
    """Which extreme of an episode the message reports (the lowest platelet count, ...)."""
    superseded_by: str | None = None
    """A composite's hit is dropped when a hit of this code matched the same ``first`` finding."""

    def text(self, thresholds: Thresholds) -> tuple[str, str]:
        """The message and the action with threshold values filled in (``{itp.urgent_below}``)."""
        values = {
            key: f"{thresholds[key]:g}"
            for key in self.thresholds
            if not isinstance(thresholds[key], str)
        }
        message, action = self.message, self.action
        for key, value in values.items():
            message = message.replace("{" + key + "}", value)
            action = action.replace("{" + key + "}", value)
        return message, action

    def source(self, thresholds: Thresholds) -> str:
        """Citations of every threshold the rule uses, plus its own sources, without repeats."""
        cited = [*self.sources, *(thresholds.entry(key).source for key in self.thresholds)]
        return "; ".join(dict.fromkeys(cited))
