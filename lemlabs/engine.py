"""The rule engine: durable-rules behind one small class. Callers never see durable's types.

Each patient is one durable-rules session. Its result facts go to the ``result`` ruleset in one
batch; the findings they produce go, as facts, to the ``finding`` ruleset where composite rules
join them. The patient's state is deleted after each phase.

durable-rules' traps, and what this module does about them:

* an identical message twice raises ``MessageObservedException`` → every fact has a unique id;
* a fact no rule matches raises ``MessageNotHandledException`` and the batch's actions are lost →
  each ruleset ends with a catch-all rule;
* an exception in an action is swallowed → actions record their own errors, raised as RuleError;
* ``durable.lang``'s module-level host and definition globals, and its background dispatch
  threads, are not thread-safe → a private host without those threads, and one process-wide lock
  around building rulesets and running a patient (engine calls are serialised; everything before
  and after the engine runs in parallel).
"""

from __future__ import annotations

import itertools
import threading
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lemlabs.errors import EngineUnavailableError, RuleError

try:
    import durable.lang as durable_lang
    from durable import engine as durable_engine
    from durable.lang import m, ruleset, when_all
except ImportError as error:  # not installed, or its C extension built without the 3.13 fix
    raise EngineUnavailableError(error) from None
from lemlabs.rules.base import Rule
from lemlabs.rules.thresholds import Thresholds

# durable-rules calls datetime.utcfromtimestamp on every post, deprecated from Python 3.12 on.
warnings.filterwarnings(
    "ignore",
    message=r"datetime\.datetime\.utcfromtimestamp",
    category=DeprecationWarning,
    module=r"durable\.engine",
)

_LOCK = threading.RLock()
_SERIAL = itertools.count()


class _PrivateHost(durable_engine.Host):  # type: ignore[misc]
    """A durable-rules host without background dispatch threads: actions run inside each post."""

    def _run(self) -> None:
        """Start no timer threads (lemlabs uses no durable timers)."""


@dataclass(frozen=True)
class Hit:
    """A rule that matched: its id and the ids of the facts it matched, in alias order."""

    rule_id: str
    facts: tuple[str, ...]


class RuleEngine:
    """Runs a set of rules, built once for one threshold table, over one patient at a time."""

    def __init__(self, rules: Iterable[Rule], thresholds: Thresholds) -> None:
        self.rules = tuple(rules)
        self._hits: list[Hit] = []
        self._errors: list[str] = []
        serial = next(_SERIAL)
        phases = ("result", "finding", "schedule")
        self._names = {phase: f"lemlabs_{phase}_{serial}" for phase in phases}
        definitions = {}
        with _LOCK:
            for phase, name in self._names.items():
                definition = ruleset(name)
                with definition:
                    for rule in self.rules:
                        if rule.phase == phase:
                            when_all(*rule.when(thresholds))(self._action(rule))
                    when_all(+m.kind)(self._ignore)
                durable_lang._rulesets.pop(name, None)
                key, body = definition.define()
                definitions[key] = body
            self._host = _PrivateHost(definitions)

    def _action(self, rule: Rule) -> Callable[[Any], None]:
        def record(context: Any) -> None:
            try:
                ids = tuple(str(getattr(context, alias)["id"]) for alias in rule.aliases)
                self._hits.append(Hit(rule.id, ids))
            except Exception as error:  # durable-rules would swallow it: keep it for run()
                self._errors.append(f"{rule.id}: {error!r}")

        return record

    @staticmethod
    def _ignore(context: Any) -> None:
        """Catch-all: a fact that no clinical rule matches is fine, not an engine error."""

    def run(self, phase: str, session: str, facts: list[dict[str, Any]]) -> list[Hit]:
        """Post one patient's facts (each with a unique ``id`` and a ``kind``); return the hits.

        ``session`` is a plain token (not the patient id: durable's JSON reader is fragile).
        """
        if not facts:
            return []
        name = self._names[phase]
        sid = session
        batch = [{**fact, "sid": sid} for fact in facts]
        with _LOCK:
            self._hits, self._errors = [], []
            try:
                self._host.assert_facts(name, batch)
            finally:
                self._host.delete_state(name, sid)
            hits, errors = self._hits, self._errors
        if errors:
            raise RuleError(f"rule actions failed in session {session}: {'; '.join(errors)}")
        return hits


_ENGINES: dict[str, RuleEngine] = {}


def engine_for(rules: tuple[Rule, ...], thresholds: Thresholds) -> RuleEngine:
    """The engine for these rules and this threshold table, built once per process."""
    key = f"{id(rules)}:{thresholds.fingerprint()}"
    with _LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = RuleEngine(rules, thresholds)
        return _ENGINES[key]
