"""The analyte catalogue: what each pack's ``analytes.toml`` declares (names, LOINC and SDTM
codes, canonical unit and the spellings labs send, bounds, default interval), and how a lab row
is recognised by its name, code and specimen (:meth:`Catalogue.identify`)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from lemlabs.errors import RuleDefinitionError

ValueKind = Literal["quantitative", "ordinal", "count_per_hpf"]
Specimen = Literal["blood", "urine"]
KINDS = ("quantitative", "ordinal", "count_per_hpf")
SPECIMENS = ("blood", "urine")
_KEYS = {
    "label",
    "kind",
    "unit",
    "units",
    "unit_aliases",
    "specimen",
    "ucum",
    "loinc",
    "sdtm",
    "aliases",
    "molar_mass",
    "plausible",
    "ref",
    "ref_f",
    "ref_m",
    "ref_source",
    "critical",
    "max_grade",
    "tntc",
    "mass_unit",
    "grade_cutoffs_mg_dl",
    "plausible_mg_dl",
    "scale",
    "typical",
    "unitless",
    "unscored_units",
    "percent_of",
}
_REQUIRED = ("label", "kind", "unit", "specimen", "loinc", "aliases", "ref_source")


@dataclass(frozen=True)
class RefInterval:
    """A reference interval in the canonical unit; either side may be open (``None``)."""

    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class SdtmCode:
    """An SDTM ``LBTESTCD`` that names the analyte, with its ``LBTEST`` and the ``LBSPEC`` kind
    it needs (``""``: any)."""

    code: str
    name: str
    specimen: str = ""


@dataclass(frozen=True)
class Analyte:
    """One analyte lemlabs scores (every field hashable: conversions are cached by it)."""

    key: str
    label: str
    kind: ValueKind
    unit: str
    specimen: Specimen
    loinc: tuple[str, ...]
    aliases: tuple[str, ...]
    ref: RefInterval
    ref_source: str
    ref_by_sex: tuple[tuple[str, RefInterval], ...] = ()
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
    units: tuple[str, ...] = ()
    """Spellings labs send (each converts to :attr:`unit`); any other pint converts is read too."""
    unit_aliases: tuple[tuple[str, str], ...] = ()
    """Spellings read as another unit (``IU/L`` as ``U/L``)."""
    sdtm: tuple[SdtmCode, ...] = ()
    scale: Literal["linear", "log", "x_uln"] = "linear"
    """How charts draw it (``log``: a suppressed TSH and a raised one both read; ``x_uln``: as
    × the result's own ULN on a log axis, as liver safety is read)."""
    typical: tuple[float, float] | None = None
    """Where a living patient's values usually lie (generated test data draws from it)."""
    unitless: bool = False
    """An empty unit is the canonical one (a ratio such as the INR)."""
    unscored_units: tuple[tuple[str, str], ...] = ()
    """Units whose rows are not scored, each with the reason (an aPTT ratio)."""
    percent_of: str | None = None
    """The analyte a percentage (unit ``%``) is a share of: converted with the same sample's
    result of it (a neutrophil percentage with the white count)."""
    pack: str = ""

    def interval(self, sex: str) -> RefInterval:
        """The default interval for a sex (``F``, ``M`` or ``""``)."""
        return dict(self.ref_by_sex).get(sex, self.ref)


def name_key(text: str) -> str:
    """Fold a test name for matching: lower case, punctuation and spacing collapsed."""
    return re.sub(r"[\s_,;:()\[\]\.]+", " ", text.casefold()).strip()


def _ref(raw: Any, where: str) -> RefInterval:
    if raw is None:
        return RefInterval()
    if not isinstance(raw, Mapping) or set(raw) - {"low", "high"}:
        raise RuleDefinitionError(f"{where}: an interval is {{ low = ..., high = ... }}")
    return RefInterval(low=raw.get("low"), high=raw.get("high"))


def _pair(raw: Any, where: str) -> tuple[float, float] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) != 2 or not raw[0] <= raw[1]:
        raise RuleDefinitionError(f"{where}: expected [lowest, highest]")
    return float(raw[0]), float(raw[1])


def read_analyte(key: str, raw: Mapping[str, Any], where: str, pack: str) -> Analyte:
    """One record of an ``analytes.toml``, checked (the units are checked by
    :func:`lemlabs.packs.units.check_units` once the pint registry is at hand)."""
    at = f"{where}, analyte {key!r}"
    if not re.fullmatch(r"[a-z][a-z0-9_]*", key):
        raise RuleDefinitionError(f"{at}: a key is lower case letters, digits and '_'")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise RuleDefinitionError(f"{at}: unknown keys {', '.join(unknown)}")
    missing = [name for name in _REQUIRED if name not in raw]
    if missing:
        raise RuleDefinitionError(f"{at}: {missing[0]!r} is missing")
    if raw["kind"] not in KINDS:
        raise RuleDefinitionError(f"{at}, kind: one of {', '.join(KINDS)}, not {raw['kind']!r}")
    if raw["specimen"] not in SPECIMENS:
        raise RuleDefinitionError(f"{at}, specimen: blood or urine, not {raw['specimen']!r}")
    codes = []
    for item in raw.get("sdtm", []):
        if not isinstance(item, Mapping) or not {"code", "name"} <= set(item):
            raise RuleDefinitionError(f"{at}, sdtm: each is {{ code = ..., name = ... }}")
        if item.get("specimen", "") not in ("", *SPECIMENS):
            raise RuleDefinitionError(f"{at}, sdtm: specimen is blood or urine")
        codes.append(SdtmCode(str(item["code"]), str(item["name"]), str(item.get("specimen", ""))))
    if raw.get("scale", "linear") not in ("linear", "log", "x_uln"):
        raise RuleDefinitionError(f"{at}, scale: linear, log or x_uln")
    critical = raw.get("critical", {})
    aliases = raw.get("unit_aliases", {})
    if not isinstance(aliases, Mapping):
        raise RuleDefinitionError(f"{at}, unit_aliases: a table of spelling = unit")
    unscored = raw.get("unscored_units", {})
    if not isinstance(unscored, Mapping):
        raise RuleDefinitionError(f"{at}, unscored_units: a table of spelling = reason")
    return Analyte(
        key=key,
        label=str(raw["label"]),
        kind=raw["kind"],
        unit=str(raw["unit"]),
        specimen=raw["specimen"],
        loinc=tuple(map(str, raw["loinc"])),
        aliases=tuple(map(str, raw["aliases"])),
        ref=_ref(raw.get("ref"), f"{at}, ref"),
        ref_source=str(raw["ref_source"]),
        ref_by_sex=tuple(
            (sex.upper(), _ref(raw[f"ref_{sex}"], f"{at}, ref_{sex}"))
            for sex in ("f", "m")
            if f"ref_{sex}" in raw
        ),
        molar_mass=raw.get("molar_mass"),
        plausible=_pair(raw.get("plausible"), f"{at}, plausible"),
        max_grade=raw.get("max_grade"),
        tntc=raw.get("tntc"),
        mass_unit=raw.get("mass_unit"),
        grade_cutoffs_mg_dl=tuple(
            (float(a), float(b)) for a, b in raw.get("grade_cutoffs_mg_dl", [])
        ),
        plausible_mg_dl=_pair(raw.get("plausible_mg_dl"), f"{at}, plausible_mg_dl"),
        critical_low=critical.get("low"),
        critical_high=critical.get("high"),
        ucum=raw.get("ucum"),
        units=tuple(map(str, raw.get("units", ()))),
        unit_aliases=tuple((str(a), str(b)) for a, b in aliases.items()),
        sdtm=tuple(codes),
        scale=raw.get("scale", "linear"),
        typical=_pair(raw.get("typical"), f"{at}, typical"),
        unitless=bool(raw.get("unitless", False)),
        unscored_units=tuple((str(a), str(b)) for a, b in unscored.items()),
        percent_of=raw.get("percent_of"),
        pack=pack,
    )


_NO_CODE = {"na", "n/a", "nan", "none", "null", "-", "--"}


@dataclass(frozen=True)
class Identity:
    """What a row is: ``analyte`` (``""`` when not scored), ``reason`` when not scored, and
    ``issue`` when name and code contradict each other (a data issue, never scored)."""

    analyte: str = ""
    reason: str = ""
    issue: str = ""


class Catalogue(Mapping[str, Analyte]):
    """The analytes of the loaded packs by key, with the specimen words and the LOINC codes known
    to be other tests (``rules/specimens.toml``)."""

    def __init__(self, analytes: Mapping[str, Analyte], specimens: Mapping[str, Any]) -> None:
        self._analytes = dict(analytes)
        self._specimen_words = {
            name_key(word): kind for kind, names in specimens["specimens"].items() for word in names
        }
        self._other = dict(specimens["other_loinc"])
        self.by_loinc: dict[str, str] = {}
        self.by_name: dict[str, str] = {}
        self.sdtm: dict[str, tuple[Analyte, SdtmCode]] = {}
        for analyte in self._analytes.values():
            for code in analyte.loinc:
                self.by_loinc[code] = analyte.key
            for name in (analyte.key, analyte.label, *analyte.aliases):
                self.by_name[name_key(name)] = analyte.key
            for sdtm in analyte.sdtm:
                self.sdtm[sdtm.code] = (analyte, sdtm)

    def __getitem__(self, key: str) -> Analyte:
        return self._analytes[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._analytes)

    def __len__(self) -> int:
        return len(self._analytes)

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    def label(self, analyte: str) -> str:
        """The analyte's label for messages ("serum creatinine", "TSH"); the key if unknown."""
        entry = self._analytes.get(analyte)
        return entry.label if entry else analyte

    def recognise(self, test: str | None, loinc: str | None = None) -> str | None:
        """The analyte key for a row: by LOINC code first, then by name; ``None`` when not
        scored."""
        for code in (loinc, test):
            if code and code.strip() in self.by_loinc:
                return self.by_loinc[code.strip()]
        if test:
            return self.by_name.get(name_key(test))
        return None

    def identify(self, test: str, loinc: str = "", specimen: str = "", unit: str = "") -> Identity:
        """Which analyte a row holds, when its name, LOINC code and specimen agree (domain.md).

        A LOINC code outside the catalogue is not scored, whatever the name says (urine
        creatinine 2161-8 named "Creatinine" is not serum creatinine); a LOINC of one analyte with
        the name of another is a data issue; a specimen other than the analyte's is not scored;
        nor is a unit the analyte lists as not scored (an aPTT ratio), with its reason.
        """
        words, other = self._specimen_words, self._other
        by_name = self.recognise(test)
        sdtm = self.sdtm.get(test.strip())  # SDTM codes are upper case: matched exactly
        if by_name is None and sdtm is not None:
            analyte, code = sdtm
            by_name = analyte.key
            kind = words.get(name_key(specimen)) if specimen.strip() else None
            if code.specimen and kind != code.specimen:
                said = f"specimen {specimen.strip()!r}" if specimen.strip() else "no specimen"
                return Identity(
                    reason=f"SDTM code {test.strip()} with {said}: lemlabs scores it as "
                    f"{analyte.label} with LBSPEC {code.specimen.upper()} only"
                )
        code_text = loinc.strip()
        if code_text.casefold() in _NO_CODE:
            code_text = ""
        if not code_text and test.strip() in other:
            code_text = test.strip()
        if code_text and code_text in self.by_loinc:
            analyte_key = self.by_loinc[code_text]
            if by_name and by_name != analyte_key:
                return Identity(
                    issue=f"test name and LOINC disagree: {test.strip()!r} is "
                    f"{self.label(by_name)}, LOINC {code_text} is {self.label(analyte_key)}"
                )
        elif code_text:
            known = f" ({other[code_text]})" if code_text in other else ""
            return Identity(reason=f"LOINC {code_text}{known} is not a test lemlabs monitors")
        elif by_name:
            analyte_key = by_name
        else:
            return Identity(reason="not a test lemlabs monitors")
        place = specimen.strip()
        if place:
            kind = words.get(name_key(place))
            expected = self._analytes[analyte_key].specimen
            label = self.label(analyte_key)
            if kind is None:
                return Identity(
                    reason=f"specimen {place!r} is not one lemlabs knows "
                    f"({label} is scored in {expected} only)"
                )
            if kind != expected:
                return Identity(
                    reason=f"specimen {place!r} is {kind}: {label} is scored in {expected} only"
                )
        said = unit.strip().casefold()
        entry = self._analytes[analyte_key]
        if said == "%" and entry.percent_of:
            return Identity(analyte=analyte_key)  # converted with the same sample's base
        for spelling, why in entry.unscored_units:
            if said and said == spelling.casefold():
                return Identity(reason=f"unit {unit.strip()!r}: {why}")
        return Identity(analyte=analyte_key)

    def looks_like(self, test: str, reason: str = "") -> str:
        """The label of the monitored analyte an unscored test looks like ("" when none): a
        known name or code with a specimen lemlabs does not score it in, or a name within one or
        two letters of a known one ("PLAT1", "CREATN", "TSH3")."""
        known = {name: self.label(key) for name, key in self.by_name.items()}
        for code, (analyte, _) in self.sdtm.items():
            known[name_key(code)] = analyte.label
        key = name_key(test)
        if key in known and ("specimen" in reason or "SDTM code" in reason):
            return known[key]
        if key in known or len(key) < 3:
            return ""
        close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.8)
        return known[close[0]] if close else ""
