"""Reading one pack folder: ``pack.toml`` (its condition and citation), ``analytes.toml``,
``thresholds.toml``, ``rules.toml``, ``schedule.toml`` and ``ctcae_v4.toml`` / ``ctcae_v5.toml`` /
``ctcae_v6.toml`` (its own CTCAE terms), each optional but ``pack.toml``. Any other ``.toml`` in
the folder is refused by name (a misspelt file would otherwise be ignored in silence)."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lemlabs.errors import PackError, RuleDefinitionError
from lemlabs.packs.analytes import Analyte, read_analyte

FILES = (
    "pack.toml",
    "analytes.toml",
    "thresholds.toml",
    "rules.toml",
    "schedule.toml",
    "ctcae_v4.toml",
    "ctcae_v5.toml",
    "ctcae_v6.toml",
)
_PACK_KEYS = {"condition", "title", "source", "order", "charts", "explains", "needs"}
_GROUP_KEYS = {"analytes", "interval", "tolerance", "asks_for"}


@dataclass(frozen=True)
class ScheduleGroup:
    """A group of tests the label's schedule asks for: any result of its ``analytes`` satisfies
    it, every ``interval`` (a threshold key, days) within ``tolerance`` (a key, days)."""

    name: str
    analytes: tuple[str, ...]
    interval: str
    tolerance: str
    asks_for: str
    pack: str = ""


@dataclass(frozen=True, eq=False)
class Pack:
    """One pack folder as read (checked against the other packs when loaded with them); equal
    only to itself (a folder is read once per content: :func:`lemlabs.packs.load_packs`)."""

    name: str
    path: Path
    condition: str
    title: str
    """What its condition is called where a clinician reads (plots, reports)."""
    citation: str
    order: int
    analytes: tuple[Analyte, ...]
    thresholds: Mapping[str, Any]
    rules: Mapping[str, Any]
    schedule: tuple[ScheduleGroup, ...]
    ctcae: Mapping[str, tuple[Mapping[str, Any], ...]]
    """Its own CTCAE terms' records, by short version (``v4``, ``v5``, ``v6``)."""
    charts: tuple[str, ...] = ()
    """The analytes a patient's chart shows unless asked for others."""
    explains: tuple[str, ...] = ()
    """Conditions whose findings its own explain (TTP explains ITP): listed above them."""
    needs: tuple[str, ...] = ()
    """Packs whose analytes, thresholds or codes its rules read: loaded with it, or an error."""
    builtin: bool = False

    def where(self, file: str) -> str:
        """How messages name one of its files: ``rules/itp/rules.toml`` for a built-in pack,
        the path for a site's."""
        return f"rules/{self.name}/{file}" if self.builtin else str(self.path / file)


def read_toml(path: Path, where: str) -> dict[str, Any]:
    """A TOML file, or a :class:`PackError` naming it and the line."""
    try:
        return tomllib.loads(path.read_text("utf-8-sig"))
    except tomllib.TOMLDecodeError as error:
        raise PackError(f"{where}: not valid TOML ({error})") from None
    except (OSError, UnicodeDecodeError) as error:
        raise PackError(f"{where}: cannot be read ({error})") from None


def read_pack(path: Path, builtin: bool = False) -> Pack:
    """A pack folder, read and checked on its own (names are checked against the other packs by
    :class:`lemlabs.packs.Packs`)."""
    name = path.name
    if not path.is_dir():
        raise PackError(f"{path}: a pack is a folder (with pack.toml, analytes.toml, ...)")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise PackError(f"{path}: a pack's folder name is lower case letters, digits and '_'")
    stray = sorted(p.name for p in path.glob("*.toml") if p.name not in FILES)
    if stray:
        raise PackError(f"{path / stray[0]}: not a pack file (a pack holds {', '.join(FILES)})")

    def where(file: str) -> str:
        return f"rules/{name}/{file}" if builtin else str(path / file)

    def load(file: str) -> dict[str, Any]:
        target = path / file
        return read_toml(target, where(file)) if target.is_file() else {}

    if not (path / "pack.toml").is_file():
        raise PackError(f"{where('pack.toml')}: missing (it names the pack's condition and source)")
    about = load("pack.toml")
    unknown = sorted(set(about) - _PACK_KEYS)
    if unknown:
        raise PackError(f"{where('pack.toml')}: unknown keys {', '.join(unknown)}")
    if not isinstance(about.get("source"), str) or not about["source"].strip():
        raise PackError(f"{where('pack.toml')}: 'source' (the citation of its rules) is missing")
    condition = about.get("condition", name)
    if not isinstance(condition, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", condition):
        raise PackError(f"{where('pack.toml')}: condition is lower case letters, digits and '_'")
    order = about.get("order", 100)
    if not isinstance(order, int):
        raise PackError(f"{where('pack.toml')}: order is a whole number")
    charts = about.get("charts", [])
    if not isinstance(charts, list) or not all(isinstance(c, str) for c in charts):
        raise PackError(f"{where('pack.toml')}: charts is a list of analyte keys")
    explains = about.get("explains", [])
    if not isinstance(explains, list) or not all(isinstance(c, str) for c in explains):
        raise PackError(f"{where('pack.toml')}: explains is a list of conditions")
    needs = about.get("needs", [])
    if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
        raise PackError(f"{where('pack.toml')}: needs is a list of pack names")
    try:
        analytes = tuple(
            read_analyte(key, raw, where("analytes.toml"), name)
            for key, raw in load("analytes.toml").items()
        )
        schedule = _groups(load("schedule.toml"), where("schedule.toml"), name)
    except RuleDefinitionError as error:
        raise PackError(str(error)) from None
    return Pack(
        name=name,
        path=path,
        condition=condition,
        title=str(about.get("title", condition)),
        citation=about["source"],
        order=order,
        analytes=analytes,
        thresholds=load("thresholds.toml"),
        rules=load("rules.toml"),
        schedule=schedule,
        ctcae={
            short: tuple(load(f"ctcae_{short}.toml").get("term", ()))
            for short in ("v4", "v5", "v6")
            if (path / f"ctcae_{short}.toml").is_file()
        },
        charts=tuple(charts),
        explains=tuple(explains),
        needs=tuple(needs),
        builtin=builtin,
    )


def _groups(raw: Mapping[str, Any], where: str, pack: str) -> tuple[ScheduleGroup, ...]:
    groups = []
    for name, item in raw.items():
        at = f"{where}, [{name}]"
        if not isinstance(item, Mapping) or set(item) != _GROUP_KEYS:
            raise PackError(f"{at}: a group has {', '.join(sorted(_GROUP_KEYS))}")
        analytes = item["analytes"]
        if not isinstance(analytes, list) or not analytes:
            raise PackError(f"{at}: analytes is a list of analyte keys")
        groups.append(
            ScheduleGroup(
                str(name),
                tuple(map(str, analytes)),
                str(item["interval"]),
                str(item["tolerance"]),
                str(item["asks_for"]),
                pack,
            )
        )
    return tuple(groups)
