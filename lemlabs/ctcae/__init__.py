"""CTCAE grades: the criteria are data (``ctcae/v4.toml``, ``v5``, ``v6``), one table per
version with the criterion text beside its machine form, and this module is the one evaluator.

Findings take their grade from it (the rule records' ``grade = "ctcae_platelets"`` and so on, in
:mod:`lemlabs.packs.functions`), and so does every scored result (``report.results``' columns
``ctcae_grade_low``/``ctcae_grade_high``, ADLB's ``ATOXGRL``/``ATOXGRH``).

A criterion's ``when`` is a small expression: comparisons (``<``, ``<=``, ``>``, ``>=``) of
``value``, ``lln``, ``uln``, ``baseline`` and numbers, products and quotients, joined by ``and``/
``or`` with parentheses. It is evaluated on numpy arrays (a whole table at once, or one result).
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from lemlabs.errors import LemlabsError

VERSIONS = {"4.03": "v4", "5.0": "v5", "6.0": "v6"}
"""Canonical CTCAE versions and the short names ``score_frame(ctcae=...)`` accepts."""
DEFAULT_VERSION = "5.0"
NAMES = ("value", "lln", "uln", "baseline")
_TOLERANCE = 1e-9  # relative: a value at a limit after unit conversion stays on CTCAE's side

GRADE_COLUMNS = {
    "ctcae_version": "object",
    "ctcae_term_low": "object",
    "ctcae_grade_low": "Int64",
    "ctcae_term_high": "object",
    "ctcae_grade_high": "Int64",
}
"""What every result gains in ``report.results`` (the grade is <NA> where it cannot be graded,
0 where it can and is normal)."""


class CtcaeError(LemlabsError, ValueError):
    """An unknown CTCAE version, or a criteria table lemlabs cannot read."""


def version_of(text: str | None) -> str:
    """``"v4"``, ``"4"``, ``"4.03"`` → ``"4.03"``; ``"v5"``/``"5.0"`` → ``"5.0"``; ``"v6"`` →
    ``"6.0"``; ``None`` → the default (5.0)."""
    if text is None:
        return DEFAULT_VERSION
    folded = str(text).strip().casefold().removeprefix("ctcae").strip().removeprefix("v")
    for canonical, short in VERSIONS.items():
        if folded in {canonical, short[1:], f"{short[1:]}.0", canonical.rstrip("0").rstrip(".")}:
            return canonical
    raise CtcaeError(f"unknown CTCAE version {text!r} (use v4, v5 or v6)")


@dataclass(frozen=True)
class Grade:
    grade: int
    text: str
    when: str
    tree: ast.expr
    text_us: str = ""


@dataclass(frozen=True)
class Term:
    """One CTCAE term of one version: its grades (lowest first) and what it needs to be 0."""

    key: str
    term: str
    analyte: str
    direction: str
    needs: tuple[str, ...]
    cites: tuple[str, ...]
    grades: tuple[Grade, ...]


@dataclass(frozen=True)
class Criteria:
    version: str
    name: str
    terms: tuple[Term, ...]

    def term(self, key: str) -> Term:
        for term in self.terms:
            if key in (term.key, term.term, term.analyte):
                return term
        raise CtcaeError(f"CTCAE {self.version} has no term {key!r}")

    def table(self) -> pd.DataFrame:
        """The criteria as a table (one row per term and grade), like admiral's
        ``atoxgr_criteria_ctcv*``: version, term, direction, grade, criterion text, machine form."""
        rows = [
            {
                "version": self.version,
                "term": term.term,
                "analyte": term.analyte,
                "direction": term.direction,
                "grade": grade.grade,
                "criterion": grade.text,
                "criterion_us": grade.text_us,
                "when": grade.when,
            }
            for term in self.terms
            for grade in term.grades
        ]
        return pd.DataFrame(rows)


_ALLOWED = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.Compare,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.BinOp,
    ast.Mult,
    ast.Div,
    ast.Name,
    ast.Load,
    ast.Constant,
)


def _parse(text: str, where: str) -> ast.expr:
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as error:
        raise CtcaeError(f"{where}: cannot read {text!r} ({error.msg})") from error
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise CtcaeError(f"{where}: {type(node).__name__} is not allowed in {text!r}")
        if isinstance(node, ast.Name) and node.id not in NAMES:
            raise CtcaeError(f"{where}: unknown name {node.id!r} in {text!r}")
        if isinstance(node, ast.Constant) and type(node.value) not in (int, float):
            raise CtcaeError(f"{where}: {node.value!r} is not a number in {text!r}")
        if isinstance(node, ast.Compare) and len(node.ops) != 1:
            raise CtcaeError(f"{where}: one comparison at a time in {text!r}")
    return tree.body


@cache
def criteria(version: str | None = None) -> Criteria:
    """The criteria table of a CTCAE version (``"v4"``, ``"5.0"``, ...)."""
    canonical = version_of(version)
    name = f"{VERSIONS[canonical]}.toml"
    raw = tomllib.loads(resources.files("lemlabs.ctcae").joinpath(name).read_text("utf-8"))
    terms = []
    for item in raw["term"]:
        where = f"{name}, {item['term']}"
        grades = tuple(
            Grade(g["grade"], g["text"], g["when"], _parse(g["when"], where), g.get("text_us", ""))
            for g in sorted(item["grades"], key=lambda g: g["grade"])
        )
        terms.append(
            Term(
                key=item["key"],
                term=item["term"],
                analyte=item["analyte"],
                direction=item["direction"],
                needs=tuple(item["needs"]),
                cites=tuple(item["cites"]),
                grades=grades,
            )
        )
    return Criteria(raw["version"], raw["name"], tuple(terms))


Arrays = Mapping[str, np.ndarray]


def _close(a: np.ndarray, b: np.ndarray, tolerance: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        scale = np.maximum(np.abs(a), np.abs(b))
        return np.asarray(np.abs(a - b) <= tolerance * scale)


def _value(node: ast.expr, names: Arrays) -> np.ndarray:
    if isinstance(node, ast.Name):
        return names[node.id]
    if isinstance(node, ast.Constant):
        number: float = node.value  # type: ignore[assignment]  # checked by _parse
        return np.asarray(number)
    if isinstance(node, ast.BinOp):
        left, right = _value(node.left, names), _value(node.right, names)
        with np.errstate(divide="ignore", invalid="ignore"):
            out: np.ndarray = left * right if isinstance(node.op, ast.Mult) else left / right
        return out
    raise CtcaeError(f"not a number: {ast.unparse(node)}")


def _holds(node: ast.expr, names: Arrays) -> np.ndarray:
    if isinstance(node, ast.BoolOp):
        parts = [_holds(value, names) for value in node.values]
        out = parts[0]
        for part in parts[1:]:
            out = (out & part) if isinstance(node.op, ast.And) else (out | part)
        return out
    if isinstance(node, ast.Compare):
        a, b = _value(node.left, names), _value(node.comparators[0], names)
        close = _close(a, b, names["tolerance"])
        op = node.ops[0]
        with np.errstate(invalid="ignore"):
            if isinstance(op, ast.Lt):
                return np.asarray((a < b) & ~close)
            if isinstance(op, ast.Gt):
                return np.asarray((a > b) & ~close)
            if isinstance(op, ast.LtE):
                return np.asarray((a <= b) | close)
            return np.asarray((a >= b) | close)
    raise CtcaeError(f"not a condition: {ast.unparse(node)}")


def evaluate(term: Term, names: Arrays) -> np.ndarray:
    """The grade of every row (a float array: NaN where it cannot be graded, 0 where it is
    normal), the highest grade whose criterion holds. ``names`` holds ``value``, ``lln``,
    ``uln`` and ``baseline`` as float arrays of one length (NaN where missing), and
    ``tolerance``, the relative tolerance of each row's comparisons."""
    size = len(names["value"])
    grades = np.full(size, np.nan)
    present = ~np.isnan(names["value"])
    for name in term.needs:
        present &= ~np.isnan(names[name])
    grades[present] = 0.0
    for grade in term.grades:
        holds = np.broadcast_to(_holds(grade.tree, names), (size,))
        grades[holds] = grade.grade
    return grades


def with_version(thresholds: Any, version: str | None) -> Any:
    """The threshold table with ``ctcae.version`` set to ``version`` (``"v4"``, ``"v6"``, ...;
    ``None`` keeps the table's), checked: an unknown version is a :class:`CtcaeError`."""
    from lemlabs.packs.thresholds import Thresholds

    current = version_of(str(thresholds["ctcae.version"]))
    wanted = current if version is None else version_of(version)
    if wanted == str(thresholds["ctcae.version"]):
        return thresholds
    entry = {"value": wanted, "source": criteria(wanted).name}
    return Thresholds.from_table({"ctcae.version": entry}, thresholds)


def _inputs(term: Term, frame: Mapping[str, Any], size: int) -> dict[str, np.ndarray]:
    """The evaluator's names from result columns (or one fact): the value as certain in the
    term's direction, the result's interval, and the baseline where the result may be compared
    with it (``rise_ratio`` known: not a result taken before its baseline)."""

    def column(name: str) -> np.ndarray:
        raw = frame.get(name)
        if raw is None:
            return np.full(size, np.nan)
        if isinstance(raw, pd.Series):
            numbers: np.ndarray = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
            return numbers
        try:
            number = float(raw)
        except (TypeError, ValueError):
            number = np.nan
        return np.array([number], dtype=float)

    value = column("upper" if term.direction == "L" else "lower")
    baseline = column("baseline")
    ratio = column("rise_ratio")
    baseline = np.where(np.isnan(ratio), np.nan, baseline)
    censor = frame.get("censor")
    if isinstance(censor, pd.Series):
        censored = censor.fillna("").astype(str).to_numpy() != ""
    else:
        censored = np.array([bool(censor) and isinstance(censor, str)])
    return {
        "value": value,
        "lln": column("ref_low"),
        "uln": column("ref_high"),
        "baseline": baseline,
        # a censored value's bound is exact ("<50" is just below 50): no tolerance
        "tolerance": np.where(censored, 0.0, _TOLERANCE),
    }


# the result columns :func:`_inputs` reads
_READ = ("upper", "lower", "baseline", "rise_ratio", "ref_low", "ref_high", "censor")


def _term_grades(
    term: Term, frame: pd.DataFrame, of: Mapping[str, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Which rows of ``frame`` are the term's analyte, and their grades (as :func:`evaluate`).
    ``of``: each analyte's rows, when the caller grades several terms."""
    if of is None:
        mine = np.asarray(frame["analyte"].to_numpy() == term.analyte, dtype=bool)
    else:
        mine = of.get(term.analyte, np.zeros(len(frame), dtype=bool))
    if not mine.any():
        return mine, np.zeros(0)
    part = frame.loc[mine, [name for name in _READ if name in frame.columns]]
    return mine, evaluate(term, _inputs(term, {c: part[c] for c in part.columns}, len(part)))


def grade_rows(key: str, frame: pd.DataFrame, version: str | None) -> np.ndarray:
    """The grade of every row of ``frame`` (result columns) for the term ``key`` (what a
    finding's rule names), as integers: 0 where it is not graded, normal or of another analyte."""
    grades = np.zeros(len(frame), dtype="int64")
    mine, found = _term_grades(criteria(version).term(key), frame)
    grades[mine] = np.nan_to_num(found).astype("int64")
    return grades


def grade_results(results: pd.DataFrame, version: str | None = None) -> pd.DataFrame:
    """Per-result grades (:data:`GRADE_COLUMNS`) for a context table (scored results with
    ``lower``, ``upper``, ``ref_low``, ``ref_high``, ``baseline``, ``rise_ratio``), by index."""
    table = criteria(version)
    out = pd.DataFrame(index=results.index)
    out["ctcae_version"] = table.version
    codes, names = pd.factorize(results["analyte"].to_numpy(dtype=object))
    of = {str(name): codes == number for number, name in enumerate(names)}
    for direction, suffix in (("L", "low"), ("H", "high")):
        terms = pd.Series(None, index=results.index, dtype=object)
        grades = pd.Series(np.nan, index=results.index)
        for term in table.terms:
            if term.direction != direction:
                continue
            mine, found = _term_grades(term, results, of)
            if mine.any():
                grades[mine] = found
                terms[mine] = term.term
        out[f"ctcae_term_{suffix}"] = terms
        out[f"ctcae_grade_{suffix}"] = grades.round().astype("Int64")
    return out[list(GRADE_COLUMNS)]
