"""Findings from rule hits, plainly: the clinical rules of finding assembly with nothing but
loops, for hits of an engine that saw every result and every finding as a fact of its own
(:func:`lemlabs.pipeline.score_plain`). The fast path (:mod:`lemlabs.stages.findings.fast`)
compresses (a finding fact for a day's findings, a match for many pairs, occurrences absorbed,
spans, chunks); a test proves that it writes exactly these findings.

The rules, one by one:

1. A result rule's hit is an occurrence of its code for its result (and, for a rule that reads a
   paired result's field, that paired result too), dated at the latest of them, with the CTCAE
   grade of its rule's term and the notes whose condition holds for the result.
   It is dropped when its rule is ``superseded_by`` a code of which an occurrence stands on
   the same result (:func:`~lemlabs.stages.findings.episodes.standing`).
2. A composite's hit on two findings is an occurrence for the two results behind them, dated at
   the later one; it is dropped when its rule is ``superseded_by`` a code whose composite matched
   the same first finding.
3. Occurrences of one code and patient, in time order, form one episode while each is at most
   ``episode.gap_days`` after the one before and, for a result rule's code, no result of the same
   analyte that no result rule matched lies strictly between them.
4. Each episode is one finding (:class:`lemlabs.stages.findings.writer.Writer`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from lemlabs.ctcae import grade_rows
from lemlabs.engine.language import evaluate
from lemlabs.engine.rules import Rule
from lemlabs.errors import RuleError
from lemlabs.stages.context import field_columns
from lemlabs.stages.facts import Found
from lemlabs.stages.findings.episodes import Occurrence, standing
from lemlabs.stages.findings.writer import Writer, record_columns, records_of

if TYPE_CHECKING:
    from lemlabs.packs import Packs
    from lemlabs.packs.thresholds import Thresholds


def assemble_plainly(
    singles: Found,
    composites: Found,
    context: pd.DataFrame,
    packs: Packs,
    thresholds: Thresholds,
    rules_version: str,
    finding_rows: Mapping[int, tuple[int, ...]],
) -> dict[str, list[Any]]:
    """The findings table's columns, as :func:`lemlabs.stages.findings.assemble` gives them,
    from hits where each finding fact stands for one result (``finding_rows`` maps each to it)."""
    if any(len(rows) != 1 for rows in finding_rows.values()):
        raise RuleError("the plain assembly takes finding facts of one result each")
    book = packs.book
    rules = book.by_id
    needed = context[record_columns(book, context)].set_axis(context["row"].tolist())
    records = records_of(needed)
    version = str(thresholds["ctcae.version"])
    occurrences: list[Occurrence] = []
    for patient, hit in zip(singles.patients.tolist(), singles.hits, strict=True):
        rule = rules[hit.rule_id]
        (row,) = hit.keys
        rows: tuple[int, ...] = (row,)
        for field in book.paired.get(rule.id, ()):
            if records[row][field] == records[row][field]:  # not NaN
                rows += (int(records[row][field]),)
        latest = max(rows, key=lambda r: records[r]["collected_at"])
        grade = None
        if rule.ctcae:
            table = packs.criteria(version)
            terms = [term for key in rule.ctcae if (term := table.find(key)) is not None]
            found = max([0] + [int(grade_rows(t, needed.loc[[row]])[0]) for t in terms])
            grade = found if found > 0 else None
        columns = field_columns(needed.loc[[row]], book)
        holding = [n for n in rule.notes if evaluate(n.when, columns, thresholds)[0]]
        occurrences.append(
            Occurrence(
                rule,
                patient,
                rows,
                row,
                records[latest]["collected_at"],
                records[latest]["stamp"],
                grade,
                tuple(n.fill(records[row], thresholds) for n in holding if n.of == "each"),
                worst_notes=tuple(
                    n.fill(records[row], thresholds) for n in holding if n.of == "worst"
                ),
            )
        )
    occurrences = standing(occurrences)
    matched = {
        (patient, finding_rows[hit.keys[0]], rules[hit.rule_id].code)
        for patient, hit in zip(composites.patients.tolist(), composites.hits, strict=True)
    }
    for patient, hit in zip(composites.patients.tolist(), composites.hits, strict=True):
        rule = rules[hit.rule_id]
        first, second = (finding_rows[key] for key in hit.keys)
        if rule.superseded_by and (patient, first, rule.superseded_by) in matched:
            continue
        rows = (*first, *second)
        latest = max(rows, key=lambda r: records[r]["collected_at"])
        occurrences.append(
            Occurrence(
                rule,
                patient,
                rows,
                rows[-1],
                records[latest]["collected_at"],
                records[latest]["stamp"],
                None,
                (),
            )
        )
    writer = Writer(records, packs, thresholds, rules_version)
    hit_rows = {int(hit.keys[0]) for hit in singles.hits}
    for episode in _episodes(occurrences, thresholds["episode.gap_days"], records, hit_rows):
        writer.write(episode)
    return writer.columns


def _episodes(
    occurrences: list[Occurrence],
    gap_days: float,
    records: Mapping[int, Mapping[str, Any]],
    hit_rows: set[int],
) -> list[list[Occurrence]]:
    """Rule 3, with a loop: each patient's occurrences of a code in time order, a new episode
    where the gap is too long or a quiet result lies between."""
    by_code: dict[tuple[str, str], list[Occurrence]] = {}
    for occurrence in occurrences:
        by_code.setdefault((occurrence.patient_id, occurrence.rule.code), []).append(occurrence)
    quiet: dict[tuple[str, str], list[int]] = {}  # (patient, analyte) → stamps of quiet results
    for row, record in records.items():
        if row not in hit_rows:
            key = (str(record["patient_id"]), str(record["analyte"]))
            quiet.setdefault(key, []).append(record["stamp"])
    found = []
    for key in sorted(by_code):
        ordered = sorted(by_code[key], key=lambda o: (o.stamp, o.date, o.rows))
        episode = [ordered[0]]
        for before, after in itertools.pairwise(ordered):
            analyte = str(records[after.anchor_row]["analyte"])
            between = any(
                before.stamp < stamp < after.stamp
                for stamp in quiet.get((after.patient_id, analyte), ())
            )
            if (after.date - before.date).days > gap_days or (_single(after.rule) and between):
                found.append(episode)
                episode = []
            episode.append(after)
        found.append(episode)
    return found


def _single(rule: Rule) -> bool:
    return rule.phase == "result"
