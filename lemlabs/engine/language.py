"""The condition language of rule records: comparisons a clinician reads, joined by and/or.

A rule's ``when`` is a list of expressions that must all hold, each written as in
``"upper < itp.urgent_below"`` or ``"(flag == 'L' and pair_flag == 'L') or flag == 'H'"``:

* the left side is a fact field (``analyte``, ``lower``, ``flag``, ``day``, ...);
* the right side is a threshold key (``itp.urgent_below``), a quoted text (``'platelets'``), a
  number, or, in a join, another matched fact's field with an optional offset
  (``first.day + renal.pattern_window_days``);
* operators: ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``; ``and`` binds tighter than ``or``.

This module parses and evaluates expressions over pandas columns (the pre-filter) and lists the
thresholds they use; :mod:`lemlabs.engine.durable` compiles the same trees into durable-rules
conditions.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lemlabs.errors import RuleDefinitionError

OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
WORDS = {"==": "is", "!=": "is not", "<": "<", "<=": "≤", ">": ">", ">=": "≥"}
_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d+)?)|'(?P<text>[^']*)'|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)"
    r"|(?P<op>==|!=|<=|>=|<|>|\(|\)|\+|-))"
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
class Comparison:
    """``field op operand``."""

    field: str
    op: str
    operand: Operand


@dataclass(frozen=True)
class Any_:
    """At least one of ``parts`` holds."""

    parts: tuple[Node, ...]


@dataclass(frozen=True)
class All:
    """Every one of ``parts`` holds."""

    parts: tuple[Node, ...]


Node = Comparison | Any_ | All


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

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.at] if self.at < len(self.tokens) else ("end", "")

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
        parts = [self.atom()]
        while self.peek() == ("name", "and"):
            self.take()
            parts.append(self.atom())
        return parts[0] if len(parts) == 1 else All(tuple(parts))

    def atom(self) -> Node:
        if self.peek() == ("op", "("):
            self.take()
            node = self.disjunction()
            if self.take() != ("op", ")"):
                self.fail("a '(' is not closed")
            return node
        kind, field = self.take()
        if kind != "name" or "." in field:
            self.fail(f"expected a fact field, got {field!r}")
        kind, op = self.take()
        if kind != "op" or op not in OPERATORS:
            self.fail(f"expected a comparison after {field!r}, got {op!r}")
        return Comparison(field, op, self.operand())

    def operand(self) -> Operand:
        kind, text = self.take()
        if kind == "number":
            return float(text)
        if kind == "text":
            return text
        if kind != "name":
            self.fail(f"expected a value, got {text!r}")
        alias, _, name = text.partition(".")
        if alias in self.aliases and name:
            if self.peek() not in (("op", "+"), ("op", "-")):
                return Field(alias, name)
            sign = 1 if self.take()[1] == "+" else -1
            offset = self.operand()
            if not isinstance(offset, Threshold | float):
                self.fail("an offset is a number or a threshold key")
            assert isinstance(offset, Threshold | float)
            return Field(alias, name, sign, offset)
        if text not in self.keys:
            self.fail(f"{text!r} is neither a threshold key nor a quoted text")
        return Threshold(text)


def parse(text: str, keys: set[str], aliases: tuple[str, ...] = ()) -> Node:
    """One expression as a tree; threshold keys must be in ``keys``; ``aliases`` name the other
    facts of a join."""
    return _Parser(text, aliases, keys).parse()


def walk(node: Node) -> Iterator[Comparison]:
    """Every comparison of a tree, in reading order."""
    if isinstance(node, Comparison):
        yield node
    else:
        for part in node.parts:
            yield from walk(part)


def own(node: Node) -> Node | None:
    """What a join condition asks of its own fact alone: its comparisons without another fact's
    field; ``None`` when nothing is asked of the fact alone."""
    if not any(isinstance(comparison.operand, Field) for comparison in walk(node)):
        return node
    if not isinstance(node, All):
        return None
    parts = tuple(part for part in map(own, node.parts) if part is not None)
    return None if not parts else parts[0] if len(parts) == 1 else All(parts)


def _equalities(node: Node | None) -> dict[str, set[tuple[str, Any]]]:
    """``field == x`` / ``field != x`` tests a tree makes of its fact in every case (its
    top-level ``and``)."""
    parts = () if node is None else (node,) if isinstance(node, Comparison) else node.parts
    found: dict[str, set[tuple[str, Any]]] = {}
    if isinstance(node, Any_):
        return found
    for part in parts:
        if (
            isinstance(part, Comparison)
            and part.op in ("==", "!=")
            and not isinstance(part.operand, Field)
        ):
            found.setdefault(part.field, set()).add((part.op, part.operand))
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
    for part in (second,) if isinstance(second, Comparison) else second.parts:
        if not isinstance(part, Comparison) or not isinstance(part.operand, Field):
            continue
        join = part.operand
        if join.name == part.field:  # day >= first.day + 14 at equal days: 0 >= 14
            offset = 0.0 if join.offset is None else float(value_of(join.offset, thresholds))
            if not OPERATORS[part.op](0.0, join.sign * offset):
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
        if node.op in ("==", ">=", ">"):
            lower.append(bound)
        if node.op in ("==", "<=", "<"):
            upper.append(bound)
    if not lower or not upper:
        return None
    return tuple(sorted(lower)), tuple(sorted(upper))


def threshold_keys(node: Node) -> list[str]:
    """The threshold keys a tree uses, in reading order, without repeats."""
    keys: list[str] = []
    for comparison in walk(node):
        operand = comparison.operand
        for item in (operand, operand.offset if isinstance(operand, Field) else None):
            if isinstance(item, Threshold) and item.key not in keys:
                keys.append(item.key)
    return keys


def value_of(operand: Operand, thresholds: Mapping[str, Any]) -> Any:
    """A literal or a threshold's value (not a join field)."""
    return thresholds[operand.key] if isinstance(operand, Threshold) else operand


class Columns:
    """A table's columns as :func:`evaluate` reads them: a text column is factorized once and
    compared once per distinct value, however many conditions name it."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._texts: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def compare(self, field: str, op: str, operand: Any) -> np.ndarray:
        """Where ``field op operand`` holds, row by row."""
        column = self.frame[field].to_numpy()
        if column.dtype == object:
            if field not in self._texts:
                codes, uniques = pd.factorize(column, use_na_sentinel=False)
                self._texts[field] = codes, np.asarray(uniques, dtype=object)
            codes, uniques = self._texts[field]
            held = OPERATORS[op](uniques, operand)
            return np.broadcast_to(np.asarray(held, bool), uniques.shape)[codes]
        # numpy 1.x answers a number column compared with a text with one bool, not one a row
        return np.broadcast_to(np.asarray(OPERATORS[op](column, operand), bool), column.shape)


def evaluate(
    node: Node, frame: pd.DataFrame | Columns, thresholds: Mapping[str, Any]
) -> np.ndarray:
    """Where a single-fact tree holds, row by row (the pandas twin of the engine's condition).
    Pass :class:`Columns` to evaluate several trees over one table."""
    columns = frame if isinstance(frame, Columns) else Columns(frame)
    if isinstance(node, Comparison):
        if isinstance(node.operand, Field):
            raise RuleDefinitionError(f"{node.field}: a join field needs the engine")
        return columns.compare(node.field, node.op, value_of(node.operand, thresholds))
    masks = np.vstack([evaluate(part, columns, thresholds) for part in node.parts])
    return np.asarray(masks.any(axis=0) if isinstance(node, Any_) else masks.all(axis=0), bool)


def words(node: Node, thresholds: Mapping[str, Any], top: bool = True) -> str:
    """A tree in words with the effective thresholds: ``upper < 50 (itp.urgent_below)``."""
    if isinstance(node, Comparison):
        return f"{node.field} {WORDS[node.op]} {_operand_words(node.operand, thresholds)}"
    joined = (" or " if isinstance(node, Any_) else " and ").join(
        words(part, thresholds, top=False) for part in node.parts
    )
    return joined if top else f"({joined})"


def _operand_words(operand: Operand, thresholds: Mapping[str, Any]) -> str:
    if isinstance(operand, Threshold):
        return f"{thresholds[operand.key]:g} ({operand.key})"
    if isinstance(operand, Field):
        text = f"{operand.alias}.{operand.name}"
        if operand.offset is not None:
            sign = "+" if operand.sign > 0 else "−"
            text += f" {sign} {_operand_words(operand.offset, thresholds)}"
        return text
    return f"'{operand}'" if isinstance(operand, str) else f"{operand:g}"
