"""The threshold table (``thresholds.toml``): loading, validating a site's override, versioning."""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from lemlabs.errors import ThresholdError

Number = int | float


@dataclass(frozen=True)
class Threshold:
    """One number (or label) a rule uses, with how it compares and where it comes from."""

    key: str
    value: Number | str
    source: str
    unit: str = ""
    compare: str = ""


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """``{"itp": {"suspected_below": {...}}}`` → ``{"itp.suspected_below": {...}}``."""
    flat: dict[str, dict[str, Any]] = {}
    for name, item in table.items():
        key = f"{prefix}{name}"
        if isinstance(item, Mapping) and "value" in item:
            flat[key] = dict(item)
        elif isinstance(item, Mapping):
            flat.update(_flatten(item, f"{key}."))
        else:
            raise ThresholdError(f"threshold {key!r}: expected a table with 'value' and 'source'")
    return flat


def _same_type(default: Number | str, given: Any) -> bool:
    if isinstance(default, str):
        return isinstance(given, str)
    return isinstance(given, int | float) and not isinstance(given, bool)


class Thresholds:
    """A complete, validated threshold table. Index it by key: ``t["itp.suspected_below"]``."""

    def __init__(self, entries: Mapping[str, Threshold]) -> None:
        self._entries = dict(entries)

    def __getitem__(self, key: str) -> Any:
        return self._entries[key].value

    def entry(self, key: str) -> Threshold:
        """The whole record for ``key``: value, unit, comparison, source."""
        return self._entries[key]

    def keys(self) -> list[str]:
        """Every key, sorted."""
        return sorted(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def fingerprint(self) -> str:
        """Short hash of the values (and sources): part of every finding's ``rules_version``."""
        content = {key: [e.value, e.source] for key, e in sorted(self._entries.items())}
        text = json.dumps(content, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    def as_table(self) -> dict[str, dict[str, Any]]:
        """Flat ``{key: {value, unit, compare, source}}``: a starting point for a site override."""
        return {
            key: {"value": e.value, "unit": e.unit, "compare": e.compare, "source": e.source}
            for key, e in sorted(self._entries.items())
        }

    @classmethod
    def from_table(
        cls, table: Mapping[str, Any], reference: Thresholds | None = None
    ) -> Thresholds:
        """Validate ``table`` (nested as in the TOML file, or flat by dotted key).

        With ``reference`` (the defaults), every key must be present, no other key may appear and
        each value must have the reference's type; each entry needs a ``source``.
        """
        flat = _flatten(table)
        if reference is not None:
            missing = sorted(set(reference.keys()) - set(flat))
            unknown = sorted(set(flat) - set(reference.keys()))
            if missing:
                raise ThresholdError(f"threshold table lacks {', '.join(missing)}")
            if unknown:
                raise ThresholdError(f"threshold table has unknown keys {', '.join(unknown)}")
        entries = {}
        for key, item in flat.items():
            value: Any = item.get("value")
            source = item.get("source")
            expected = reference[key] if reference is not None else value
            if not _same_type(expected, value):
                kind = "text" if isinstance(expected, str) else "a number"
                raise ThresholdError(f"threshold {key!r}: value {value!r} is not {kind}")
            if not isinstance(value, str) and value != 0 and not 1e-3 <= abs(value) <= 1e12:
                raise ThresholdError(f"threshold {key!r}: {value!r} is outside 0.001–1e12")
            if not isinstance(source, str) or not source.strip():
                raise ThresholdError(f"threshold {key!r}: a source (text) is required")
            entries[key] = Threshold(
                key, value, source, str(item.get("unit", "")), str(item.get("compare", ""))
            )
        return cls(entries)


@cache
def default_thresholds() -> Thresholds:
    """The table shipped with lemlabs (``lemlabs/rules/thresholds.toml``)."""
    text = resources.files("lemlabs.rules").joinpath("thresholds.toml").read_text("utf-8")
    return Thresholds.from_table(tomllib.loads(text))


def load_thresholds(
    override: Thresholds | Mapping[str, Any] | str | os.PathLike[str] | None,
) -> Thresholds:
    """The defaults, or a site's complete table from a mapping or a ``.toml``/``.json`` file."""
    if override is None:
        return default_thresholds()
    if isinstance(override, Thresholds):
        return Thresholds.from_table(override.as_table(), default_thresholds())
    if isinstance(override, str | os.PathLike):
        path = Path(override)
        try:
            text = path.read_text("utf-8")
            table = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (OSError, ValueError) as error:
            raise ThresholdError(f"{path}: cannot read the threshold table ({error})") from error
        return Thresholds.from_table(table, default_thresholds())
    return Thresholds.from_table(override, default_thresholds())
