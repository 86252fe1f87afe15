"""The rule engine: durable-rules behind one small class. Callers never see durable's types.

Rule records (:mod:`lemlabs.engine.rules`) are compiled here into durable-rules conditions: every
finding is decided by durable-rules, and its syntax and traps live in this module alone.

Facts go to a ruleset in batches, one durable-rules session each: result facts to the ``result``
ruleset (its rules read one fact, so a batch may hold several patients' results); the findings
they produce, as facts (one per patient and set of values the composites read: see
``lemlabs.stages.facts``), to the ``finding`` ruleset, one patient per session (a patient with
many in overlapping time windows), where composite rules join them. A session's state is deleted
after its batch.

durable-rules' traps, and what this module does about them:

* an identical message twice raises ``MessageObservedException`` → every fact has a unique id;
* a fact no rule matches raises ``MessageNotHandledException`` and the batch's actions are lost →
  the ``finding`` and ``schedule`` rulesets end with a catch-all rule. The ``result`` ruleset
  gets one only in an engine built for every fact (``catch_all``, what the tests compare
  with): the pre-filter posts only results some result rule matches, so no catch-all action
  decodes every fact again, and an unmatched fact becomes a RuleError;
* a ruleset without a catch-all corrupts memory (``free(): invalid size`` in ``delete_state``)
  when a posted fact passes a join's conditions on itself but completes no match → only the
  ``result`` ruleset, whose rules read one fact, may go without;
* one Python action call per match is most of durable's cost → every action takes all of a
  batch's matches at once (``cap``);
* an exception in an action is swallowed → actions record their own errors, raised as RuleError;
* numbers in exponent notation (``1e+18``, ``1e-05``) in a fact crash the process → facts'
  numbers pass through :func:`json_safe`;
* a join whose first condition is an ``|`` ignores its other conditions → rule records refuse
  ``or`` in joins (:mod:`lemlabs.engine.rules`), one record per alternative;
* when a join's last comparison with another fact fails, the evaluator skips past the end of
  the join's comparisons and reads memory after them until it meets an end marker
  (``reduceExpressionSequence`` in durable's ``events.c``; a segfault when that memory is not
  mapped, seen under AddressSanitizer every time) → every alias after the first ends with a
  comparison that always holds (:func:`_conditions`);
* ``durable.lang``'s module-level host and definition globals, and its background dispatch
  threads, are not thread-safe → a private host without those threads, and one process-wide lock
  around building rulesets and running a patient (engine calls are serialised; everything before
  and after the engine runs in parallel).
"""

from __future__ import annotations

import itertools
import threading
import warnings
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import TYPE_CHECKING, Any

from lemlabs.errors import EngineUnavailableError, RuleError

try:
    import durable.lang as durable_lang
    from durable import engine as durable_engine
    from durable.lang import c, cap, m, ruleset, when_all
except ImportError as error:  # not installed, or its C extension built without the 3.13 fix
    raise EngineUnavailableError(error) from None
import numpy as np

from lemlabs.engine.fields import MISSING
from lemlabs.engine.language import (
    NEGATED,
    OPERATORS,
    All,
    Any_,
    Comparison,
    Computed,
    Field,
    Node,
    shifted,
    value_of,
)
from lemlabs.engine.rules import ALIASES, Phase, Rule

if TYPE_CHECKING:
    from lemlabs.packs.thresholds import Thresholds

# durable-rules calls datetime.utcfromtimestamp on every post, deprecated from Python 3.12 on.
warnings.filterwarnings(
    "ignore",
    message=r"datetime\.datetime\.utcfromtimestamp",
    category=DeprecationWarning,
    module=r"durable\.engine",
)

_LOCK = threading.RLock()
_SERIAL = itertools.count()
# durable-rules reads facts as JSON and crashes (segfault) on exponent notation such as 1e+18 or
# 1e-05; numbers are kept within [-_LARGEST, _LARGEST] and tiny ones moved to +-TINY (thresholds
# are validated to be 0 or at least 0.001, so no comparison changes). A missing number (NaN)
# stays NaN in the facts' table and reaches durable-rules as MISSING (lemlabs.engine.fields).
_LARGEST = 1e15
# every action receives a batch's matches at once (durable's ``cap``): one Python callback and
# one JSON round trip per rule and session instead of one per match; at most 5 000 a call, so
# that one patient with millions of results does not decode all its matches in one string
_BATCH = cap(5_000)
_TINY = 1e-4


def json_safe(values: np.ndarray) -> np.ndarray:
    """Numbers durable-rules can read: no infinity, no exponent notation (NaN, missing, is kept:
    :meth:`RuleEngine.run` posts it as :data:`~lemlabs.engine.fields.MISSING`)."""
    values = np.clip(values.astype(float), -_LARGEST, _LARGEST)
    tiny = (values != 0) & (np.abs(values) < _TINY)
    return np.where(tiny, np.sign(values) * _TINY, values)


class _PrivateHost(durable_engine.Host):  # type: ignore[misc]
    """A durable-rules host without background dispatch threads: actions run inside each post."""

    def _run(self) -> None:
        """Start no timer threads (lemlabs uses no durable timers)."""


@dataclass(frozen=True, slots=True)
class Hit:
    """A rule that matched: its id and the ``key`` of each fact it matched, in alias order."""

    rule_id: str
    keys: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Hits:
    """Matches as arrays (a patient's millions of matches fit in memory): per match its rule,
    an index into ``rule_ids``, and a row of ``keys``: the key of each fact it matched, in alias
    order. Iterating gives each match as a :class:`Hit`."""

    rule_ids: tuple[str, ...]
    rules: np.ndarray
    keys: np.ndarray

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self) -> Iterator[Hit]:
        for rule, keys in zip(self.rules.tolist(), self.keys.tolist(), strict=True):
            yield Hit(self.rule_ids[rule], tuple(keys))

    def take(self, which: np.ndarray) -> Hits:
        """The matches ``which`` selects (a mask or positions)."""
        return Hits(self.rule_ids, self.rules[which], self.keys[which])

    @staticmethod
    def joined(parts: Sequence[Hits], rule_ids: tuple[str, ...], arity: int) -> Hits:
        """``parts`` one after the other (none: no matches of ``arity`` facts each)."""
        if not parts:
            return Hits(rule_ids, np.zeros(0, np.int32), np.zeros((0, arity), np.int64))
        return Hits(
            rule_ids,
            np.concatenate([part.rules for part in parts]),
            np.concatenate([part.keys for part in parts]),
        )


def _operand(node: Comparison, op: str, thresholds: Thresholds) -> Any:
    operand = node.operand
    if not isinstance(operand, Field):
        value = value_of(operand, thresholds)
        return value if isinstance(value, str) else shifted(float(value), op)
    other = getattr(getattr(c, operand.alias), operand.name)
    if operand.offset is None:
        return other
    offset = value_of(operand.offset, thresholds)
    return other + offset if operand.sign > 0 else other - offset


def durable_condition(node: Node, thresholds: Thresholds, missing: frozenset[str]) -> Any:
    """A condition tree as a durable-rules expression over the current fact (``m``). A number
    compares with the tolerance (:func:`~lemlabs.engine.language.shifted`); a field that may be
    missing (``missing``; posted as MISSING) holds for no comparison, and for every ``not``
    of one."""
    if isinstance(node, Comparison):
        op = NEGATED[node.op] if node.negated else node.op
        value = _operand(node, node.op, thresholds)
        held = OPERATORS[op](getattr(m, node.field), value)
        if node.field in missing and isinstance(value, float):
            if OPERATORS[op](MISSING, value) and not node.negated:
                held = held & (getattr(m, node.field) != MISSING)
            elif node.negated and not OPERATORS[op](MISSING, value):
                held = held | (getattr(m, node.field) == MISSING)
        return held
    assert not isinstance(node, Computed)  # compiled rules read Computed from a column
    parts = [durable_condition(part, thresholds, missing) for part in node.parts]
    if isinstance(node, Any_):
        return reduce(lambda a, b: a | b, parts)
    assert isinstance(node, All)
    return reduce(lambda a, b: a & b, parts)


def _conditions(rule: Rule, thresholds: Thresholds, missing: frozenset[str]) -> tuple[Any, ...]:
    """A rule's durable-rules conditions, one per alias; in a join, every alias after the first
    ends with a comparison to the first fact that always holds (its ``kind``): durable-rules'
    evaluator reads past the end of a join's comparisons when the last one fails."""
    if rule.phase != "finding":
        return tuple(durable_condition(node, thresholds, missing) for _, node in rule.compiled)
    (first, node), *others = rule.compiled
    holds = m.kind == getattr(c, first).kind
    conditions = [getattr(c, first) << durable_condition(node, thresholds, missing)]
    for alias, node in others:
        conditions.append(
            getattr(c, alias) << (durable_condition(node, thresholds, missing) & holds)
        )
    return tuple(conditions)


class RuleEngine:
    """Runs a set of rules, built once for one threshold table, over one patient at a time."""

    def __init__(
        self,
        rules: Iterable[Rule],
        thresholds: Thresholds,
        catch_all: bool = True,
        missing: frozenset[str] = frozenset(),
    ) -> None:
        """Rulesets for ``rules`` with ``thresholds`` filled in; ``catch_all`` gives the
        ``result`` ruleset, too, a rule that takes facts no other rule matches; ``missing``: the
        number fields that may be missing (posted as MISSING)."""
        self.rules, self.thresholds, self.missing = tuple(rules), thresholds, missing
        self.rule_ids = tuple(rule.id for rule in self.rules)
        self._matched, self._keys = array("i"), array("q")
        self._errors: list[str] = []
        serial = next(_SERIAL)
        phases: tuple[Phase, ...] = ("result", "finding", "schedule")
        self._names = {phase: f"lemlabs_{phase}_{serial}" for phase in phases}
        definitions = {}
        with _LOCK:
            for phase, name in self._names.items():
                definition = ruleset(name)
                with definition:
                    for index, rule in enumerate(self.rules):
                        if rule.phase == phase:
                            action = self._action(index, rule.aliases)
                            conditions = _conditions(rule, thresholds, missing)
                            when_all(_BATCH, *conditions)(action)
                    if catch_all or phase != "result":
                        when_all(_BATCH, +m.kind)(self._ignore)
                durable_lang._rulesets.pop(name, None)
                key, body = definition.define()
                definitions[key] = body
            self._host = _PrivateHost(definitions)

    def _action(self, index: int, aliases: tuple[str, ...]) -> Callable[[Any], None]:
        def record(context: Any) -> None:
            try:  # durable wraps each match's dict in a Content (``_d``): read the dict itself
                matches = context.m
                if len(aliases) == 1:
                    self._keys.extend([match._d["key"] for match in matches])
                else:
                    self._keys.extend([match._d[a]["key"] for match in matches for a in aliases])
                self._matched.extend(itertools.repeat(index, len(matches)))
            except Exception as error:  # durable-rules would swallow it: keep it for run()
                self._errors.append(f"{self.rule_ids[index]}: {error!r}")

        return record

    def reads(self, phase: Phase) -> tuple[str, ...]:
        """The fact fields the phase's rules read: all a fact needs to carry."""
        return tuple(sorted({name for r in self.rules if r.phase == phase for name in r.reads()}))

    @staticmethod
    def _ignore(context: Any) -> None:
        """Catch-all: a fact that no clinical rule matches is fine, not an engine error."""

    def run(self, phase: Phase, session: int, facts: list[dict[str, Any]]) -> Hits:
        """Post one patient's facts (each with a unique integer ``key``) to ``phase``'s rules;
        return the hits. ``session`` numbers the patient (durable's JSON reader is fragile, so
        neither the patient id nor free text goes into its ids)."""
        arity = len(ALIASES[phase])
        if not facts:
            return Hits.joined([], self.rule_ids, arity)
        name = self._names[phase]
        sid = f"s{session}"
        batch = [
            {**fact, "id": f"{phase[0]}{fact['key']}", "kind": phase, "sid": sid} for fact in facts
        ]
        with _LOCK:
            self._matched, self._keys, self._errors = array("i"), array("q"), []
            try:
                self._host.assert_facts(name, batch)
            except durable_engine.MessageNotHandledException:
                raise RuleError(
                    f"session {session}: a {phase} fact that no rule matches was posted to an "
                    "engine without a catch-all rule (the pre-filter and the rules disagree)"
                ) from None
            finally:
                self._host.delete_state(name, sid)
            matched, keys, errors = self._matched, self._keys, self._errors
            self._matched, self._keys = array("i"), array("q")
        if errors:
            raise RuleError(f"rule actions failed in session {session}: {'; '.join(errors)}")
        return Hits(self.rule_ids, np.array(matched), np.array(keys).reshape(-1, arity))


_ENGINES: dict[str, RuleEngine] = {}


def engine_for(
    rules: tuple[Rule, ...],
    thresholds: Thresholds,
    catch_all: bool = True,
    missing: frozenset[str] = frozenset(),
) -> RuleEngine:
    """The engine for these rules and this threshold table, built once per process; without
    ``catch_all`` every result fact posted must match some result rule."""
    key = f"{id(rules)}:{thresholds.fingerprint()}:{catch_all}"
    with _LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = RuleEngine(rules, thresholds, catch_all, missing)
        return _ENGINES[key]
