"""The condition language of rule records and CTCAE criteria: comparisons a clinician reads,
arithmetic, ``and``/``or``/``not``.

A condition is written as in ``"upper < itp.urgent_below"``, ``"lower >= 3 * uln"`` or
``"(flag == 'L' and pair_flag == 'L') or flag == 'H'"``:

* names are fact fields (``value``, ``lower``/``upper`` — what is certain of a censored value —,
  ``lln``, ``uln``, ``baseline``, ``flag``, ``day``, a pack's derived fields, ...; see
  :mod:`lemlabs.engine.fields`), threshold keys (``itp.urgent_below``), or, in a join, another
  matched fact's field (``first.day``);
* numbers, quoted texts, ``+ - * /`` and parentheses;
* ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``; ``not`` binds tighter than ``and``, ``and``
  tighter than ``or``.

Parsed conditions are brought to one of three kinds of comparison (:func:`parse`):
:class:`Comparison`, a fact field against a number, a text or a threshold (``upper < 50``), or in
a join against another fact's field plus an offset (``day <= first.day + 30``); and
:class:`Computed`, any other comparison of the fact's own fields and numbers (``lower >= 3 *
uln``, ``value / baseline > 1.5``). ``not`` is pushed down to the comparisons.

Meaning. Numbers are compared with a relative tolerance of 10⁻⁹: ``a < b`` holds when ``a`` is
below ``b`` by more than 10⁻⁹ of ``b`` (``==`` and ``!=`` are exact), so that a value exactly at
a cut-off after a unit conversion stays at it (1.5 × ULN in mg/dL is not above 1.5 × ULN). A
censored value's certain bound lies beyond that tolerance (``<50`` is below 50 for certain: see
:mod:`lemlabs.stages.normalise`). A comparison with a missing number (no baseline, no interval)
does not hold, and ``not`` of it does. This module
evaluates conditions over pandas columns (the pre-filter, derived fields, notes and CTCAE
grades); :mod:`lemlabs.engine.durable` compiles the same trees into durable-rules conditions.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from lemlabs.errors import RuleDefinitionError

OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
NEGATED = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
MIRRORED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
WORDS = {"==": "is", "!=": "is not", "<": "<", "<=": "≤", ">": ">", ">=": "≥"}
TOLERANCE = 1e-9
"""Relative: numbers closer than this share of the larger are equal in a comparison."""
_ARITHMETIC = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}
_SHOWN = {"+": "+", "-": "−", "*": "×", "/": "÷"}
_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d+)?)|'(?P<text>[^']*)'|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)"
    r"|(?P<op>==|!=|<=|>=|<|>|\(|\)|\+|-|\*|/))"
)


@dataclass(frozen=True)
class Threshold:
    """A number from the threshold table, by key."""

    key: str


@dataclass(frozen=True)
class Field:
    """Another matched fact's field in a join (``first.day``), plus an optional offset."""

    alias: str
    name: str
    sign: int = 1
    offset: Threshold | float | None = None


Operand = Threshold | Field | str | float


@dataclass(frozen=True)
class Ref:
    """A field of the fact being matched, inside arithmetic."""

    name: str


@dataclass(frozen=True)
class Arithmetic:
    """``left op right`` with ``op`` one of ``+ - * /``."""

    op: str
    left: Expr
    right: Expr


Expr = Ref | Threshold | Field | Arithmetic | str | float


@dataclass(frozen=True)
class Comparison:
    """``field op operand``: a fact field against a number, a text, a threshold or, in a join,
    another fact's field plus an offset; ``negated``: ``not`` of it (holds also where the field
    is missing)."""

    field: str
    op: str
    operand: Operand
    negated: bool = False

    @property
    def effective(self) -> str:
        """The operator it amounts to where the field is present (``not <`` is ``>=``)."""
        return NEGATED[self.op] if self.negated else self.op


@dataclass(frozen=True)
class Computed:
    """``left op right`` over the fact's own fields, numbers and thresholds with arithmetic;
    ``negated``: ``not`` of it (holds also where a number is missing)."""

    left: Expr
    op: str
    right: Expr
    negated: bool = False


@dataclass(frozen=True)
class Any_:
    """At least one of ``parts`` holds."""

    parts: tuple[Node, ...]


@dataclass(frozen=True)
class All:
    """Every one of ``parts`` holds."""

    parts: tuple[Node, ...]


Node = Comparison | Computed | Any_ | All


class _Parser:
    def __init__(self, text: str, aliases: tuple[str, ...], keys: set[str]) -> None:
        self.text, self.aliases, self.keys = text, aliases, keys
        self.tokens = self._tokens(text)
        self.at = 0

    def _tokens(self, text: str) -> list[tuple[str, str]]:
        tokens, position = [], 0
        while position < len(text.rstrip()):
            match = _TOKEN.match(text, position)
            if not match or match.end() == position:
                self.fail(f"cannot read {text[position:].strip()!r}")
            assert match is not None
            kind = str(match.lastgroup)
            tokens.append((kind, match.group(kind)))
            position = match.end()
        return tokens

    def fail(self, why: str) -> None:
        raise RuleDefinitionError(f"condition {self.text!r}: {why}")

    def peek(self, ahead: int = 0) -> tuple[str, str]:
        at = self.at + ahead
        return self.tokens[at] if at < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        self.at += 1
        return token

    def parse(self) -> Node:
        node = self.disjunction()
        if self.peek()[0] != "end":
            self.fail(f"unexpected {self.peek()[1]!r}")
        return node

    def disjunction(self) -> Node:
        parts = [self.conjunction()]
        while self.peek() == ("name", "or"):
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else Any_(tuple(parts))

    def conjunction(self) -> Node:
        parts = [self.negation()]
        while self.peek() == ("name", "and"):
            self.take()
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else All(tuple(parts))

    def negation(self) -> Node:
        if self.peek() == ("name", "not"):
            self.take()
            return negate(self.negation())
        return self.atom()

    def atom(self) -> Node:
        if self.peek() == ("op", "("):  # a condition in parentheses, or arithmetic that starts so
            start = self.at
            self.take()
            node = self.disjunction()
            if self.peek() == ("op", ")") and self.peek(1)[1] not in OPERATORS:
                self.take()
                return node
            self.at = start
        left = self.sum()
        kind, op = self.take()
        if kind != "op" or op not in OPERATORS:
            self.fail(f"expected a comparison, got {op or 'the end'!r}")
        return _comparison(left, op, self.sum(), self.fail)

    def sum(self) -> Expr:
        expr = self.product()
        while self.peek() in (("op", "+"), ("op", "-")):
            op = self.take()[1]
            expr = Arithmetic(op, expr, self.product())
        return expr

    def product(self) -> Expr:
        expr = self.factor()
        while self.peek() in (("op", "*"), ("op", "/")):
            op = self.take()[1]
            expr = Arithmetic(op, expr, self.factor())
        return expr

    def factor(self) -> Expr:
        kind, text = self.take()
        if kind == "number":
            return float(text)
        if kind == "text":
            return text
        if (kind, text) == ("op", "("):
            expr = self.sum()
            if self.take() != ("op", ")"):
                self.fail("a '(' is not closed")
            return expr
        if (kind, text) == ("op", "-"):
            return Arithmetic("-", 0.0, self.factor())
        if kind != "name" or text in ("and", "or", "not"):
            self.fail(f"expected a value, got {text or 'the end'!r}")
        alias, _, name = text.partition(".")
        if alias in self.aliases and name:
            return Field(alias, name)
        if text in self.keys:
            return Threshold(text)
        if "." in text:
            self.fail(f"{text!r} is neither a threshold key nor a fact field")
        return Ref(text)


def _constant(expr: Expr) -> bool:
    return isinstance(expr, Threshold | str | float)


def _join(expr: Expr) -> Field | None:
    """``first.day``, ``first.day + 14``, ``first.day - key`` as a join operand."""
    if isinstance(expr, Field):
        return expr
    if (
        isinstance(expr, Arithmetic)
        and expr.op in "+-"
        and isinstance(expr.left, Field)
        and isinstance(expr.right, Threshold | float)
    ):
        return replace(expr.left, sign=1 if expr.op == "+" else -1, offset=expr.right)
    return None


def _uses_join(expr: Expr) -> bool:
    if isinstance(expr, Field):
        return True
    return isinstance(expr, Arithmetic) and (_uses_join(expr.left) or _uses_join(expr.right))


def _comparison(left: Expr, op: str, right: Expr, fail: Callable[[str], None]) -> Node:
    if _constant(left) and not _constant(right):  # 50 > upper reads as upper < 50
        left, op, right = right, MIRRORED[op], left
    if isinstance(left, Ref):
        join = _join(right)
        if join is not None:
            return Comparison(left.name, op, join)
        if isinstance(right, Threshold | str | float):
            if isinstance(right, str) and op not in ("==", "!="):
                fail("a text is compared with == or != only")
            return Comparison(left.name, op, right)
    if _uses_join(left) or _uses_join(right):
        fail("a join compares a field with the other fact's field plus a number")
    if isinstance(left, str) or isinstance(right, str):
        fail("a text is compared with a field, with == or !=")
    if _constant(left) and _constant(right):
        fail("compares two constants")
    return Computed(left, op, right)


def negate(node: Node) -> Node:
    """``not node``, with the negation pushed down to the comparisons."""
    if isinstance(node, Comparison | Computed):
        return replace(node, negated=not node.negated)
    parts = tuple(negate(part) for part in node.parts)
    return Any_(parts) if isinstance(node, All) else All(parts)


def parse(text: str, keys: set[str], aliases: tuple[str, ...] = ()) -> Node:
    """One expression as a tree; threshold keys must be in ``keys``; ``aliases`` name the other
    facts of a join."""
    return _Parser(text, aliases, keys).parse()


def walk(node: Node) -> Iterator[Comparison | Computed]:
    """Every comparison of a tree, in reading order."""
    if isinstance(node, Comparison | Computed):
        yield node
    else:
        for part in node.parts:
            yield from walk(part)


def names_of(expr: Expr) -> Iterator[Ref | Threshold | Field]:
    """The fields and thresholds an expression reads."""
    if isinstance(expr, Arithmetic):
        yield from names_of(expr.left)
        yield from names_of(expr.right)
    elif isinstance(expr, Ref | Threshold | Field):
        yield expr
        if isinstance(expr, Field) and isinstance(expr.offset, Threshold):
            yield expr.offset


def fields_of(node: Node) -> list[str]:
    """The fact fields a tree reads (its own and, in a join, the other fact's), in order."""
    names = []
    for comparison in walk(node):
        if isinstance(comparison, Comparison):
            names.append(comparison.field)
            if isinstance(comparison.operand, Field):
                names.append(comparison.operand.name)
        else:
            for side in (comparison.left, comparison.right):
                names += [ref.name for ref in names_of(side) if isinstance(ref, Ref)]
    return names


def own(node: Node) -> Node | None:
    """What a join condition asks of its own fact alone: its comparisons without another fact's
    field; ``None`` when nothing is asked of the fact alone."""
    if not any(
        isinstance(comparison, Comparison) and isinstance(comparison.operand, Field)
        for comparison in walk(node)
    ):
        return node
    if not isinstance(node, All):
        return None
    parts = tuple(part for part in map(own, node.parts) if part is not None)
    return None if not parts else parts[0] if len(parts) == 1 else All(parts)


def _equalities(node: Node | None) -> dict[str, set[tuple[str, Any]]]:
    """``field == x`` / ``field != x`` tests a tree makes of its fact in every case (its
    top-level ``and``)."""
    parts = () if node is None else (node,) if not isinstance(node, All | Any_) else node.parts
    found: dict[str, set[tuple[str, Any]]] = {}
    if isinstance(node, Any_):
        return found
    for part in parts:
        if (
            isinstance(part, Comparison)
            and part.effective in ("==", "!=")
            and not isinstance(part.operand, Field)
        ):
            found.setdefault(part.field, set()).add((part.effective, part.operand))
    return found


def joins_equals(first: Node, second: Node, thresholds: Mapping[str, Any]) -> bool:
    """Whether a join could match two facts that agree on every field: ``False`` only when the
    trees prove it cannot (``code == 'a'`` against ``code == 'b'``, or ``day >= first.day + 14``
    at equal days); ``True`` when unsure."""
    mine, theirs = _equalities(own(first)), _equalities(own(second))
    for field in mine.keys() & theirs.keys():
        for op, value in mine[field]:
            for other_op, other in theirs[field]:
                equal = value == other
                if (op == other_op == "==" and not equal) or (op != other_op and equal):
                    return False
    if isinstance(second, Any_):
        return True
    for part in (second,) if not isinstance(second, All) else second.parts:
        if not isinstance(part, Comparison) or not isinstance(part.operand, Field):
            continue
        join = part.operand
        if join.name == part.field:  # day >= first.day + 14 at equal days: 0 >= 14
            offset = 0.0 if join.offset is None else float(value_of(join.offset, thresholds))
            if not OPERATORS[part.effective](0.0, join.sign * offset):
                return False
    return True


Bound = tuple[str, float]
"""``(name, offset)``: a join's ``day`` is bounded by the first fact's ``name`` plus ``offset``."""


def day_bounds(
    second: Node, thresholds: Mapping[str, Any], field: str = "day"
) -> tuple[tuple[Bound, ...], tuple[Bound, ...]] | None:
    """How a join's second condition bounds its fact's ``field`` by the first fact's fields:
    the lower bounds (``field >= first.name + offset``) and the upper bounds (``field <=
    first.name + offset``) it states in every case (its top-level ``and``), ``None`` when it
    states no lower or no upper bound. ``<`` and ``>`` count as ``<=`` and ``>=`` (a bound a
    little too wide is still a bound); ``==`` is both; ``!=``, an ``or`` and comparisons of other
    fields bound nothing. ``day <= first.swing_until`` gives the upper bound ``("swing_until",
    0.0)``: how far that reaches depends on the facts (see
    :func:`lemlabs.engine.rules.join_reach`)."""
    lower: list[Bound] = []
    upper: list[Bound] = []
    pending = [second]
    while pending:
        node = pending.pop()
        if isinstance(node, All):
            pending += node.parts
            continue
        if not isinstance(node, Comparison) or node.field != field:
            continue
        operand = node.operand
        if not isinstance(operand, Field):
            continue
        offset = 0.0 if operand.offset is None else float(value_of(operand.offset, thresholds))
        bound = (operand.name, operand.sign * offset)
        if node.effective in ("==", ">=", ">"):
            lower.append(bound)
        if node.effective in ("==", "<=", "<"):
            upper.append(bound)
    if not lower or not upper:
        return None
    return tuple(sorted(lower)), tuple(sorted(upper))


def threshold_keys(node: Node) -> list[str]:
    """The threshold keys a tree uses, in reading order, without repeats."""
    keys: list[str] = []
    for comparison in walk(node):
        sides = (
            (comparison.operand,)
            if isinstance(comparison, Comparison)
            else (comparison.left, comparison.right)
        )
        for side in sides:
            for item in names_of(side) if not isinstance(side, str | float) else ():
                if isinstance(item, Threshold) and item.key not in keys:
                    keys.append(item.key)
    return keys


def value_of(operand: Operand, thresholds: Mapping[str, Any]) -> Any:
    """A literal or a threshold's value (not a join field)."""
    return thresholds[operand.key] if isinstance(operand, Threshold) else operand


def shifted(value: float, op: str) -> float:
    """The number ``value`` is moved to so that ``x op shifted`` is ``x op value`` with the
    relative tolerance (:data:`TOLERANCE`): a strict bound moves away from ``x``'s side, a loose
    one toward it (``x < 50`` is ``x < 49.99999995``); ``==`` and ``!=`` stay exact."""
    step = TOLERANCE * abs(value)
    return value - step if op in ("<", ">=") else value + step if op in ("<=", ">") else value


class _Rows:
    """A table's rows at some positions, a column at a time (what :meth:`Columns.at` reads)."""

    def __init__(self, frame: Any, positions: np.ndarray) -> None:
        self.frame, self.positions = frame, positions

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, name: str) -> pd.Series:
        column: pd.Series = self.frame[name].iloc[self.positions]
        return column.reset_index(drop=True)


class Columns:
    """A table's columns as :func:`evaluate` reads them (``names``: the column of a field named
    otherwise): a text column is factorized once and compared once per distinct value, however
    many conditions name it; a number column is read once."""

    def __init__(self, frame: pd.DataFrame | _Rows, names: Mapping[str, str] | None = None) -> None:
        self.frame = frame
        self.names = dict(names or {})
        self._numbers: dict[str, np.ndarray] = {}
        self._texts: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.frame)

    def column(self, name: str) -> pd.Series:
        return self.frame[self.names.get(name, name)]

    def at(self, positions: np.ndarray) -> Columns:
        """The same columns at these row positions only (read when first named)."""
        return Columns(_Rows(self.frame, positions), self.names)

    def numbers(self, name: str) -> np.ndarray:
        """A column as numbers (NaN where it holds none)."""
        key = f"number:{name}"
        if key not in self._numbers:
            numbers = pd.to_numeric(self.column(name), errors="coerce")
            self._numbers[key] = np.asarray(numbers, dtype=float)
        return self._numbers[key]

    def compare(self, field: str, op: str, operand: Any) -> np.ndarray:
        """Where ``field op operand`` holds, row by row (a number with the tolerance, as
        :func:`shifted` moves it: the engine compares with the same number)."""
        if not isinstance(operand, str):
            operand = shifted(float(operand), op)
        series = self.column(field)
        if not (is_numeric_dtype(series.dtype) or is_bool_dtype(series.dtype)):
            if field not in self._texts:
                codes, distinct = pd.factorize(series, use_na_sentinel=False)
                self._texts[field] = codes, np.asarray(distinct, dtype=object)
            codes, uniques = self._texts[field]
            if not isinstance(operand, str):
                uniques = np.asarray(pd.to_numeric(uniques, errors="coerce"), dtype=float)
            with np.errstate(invalid="ignore"):
                held = OPERATORS[op](uniques, operand)
            if not isinstance(operand, str):
                held = held & ~np.isnan(uniques)
            return np.broadcast_to(np.asarray(held, bool), uniques.shape)[codes]
        if isinstance(operand, str):  # numpy 1.x answers a number against a text with one bool
            return np.full(len(series), op == "!=")
        if field not in self._numbers:
            self._numbers[field] = series.to_numpy().astype(float)
        numbers = self._numbers[field]
        with np.errstate(invalid="ignore"):
            return np.asarray(OPERATORS[op](numbers, operand) & ~np.isnan(numbers), dtype=bool)


def _holds(a: np.ndarray, op: str, b: np.ndarray) -> np.ndarray:
    """``a op b`` with ``b`` moved as :func:`shifted` moves a number; False where either side
    is missing."""
    step = TOLERANCE * np.abs(b)
    bound = b - step if op in ("<", ">=") else b + step if op in ("<=", ">") else b
    with np.errstate(invalid="ignore"):
        held = OPERATORS[op](a, bound)
    return np.asarray(held & ~np.isnan(a) & ~np.isnan(b), dtype=bool)


def number(expr: Expr, columns: Columns, thresholds: Mapping[str, Any]) -> np.ndarray:
    """An arithmetic expression's value, row by row (NaN where a number is missing)."""
    if isinstance(expr, Ref):
        return columns.numbers(expr.name)
    if isinstance(expr, Arithmetic):
        left = number(expr.left, columns, thresholds)
        right = number(expr.right, columns, thresholds)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out: np.ndarray = _ARITHMETIC[expr.op](left, right)
        return np.where(np.isfinite(out), out, np.nan)
    if isinstance(expr, Field):
        raise RuleDefinitionError(f"{expr.alias}.{expr.name}: a join field needs the engine")
    value = value_of(expr, thresholds)
    return np.full(len(columns), float(value))


def evaluate(
    node: Node, frame: pd.DataFrame | Columns, thresholds: Mapping[str, Any]
) -> np.ndarray:
    """Where a single-fact tree holds, row by row (the pandas twin of the engine's condition).
    Pass :class:`Columns` to evaluate several trees over one table."""
    columns = frame if isinstance(frame, Columns) else Columns(frame)
    if isinstance(node, Comparison):
        if isinstance(node.operand, Field):
            raise RuleDefinitionError(f"{node.field}: a join field needs the engine")
        held = columns.compare(node.field, node.op, value_of(node.operand, thresholds))
        return ~held if node.negated else held
    if isinstance(node, Computed):
        left = number(node.left, columns, thresholds)
        right = number(node.right, columns, thresholds)
        held = _holds(left, node.op, right)
        return ~held if node.negated else held
    if not node.parts:
        return np.ones(len(columns), dtype=bool)
    masks = np.vstack([evaluate(part, columns, thresholds) for part in node.parts])
    return np.asarray(masks.any(axis=0) if isinstance(node, Any_) else masks.all(axis=0), bool)


def words(node: Node, thresholds: Mapping[str, Any], top: bool = True) -> str:
    """A tree in words with the effective thresholds: ``upper < 50 (itp.urgent_below)``."""
    if isinstance(node, Comparison):
        text = f"{node.field} {WORDS[node.op]} {_expr_words(node.operand, thresholds)}"
        return f"not ({text})" if node.negated else text
    if isinstance(node, Computed):
        left = _expr_words(node.left, thresholds, inner=True)
        text = f"{left} {WORDS[node.op]} {_expr_words(node.right, thresholds, inner=True)}"
        return f"not ({text})" if node.negated else text
    joined = (" or " if isinstance(node, Any_) else " and ").join(
        words(part, thresholds, top=False) for part in node.parts
    )
    return joined if top else f"({joined})"


def _expr_words(expr: Expr, thresholds: Mapping[str, Any], inner: bool = False) -> str:
    if isinstance(expr, Threshold):
        return f"{thresholds[expr.key]:g} ({expr.key})"
    if isinstance(expr, Field):
        text = f"{expr.alias}.{expr.name}"
        if expr.offset is not None:
            sign = "+" if expr.sign > 0 else "−"
            text += f" {sign} {_expr_words(expr.offset, thresholds)}"
        return text
    if isinstance(expr, Ref):
        return expr.name
    if isinstance(expr, Arithmetic):
        left = _expr_words(expr.left, thresholds, inner=True)
        right = _expr_words(expr.right, thresholds, inner=True)
        if expr.op == "-" and expr.left == 0.0:
            return f"−{right}"
        text = f"{left} {_SHOWN[expr.op]} {right}"
        return f"({text})" if inner and expr.op in "+-" else text
    return f"'{expr}'" if isinstance(expr, str) else f"{expr:g}"
