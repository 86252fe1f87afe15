"""One pint registry for every lab spelling (pint's defaults and ``rules/units.txt``), and cached
conversion factors per (analyte, unit)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import pint

from lemlabs.errors import RuleDefinitionError
from lemlabs.packs.analytes import Analyte

#: the longest unit text lemlabs parses (the longest real spelling is about 20 characters)
MAX_UNIT_LENGTH = 40
_UCUM_BRACKETS = re.compile(r"\[(IU|iU|HPF|hpf)\]")
_UCUM_ANNOTATION = re.compile(r"\{[^}]*\}")
_POWER_OF_TEN = re.compile(r"(?i)(?:x\s*)?10\s*(?:\^|\*\*|\*|e)\s*(\d+)\s*")
_THOUSANDS = re.compile(r"(?i)^(?:k|thou|thous|thousand|10\^3)\s*/")
_GIGA_PER_LITRE = re.compile(r"^G\s*/\s*[lL]$")
_CELL_WORDS = re.compile(r"(?i)^(?:rbc|rbcs|cells?|ery|erythrocytes)\s*(?=/)")
_PER_HPF = re.compile(r"(?i)(?:/|\bper\s+)\s*hpf\b")
_POWER_SUFFIX = re.compile(r"(?<![0-9A-Za-z.])([A-Za-z]+)([23])\b")
_ENZYME_U = re.compile(r"(?<![A-Za-z])([mu]?)U(?![A-Za-z])")


@dataclass(frozen=True)
class Conversion:
    """How to bring one raw unit to an analyte's canonical unit: ``factor`` or a ``problem``."""

    factor: float | None
    problem: str | None = None


@cache
def registry() -> Any:
    """The one registry lemlabs uses: pint's defaults plus ``data/units.txt``."""
    ureg: Any = pint.UnitRegistry()
    path = resources.files("lemlabs").joinpath("rules/units.txt")
    with resources.as_file(path) as file:
        ureg.load_definitions(str(file))
    return ureg


def pint_expression(raw_unit: str, international_units: bool = False) -> str:
    """Rewrite a lab or UCUM unit spelling into an expression pint parses.

    ``international_units`` reads a bare ``U`` as IU (TSH in mU/L), never as pint's enzyme unit.
    """
    text = raw_unit.strip().replace("µ", "u").replace("μ", "u").replace("³", "3")
    text = _UCUM_ANNOTATION.sub("", text)
    text = _UCUM_BRACKETS.sub(lambda match: match.group(1).upper(), text)
    if _GIGA_PER_LITRE.match(text):
        return "1e9 / L"
    text = _THOUSANDS.sub("1e3 /", text)
    text = _POWER_OF_TEN.sub(lambda match: f"1e{match.group(1)} ", text)
    text = _CELL_WORDS.sub("", text)
    text = _PER_HPF.sub("/ HPF", text)
    if international_units:
        text = _ENZYME_U.sub(lambda match: f"{match.group(1)}IU", text)
    text = _POWER_SUFFIX.sub(r"\1**\2", text)
    text = text.strip()
    if text.startswith("/"):
        text = "1 " + text
    return text


def _quantity(raw_unit: str, analyte: Analyte) -> Any:
    ureg = registry()
    canonical: Any = ureg.Quantity(pint_expression(analyte.unit))
    spelled = dict(analyte.unit_aliases).get(raw_unit.strip(), raw_unit)
    expression = pint_expression(spelled, "international_unit" in str(canonical.dimensionality))
    try:
        quantity: Any = ureg.Quantity(expression)
    except Exception:  # pint raises many types for garbage; any of them means "not a unit"
        return None
    return quantity if isinstance(quantity, ureg.Quantity) else None


_RATIO_SUFFIX = re.compile(r"(?i)\s*(?:cr|creat|creatinine)\.?$")


def _accepted(analyte: Analyte, raw_unit: str) -> str:
    """The analyte's accepted spelling that ``raw_unit`` is, matched without regard to case
    (``MIU/L`` is mIU/L for TSH: no lab reports mega-units) where every accepted spelling it
    matches means the same; a ratio's unit may end in "Cr" or "creat" (``mg/mmol Cr``).
    ``raw_unit`` itself when none matches, or when it is one exactly."""
    spellings = {analyte.unit, *analyte.units, *(spelled for spelled, _ in analyte.unit_aliases)}
    text = raw_unit.strip()
    if text in spellings:
        return raw_unit
    candidates = [text]
    if _is_ratio(analyte):
        candidates.append(_RATIO_SUFFIX.sub("", text))
    for candidate in candidates:
        found = sorted(s for s in spellings if _folded(s) == _folded(candidate))
        if found and len({_conversion(analyte, s).factor for s in found}) == 1:
            return found[0]
    return raw_unit


def _folded(unit: str) -> str:
    return unit.replace("µ", "u").replace("μ", "u").casefold()


@cache
def _is_ratio(analyte: Analyte) -> bool:
    """Whether the analyte is a ratio of two amounts (no volume in its unit: mg/mmol)."""
    try:
        dimensions = registry().Quantity(pint_expression(analyte.unit)).dimensionality
    except Exception:  # pint raises many types for a unit it cannot read
        return False
    return "[length]" not in dimensions and analyte.kind == "quantitative"


def conversion(analyte: Analyte, raw_unit: str, target: str | None = None) -> Conversion:
    """Factor that turns a value in ``raw_unit`` into the analyte's canonical (or ``target``) unit.

    A spelling the analyte lists in ``unit_aliases`` is read as the unit it names (``IU/L`` as
    ``U/L``). Mass and amount of substance convert through the analyte's own molar mass, never a
    global one.
    A unit longer than :data:`MAX_UNIT_LENGTH` is refused before pint sees it (pint's parse time
    grows with the square of the text), and a factor must be finite and positive
    (``10^400/L``, ``inf/L``, ``nan/L`` and ``0/L`` are not units of a result).
    """
    if len(raw_unit) > MAX_UNIT_LENGTH and len(raw_unit.strip()) > MAX_UNIT_LENGTH:
        return Conversion(None, f"unit is too long ({len(raw_unit.strip())} characters)")
    return _conversion(analyte, raw_unit, target)


@cache
def _conversion(analyte: Analyte, raw_unit: str, target: str | None = None) -> Conversion:
    ureg = registry()
    if not raw_unit.strip():
        return Conversion(1.0) if analyte.unitless else Conversion(None, "unit is empty")
    quantity = _quantity(_accepted(analyte, raw_unit), analyte)
    if quantity is None:
        return Conversion(None, f"unknown unit {raw_unit!r}")
    goal: Any = ureg.Quantity(pint_expression(target or analyte.unit))
    candidates = [quantity]
    if analyte.molar_mass is not None:
        molar_mass = ureg.Quantity(analyte.molar_mass, "g/mol")
        candidates += [quantity / molar_mass, quantity * molar_mass]
    for candidate in candidates:
        if candidate.dimensionality == goal.dimensionality:
            try:
                factor = float((candidate / goal).to("dimensionless").magnitude)
            except (ArithmeticError, ValueError, TypeError):
                factor = math.nan
            if not math.isfinite(factor) or factor <= 0:
                return Conversion(
                    None, f"unit {raw_unit!r} is not a usable scale (factor {factor:g})"
                )
            return Conversion(float(f"{factor:.12g}"))
    return Conversion(
        None,
        f"unit {raw_unit!r} has the wrong dimension for {analyte.label} (expected {analyte.unit})",
    )


def check_units(analyte: Analyte, where: str) -> None:
    """A pack's analyte refused by name when pint cannot read its canonical unit, or when one of
    the spellings it lists (``units``, ``unit_aliases``) does not convert to it."""
    at = f"{where}, analyte {analyte.key!r}"
    if analyte.kind != "quantitative":
        return
    try:
        registry().Quantity(pint_expression(analyte.unit))
    except Exception as error:  # pint raises many types for a unit it cannot read
        raise RuleDefinitionError(
            f"{at}, unit: pint cannot read {analyte.unit!r} ({error})"
        ) from None
    spellings = [*analyte.units, *(spelled for spelled, _ in analyte.unit_aliases)]
    for spelling in spellings:
        found = conversion(analyte, spelling)
        if found.problem:
            raise RuleDefinitionError(f"{at}, units: {found.problem}")


def unit_factor(raw_unit: str, target: str, analyte: Analyte | None = None) -> Conversion:
    """Factor from ``raw_unit`` to ``target``: through ``analyte``'s own spellings and molar mass
    when given, else as pint reads both (``weeks`` → ``days``). A ``target`` pint cannot read
    (``× baseline``, ``dipstick grade``) takes no other unit."""
    if analyte is not None:
        return conversion(analyte, raw_unit, target)
    if len(raw_unit.strip()) > MAX_UNIT_LENGTH:
        return Conversion(None, f"unit is too long ({len(raw_unit.strip())} characters)")
    ureg = registry()
    try:
        goal: Any = ureg.Quantity(pint_expression(target))
    except Exception:  # pint raises many types for a text it cannot read
        return Conversion(None, f"unit {raw_unit!r} is not {target!r} (the only unit it takes)")
    try:
        quantity: Any = ureg.Quantity(pint_expression(raw_unit))
        factor = float((quantity / goal).to("dimensionless").magnitude)
    except Exception:  # not a unit, or of another dimension
        return Conversion(None, f"unit {raw_unit!r} does not convert to {target}")
    if not math.isfinite(factor) or factor <= 0:
        return Conversion(None, f"unit {raw_unit!r} is not a usable scale (factor {factor:g})")
    return Conversion(float(f"{factor:.12g}"))
