"""The threshold table: every number a rule uses, with its source (``rules/thresholds.toml`` and
each pack's ``thresholds.toml``); a site's override layered on it, validated; versioning."""

from __future__ import annotations

import hashlib
import json
import math
import os
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lemlabs.errors import ThresholdError
from lemlabs.version import __version__

Number = int | float


@dataclass(frozen=True)
class Threshold:
    """One number (or label) a rule uses, with how it compares and where it comes from."""

    key: str
    value: Number | str
    source: str
    unit: str = ""
    compare: str = ""
    range: tuple[Number, Number] | None = None
    """The values a site may choose (windows in days, counts): outside it a table is refused."""
    analyte: str = ""
    """The analyte whose canonical unit ``unit`` is (a site may give the value in another of its
    units: it is converted with the analyte's own factors, molar mass included)."""


Convert = Callable[[Threshold, str], float]
"""The factor from a unit a site wrote to a default's unit (raises :class:`ThresholdError`)."""


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """``{"itp": {"suspected_below": {...}}}`` → ``{"itp.suspected_below": {...}}``."""
    flat: dict[str, dict[str, Any]] = {}
    for name, item in table.items():
        key = f"{prefix}{name}"
        if isinstance(item, Mapping) and "value" in item:
            flat[key] = dict(item)
        elif isinstance(item, Mapping) and key.count(".") < 3:
            flat.update(_flatten(item, f"{key}."))
        else:
            raise ThresholdError(f"threshold {key!r}: expected a table with 'value' and 'source'")
    return flat


def _same_type(default: Number | str, given: Any) -> bool:
    if isinstance(default, str):
        return isinstance(given, str)
    return isinstance(given, int | float) and not isinstance(given, bool)


class Thresholds(Mapping[str, Any]):
    """A complete, validated threshold table. Index it by key: ``t["itp.suspected_below"]``.
    ``packs`` is the fingerprint of the packs whose defaults it holds (part of its own)."""

    def __init__(self, entries: Mapping[str, Threshold], packs: str = "") -> None:
        self._entries = dict(entries)
        self.packs = packs

    def __getitem__(self, key: str) -> Any:
        return self._entries[key].value

    def entry(self, key: str) -> Threshold:
        """The whole record for ``key``: value, unit, comparison, source."""
        return self._entries[key]

    def __iter__(self) -> Iterator[str]:
        """Every key, sorted."""
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def fingerprint(self) -> str:
        """Short hash of the values (and sources) and of the packs: part of every finding's
        ``rules_version``."""
        content = {key: [e.value, e.source] for key, e in sorted(self._entries.items())}
        text = json.dumps([content, self.packs], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    def as_table(self) -> dict[str, dict[str, Any]]:
        """Flat ``{key: {value, unit, compare, source}}``: a starting point for a site table."""
        return {
            key: {"value": e.value, "unit": e.unit, "compare": e.compare, "source": e.source}
            for key, e in sorted(self._entries.items())
        }

    @classmethod
    def from_table(
        cls,
        table: Mapping[str, Any],
        reference: Thresholds | None = None,
        packs: str = "",
        convert: Convert | None = None,
    ) -> Thresholds:
        """Validate ``table`` (nested as in the TOML file, or flat by dotted key).

        Without ``reference`` it is a pack's table of defaults: every number has a ``range``.
        With ``reference`` (the defaults) the table is a site's layer: it names only the keys it
        changes, each with a value of the reference's type (within the reference's ``range``) and
        a source of its own; the reference fills every other key. An unknown key is refused. A
        value in another unit than the default's is converted with ``convert`` (none given: it is
        refused), and its source says what was written.
        """
        if not isinstance(table, Mapping):
            raise ThresholdError("a threshold table is a table of keys, not a list or a value")
        flat = _flatten(table)
        if reference is not None:
            unknown = sorted(set(flat) - set(reference.keys()))
            if unknown:
                raise ThresholdError(f"threshold table has unknown keys {', '.join(unknown)}")
        entries = dict(reference._entries) if reference is not None else {}
        for key, item in flat.items():
            base = reference.entry(key) if reference is not None else None
            entries[key] = _entry(key, item, base, convert)
        return cls(entries, reference.packs if reference is not None else packs)


def _entry(
    key: str, item: Mapping[str, Any], base: Threshold | None, convert: Convert | None
) -> Threshold:
    """One validated entry; ``base`` is the default it replaces (its type, unit and range)."""
    value: Any = item.get("value")
    source = item.get("source")
    expected = base.value if base is not None else value
    if not _same_type(expected, value):
        kind = "text" if isinstance(expected, str) else "a number"
        raise ThresholdError(f"threshold {key!r}: value {value!r} is not {kind}")
    if not isinstance(source, str) or not source.strip():
        raise ThresholdError(f"threshold {key!r}: a source (text) is required")
    unit = _text(key, item, "unit", base.unit if base else "")
    if not isinstance(value, str):
        if not math.isfinite(value) or (value != 0 and not 1e-3 <= abs(value) <= 1e12):
            raise ThresholdError(f"threshold {key!r}: {value!r} is outside 0.001–1e12")
        if base is not None and unit.strip() != base.unit:
            factor = _factor(base, unit, convert)
            source = f"{source} [given as {value:g} {unit.strip()}]"
            value, unit = float(f"{value * factor:.12g}"), base.unit
        if isinstance(expected, int) and not float(value).is_integer():
            shown = f"{value!r} {unit}".strip()
            raise ThresholdError(f"threshold {key!r}: {shown} is not a whole number")
        bounds = base.range if base is not None else _range(key, item)
        if bounds is None:
            raise ThresholdError(
                f"threshold {key!r}: a number needs a range = [lowest, highest] (the values a "
                "site may choose)"
            )
        if not bounds[0] <= value <= bounds[1]:
            shown = f"{value!r} {unit}".strip()
            raise ThresholdError(
                f"threshold {key!r}: {shown} is outside {bounds[0]:g}–{bounds[1]:g} {unit}".strip()
            )
        if isinstance(expected, int):
            value = int(value)
    return Threshold(
        key,
        value,
        source,
        unit,
        _text(key, item, "compare", base.compare if base else ""),
        base.range if base is not None else _range(key, item),
        base.analyte if base is not None else _text(key, item, "analyte", ""),
    )


def _text(key: str, item: Mapping[str, Any], name: str, default: str) -> str:
    given = item.get(name, default)
    if not isinstance(given, str):
        raise ThresholdError(f"threshold {key!r}: {name} {given!r} is not text")
    return given


def _factor(base: Threshold, unit: str, convert: Convert | None) -> float:
    """The factor from a site's ``unit`` to the default's; refused when it cannot be made."""
    if convert is None:
        raise ThresholdError(
            f"threshold {base.key!r}: unit {unit!r} is not {base.unit!r} (give it in {base.unit})"
        )
    return convert(base, unit)


def _range(key: str, item: Mapping[str, Any]) -> tuple[Number, Number] | None:
    bounds = item.get("range")
    if bounds is None:
        return None
    if (
        not isinstance(bounds, list)
        or len(bounds) != 2
        or not all(_same_type(0, bound) for bound in bounds)
        or not bounds[0] <= bounds[1]
    ):
        raise ThresholdError(f"threshold {key!r}: range is [lowest, highest]")
    return bounds[0], bounds[1]


def rules_version(thresholds: Thresholds) -> str:
    """Package version plus a hash of the threshold table, e.g. ``0.1.0+cb191746d7``."""
    return f"{__version__}+{thresholds.fingerprint()}"


def layered(
    site: Thresholds | Mapping[str, Any] | str | os.PathLike[str] | None,
    base: Thresholds,
    convert: Convert | None = None,
) -> Thresholds:
    """``base`` (the packs' defaults) with a site's table (a mapping or a ``.toml``/``.json``
    file naming only the keys it changes) layered on it; ``convert`` brings a value written in
    another unit to the default's."""
    if site is None:
        return base
    if isinstance(site, Thresholds):
        return Thresholds.from_table(site.as_table(), base, convert=convert)
    if isinstance(site, str | os.PathLike):
        path = Path(site)
        try:
            text = path.read_text("utf-8-sig")  # a byte-order mark is not TOML's first statement
            table = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (OSError, ValueError, RecursionError) as error:
            raise ThresholdError(f"{path}: cannot read the threshold table ({error})") from error
        return Thresholds.from_table(table, base, convert=convert)
    return Thresholds.from_table(site, base, convert=convert)


def site_template(thresholds: Thresholds) -> str:
    """The effective table as TOML: a site file to edit (``lemlabs thresholds --dump``)."""
    lines = [
        "# lemlabs threshold table: every key with its effective value and source. A site file",
        "# needs only the keys it changes, each with its own source; remove the others.",
    ]
    for key in thresholds:
        entry = thresholds.entry(key)
        lines += ["", f"[{key}]", f"value = {json.dumps(entry.value)}"]
        if entry.unit:
            lines.append(f"unit = {json.dumps(entry.unit, ensure_ascii=False)}")
        if entry.compare:
            lines.append(f"compare = {json.dumps(entry.compare)}")
        if entry.range is not None:
            lines.append(f"# a value from {entry.range[0]:g} to {entry.range[1]:g}")
        lines.append(f"source = {json.dumps(entry.source, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"
