"""Packs: a condition's knowledge as a folder of data, and the set of packs a run uses.

The built-in packs are the folders of ``lemlabs/rules/`` (thyroid, itp, anti_gbm, monitoring,
...), found by listing it; a site adds its own folders of the same shape
(``score_frame(..., packs=[path])``, ``lemlabs score --pack DIR``), loaded by the same code. A
pack may use what another defines (an analyte, a threshold) but never define it again: such a
pack is refused by name. Nothing is read at ``import lemlabs``: the packs load when first used,
and an error in a site's pack fails that run only.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from functools import cache, cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from lemlabs.ctcae import VERSIONS, Criteria, Term, criteria, read_terms, version_of
from lemlabs.engine.rules import Rule, RuleBook, Source, compile_book
from lemlabs.errors import PackError, RuleDefinitionError, ThresholdError
from lemlabs.packs.analytes import Analyte, Catalogue
from lemlabs.packs.loader import Pack, ScheduleGroup, read_pack, read_toml
from lemlabs.packs.thresholds import Threshold, Thresholds, layered, rules_version, site_template
from lemlabs.packs.units import check_units, conversion, unit_factor

PackPath = str | os.PathLike[str]


def _rules_folder() -> Path:
    return Path(str(resources.files("lemlabs").joinpath("rules")))


def builtin_names() -> tuple[str, ...]:
    """The built-in packs: every folder of ``lemlabs/rules/`` with a ``pack.toml``."""
    return tuple(
        sorted(path.name for path in _rules_folder().iterdir() if (path / "pack.toml").is_file())
    )


class Packs:
    """The packs one run uses, checked together: their analytes (:attr:`catalogue`), default
    thresholds (:attr:`defaults`), rules (:attr:`book`), schedule groups and CTCAE terms."""

    def __init__(self, packs: Sequence[Pack]) -> None:
        self.packs = tuple(sorted(packs, key=lambda pack: (pack.order, pack.name)))
        names = [pack.name for pack in self.packs]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise PackError(f"pack {twice[0]!r} is loaded twice")
        owners: dict[str, str] = {}
        for pack in packs:  # as loaded: the built-in packs first, a site's after them
            if pack.condition in owners:
                raise PackError(
                    f"{pack.where('pack.toml')}: condition {pack.condition!r} is pack "
                    f"{owners[pack.condition]!r}'s already (a pack's findings are its own "
                    "condition: name a new one)"
                )
            owners[pack.condition] = pack.name
        for pack in self.packs:
            missing = [need for need in pack.needs if need not in names]
            if missing:
                raise PackError(
                    f"{pack.where('pack.toml')}: pack {pack.name!r} needs pack {missing[0]!r} "
                    "(its rules read that pack's analytes, thresholds or codes): load it too"
                )
        folder = _rules_folder()
        self.specimens = read_toml(folder / "specimens.toml", "rules/specimens.toml")
        self.treatment = read_toml(folder / "treatment.toml", "rules/treatment.toml")
        self.catalogue = Catalogue(self._analytes(), self.specimens)
        self.defaults = self._thresholds(folder)
        self.book = self._book()
        conditions = {pack.condition for pack in self.packs}
        for pack in self.packs:
            for other in pack.explains:
                if other not in conditions:
                    raise PackError(
                        f"{pack.where('pack.toml')}: explains {other!r}, which is no loaded "
                        "pack's condition"
                    )
        self.groups = self._groups()
        for version in VERSIONS:  # every term of the packs reads, before the first run
            self.criteria(version)

    def _analytes(self) -> dict[str, Analyte]:
        found: dict[str, Analyte] = {}
        codes: dict[str, str] = {}
        for pack in self.packs:
            for analyte in pack.analytes:
                where = pack.where("analytes.toml")
                if analyte.key in found:
                    raise PackError(
                        f"{where}: analyte {analyte.key!r} is defined by pack "
                        f"{found[analyte.key].pack!r} already"
                    )
                for code in (*analyte.loinc, *(sdtm.code for sdtm in analyte.sdtm)):
                    if code in codes:
                        raise PackError(
                            f"{where}, analyte {analyte.key!r}: code {code!r} is analyte "
                            f"{codes[code]!r}'s already"
                        )
                    codes[code] = analyte.key
                try:
                    check_units(analyte, where)
                except RuleDefinitionError as error:
                    raise PackError(str(error)) from None
                found[analyte.key] = analyte
        for analyte in found.values():
            base = found.get(analyte.percent_of or "")
            if analyte.percent_of and (base is None or base.unit != analyte.unit):
                raise PackError(
                    f"rules/{analyte.pack}/analytes.toml, analyte {analyte.key!r}: percent_of: "
                    f"{analyte.percent_of!r} is no loaded analyte in {analyte.unit}"
                )
        return found

    def _thresholds(self, folder: Path) -> Thresholds:
        entries: dict[str, Threshold] = {}
        owner: dict[str, str] = {}
        shared = "rules/thresholds.toml"
        tables: list[tuple[str, Mapping[str, Any]]] = [
            (shared, read_toml(folder / "thresholds.toml", shared))
        ]
        tables += [(pack.where("thresholds.toml"), pack.thresholds) for pack in self.packs]
        for where, raw in tables:
            try:
                table = Thresholds.from_table(raw)
            except ThresholdError as error:
                raise PackError(f"{where}: {error}") from None
            for key in table:
                if key in entries:
                    raise PackError(
                        f"{where}: threshold {key!r} is defined in {owner[key]} already"
                    )
                owner[key] = where
                entries[key] = table.entry(key)
                self._check_analyte(where, table.entry(key))
        return Thresholds(entries, packs=self.fingerprint)

    def _check_analyte(self, where: str, entry: Threshold) -> None:
        """A threshold that names its analyte is written in that analyte's canonical unit."""
        if not entry.analyte:
            return
        analyte = self.catalogue.get(entry.analyte)
        if analyte is None:
            raise PackError(f"{where}: threshold {entry.key!r}: no analyte {entry.analyte!r}")
        if entry.unit != analyte.unit:
            raise PackError(
                f"{where}: threshold {entry.key!r}: unit {entry.unit!r} is not analyte "
                f"{entry.analyte!r}'s unit {analyte.unit!r}"
            )

    def _book(self) -> RuleBook:
        sources = [
            Source(pack.where("rules.toml"), pack.name, pack.condition, pack.citation, pack.rules)
            for pack in self.packs
        ]
        terms = {key for version in VERSIONS for key in self._terms(version).term_keys()}
        return compile_book(sources, set(self.defaults.keys()), set(self.catalogue), terms)

    def _groups(self) -> dict[str, ScheduleGroup]:
        groups: dict[str, ScheduleGroup] = {}
        for pack in self.packs:
            for group in pack.schedule:
                where = f"{pack.where('schedule.toml')}, [{group.name}]"
                if group.name in groups:
                    raise PackError(f"{where}: group {group.name!r} is defined already")
                for key in (group.interval, group.tolerance):
                    if key not in self.defaults:
                        raise PackError(f"{where}: unknown threshold {key!r}")
                for analyte in group.analytes:
                    if analyte not in self.catalogue:
                        raise PackError(f"{where}: analyte {analyte!r} is in no loaded pack")
                groups[group.name] = group
        return groups

    @cache  # noqa: B019 - a Packs lives as long as the process (packs are loaded once)
    def _terms(self, version: str) -> Criteria:
        builtin = criteria(version)
        table = replace(builtin, terms=self._factored(builtin.terms, "ctcae"))
        short = VERSIONS[version_of(version)]
        for pack in self.packs:
            where = pack.where(f"ctcae_{short}.toml")
            terms = read_terms(pack.ctcae.get(short, ()), where, pack.name)
            for term in terms:
                if term.analyte not in self.catalogue:
                    raise PackError(
                        f"{where}, term {term.key!r}: analyte {term.analyte!r} is in no loaded pack"
                    )
            table = table.with_terms(self._factored(terms, where), where)
        return table

    def _factored(self, terms: Sequence[Term], where: str) -> tuple[Term, ...]:
        """The terms with the factor of each ``in_units`` unit to their analyte's canonical unit
        (a unit it cannot convert is refused by name)."""

        def factor_of(analyte: str, unit: str) -> float:
            found = conversion(self.catalogue[analyte], unit)
            if found.factor is None:
                raise PackError(f"{where}, analyte {analyte!r}: in_units {unit!r}: {found.problem}")
            return found.factor

        return tuple(
            term.with_factors(lambda unit, a=term.analyte: factor_of(a, unit))
            if term.in_units and term.analyte in self.catalogue
            else term
            for term in terms
        )

    def criteria(self, version: str | None = None) -> Criteria:
        """The CTCAE criteria of ``version``: the built-in table and the packs' own terms."""
        return self._terms(version_of(version))

    @cached_property
    def fingerprint(self) -> str:
        """A hash of every pack file's content: part of the rules version of a run."""
        digest = hashlib.sha256()
        for pack in self.packs:
            for path in sorted(pack.path.glob("*.toml")):
                digest.update(f"{pack.name}/{path.name}".encode())
                digest.update(path.read_bytes())
        return digest.hexdigest()[:10]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(pack.name for pack in self.packs)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self.book.rules

    @property
    def titles(self) -> dict[str, str]:
        """What each finding code is called where a clinician reads first."""
        return self.book.titles

    @cached_property
    def conditions(self) -> dict[str, str]:
        """The conditions of the loaded packs, in their order, with what each is called."""
        return {pack.condition: pack.title for pack in self.packs}

    @cached_property
    def explaining(self) -> frozenset[str]:
        """The conditions whose findings explain another condition's (TTP explains ITP): a
        patient's worklist row leads with them among findings of one severity."""
        return frozenset(pack.condition for pack in self.packs if pack.explains)

    @cached_property
    def charts(self) -> tuple[str, ...]:
        """The analytes a patient's chart shows unless asked for others, in the packs' order."""
        return tuple(dict.fromkeys(a for pack in self.packs for a in pack.charts))

    def thresholds(self, site: Any = None) -> Thresholds:
        """The defaults with a site's table layered on them (see :func:`load_thresholds`)."""
        table = site if isinstance(site, Thresholds) and site.packs == self.fingerprint else None
        return table if table is not None else layered(site, self.defaults, self._factor)

    def _factor(self, default: Threshold, unit: str) -> float:
        """The factor from a unit a site wrote to ``default``'s unit (its analyte's when it has
        one), or a :class:`ThresholdError` naming the key."""
        analyte = self.catalogue[default.analyte] if default.analyte else None
        found = unit_factor(unit, default.unit, analyte)
        if found.factor is None:
            raise ThresholdError(f"threshold {default.key!r}: {found.problem}")
        return found.factor

    def ctcae_cites(self, rule: Rule, thresholds: Mapping[str, Any]) -> tuple[str, ...]:
        """What a rule's CTCAE term cites under the table's version."""
        table = self.criteria(str(thresholds["ctcae.version"]))
        terms = [term for key in rule.ctcae if (term := table.find(key)) is not None]
        return tuple(cite for term in terms for cite in term.cites)

    def source(self, rule: Rule, thresholds: Any) -> str:
        """The rule's citations, its CTCAE term's of the table's version among them."""
        return rule.source(thresholds, self.ctcae_cites(rule, thresholds))

    def label(self, analyte: str) -> str:
        return self.catalogue.label(analyte)

    def without(self, *names: str) -> Packs:
        """These packs but the named ones."""
        return Packs([pack for pack in self.packs if pack.name not in names])


@cache
def _builtin(name: str) -> Pack:
    return read_pack(_rules_folder() / name, builtin=True)


@cache
def _site(path: Path, stamp: tuple[tuple[str, int], ...]) -> Pack:
    return read_pack(path)


def _stamp(path: Path) -> tuple[tuple[str, int], ...]:
    """The pack files' names and modification times: a changed file is read again."""
    return tuple((p.name, p.stat().st_mtime_ns) for p in sorted(path.glob("*.toml")))


@cache
def _combined(packs: tuple[Pack, ...]) -> Packs:
    return Packs(packs)


def load_packs(paths: Iterable[PackPath] = (), builtin: bool | Iterable[str] = True) -> Packs:
    """The built-in packs (all of them, those ``builtin`` names, or none) and the site packs
    at ``paths`` (folders), checked together; loaded once per set of files."""
    names = builtin_names() if builtin is True else () if builtin is False else tuple(builtin)
    unknown = sorted(set(names) - set(builtin_names()))
    if unknown:
        raise PackError(f"no built-in pack {unknown[0]!r} (there are {', '.join(builtin_names())})")
    site = []
    for path in paths:
        folder = Path(path).resolve()
        if not folder.is_dir():
            raise PackError(f"{path}: no such pack folder")
        site.append(_site(folder, _stamp(folder)))
    return _combined((*(_builtin(name) for name in names), *site))


def builtin_packs() -> Packs:
    """The packs shipped with lemlabs."""
    return load_packs()


def packs_of(packs: Packs | PackPath | Iterable[PackPath] | None) -> Packs:
    """``None`` (the built-in packs), a :class:`Packs`, or site pack folders added to them."""
    if packs is None:
        return builtin_packs()
    if isinstance(packs, Packs):
        return packs
    if isinstance(packs, str | os.PathLike):
        return load_packs([packs])
    return load_packs(packs)


def default_thresholds() -> Thresholds:
    """The built-in packs' default threshold table."""
    return builtin_packs().defaults


def load_thresholds(site: Any = None, packs: Packs | None = None) -> Thresholds:
    """The packs' defaults (built-in when ``packs`` is None) with a site's table (a mapping, a
    :class:`Thresholds` or a ``.toml``/``.json`` file naming only the keys it changes) layered
    on them."""
    return (packs or builtin_packs()).thresholds(site)


def __getattr__(name: str) -> Any:
    """``ALL_RULES``, ``RULES_BY_ID`` and ``TITLES`` of the built-in packs (read when asked)."""
    book = builtin_packs().book
    values = {"ALL_RULES": book.rules, "RULES_BY_ID": book.by_id, "TITLES": book.titles}
    if name in values:
        return values[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Pack",
    "PackPath",
    "Packs",
    "ScheduleGroup",
    "Threshold",
    "Thresholds",
    "builtin_names",
    "builtin_packs",
    "default_thresholds",
    "load_packs",
    "load_thresholds",
    "packs_of",
    "rules_version",
    "site_template",
]
