"""Facts for the rule engine, and the engine run over them: context rows → result facts (the
fields rules read, made safe for durable-rules), pre-filtered by what some rule asks and posted
once per set that no rule tells apart; their hits → finding facts (one per patient and set of
values the composites read, posted only with a partner) for the composite rules, in sessions (a
patient with many, in overlapping time windows)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lemlabs.engine.durable import Hits, RuleEngine, engine_for, json_safe
from lemlabs.engine.fields import MISSING
from lemlabs.engine.language import (
    All,
    Any_,
    Columns,
    Comparison,
    Field,
    Node,
    evaluate,
    joins_equals,
    shifted,
    value_of,
    walk,
)
from lemlabs.engine.rules import ALIASES, Phase, Rule, RuleBook, gates, join_reach
from lemlabs.stages.context import field_columns

if TYPE_CHECKING:
    from lemlabs.packs.thresholds import Thresholds

Progress = Callable[[str, int, int], None]


def result_facts(context: pd.DataFrame, thresholds: Thresholds, book: RuleBook) -> pd.DataFrame:
    """Result facts as the engine reads them, one row per result: every field a rule of the
    book reads (:attr:`~lemlabs.engine.rules.RuleBook.fields`: numbers made safe for
    durable-rules, a missing one NaN; the computed comparisons as 1 or 0), ``key`` (the input
    row) and ``patient_id``."""
    names = sorted({*book.reads("result"), *book.reads("finding")} - {"code"})
    columns = field_columns(context, book)
    facts = pd.DataFrame(index=context.index)
    for name in names:
        if name in book.computed:
            facts[name] = evaluate(book.computed[name], columns, thresholds).astype("int64")
            continue
        field = book.fields[name]
        column = columns.column(name)
        if field.kind == "number":
            facts[name] = json_safe(column.to_numpy(dtype=float))
        elif field.kind == "integer":
            facts[name] = column.astype("int64")
        else:
            facts[name] = column.astype(str)
    facts["key"] = context["row"].astype("int64")
    facts["patient_id"] = context["patient_id"]
    return facts


def admitted(facts: pd.DataFrame, rules: Iterable[Rule], thresholds: Thresholds) -> np.ndarray:
    """Facts that some rule asks for (:func:`~lemlabs.engine.rules.gates`): the only ones posted
    to the engine. The same condition trees the engine compiles, evaluated with pandas on the
    same numbers, so the pre-filter cannot drift from the rules (a test scores with and without
    it)."""
    mask = np.zeros(len(facts), dtype=bool)
    columns = Columns(facts)
    for node in gates(rules):
        if node is None:
            return np.ones(len(facts), dtype=bool)
        mask |= evaluate(node, columns, thresholds)
    return mask


def partnered(facts: pd.DataFrame, rules: Iterable[Rule], thresholds: Thresholds) -> np.ndarray:
    """Finding facts that can take part in a match of some of these joins: a fact that passes
    what one side asks of its fact alone (:func:`~lemlabs.engine.rules.gates`), with a fact
    of the same patient that passes the other side's within the join's reach of days
    (:func:`~lemlabs.engine.rules.join_reach`). Only these are posted: the others complete no
    match (a test posts both and compares the hits)."""
    patient = pd.factorize(facts["patient_id"].to_numpy(dtype=object))[0]
    day = facts["day"].to_numpy(dtype="int64")
    columns = Columns(facts)
    anyone = np.ones(len(facts), dtype=bool)
    mask = np.zeros(len(facts), dtype=bool)
    for rule in rules:
        one, two = (
            anyone if node is None else evaluate(node, columns, thresholds)
            for node in gates([rule])
        )
        reach = join_reach([rule], facts, thresholds)
        mask |= _near(patient, day, one, two, reach) | _near(patient, day, two, one, reach)
    return mask


def _near(
    patient: np.ndarray, day: np.ndarray, of: np.ndarray, to: np.ndarray, reach: int | None
) -> np.ndarray:
    """Per fact: whether it is one of ``of`` with one of ``to`` of the same patient at most
    ``reach`` days away (``None``: however far)."""
    near = np.zeros(len(day), dtype=bool)
    if not of.any() or not to.any():
        return near
    if reach is None:
        return of & np.isin(patient, patient[to])
    stride = int(day.max() - day.min()) + 2 * reach + 1  # patients' keys never overlap
    key = patient.astype("int64") * stride + (day - day.min())
    targets = np.sort(key[to])
    low = np.searchsorted(targets, key[of] - reach, "left")
    near[of] = np.searchsorted(targets, key[of] + reach, "right") > low
    return near


_RESULTS_PER_SESSION = 2000
# A patient with more finding facts than this is scored in time windows (:func:`_windows`) of
# about this many facts each, plus the overlap. Measured on 1M rows of one patient (25 %
# abnormal: 20 695 finding facts over 2 197 days, ~9.4 a day, reach 184 days, so an overlap of
# ~1 730 facts; 3.0M composite hits), the finding phase alone, peak RSS / seconds on the shared
# 2-core machine: one session 2.62 GB / 94 s (durable's join state ~1.2 GB); windows of 500
# facts 1.82 GB / 242 s, 1 000: 1.77 GB / 110 s, 2 000: 1.80 GB / 79 s, 4 000: 2.00 GB / 67 s,
# 8 000: 1.93 GB / 62 s (of which ~1.6 GB is the 3.0M hits themselves). Smaller windows post
# the overlap more often; larger ones hold more of durable's state. Patients with up to this
# many (a few dozen is usual) are one session, as before.
_WINDOW_FACTS = 2000


def _windows(days: np.ndarray, reach: int | None, size: int) -> list[tuple[np.ndarray, int | None]]:
    """One patient's finding facts (their ``day``) as sessions: ``(positions, owned)``, the
    facts to post and the last day of the session's core (``None``: it keeps every hit).

    Without windows (``reach`` ``None``: some composite joins facts however far apart; or at
    most ``size`` facts) one session holds every fact and keeps every hit. Otherwise each
    window's core is about ``size`` facts of whole days, in time order; the window holds its
    core and every fact of the ``reach`` days after the core's last day. Any match (two facts at
    most ``reach`` days apart) thus lies whole in the window whose core holds its earlier fact;
    later windows may find it again, and only that window keeps it (its earlier fact's day is at
    most ``owned``): every hit is kept once, as one session would find it."""
    if reach is None or len(days) <= size:
        return [(np.arange(len(days)), None)]
    order = np.argsort(days, kind="stable")
    ordered = days[order]
    windows: list[tuple[np.ndarray, int | None]] = []
    start = 0
    while start < len(days):
        core_end = int(np.searchsorted(ordered, ordered[min(start + size, len(days)) - 1], "right"))
        last_day = int(ordered[core_end - 1])
        end = int(np.searchsorted(ordered, last_day + reach, "right"))
        if end == len(days):  # every later match lies whole in this window too: the last one
            windows.append((order[start:], None))
            break
        windows.append((order[start:end], last_day))
        start = core_end
    return windows


@dataclass(frozen=True, slots=True)
class Found:
    """A phase's hits and the patient of each (a row of ``patients`` per match)."""

    patients: np.ndarray
    hits: Hits

    def take(self, which: np.ndarray) -> Found:
        """The matches ``which`` selects (a mask or positions)."""
        return Found(self.patients[which], self.hits.take(which))


def _run_phase(
    engine: RuleEngine,
    phase: Phase,
    facts: pd.DataFrame,
    progress: Progress,
    reach: int | None = None,
) -> Found:
    """One phase's facts through the engine; each fact carries only the fields the phase's rules
    read, and its ``key``. A composite joins two facts of one patient, so ``finding`` facts
    (sorted by patient) go one patient per session, or, for a patient with many, in time windows
    that overlap by ``reach`` days (:func:`_windows`; :func:`~lemlabs.engine.rules.join_reach`,
    ``None``: no windows); result rules read one fact, so ``result`` facts go in sessions of a
    few thousand, whoever's they are."""
    patients = facts["patient_id"].to_numpy(dtype=object)
    columns = [*engine.reads(phase), "key"]
    values = [  # a missing number reaches durable-rules as MISSING (it reads no NaN)
        (facts[name].fillna(MISSING) if facts[name].dtype.kind == "f" else facts[name]).tolist()
        for name in columns
    ]
    records = [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]
    sessions: list[tuple[np.ndarray, int | None]] = []
    if phase == "finding":
        codes = pd.factorize(patients)[0]
        bounds = (np.flatnonzero(np.diff(codes)) + 1).tolist()
        days = facts["day"].to_numpy(dtype="int64")
        for a, b in itertools.pairwise([0, *bounds, len(records)] if records else [0]):
            sessions += [
                (part + a, owned) for part, owned in _windows(days[a:b], reach, _WINDOW_FACTS)
            ]
    else:
        bounds = list(range(_RESULTS_PER_SESSION, len(records), _RESULTS_PER_SESSION))
        starts = [0, *bounds, len(records)] if records else [0]
        sessions = [(np.arange(a, b), None) for a, b in itertools.pairwise(starts)]
    keys = pd.Index(facts["key"].to_numpy(dtype="int64"))
    step = max(1, len(sessions) // 50)
    parts = []
    for session, (positions, owned) in enumerate(sessions):
        if session % step == 0:
            progress(f"engine:{phase}", session, len(sessions))
        found = engine.run(phase, session, [records[n] for n in positions.tolist()])
        if owned is not None:  # a window keeps the matches whose earlier fact is in its core
            earlier = days[keys.get_indexer(found.keys.ravel())].reshape(found.keys.shape)
            found = found.take(earlier.min(axis=1) <= owned)
        parts.append(found)
    progress(f"engine:{phase}", len(sessions), len(sessions))
    hits = Hits.joined(parts, engine.rule_ids, len(ALIASES[phase]))
    return Found(patients[keys.get_indexer(hits.keys[:, 0])], hits)


def run_engine(
    context: pd.DataFrame,
    thresholds: Thresholds,
    book: RuleBook,
    post_all: bool,
    progress: Progress,
) -> tuple[Found, Found, dict[int, tuple[int, ...]]]:
    """Every patient's result facts through the result rules, then the findings they produce
    through the composite rules. Returns the result rules' hits (a result row each, in row
    order), the composites' hits (two finding facts each) and, per finding fact, its result
    rows."""
    engine = engine_for(book.rules, thresholds, catch_all=post_all, missing=book.missing)
    facts = result_facts(context, thresholds, book)
    if not post_all:
        facts = facts[admitted(facts, book.phase("result"), thresholds)]
    progress("engine", 0, 1)
    singles = _result_hits(engine, facts, alone=post_all, progress=progress)
    rows = singles.hits.keys[:, 0]
    by_id = np.argsort(np.argsort(np.array(engine.rule_ids)))  # each rule's rank by its id
    position = pd.Index(facts["key"].to_numpy(dtype="int64")).get_indexer(rows)
    singles = singles.take(np.lexsort((by_id[singles.hits.rules], position)))
    found = facts.set_index("key").loc[singles.hits.keys[:, 0]].reset_index()
    codes = np.array([rule.code for rule in engine.rules], dtype=object)[singles.hits.rules]
    found["code"] = pd.Series(codes, index=found.index, dtype=object)
    if not post_all:
        found = found[admitted(found, book.phase("finding"), thresholds)]
    found, fact_rows = _finding_facts(found, thresholds, book, alone=post_all)
    if not post_all:
        found = found[partnered(found, book.phase("finding"), thresholds)]
    reach = join_reach(book.phase("finding"), found, thresholds)
    composites = _run_phase(engine, "finding", found, progress, reach)
    progress("engine", 1, 1)
    return singles, composites, fact_rows


def _result_hits(engine: RuleEngine, facts: pd.DataFrame, alone: bool, progress: Progress) -> Found:
    """The result rules' hits on ``facts``, one per rule and result row (as many as the rule
    matched that result). A result rule compares the fields of one fact with numbers and
    texts, so results that no comparison tells apart (:func:`_classes`) match exactly the same
    rules: the engine sees one of each such set, with its own values, and its hits go to every
    result of the set. Each result is its own fact when ``alone``."""
    if alone or facts.empty:
        return _run_phase(engine, "result", facts, progress)
    rules = [rule for rule in engine.rules if rule.phase == "result"]
    classes = _classes(facts, rules, engine.thresholds)
    grouped = classes.groupby(list(classes.columns), sort=False)
    groups = grouped.ngroup().to_numpy()
    order = np.argsort(groups, kind="stable")
    starts = np.searchsorted(groups[order], np.arange(grouped.ngroups + 1))
    posted = facts.iloc[order[starts[:-1]]].assign(key=np.arange(len(starts) - 1))
    hits = _run_phase(engine, "result", posted, progress).hits
    group = hits.keys[:, 0]
    counts = starts[group + 1] - starts[group]  # the results of each hit's set
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    members = order[np.repeat(starts[group], counts) + within]
    rows = facts["key"].to_numpy(dtype="int64")[members]
    each = Hits(hits.rule_ids, np.repeat(hits.rules, counts), rows[:, np.newaxis])
    return Found(facts["patient_id"].to_numpy(dtype=object)[members], each)


def _analytes_of(node: Node) -> frozenset[str] | None:
    """The analytes whose facts can satisfy ``node`` (``None``: any analyte's)."""
    if isinstance(node, Comparison):
        if node.field == "analyte" and node.op == "==" and not node.negated:
            return frozenset([str(node.operand)])
        return None
    if isinstance(node, All):
        known = [found for part in node.parts if (found := _analytes_of(part)) is not None]
        return frozenset.intersection(*known) if known else None
    if isinstance(node, Any_):
        each = [_analytes_of(part) for part in node.parts]
        sets = [f for f in each if f is not None]
        return frozenset().union(*sets) if len(sets) == len(each) else None
    return None


def _classes(facts: pd.DataFrame, rules: Iterable[Rule], thresholds: Thresholds) -> pd.DataFrame:
    """Per field the rules read, a column that tells apart exactly the values some comparison
    tells apart: for a field compared only with numbers, the place of its value among them
    (below, at or above each: ``2k`` between the k-th and the next, ``2k + 1`` at the k-th;
    -1 where it is missing); any other field as it is. A field only rules of some analytes
    read (``analyte == 'alt'`` among their conditions) tells nothing apart for the others:
    their facts get one class of it (-2)."""
    numbers: dict[str, set[float]] = {}
    exact: set[str] = set()
    read_for: dict[str, set[str] | None] = {}  # per field, the analytes whose facts it matters for
    for rule in rules:
        for _, node in rule.compiled:
            analytes = _analytes_of(node)
            for comparison in walk(node):
                assert isinstance(comparison, Comparison)  # compiled: no Computed left
                known = read_for.get(comparison.field, set())
                mine = None if known is None or analytes is None else known | analytes
                read_for[comparison.field] = mine
                operand = comparison.operand
                value = None if isinstance(operand, Field) else value_of(operand, thresholds)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    cut = shifted(float(value), comparison.op)  # what the engine compares with
                    numbers.setdefault(comparison.field, set()).add(cut)
                else:
                    exact.add(comparison.field)
    classes = {}
    analyte = facts["analyte"].to_numpy(dtype=object)
    for field in sorted(exact | set(numbers)):
        if field in exact:
            found = facts[field].to_numpy(dtype=object)
        else:
            cuts = np.array(sorted(numbers[field]))
            values = facts[field].to_numpy(dtype=float)
            below, at_most = (np.searchsorted(cuts, values, side) for side in ("left", "right"))
            found = np.where(np.isnan(values), -1, below + at_most)  # missing: its own
        mine = read_for.get(field)
        if mine is not None and field != "analyte":
            found = np.where(np.isin(analyte, list(mine)), found, -2)
        classes[field] = found
    return pd.DataFrame(classes, index=facts.index)


def _finding_facts(
    found: pd.DataFrame, thresholds: Thresholds, book: RuleBook, alone: bool
) -> tuple[pd.DataFrame, dict[int, tuple[int, ...]]]:
    """One finding fact per patient and set of values the composite rules read, and the result
    rows behind each. Findings that agree on all of them (same code, same day, ...) join with
    exactly the same partners, so the engine sees each set once: a patient with hundreds of
    results a day is as many facts as days, not as findings. Each finding is its own fact when
    ``alone`` or when some composite could join two facts that agree on every field
    (:func:`~lemlabs.engine.language.joins_equals`): then grouping them would lose matches."""
    composites = book.phase("finding")
    if alone or any(
        joins_equals(r.compiled[0][1], r.compiled[1][1], thresholds) for r in composites
    ):
        groups: np.ndarray = np.arange(len(found))
    else:
        fields = ["patient_id", *book.reads("finding")]
        groups = found.groupby(fields, sort=False, dropna=False).ngroup().to_numpy()
    rows = found["key"].to_numpy()
    order = np.lexsort((rows, groups))  # by fact, then row
    ordered, facts_of = rows[order].tolist(), groups[order]
    starts = [0, *(np.flatnonzero(np.diff(facts_of)) + 1).tolist()] if len(order) else []
    ends = [*starts[1:], len(order)] if starts else []
    fact_rows = {
        fact: tuple(ordered[a:b])
        for fact, a, b in zip(facts_of[starts].tolist(), starts, ends, strict=True)
    }
    facts = found.assign(key=groups).drop_duplicates("key")
    return facts, fact_rows
