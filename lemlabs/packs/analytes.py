"""The analyte catalogue (``data/analytes.toml``): names, LOINC codes, canonical units, bounds."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Literal

ValueKind = Literal["quantitative", "ordinal", "count_per_hpf"]
Specimen = Literal["blood", "urine"]


@dataclass(frozen=True)
class RefInterval:
    """A reference interval in the canonical unit; either side may be open (``None``)."""

    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Analyte:
    """One analyte lemlabs scores."""

    key: str
    label: str
    kind: ValueKind
    unit: str
    specimen: Specimen
    loinc: tuple[str, ...]
    aliases: tuple[str, ...]
    ref: RefInterval
    ref_source: str
    ref_by_sex: dict[str, RefInterval] = field(default_factory=dict)
    molar_mass: float | None = None
    plausible: tuple[float, float] | None = None
    max_grade: float | None = None
    tntc: float | None = None
    mass_unit: str | None = None
    grade_cutoffs_mg_dl: tuple[tuple[float, float], ...] = ()
    plausible_mg_dl: tuple[float, float] | None = None
    critical_low: str | None = None
    """The threshold key below which a result is critically low (interpretation LL)."""
    critical_high: str | None = None
    ucum: str | None = None


def name_key(text: str) -> str:
    """Fold a test name for matching: lower case, punctuation and spacing collapsed."""
    return re.sub(r"[\s_,;:()\[\]\.]+", " ", text.casefold()).strip()


def _ref(raw: dict[str, Any] | None) -> RefInterval:
    raw = raw or {}
    return RefInterval(low=raw.get("low"), high=raw.get("high"))


def _analyte(key: str, raw: dict[str, Any]) -> Analyte:
    by_sex = {sex.upper(): _ref(raw[f"ref_{sex}"]) for sex in ("f", "m") if f"ref_{sex}" in raw}
    return Analyte(
        key=key,
        label=raw["label"],
        kind=raw["kind"],
        unit=raw["unit"],
        specimen=raw["specimen"],
        loinc=tuple(raw["loinc"]),
        aliases=tuple(raw["aliases"]),
        ref=_ref(raw.get("ref")),
        ref_source=raw["ref_source"],
        ref_by_sex=by_sex,
        molar_mass=raw.get("molar_mass"),
        plausible=tuple(raw["plausible"]) if "plausible" in raw else None,
        max_grade=raw.get("max_grade"),
        tntc=raw.get("tntc"),
        mass_unit=raw.get("mass_unit"),
        grade_cutoffs_mg_dl=tuple(
            (float(a), float(b)) for a, b in raw.get("grade_cutoffs_mg_dl", [])
        ),
        plausible_mg_dl=tuple(raw["plausible_mg_dl"]) if "plausible_mg_dl" in raw else None,
        critical_low=raw.get("critical", {}).get("low"),
        critical_high=raw.get("critical", {}).get("high"),
        ucum=raw.get("ucum"),
    )


@cache
def catalogue() -> dict[str, Analyte]:
    """Every analyte, by key (``tsh``, ``free_t4``, ``platelets``, ``creatinine``, ...)."""
    text = resources.files("lemlabs").joinpath("data/analytes.toml").read_text("utf-8")
    return {key: _analyte(key, raw) for key, raw in tomllib.loads(text).items()}


@cache
def _index() -> tuple[dict[str, str], dict[str, str]]:
    by_loinc: dict[str, str] = {}
    by_name: dict[str, str] = {}
    for analyte in catalogue().values():
        for code in analyte.loinc:
            by_loinc[code] = analyte.key
        for name in (analyte.key, analyte.label, *analyte.aliases):
            by_name[name_key(name)] = analyte.key
    return by_loinc, by_name


@cache
def _specimens() -> tuple[dict[str, str], dict[str, str]]:
    """Specimen words → ``blood``/``urine``, and LOINC codes known to be other tests."""
    text = resources.files("lemlabs").joinpath("data/specimens.toml").read_text("utf-8")
    raw = tomllib.loads(text)
    words = {name_key(word): kind for kind, names in raw["specimens"].items() for word in names}
    return words, dict(raw["other_loinc"])


_NO_CODE = {"na", "n/a", "nan", "none", "null", "-", "--"}


@dataclass(frozen=True)
class Identity:
    """What a row is: ``analyte`` (``""`` when not scored), ``reason`` when not scored, and
    ``issue`` when name and code contradict each other (a data issue, never scored)."""

    analyte: str = ""
    reason: str = ""
    issue: str = ""


def identify(test: str, loinc: str = "", specimen: str = "") -> Identity:
    """Which analyte a row holds, when its name, LOINC code and specimen agree (domain.md).

    A LOINC code outside the catalogue is not scored, whatever the name says (urine creatinine
    2161-8 named "Creatinine" is not serum creatinine); a LOINC of one analyte with the name of
    another is a data issue; a specimen other than the analyte's is not scored.
    """
    by_loinc, _ = _index()
    words, other = _specimens()
    book = catalogue()
    by_name = recognise(test)
    sdtm = _sdtm_code(test)
    if by_name is None and sdtm is not None:
        by_name = sdtm["analyte"]
        needs = sdtm.get("needs")
        kind = words.get(name_key(specimen)) if specimen.strip() else None
        if needs and kind != needs:
            said = f"specimen {specimen.strip()!r}" if specimen.strip() else "no specimen"
            return Identity(
                reason=f"SDTM code {test.strip()} with {said}: lemlabs scores it as "
                f"{book[by_name].label} with LBSPEC {needs.upper()} only"
            )
    code = loinc.strip()
    if code.casefold() in _NO_CODE:
        code = ""
    if not code and test.strip() in other:
        code = test.strip()
    if code and code in by_loinc:
        analyte = by_loinc[code]
        if by_name and by_name != analyte:
            return Identity(
                issue=f"test name and LOINC disagree: {test.strip()!r} is "
                f"{book[by_name].label}, LOINC {code} is {book[analyte].label}"
            )
    elif code:
        known = f" ({other[code]})" if code in other else ""
        return Identity(reason=f"LOINC {code}{known} is not a test lemlabs monitors")
    elif by_name:
        analyte = by_name
    else:
        return Identity(reason="not a test lemlabs monitors")
    place = specimen.strip()
    if place:
        kind = words.get(name_key(place))
        expected = book[analyte].specimen
        if kind is None:
            return Identity(
                reason=f"specimen {place!r} is not one lemlabs knows "
                f"({book[analyte].label} is scored in {expected} only)"
            )
        if kind != expected:
            return Identity(
                reason=f"specimen {place!r} is {kind}: {book[analyte].label} is scored in "
                f"{expected} only"
            )
    return Identity(analyte=analyte)


@cache
def sdtm_codes() -> dict[str, dict[str, str]]:
    """SDTM ``LBTESTCD`` → ``{analyte, name, needs?}`` (``data/sdtm.toml``; ``needs``: the
    specimen kind it must have)."""
    text = resources.files("lemlabs").joinpath("data/sdtm.toml").read_text("utf-8")
    codes: dict[str, dict[str, str]] = tomllib.loads(text)["codes"]
    return codes


def _sdtm_code(test: str) -> dict[str, str] | None:
    """The SDTM LBTESTCD entry a test name is, if any (case-exact, as SDTM codes are upper
    case)."""
    return sdtm_codes().get(test.strip())


@cache
def _known_names() -> dict[str, str]:
    """Every name and code lemlabs recognises (folded) → the analyte's label."""
    book = catalogue()
    names = {name: book[key].label for name, key in _index()[1].items()}
    for code, entry in sdtm_codes().items():
        names[name_key(code)] = book[entry["analyte"]].label
    return names


def looks_like(test: str, reason: str = "") -> str:
    """The label of the monitored analyte an unscored test looks like ("" when none): a known
    name or code with a specimen lemlabs does not score it in, or a name within one or two
    letters of a known one ("PLAT1", "CREATN", "TSH3")."""
    import difflib

    known = _known_names()
    key = name_key(test)
    if key in known and ("specimen" in reason or "SDTM code" in reason):
        return known[key]
    if key in known or len(key) < 3:
        return ""
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.8)
    return known[close[0]] if close else ""


def recognise(test: str | None, loinc: str | None = None) -> str | None:
    """The analyte key for a row: by LOINC code first, then by name; ``None`` when not scored."""
    by_loinc, by_name = _index()
    for code in (loinc, test):
        if code and code.strip() in by_loinc:
            return by_loinc[code.strip()]
    if test:
        return by_name.get(name_key(test))
    return None
