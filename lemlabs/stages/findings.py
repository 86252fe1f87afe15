"""From rule hits to findings: one finding per patient, code and episode, with its evidence.

Episode rule: hits of one code for one patient form one episode while each is at most
``episode.gap_days`` (92 by default) after the previous one and, for single-test codes, no
unremarkable result of the same analyte (one that produced no finding) lies between them. A
composite's own window (30 days for the anti-GBM pattern) decides whether it matches at all; its
hits then chain into episodes by the same rule. The finding keeps the highest severity and CTCAE
grade of the episode, reports its extreme value, and lists every result as evidence.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from lemlabs.engine.rules import Rule
from lemlabs.models import Evidence, Severity
from lemlabs.packs.analytes import catalogue
from lemlabs.packs.display import label_of, shown
from lemlabs.packs.thresholds import Thresholds
from lemlabs.stages.facts import Found
from lemlabs.stages.memory import collector_paused
from lemlabs.tables import FINDING_COLUMNS

_BASELINE_ANALYTES = {"platelets", "creatinine"}
_NAME = {int(severity): str(severity) for severity in Severity}
# what evidence, grades, notes and messages read of a result
_RECORD_COLUMNS = [
    "row",
    "patient_id",
    "analyte",
    "value",
    "value_high",
    "unit",
    "raw_value",
    "raw_unit",
    "censor",
    "lower",
    "upper",
    "flag",
    "ref_low",
    "ref_high",
    "collected_at",
    "baseline",
    "baseline_kind",
    "baseline_days",
    "rise_ratio",
    "rise_48h",
    "days_since_course",
    "window",
    "window_end",
    "micro_neg",
    "sex",
    "pair_row",
]


@dataclass(slots=True)
class Occurrence:
    """One hit, resolved to its patient, rows (result row numbers) and date."""

    rule: Rule
    patient_id: str
    rows: tuple[int, ...]
    anchor_row: int
    date: dt.datetime
    stamp: int
    """``date`` in seconds since 1900 (:func:`_seconds`)."""
    grade: int | None
    notes: tuple[str, ...]
    more: Collection[tuple[int, ...]] = ()
    """Further rows the occurrence stands for (a composite's other findings of the same day):
    the two facts' own row tuples, shared by all their hits, not copied per hit."""


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


_ORIGIN = np.datetime64("1900-01-01T00:00:00", "s")


def _seconds(when: Any) -> np.ndarray:
    """Datetimes as whole seconds since 1900."""
    return np.asarray((np.asarray(when, dtype="datetime64[s]") - _ORIGIN).astype("int64"))


class _QuietResults:
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
        self._keys = np.sort(codes * self._STRIDE + _seconds(context["collected_at"][quiet]))

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


def _episodes(
    occurrences: list[Occurrence],
    thresholds: Thresholds,
    quiet: _QuietResults,
    analyte_of: Mapping[int, str],
) -> list[list[Occurrence]]:
    """Each patient's occurrences of a code in time order, split where the next one is more than
    ``episode.gap_days`` later or, for a single-test code, a quiet result lies between them."""
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
        + [
            (b.date - a.date).days > thresholds["episode.gap_days"]
            for a, b in zip(previous, current, strict=True)
        ]
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


def _plain(when: Any) -> dt.datetime:
    """A datetime as Python's own (a pandas Timestamp's nanoseconds dropped)."""
    return when.to_pydatetime() if isinstance(when, pd.Timestamp) else when


def evidence_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """One result (a context row) as evidence, as :meth:`Evidence.to_dict` gives it (empty text
    and missing numbers left out); baseline kept for platelets and creatinine."""
    out: dict[str, Any] = {"analyte": str(record["analyte"]), "value": float(record["value"])}
    for name in ("unit", "raw_value", "raw_unit"):
        text = str(record[name])
        if text:
            out[name] = text
    iso = record.get("collected_iso")
    out["collected_at"] = iso if iso else _plain(record["collected_at"]).isoformat()
    out["row"] = int(record["row"])
    censor = str(record["censor"])
    if censor:
        out["censor"] = censor
    high = record["value_high"]
    if high is not None and high == high:  # not NaN
        out["value_high"] = float(high)
    if record["analyte"] in _BASELINE_ANALYTES:
        out["baseline"] = float(record["baseline"])
        kind = str(record["baseline_kind"])
        if kind:
            out["baseline_kind"] = kind
    if record.get("source_id"):
        out["source_id"] = str(record["source_id"])
    return out


def evidence_of(record: Mapping[str, Any]) -> Evidence:
    """One result (a context row) as :class:`Evidence`."""
    return Evidence.from_dict(evidence_row(record))


@cache
def _catalogue_order() -> dict[str, int]:
    return {analyte: number for number, analyte in enumerate(catalogue())}


def _counted(evidence: Sequence[Mapping[str, Any]]) -> str:
    """ "3 results (2 TSH, 1 free T4), from A to B": every result of the episode, counted once."""
    first, last = evidence[0]["day_text"], evidence[-1]["day_text"]
    count = len(evidence)
    if count == 1:
        return f"1 result, on {first}"
    text = f"{count} result{'s' if count != 1 else ''}"
    analytes = [str(record["analyte"]) for record in evidence]
    if analytes.count(analytes[0]) != count:
        per_analyte = Counter(analytes)
        order = _catalogue_order()
        kinds = sorted(per_analyte, key=lambda a: order.get(a, len(order)))
        text += " (" + ", ".join(f"{per_analyte[a]} {label_of(a)}" for a in kinds) + ")"
    return f"{text}, on {last}" if first == last else f"{text}, from {first} to {last}"


def _certain_low(record: Mapping[str, Any]) -> tuple[float, float]:
    return record["upper"], record["value"]


def _certain_high(record: Mapping[str, Any]) -> tuple[float, float]:
    return record["lower"], record["value"]


def _worst(rule: Rule, anchors: Sequence[Mapping[str, Any]]) -> str:
    """The episode's extreme value per analyte, judged by what is certain of each value."""
    if rule.worst is None:
        return ""
    extremes = anchors if len(anchors) == 1 else _extremes(rule.worst, anchors)
    return "; " + "; ".join(
        f"{rule.worst} {shown(r)} ({label_of(str(r['analyte']))}) on {r['day_text']}"
        for r in extremes
    )


def _extremes(worst: str, anchors: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Per analyte, the anchor whose certain value is the ``worst`` (lowest or highest)."""
    by_analyte: dict[str, list[Mapping[str, Any]]] = {}
    for record in anchors:
        by_analyte.setdefault(str(record["analyte"]), []).append(record)
    if worst == "lowest":
        return [min(rs, key=_certain_low) for rs in by_analyte.values()]
    return [max(rs, key=_certain_high) for rs in by_analyte.values()]


def _highest_level(
    episode: Sequence[Occurrence], top: int, records: Mapping[int, Mapping[str, Any]], total: int
) -> str:
    """When an episode mixes severities: which results reached the finding's severity ``top``."""
    if all(o.rule.severity == top for o in episode):
        return ""
    reached = sorted(
        {o.anchor_row for o in episode if o.rule.severity == top},
        key=lambda r: (records[r]["collected_at"], r),
    )
    if len(reached) == total:
        return ""
    listed = [f"{shown(records[r])} on {records[r]['day_text']}" for r in reached[:3]]
    more = f" and {len(reached) - 3} more" if len(reached) > 3 else ""
    return (
        f"; {len(reached)} of them reached this level ({', '.join(listed)}{more}), "
        "the others a lower one"
    )


_CHUNK = 100_000  # composite hits read as Python objects at a time


@collector_paused()
def assemble(
    singles: Found,
    composites: Found,
    context: pd.DataFrame,
    rules: Mapping[str, Rule],
    thresholds: Thresholds,
    rules_version: str,
    finding_rows: Mapping[int, tuple[int, ...]],
) -> dict[str, list[Any]]:
    """Findings from hits, as the findings table's columns (a list per field of
    :data:`~lemlabs.models.FINDING_COLUMNS`, values as :meth:`Finding.to_dict` gives them).
    A result rule's hit (``singles``) holds the result's row; a composite's hit holds
    finding fact keys, which ``finding_rows`` maps to the result rows behind them (a fact stands
    for all findings of a patient that agree on every field the composites read)."""
    rule_of = [rules[rule_id] for rule_id in singles.hits.rule_ids]  # by the hits' rule index
    hit_rows = set(singles.hits.keys[:, 0].tolist())
    rows_needed = sorted(hit_rows | {row for rows in finding_rows.values() for row in rows})
    at = pd.Index(context["row"])  # a row's position in the context
    pair_row = context["pair_row"].take(at.get_indexer(rows_needed)).set_axis(rows_needed)
    paired = pair_row.dropna().astype(int)
    columns = [*_RECORD_COLUMNS, *context.columns.intersection(["source_id"])]
    chosen = sorted({*rows_needed, *paired})
    needed = context[columns].take(at.get_indexer(chosen)).set_axis(chosen)
    records = _records(needed)
    pair_of = dict(zip(paired.index.tolist(), paired.tolist(), strict=True))
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
    grades = _grades(kept, needed, thresholds)
    occurrences = []
    texts: dict[tuple[str, ...], tuple[str, ...]] = {}  # equal notes: one tuple, not one each
    for (patient, anchor, rule), grade in zip(kept, grades, strict=True):
        rows: tuple[int, ...] = (anchor,)
        if rule.condition == "thyroid" and anchor in pair_of:
            rows += (pair_of[anchor],)
        notes = tuple(rule.notes_of(records[anchor], thresholds))
        notes = texts.setdefault(notes, notes)
        last = _latest(rows, records)
        date, stamp = last["collected_at"], last["stamp"]
        occurrences.append(Occurrence(rule, patient, rows, anchor, date, stamp, grade, notes))
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
    quiet = _QuietResults(context, hit_rows, {o.patient_id for o in occurrences})
    episodes = _episodes(occurrences, thresholds, quiet, analyte_of)
    writer = _Writer(records, thresholds, rules_version)
    for episode in episodes:
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


def _iso(times: np.ndarray) -> list[str]:
    """Times as ``datetime.isoformat`` writes them, computed by numpy for whole seconds."""
    seconds = times.astype("datetime64[s]")
    texts: list[str] = np.datetime_as_string(seconds).tolist()
    for i in np.flatnonzero(times != seconds):  # a fraction of a second: Python's own text
        texts[i] = times[i].astype(dt.datetime).isoformat()
    return texts


def _records(needed: pd.DataFrame) -> dict[int, dict[str, Any]]:
    """Context rows by row number as dicts, times as Python datetimes (fast to compare),
    ``stamp`` (whole seconds since 1900), ``collected_iso`` (the time as evidence writes it)
    and ``day_text`` (the day as messages write it)."""
    columns = list(needed.columns)
    times = ("collected_at", "window_end")  # pandas' Timestamps are slow to make and compare
    values = {name: needed[name].tolist() for name in columns if name not in times}
    for name in times:
        values[name] = needed[name].to_numpy(dtype="datetime64[us]").astype(object).tolist()
    values["stamp"] = _seconds(needed["collected_at"]).tolist()
    values["collected_iso"] = _iso(needed["collected_at"].to_numpy(dtype="datetime64[us]"))
    days = needed["collected_at"].to_numpy(dtype="datetime64[D]")
    values["day_text"] = np.datetime_as_string(days).tolist()
    names = [*columns, "stamp", "collected_iso", "day_text"]
    rows = zip(*(values[name] for name in names), strict=True)
    records = [dict(zip(names, row, strict=True)) for row in rows]
    return dict(zip(needed.index.tolist(), records, strict=True))


def _grades(
    kept: Sequence[tuple[str, int, Rule]], needed: pd.DataFrame, thresholds: Thresholds
) -> list[int | None]:
    """Each result hit's CTCAE grade (``kept``: patient, row, rule), computed per rule for all
    of its results at once."""
    grades: list[int | None] = [None] * len(kept)
    by_rule: dict[str, list[int]] = defaultdict(list)
    for number, (_, _, rule) in enumerate(kept):
        if rule.grade:
            by_rule[rule.id].append(number)
    for numbers in by_rule.values():
        rule = kept[numbers[0]][2]
        anchors = needed.loc[[kept[number][1] for number in numbers]]
        for number, grade in zip(numbers, rule.grades_of(anchors, thresholds), strict=True):
            grades[number] = grade
    return grades


def _severity_and_date(occurrence: Occurrence) -> tuple[int, dt.datetime]:
    return occurrence.rule.severity, occurrence.date


class _Writer:
    """The findings table's columns (``columns``), a finding per episode; what is the same for
    every finding of a rule (its message, action and sources) and every evidence of a result
    is written once."""

    def __init__(
        self, records: Mapping[int, Mapping[str, Any]], thresholds: Thresholds, version: str
    ) -> None:
        self.records, self.thresholds, self.version = records, thresholds, version
        self.columns: dict[str, list[Any]] = {name: [] for name in FINDING_COLUMNS}
        self._add = [self.columns[name].append for name in FINDING_COLUMNS]
        self._texts: dict[str, tuple[str, str, str, str, str]] = {}
        self._evidence: dict[int, dict[str, Any]] = {}

    def _text(self, rule: Rule) -> tuple[str, str, str, str, str]:
        """The rule's message, action, sources, condition and severity as the table writes
        them."""
        known = self._texts.get(rule.id)
        if known is None:
            message, action = rule.text(self.thresholds)
            source, condition = rule.source(self.thresholds), str(rule.condition)
            known = self._texts[rule.id] = (
                message,
                action,
                source,
                condition,
                _NAME[rule.severity],
            )
        return known

    def _evidence_of(self, row: int) -> dict[str, Any]:
        """The result's evidence: built once, a copy for each later finding (none share one)."""
        known = self._evidence.get(row)
        if known is None:
            self._evidence[row] = known = evidence_row(self.records[row])
            return known
        return dict(known)

    def write(self, episode: list[Occurrence]) -> None:
        """The episode's finding, a value in each column."""
        records, thresholds = self.records, self.thresholds
        top = episode[0] if len(episode) == 1 else max(episode, key=_severity_and_date)
        rule = top.rule
        if len(episode) == 1 and len(top.rows) == 1 and not top.more:  # one result
            rows = list(top.rows)
            notes = list(dict.fromkeys(top.notes))
        else:
            rows = list({row for o in episode for part in (o.rows, *o.more) for row in part})
            rows.sort(key=lambda r: (records[r]["collected_at"], r))
            notes = list(dict.fromkeys(note for o in episode for note in o.notes))
        evidence = [records[row] for row in rows]
        anchors = [records[o.anchor_row] for o in episode]
        ended = [r["window_end"] for r in evidence if r["window"] == "after_window"]
        if ended:
            notes.append(
                f"the label's {thresholds['label.monitoring_months']:g}-month monitoring window "
                f"ended on {min(ended).date()}; "
                "results after it are still scored"
            )
        message, action, source, condition, severity = self._text(rule)
        summary = _counted(evidence) + _worst(rule, anchors)
        summary += _highest_level(episode, rule.severity, records, len(evidence))
        message = f"{message} {summary}."
        if notes:
            message += " Note: " + "; ".join(notes) + "."
        grades = [o.grade for o in episode if o.grade is not None]
        since_course = evidence[0]["days_since_course"]  # a float: NaN if no course before
        values = (  # in the order of FINDING_COLUMNS
            top.patient_id,
            condition,
            rule.code,
            severity,
            max(grades) if grades else None,
            evidence[-1]["day_text"],
            [self._evidence_of(row) for row in rows],
            message,
            action,
            source,
            rule.id,
            self.version,
            evidence[0]["day_text"],
            None if since_course != since_course else int(since_course),
            len(evidence),
            notes,
        )
        for add, value in zip(self._add, values, strict=True):
            add(value)


def in_row_order(findings: pd.DataFrame) -> pd.DataFrame:
    """A findings table (:func:`~lemlabs.models.typed_findings`) in its stable order: patient,
    date, code, severity (most severe last); ties keep their order."""
    order = findings.sort_values(["patient_id", "date", "code", "severity"], kind="stable")
    return order.reset_index(drop=True)
