"""Monitoring findings: the schedule's rows (:mod:`lemlabs.stages.schedule`) with a missed
interval, through the ``schedule`` rules of the engine, as findings of condition ``monitoring``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, cast

import pandas as pd

from lemlabs.engine.durable import engine_for
from lemlabs.engine.rules import Rule
from lemlabs.models import Evidence, Finding
from lemlabs.packs import Packs
from lemlabs.packs.thresholds import Thresholds, rules_version
from lemlabs.stages.findings import evidence_of
from lemlabs.stages.schedule import interval_words, schedule_table


def monitoring(
    results: pd.DataFrame,
    people: pd.DataFrame | None,
    context: pd.DataFrame,
    as_of: dt.date,
    thresholds: Thresholds,
    packs: Packs,
) -> list[Finding]:
    """Monitoring findings as of ``as_of``: schedule rows with a missed interval, through the
    engine."""
    book = packs.book
    engine = engine_for(book.rules, thresholds, missing=book.missing)
    table = schedule_table(results, people, as_of, thresholds, packs.groups)
    late = table[table["missed_intervals"] >= thresholds["schedule.watch_after_missed"]]
    hits: list[tuple[int, Rule]] = []
    for session, (_, group) in enumerate(late.groupby("patient_id", sort=True)):
        facts = [
            {"key": int(index), "missed": int(missed)}
            for index, missed in zip(group.index, group["missed_intervals"], strict=True)
        ]
        for hit in engine.run("schedule", session, facts):
            hits.append((hit.keys[0], book.by_id[hit.rule_id]))
    version = rules_version(thresholds)
    return monitoring_findings(table, hits, context, as_of, thresholds, version, packs)


def monitoring_findings(
    table: pd.DataFrame,
    hits: Sequence[tuple[int, Rule]],
    context: pd.DataFrame,
    as_of: dt.date,
    thresholds: Thresholds,
    rules_version: str,
    packs: Packs,
) -> list[Finding]:
    """A finding per schedule row a monitoring rule matched (``hits``: table index, rule)."""
    by_row = context.set_index("row", drop=False)
    rows = cast(dict[int, dict[str, Any]], table.to_dict("index"))
    found = []
    for index, rule in hits:
        entry = rows[index]
        group = packs.groups[str(entry["test_group"])]
        what = group.asks_for
        message, action = rule.text(thresholds)
        if pd.isna(entry["last_done"]):
            since = "none since the first course"
            evidence: tuple[Evidence, ...] = ()
        else:
            since = f"last on {entry['last_done'].date()}"
            record = cast(dict[str, Any], by_row.loc[int(entry["last_row"])].to_dict())
            evidence = (evidence_of(record, packs),)
        missed = int(entry["missed_intervals"])
        found.append(
            Finding(
                patient_id=str(entry["patient_id"]),
                condition=rule.condition,
                code=rule.code,
                severity=rule.severity,
                ctcae_grade=None,
                date=as_of,
                evidence=evidence,
                message=f"{message} {what[0].upper()}{what[1:]}: {since}; "
                f"{interval_words(group, missed, thresholds)} missed, "
                f"{int(entry['days_overdue'])} days past "
                f"the due date ({entry['next_due'].date()}) as of {as_of}. The label asks for it "
                f"until {entry['window_end'].date()}.",
                action=action,
                source=packs.source(rule, thresholds),
                rule_id=rule.id,
                rules_version=rules_version,
                episode_start=entry["next_due"].date(),
                results_in_episode=len(evidence),
            )
        )
    return found
