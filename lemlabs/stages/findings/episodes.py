"""The episode rule: which rule hits make one finding.

Hits of one code for one patient form one episode while each is at most ``episode.gap_days`` (92
by default) after the previous one and, for single-test codes, no unremarkable result of the same
analyte (one that produced no finding) lies between them. A composite's own window (30 days for
the anti-GBM pattern) decides whether it matches at all; its hits then chain into episodes by the
same rule. The finding keeps the highest severity and CTCAE grade of the episode, reports its
extreme value, and lists every result as evidence (:mod:`lemlabs.stages.findings.writer`).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lemlabs.engine.rules import Rule


@dataclass(slots=True)
class Occurrence:
    """One hit, resolved to its patient, rows (result row numbers) and date."""

    rule: Rule
    patient_id: str
    rows: tuple[int, ...]
    anchor_row: int
    date: dt.datetime
    stamp: int
    """``date`` in seconds since 1900 (:func:`seconds`)."""
    grade: int | None
    notes: tuple[str, ...]
    more: Collection[tuple[int, ...]] = ()
    """Further rows the occurrence stands for (a composite's other findings of the same day):
    the two facts' own row tuples, shared by all their hits, not copied per hit."""
    worst_notes: tuple[str, ...] = ()
    """Notes (``of = "worst"``) the finding carries only when this is its worst occurrence."""


def standing(occurrences: Sequence[Occurrence]) -> list[Occurrence]:
    """Result rules' occurrences but those superseded: one whose rule is ``superseded_by`` a
    code is dropped where an occurrence of that code stands on its result (its anchor among
    that occurrence's rows: an HLH screen on the blood counts of a pancytopenia)."""
    codes = {o.rule.superseded_by for o in occurrences if o.rule.superseded_by}
    if not codes:
        return list(occurrences)
    stands = {(o.patient_id, o.rule.code, row) for o in occurrences if o.rule.code in codes
              for row in o.rows}  # fmt: skip
    return [
        o
        for o in occurrences
        if not o.rule.superseded_by
        or (o.patient_id, o.rule.superseded_by, o.anchor_row) not in stands
    ]


_ORIGIN = np.datetime64("1900-01-01T00:00:00", "s")


def seconds(when: Any) -> np.ndarray:
    """Datetimes as whole seconds since 1900."""
    return np.asarray((np.asarray(when, dtype="datetime64[s]") - _ORIGIN).astype("int64"))


class QuietResults:
    """Results that produced no finding, searchable by patient, analyte and time at once."""

    _STRIDE = 10**10  # seconds since 1900 stay below this for centuries

    def __init__(self, context: pd.DataFrame, hit_rows: set[int], patients: set[str]) -> None:
        people, names = pd.factorize(context["patient_id"].to_numpy(dtype=object))
        analytes, kinds = pd.factorize(context["analyte"].to_numpy(dtype=object))
        rows = context["row"].to_numpy(dtype="int64")
        hit = np.zeros(int(rows.max(initial=0)) + 1, dtype=bool)
        hit[np.fromiter(hit_rows, dtype="int64", count=len(hit_rows))] = True  # context rows
        mine = np.fromiter((name in patients for name in names), dtype=bool, count=len(names))
        quiet = mine[people] & ~hit[rows]
        self._person = {str(p): number for number, p in enumerate(names)}
        self._analyte = {str(a): number for number, a in enumerate(kinds)}
        self._width = max(1, len(kinds))
        codes = people[quiet].astype("int64") * self._width + analytes[quiet]
        self._keys = np.sort(codes * self._STRIDE + seconds(context["collected_at"][quiet]))

    def between(
        self, patients: Sequence[str], analytes: Sequence[str], starts: np.ndarray, ends: np.ndarray
    ) -> np.ndarray:
        """For each (patient, analyte, start, end): whether such a result lies strictly between
        ``start`` and ``end`` (seconds)."""
        people = np.array([self._person.get(p, -1) for p in patients], dtype="int64")
        kinds = np.array([self._analyte.get(a, -1) for a in analytes], dtype="int64")
        base = (people * self._width + kinds) * self._STRIDE
        low = np.searchsorted(self._keys, base + starts, side="right")
        high = np.searchsorted(self._keys, base + ends, side="left")
        return np.asarray((high > low) & (people >= 0) & (kinds >= 0))


def episodes(
    occurrences: list[Occurrence],
    gap_days: float,
    quiet: QuietResults,
    analyte_of: Mapping[int, str],
) -> list[list[Occurrence]]:
    """Each patient's occurrences of a code in time order, split where the next one is more than
    ``gap_days`` later or, for a single-test code, a quiet result of the anchor's analyte lies
    between them (``analyte_of``: each anchor row's analyte)."""
    groups: dict[tuple[str, str], list[Occurrence]] = defaultdict(list)
    for occurrence in occurrences:
        groups[(occurrence.patient_id, occurrence.rule.code)].append(occurrence)
    ordered = []
    for key in sorted(groups):
        ordered += sorted(groups[key], key=lambda o: (o.stamp, o.date, o.rows))
    if not ordered:
        return []
    # an occurrence opens an episode when it is the first of its group, or by the rule above
    previous, current = ordered[:-1], ordered[1:]
    first = np.array(
        [True]
        + [
            (a.patient_id, a.rule.code) != (b.patient_id, b.rule.code)
            for a, b in zip(previous, current, strict=True)
        ]
    )
    gap = np.array(
        [False]
        + [(b.date - a.date).days > gap_days for a, b in zip(previous, current, strict=True)]
    )
    checked = [
        n
        for n, o in enumerate(current, start=1)
        if o.rule.phase == "result" and not first[n] and not gap[n]
    ]
    split = np.zeros(len(ordered), dtype=bool)
    if checked:
        split[checked] = quiet.between(
            [ordered[n].patient_id for n in checked],
            [analyte_of[ordered[n].anchor_row] for n in checked],
            np.array([ordered[n - 1].stamp for n in checked], dtype="int64"),
            np.array([ordered[n].stamp for n in checked], dtype="int64"),
        )
    starts = np.flatnonzero(first | gap | split).tolist()
    return [ordered[a:b] for a, b in zip(starts, [*starts[1:], len(ordered)], strict=True)]
