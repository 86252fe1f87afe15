"""Typed errors raised for unusable input (row-level problems become data issues instead)."""

from __future__ import annotations


class LemlabsError(Exception):
    """Base class of every error lemlabs raises on purpose."""


class LabInputError(LemlabsError, ValueError):
    """A lab or patient table cannot be read at all (missing file, empty, not UTF-8 text)."""


class MissingColumnError(LabInputError):
    """A required column is absent; ``column`` names it."""

    def __init__(self, column: str, source: str = "input") -> None:
        self.column = column
        super().__init__(f"{source}: required column {column!r} is missing")


class ThresholdError(LemlabsError, ValueError):
    """A threshold override lacks a key, has a wrong type, or an unknown key."""


class RuleError(LemlabsError, RuntimeError):
    """A rule action failed inside the engine (durable-rules would otherwise swallow it)."""


class RuleDefinitionError(LemlabsError, ValueError):
    """A rule record is malformed: an unknown field, threshold, function or placeholder."""
