"""From rule hits to findings, fast: what the engine's compressed hits stand for (a finding
fact for many findings of a day, a composite match for many pairs), resolved to occurrences,
chained into episodes (:mod:`lemlabs.stages.findings.episodes`) and written
(:mod:`lemlabs.stages.findings.writer`). :mod:`lemlabs.stages.findings.reference` does the same
plainly, one occurrence per pair, and a test proves the two equal."""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lemlabs.ctcae import Criteria, grade_rows
from lemlabs.engine.language import evaluate
from lemlabs.engine.rules import Note, Rule, RuleBook
from lemlabs.stages.context import field_columns
from lemlabs.stages.facts import Found
from lemlabs.stages.findings.episodes import Occurrence, QuietResults, episodes, standing
from lemlabs.stages.findings.memory import collector_paused
from lemlabs.stages.findings.writer import Writer, record_columns, records_of

if TYPE_CHECKING:
    from lemlabs.packs import Packs
    from lemlabs.packs.thresholds import Thresholds


def _absorbing(rules: Iterable[Rule]) -> set[str]:
    """Composite codes whose rules name no extreme value and share one severity: an occurrence
    of one of them stands for the others of its patient, rule and date (:func:`_absorb`), so
    that one patient's million composite matches become a few thousand occurrences. Nothing
    the writer says of such an episode reads an anchor (no extreme, no mixed levels): only
    the rows, which :func:`_absorb` keeps."""
    by_code: dict[str, list[Rule]] = defaultdict(list)
    for rule in rules:
        by_code[rule.code].append(rule)
    return {
        code
        for code, mine in by_code.items()
        if all(r.phase == "finding" and r.worst is None for r in mine)
        and len({r.severity for r in mine}) == 1
    }


def _absorb(kept: Occurrence, twin: Occurrence) -> None:
    """``kept`` stands for ``twin`` as well: a composite occurrence of the same patient, rule
    and date. It keeps the rows that sort first (episodes order ties by rows, and the first
    of the latest decides the finding's rule) and every row of both as evidence: their
    ``more``, the two facts' row tuples, which hold their pairs' rows."""
    kept.more = kept.more if isinstance(kept.more, set) else set(kept.more)
    kept.more.update(twin.more)
    if twin.rows < kept.rows:
        kept.rows, kept.anchor_row = twin.rows, twin.anchor_row


_CHUNK = 100_000  # composite hits read as Python objects at a time


@collector_paused()
def assemble(
    singles: Found,
    composites: Found,
    context: pd.DataFrame,
    packs: Packs,
    thresholds: Thresholds,
    rules_version: str,
    finding_rows: Mapping[int, tuple[int, ...]],
) -> dict[str, list[Any]]:
    """Findings from hits, as the findings table's columns (a list per field of
    :data:`~lemlabs.models.FINDING_COLUMNS`, values as :meth:`Finding.to_dict` gives them).
    A result rule's hit (``singles``) holds the result's row; a composite's hit holds
    finding fact keys, which ``finding_rows`` maps to the result rows behind them (a fact stands
    for all findings of a patient that agree on every field the composites read)."""
    book = packs.book
    rules = book.by_id
    rule_of = [rules[rule_id] for rule_id in singles.hits.rule_ids]  # by the hits' rule index
    hit_rows = set(singles.hits.keys[:, 0].tolist())
    rows_needed = sorted(hit_rows | {row for rows in finding_rows.values() for row in rows})
    at = pd.Index(context["row"])  # a row's position in the context
    pair_of = _pairs(context, at, rows_needed, set(book.row_fields))
    columns = record_columns(book, context)
    chosen = sorted({*rows_needed, *(row for rows in pair_of.values() for row in rows.values())})
    needed = context[columns].take(at.get_indexer(chosen)).set_axis(chosen)
    records = records_of(needed)
    superseding_codes = {rule.superseded_by for rule in rules.values() if rule.superseded_by}
    joins = composites.hits
    superseding_rules = [n for n, r in enumerate(rule_of) if r.code in superseding_codes]
    supersede = np.isin(joins.rules, superseding_rules)
    superseding = set(
        zip(
            composites.patients[supersede].tolist(),
            joins.keys[supersede, 0].tolist(),
            [rule_of[n].code for n in joins.rules[supersede].tolist()],
            strict=True,
        )
    )

    def superseded(patient: str, key: int, rule: Rule) -> bool:
        return bool(rule.superseded_by) and (patient, key, rule.superseded_by) in superseding

    kept = [
        (patient, row, rule)
        for patient, row, rule in zip(
            singles.patients.tolist(),
            singles.hits.keys[:, 0].tolist(),
            [rule_of[n] for n in singles.hits.rules.tolist()],
            strict=True,
        )
        if not superseded(patient, row, rule)
    ]
    grades = _grades(kept, needed, packs.criteria(str(thresholds["ctcae.version"])))
    notes_of, worst_notes_of = _notes(kept, needed, records, book, thresholds)
    occurrences = []
    noted = zip(kept, grades, notes_of, worst_notes_of, strict=True)
    for (patient, anchor, rule), grade, notes, worst_notes in noted:
        rows: tuple[int, ...] = (anchor,)
        mine = pair_of.get(anchor, {})
        rows += tuple(mine[field] for field in book.paired.get(rule.id, ()) if field in mine)
        last = _latest(rows, records)
        date, stamp = last["collected_at"], last["stamp"]
        occurrences.append(
            Occurrence(
                rule, patient, rows, anchor, date, stamp, grade, notes, worst_notes=worst_notes
            )
        )
    occurrences = standing(occurrences)
    plain = _absorbing(rules.values())
    twins: dict[tuple[str, str, dt.datetime], Occurrence] = {}
    facts = _FindingFacts(finding_rows, records)
    for start in range(0, len(joins), _CHUNK):  # a patient's millions of matches, a part at a time
        part = slice(start, start + _CHUNK)
        for patient, number, (one, two) in zip(
            composites.patients[part].tolist(),
            joins.rules[part].tolist(),
            joins.keys[part].tolist(),
            strict=True,
        ):
            rule = rule_of[number]
            if superseded(patient, one, rule):
                continue
            for occurrence in _joined(rule, patient, (one, two), facts, records):
                if rule.code in plain:
                    twin = twins.setdefault((patient, rule.id, occurrence.date), occurrence)
                    if twin is not occurrence:
                        _absorb(twin, occurrence)
                        continue
                occurrences.append(occurrence)
    analyte_of = {row: str(record["analyte"]) for row, record in records.items()}
    quiet = QuietResults(context, hit_rows, {o.patient_id for o in occurrences})
    writer = Writer(records, packs, thresholds, rules_version)
    for episode in episodes(occurrences, thresholds["episode.gap_days"], quiet, analyte_of):
        writer.write(episode)
    return writer.columns


def _latest(rows: tuple[int, ...], records: Mapping[int, Mapping[str, Any]]) -> Mapping[str, Any]:
    """The record of the latest of ``rows`` (the first of them on a tie)."""
    if len(rows) == 1:
        return records[rows[0]]
    return max((records[row] for row in rows), key=lambda r: r["collected_at"])


@dataclass(frozen=True, slots=True)
class _Span:
    """A finding fact's result rows in time order: for any time, the lowest row at or before
    it (what :func:`_deciding_pairs` asks of every match the fact is in)."""

    times: list[dt.datetime]
    lowest: list[int]
    """``lowest[n]``: the lowest row among the first ``n + 1`` in time order."""
    at_latest: int
    """The lowest row at the latest time."""

    @classmethod
    def of(cls, rows: tuple[int, ...], records: Mapping[int, Mapping[str, Any]]) -> _Span:
        timed = sorted((records[row]["collected_at"], row) for row in rows)
        times = [time for time, _ in timed]
        at_latest = timed[bisect.bisect_left(times, times[-1])][1]
        return cls(times, list(itertools.accumulate((row for _, row in timed), min)), at_latest)

    @property
    def latest(self) -> dt.datetime:
        return self.times[-1]

    @property
    def earliest(self) -> dt.datetime:
        return self.times[0]

    def lowest_until(self, when: dt.datetime) -> int:
        """The lowest row at or before ``when`` (not before the earliest)."""
        return self.lowest[bisect.bisect_right(self.times, when) - 1]


class _FindingFacts:
    """Finding facts' result rows (``rows``), and the :class:`_Span` of a fact of several rows,
    made once however many matches it is in."""

    def __init__(
        self, rows: Mapping[int, tuple[int, ...]], records: Mapping[int, Mapping[str, Any]]
    ) -> None:
        self.rows, self._records = rows, records
        self._spans: dict[int, _Span] = {}

    def span(self, key: int) -> _Span:
        known = self._spans.get(key)
        if known is None:
            self._spans[key] = known = _Span.of(self.rows[key], self._records)
        return known


def _joined(
    rule: Rule,
    patient: str,
    keys: tuple[int, int],
    facts: _FindingFacts,
    records: Mapping[int, Mapping[str, Any]],
) -> list[Occurrence]:
    """The occurrences of a composite hit on two finding facts (``keys``), each standing for
    findings of one day (:attr:`_FindingFacts.rows`: their result rows). Every pair of them
    matched; a pair's date is its later result. Those dates all fall within one day, so every
    pair lands in one episode, and only the earliest and the latest can decide where an episode
    splits: the pair (lowest rows first, as episodes order ties) at each of those two dates
    stands for all, the other rows ride along as evidence (``more``)."""
    first, second = facts.rows[keys[0]], facts.rows[keys[1]]
    if len(first) == 1 and len(second) == 1:  # one finding each (the usual case): one pair
        pairs = {(first[0], second[0])}
    else:
        pairs = _deciding_pairs(facts.span(keys[0]), facts.span(keys[1]))
    occurrences = []
    for pair in sorted(pairs):
        last = _latest(pair, records)
        occurrences.append(
            Occurrence(
                rule,
                patient,
                pair,
                pair[-1],
                last["collected_at"],
                last["stamp"],
                None,
                (),
                (first, second),
            )
        )
    return occurrences


def _deciding_pairs(one: _Span, two: _Span) -> set[tuple[int, int]]:
    """The pairs at the earliest and at the latest date of all pairs of two facts' rows (see
    :func:`_joined`). At the latest: the lowest row at that time on the side that reaches it,
    with the other side's lowest row (either side, when both do: the lower pair). At the
    earliest (the later of the two earliest times): the lowest row at or before it on each
    side."""
    latest = max(one.latest, two.latest)
    candidates = []
    if one.latest == latest:
        candidates.append((one.at_latest, two.lowest[-1]))
    if two.latest == latest:
        candidates.append((one.lowest[-1], two.at_latest))
    earliest = max(one.earliest, two.earliest)
    return {min(candidates), (one.lowest_until(earliest), two.lowest_until(earliest))}


def _pairs(
    context: pd.DataFrame, at: pd.Index, rows: Sequence[int], columns: set[str]
) -> dict[int, dict[str, int]]:
    """Per result row, the rows of the results its features picked (a ``nearest`` or
    ``window`` feature's ``_row`` columns, by column)."""
    found: dict[int, dict[str, int]] = defaultdict(dict)
    for column in sorted(columns):
        where = at.get_indexer(pd.Index(rows))
        paired = context[column].take(where).set_axis(pd.Index(rows)).dropna().astype(int)
        for row, other in zip(paired.index.tolist(), paired.tolist(), strict=True):
            found[row][column] = other
    return found


def _grades(
    kept: Sequence[tuple[str, int, Rule]], needed: pd.DataFrame, criteria: Criteria
) -> list[int | None]:
    """Each result hit's CTCAE grade (``kept``: patient, row, rule), computed per rule for all
    of its results at once (``None`` for no grade, or grade 0)."""
    grades: list[int | None] = [None] * len(kept)
    for rule, numbers in _by_rule(kept, lambda rule: bool(rule.ctcae)):
        anchors = needed.loc[[kept[number][1] for number in numbers]]
        terms = [term for key in rule.ctcae if (term := criteria.find(key)) is not None]
        found = np.max(  # each result by the term of its analyte (0 for the other terms')
            [np.zeros(len(anchors), dtype="int64")] + [grade_rows(t, anchors) for t in terms],
            axis=0,
        ).tolist()
        for number, grade in zip(numbers, found, strict=True):
            grades[number] = grade if grade > 0 else None
    return grades


def _notes(
    kept: Sequence[tuple[str, int, Rule]],
    needed: pd.DataFrame,
    records: Mapping[int, Mapping[str, Any]],
    book: RuleBook,
    thresholds: Thresholds,
) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """Each result hit's notes (``kept``: patient, row, rule): every note of its rule whose
    condition holds for its result, each condition evaluated per rule for all its results at
    once; those of each result, and those (``of = "worst"``) its finding carries only when it
    is the worst. A note is filled once per distinct value of the fields its text names; equal
    notes share one tuple."""
    notes: list[tuple[str, ...]] = [()] * len(kept)
    worst_notes: list[tuple[str, ...]] = [()] * len(kept)
    texts: dict[tuple[str, ...], tuple[str, ...]] = {}
    filled: dict[tuple[object, ...], str] = {}

    def fill(rule: Rule, note: Note, record: Mapping[str, Any]) -> str:
        key = (rule.id, note.name, *(record[name] for name in note.row_fields))
        if key not in filled:
            filled[key] = note.fill(record, thresholds)
        return filled[key]

    for rule, numbers in _by_rule(kept, lambda rule: bool(rule.notes)):
        rows = [kept[number][1] for number in numbers]
        columns = field_columns(needed.loc[rows], book)
        held = np.vstack([evaluate(note.when, columns, thresholds) for note in rule.notes])
        for position in np.flatnonzero(held.any(axis=0)):
            record = records[rows[position]]
            holding = [n for n, h in zip(rule.notes, held[:, position], strict=True) if h]
            found = tuple(fill(rule, note, record) for note in holding if note.of == "each")
            notes[numbers[position]] = texts.setdefault(found, found)
            worst = tuple(fill(rule, note, record) for note in holding if note.of == "worst")
            worst_notes[numbers[position]] = texts.setdefault(worst, worst)
    return notes, worst_notes


def _by_rule(
    kept: Sequence[tuple[str, int, Rule]], wanted: Callable[[Rule], bool]
) -> list[tuple[Rule, list[int]]]:
    """The positions of ``kept`` per rule, for the rules ``wanted`` holds for."""
    by_rule: dict[str, list[int]] = defaultdict(list)
    rules: dict[str, Rule] = {}
    for number, (_, _, rule) in enumerate(kept):
        if wanted(rule):
            by_rule[rule.id].append(number)
            rules[rule.id] = rule
    return [(rules[rule_id], numbers) for rule_id, numbers in by_rule.items()]
