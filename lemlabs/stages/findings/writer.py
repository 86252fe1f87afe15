"""Writing findings: an episode's message (what was found, how many results, the extreme
value, which results reached its severity, its notes), its action, sources and evidence, as the
findings table's columns."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lemlabs.ctcae import INPUT_COLUMNS
from lemlabs.engine.rules import Rule, RuleBook
from lemlabs.models import Evidence
from lemlabs.packs.display import shown
from lemlabs.stages.findings.episodes import Occurrence, seconds
from lemlabs.tables import FINDING_COLUMNS
from lemlabs.vocabulary import Severity

if TYPE_CHECKING:
    from lemlabs.packs import Packs
    from lemlabs.packs.thresholds import Thresholds

_NAME = {int(severity): str(severity) for severity in Severity}
EVIDENCE_COLUMNS = [
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
    "days_since_course",
    "window",
    "window_end",
]
"""What evidence and messages read of a result (a context row)."""


def record_columns(book: RuleBook, context: pd.DataFrame) -> list[str]:
    """The context columns findings read: :data:`EVIDENCE_COLUMNS`, what grades and notes read,
    the paired results' rows, and ``source_id`` when the input had one."""
    notes = [book.fields[name].source for note in book.notes.values() for name in note.fields()]
    wanted = [*EVIDENCE_COLUMNS, *INPUT_COLUMNS, *notes, *book.row_fields, "source_id"]
    return [name for name in dict.fromkeys(wanted) if name in context.columns]


def _iso(times: np.ndarray) -> list[str]:
    """Times as ``datetime.isoformat`` writes them, computed by numpy for whole seconds."""
    seconds = times.astype("datetime64[s]")
    texts: list[str] = np.datetime_as_string(seconds).tolist()
    for i in np.flatnonzero(times != seconds):  # a fraction of a second: Python's own text
        texts[i] = times[i].astype(dt.datetime).isoformat()
    return texts


class _Columns(dict[str, list[Any]]):
    """The context rows' columns as Python lists, each made when first read: findings read a
    few of the fifty-odd columns, and a list of Python numbers costs some 32 bytes a cell
    (1.1 GB for the 634 000 results of one patient's million rows when all were made).
    Besides the columns: ``stamp`` (whole seconds since 1900), ``collected_iso`` (the time as
    evidence writes it) and ``day_text`` (the day as messages write it); times as Python
    datetimes (fast to compare)."""

    def __init__(self, needed: pd.DataFrame) -> None:
        super().__init__()
        self._needed = needed

    def __missing__(self, name: str) -> list[Any]:
        self[name] = made = self._made(name)
        return made

    def _made(self, name: str) -> list[Any]:
        needed = self._needed
        if name in ("collected_at", "window_end"):  # pandas' Timestamps are slow to make
            return needed[name].to_numpy(dtype="datetime64[us]").astype(object).tolist()
        made: list[Any]
        if name == "stamp":
            made = seconds(needed["collected_at"]).tolist()
            return made
        if name == "collected_iso":
            return _iso(needed["collected_at"].to_numpy(dtype="datetime64[us]"))
        if name == "day_text":
            days = needed["collected_at"].to_numpy(dtype="datetime64[D]")
            made = np.datetime_as_string(days).tolist()
            return made
        if name not in needed.columns:
            raise KeyError(name)
        return needed[name].tolist()

    def names(self) -> list[str]:
        """Every name a record answers to."""
        return [*self._needed.columns, "stamp", "collected_iso", "day_text"]


class Record(Mapping[str, Any]):
    """One context row, read by field name from the columns it shares with the other rows (no
    dict per row: a finding run reads a few fields of hundreds of thousands of rows)."""

    __slots__ = ("_at", "_columns")

    def __init__(self, columns: _Columns, at: int) -> None:
        self._columns, self._at = columns, at

    def __getitem__(self, name: str) -> Any:
        return self._columns[name][self._at]

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns.names())

    def __len__(self) -> int:
        return len(self._columns.names())


def records_of(needed: pd.DataFrame) -> dict[int, Record]:
    """Context rows by row number as records (:class:`Record`), their columns made when first
    read (:class:`_Columns`)."""
    columns = _Columns(needed)
    return {row: Record(columns, at) for at, row in enumerate(needed.index.tolist())}


def _plain(when: Any) -> dt.datetime:
    """A datetime as Python's own (a pandas Timestamp's nanoseconds dropped)."""
    return when.to_pydatetime() if isinstance(when, pd.Timestamp) else when


def evidence_row(record: Mapping[str, Any], baseline: bool) -> dict[str, Any]:
    """One result (a context row) as evidence, as :meth:`Evidence.to_dict` gives it (empty text
    and missing numbers left out); with its ``baseline`` (for an analyte some rule compares with
    its baseline: :attr:`~lemlabs.engine.rules.RuleBook.compared_with_baseline`)."""
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
    if baseline:
        out["baseline"] = float(record["baseline"])
        kind = str(record["baseline_kind"])
        if kind:
            out["baseline_kind"] = kind
    if record.get("source_id"):
        out["source_id"] = str(record["source_id"])
    return out


def evidence_of(record: Mapping[str, Any], packs: Packs) -> Evidence:
    """One result (a context row) as :class:`Evidence`."""
    baseline = record["analyte"] in packs.book.compared_with_baseline
    return Evidence.from_dict(evidence_row(record, baseline))


def counted(evidence: Sequence[Mapping[str, Any]], packs: Packs) -> str:
    """ "3 results (2 TSH, 1 free T4), from A to B": every result of the episode, counted once."""
    first, last = evidence[0]["day_text"], evidence[-1]["day_text"]
    count = len(evidence)
    if count == 1:
        return f"1 result, on {first}"
    text = f"{count} result{'s' if count != 1 else ''}"
    analytes = [str(record["analyte"]) for record in evidence]
    if analytes.count(analytes[0]) != count:
        per_analyte = Counter(analytes)
        order = {analyte: number for number, analyte in enumerate(packs.catalogue)}
        kinds = sorted(per_analyte, key=lambda a: order.get(a, len(order)))
        text += " (" + ", ".join(f"{per_analyte[a]} {packs.label(a)}" for a in kinds) + ")"
    return f"{text}, on {last}" if first == last else f"{text}, from {first} to {last}"


def _certain_low(record: Mapping[str, Any]) -> tuple[float, float]:
    return record["upper"], record["value"]


def _certain_high(record: Mapping[str, Any]) -> tuple[float, float]:
    return record["lower"], record["value"]


def worst(rule: Rule, anchors: Sequence[Mapping[str, Any]], packs: Packs) -> str:
    """The episode's extreme value per analyte, judged by what is certain of each value."""
    if rule.worst is None:
        return ""
    extremes = anchors if len(anchors) == 1 else _extremes(rule.worst, anchors)
    return "; " + "; ".join(
        f"{rule.worst} {shown(r)} ({packs.label(str(r['analyte']))}) on {r['day_text']}"
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


def highest_level(
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


def _severity_and_date(occurrence: Occurrence) -> tuple[int, dt.datetime]:
    return occurrence.rule.severity, occurrence.date


class Writer:
    """The findings table's columns (``columns``), a finding per episode; what is the same for
    every finding of a rule (its message, action and sources) and every evidence of a result
    is written once. ``records``: the context rows the findings read, by row number
    (:func:`records_of`)."""

    def __init__(
        self,
        records: Mapping[int, Mapping[str, Any]],
        packs: Packs,
        thresholds: Thresholds,
        version: str,
    ) -> None:
        self.records, self.thresholds, self.version = records, thresholds, version
        self.packs = packs
        self._baseline = packs.book.compared_with_baseline
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
            source = self.packs.source(rule, self.thresholds)
            condition = str(rule.condition)
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
            record = self.records[row]
            known = evidence_row(record, record["analyte"] in self._baseline)
            self._evidence[row] = known
            return known
        return dict(known)

    def write(self, episode: list[Occurrence]) -> None:
        """The episode's finding, a value in each column."""
        records, thresholds = self.records, self.thresholds
        top = episode[0] if len(episode) == 1 else max(episode, key=_severity_and_date)
        rule = top.rule
        if len(episode) == 1 and len(top.rows) == 1 and not top.more:  # one result
            rows = list(top.rows)
            notes = list(dict.fromkeys((*top.worst_notes, *top.notes)))
        else:
            rows = list({row for o in episode for part in (o.rows, *o.more) for row in part})
            rows.sort(key=lambda r: (records[r]["collected_at"], r))
            each = (note for o in episode for note in o.notes)
            notes = list(dict.fromkeys((*top.worst_notes, *each)))
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
        summary = counted(evidence, self.packs) + worst(rule, anchors, self.packs)
        summary += highest_level(episode, rule.severity, records, len(evidence))
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
