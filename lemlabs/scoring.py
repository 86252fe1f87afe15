"""The pipeline end to end: normalise → context → engine → findings (``score_frame``)."""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import numpy as np
import pandas as pd

import lemlabs
from lemlabs.context import add_context
from lemlabs.engine import Hit, engine_for
from lemlabs.findings import assemble, sort_key
from lemlabs.ingest import Source, prepare_labs, prepare_patients, rows_as_frame
from lemlabs.models import Finding, Report, findings_frame
from lemlabs.normalise import normalise_prepared
from lemlabs.rules import ALL_GATES, ALL_RULES, RULES_BY_ID, Gate, Rule
from lemlabs.rules.thresholds import Thresholds, load_thresholds
from lemlabs.schedule import monitoring_findings, schedule_table

ThresholdInput = Thresholds | Mapping[str, Any] | str | os.PathLike[str] | None
Progress = Callable[[str, int, int], None]

_FACT_COLUMNS = [
    "analyte",
    "lower",
    "upper",
    "flag",
    "pair_flag",
    "rise_ratio",
    "fall_fraction",
    "rise_48h",
    "day",
    "swing_until",
    "micro_neg",
    "sex",
]
_NUMERIC = ["lower", "upper", "rise_ratio", "fall_fraction", "rise_48h"]
# durable-rules reads facts as JSON and crashes (segfault) on exponent notation such as 1e+18 or
# 1e-05; numbers are kept within [-ABSENT, ABSENT] and tiny ones moved to +-TINY (thresholds are
# validated to be 0 or at least 0.001, so no comparison changes). NaN means "absent": it can pass
# no threshold.
_ABSENT = 1e15
_TINY = 1e-4


def json_safe(values: np.ndarray) -> np.ndarray:
    """Numbers durable-rules can read: no NaN or infinity, no exponent notation."""
    values = np.nan_to_num(values.astype(float), nan=-_ABSENT, posinf=_ABSENT, neginf=-_ABSENT)
    values = np.clip(values, -_ABSENT, _ABSENT)
    tiny = (values != 0) & (np.abs(values) < _TINY)
    return np.where(tiny, np.sign(values) * _TINY, values)


def rules_version(thresholds: Thresholds) -> str:
    """Package version plus a hash of the threshold table, e.g. ``0.1.0+cb191746d7``."""
    return f"{lemlabs.__version__}+{thresholds.fingerprint()}"


def gate_mask(context: pd.DataFrame, gates: Iterable[Gate], thresholds: Thresholds) -> pd.Series:
    """Results that pass at least one gate of their analyte: the only ones posted to the engine."""
    mask = pd.Series(False, index=context.index)
    for gate in gates:
        column = context[gate.column]
        bound: Any = gate.literal if gate.key is None else thresholds[gate.key]
        test = {
            "<": column.lt,
            ">": column.gt,
            ">=": column.ge,
            "!=": column.ne,
        }[gate.op](bound)
        mask |= context["analyte"].eq(gate.analyte) & test.fillna(False).astype(bool)
    return mask


def _result_facts(context: pd.DataFrame) -> pd.DataFrame:
    facts = context[_FACT_COLUMNS].copy()
    for column in _NUMERIC:
        facts[column] = json_safe(facts[column].to_numpy(dtype=float))
    facts["pair_flag"] = context["pair_flag"].fillna("-").astype(str)
    for column in ("day", "swing_until", "micro_neg"):
        facts[column] = facts[column].astype(int)
    facts["id"] = "r" + context["row"].astype(str)
    facts["kind"] = "result"
    facts["patient_id"] = context["patient_id"]
    return facts


def _run_engine(
    context: pd.DataFrame, thresholds: Thresholds, post_all: bool, progress: Progress
) -> tuple[list[tuple[str, Hit]], dict[str, tuple[int, ...]]]:
    engine = engine_for(ALL_RULES, thresholds)
    selected = context if post_all else context[gate_mask(context, ALL_GATES, thresholds)]
    facts = _result_facts(selected)
    hits: list[tuple[str, Hit]] = []
    finding_rows: dict[str, tuple[int, ...]] = {}
    groups = facts.groupby("patient_id", sort=True)
    step = max(1, groups.ngroups // 100)
    for session, (patient, group) in enumerate(groups):
        if session % step == 0:
            progress("engine", session, groups.ngroups)
        records = cast(list[dict[str, Any]], group.drop(columns="patient_id").to_dict("records"))
        singles = engine.run("result", f"s{session}", records)
        hits += [(str(patient), hit) for hit in singles]
        by_id = {record["id"]: record for record in records}
        finding_facts = []
        for hit in singles:
            rule, fact = RULES_BY_ID[hit.rule_id], by_id[hit.facts[0]]
            fact_id = f"f{len(finding_rows)}"
            finding_rows[fact_id] = (int(hit.facts[0][1:]),)
            finding_facts.append(
                {
                    "id": fact_id,
                    "kind": "finding",
                    "code": rule.code,
                    "analyte": fact["analyte"],
                    "flag": fact["flag"],
                    "day": fact["day"],
                    "swing_until": fact["swing_until"],
                    "micro_neg": fact["micro_neg"],
                    # the anti-GBM pattern counts a rise (ratio or 48 h), not a high value alone
                    "rise": int(
                        fact["rise_ratio"] >= thresholds["renal.rise_ratio_action"]
                        or fact["rise_48h"] >= thresholds["renal.aki_rise_umol"]
                    ),
                }
            )
        composites = engine.run("finding", f"s{session}", finding_facts)
        hits += [(str(patient), hit) for hit in composites]
    progress("engine", groups.ngroups, groups.ngroups)
    return hits, finding_rows


def _monitoring(
    results: pd.DataFrame,
    people: pd.DataFrame | None,
    context: pd.DataFrame,
    as_of: dt.date,
    thresholds: Thresholds,
) -> list[Finding]:
    """Monitoring findings: schedule rows with a missed interval, through the engine."""
    engine = engine_for(ALL_RULES, thresholds)
    table = schedule_table(results, people, as_of, thresholds)
    late = table[table["missed_intervals"] >= thresholds["schedule.watch_after_missed"]]
    hits: list[tuple[int, Rule]] = []
    for session, (_, group) in enumerate(late.groupby("patient_id", sort=True)):
        facts = [
            {"id": f"g{index}", "kind": "schedule", "missed": int(missed)}
            for index, missed in zip(group.index, group["missed_intervals"], strict=True)
        ]
        for hit in engine.run("schedule", f"m{session}", facts):
            hits.append((int(hit.facts[0][1:]), RULES_BY_ID[hit.rule_id]))
    return monitoring_findings(table, hits, context, as_of, thresholds, rules_version(thresholds))


def _not_scored(results: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Every test name that was not scored, with its row count and reasons (most rows first)."""
    skipped = results[results["status"] == "not_scored"]
    counts = Counter(zip(skipped["test"], skipped["status_reason"], strict=True))
    out: dict[str, dict[str, Any]] = {}
    for (test, reason), rows in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        entry = out.setdefault(str(test), {"rows": 0, "reasons": {}})
        entry["rows"] += rows
        entry["reasons"][str(reason)] = rows
    return dict(sorted(out.items(), key=lambda item: (-item[1]["rows"], item[0])))


def _summary(
    rows_in: int, results: pd.DataFrame, issues: pd.DataFrame, findings: list[Finding]
) -> dict[str, Any]:
    lab_issues = issues[issues["source"] == "labs"]
    return {
        "rows_in": rows_in,
        "rows_normalised": len(results),
        "rows_rejected": int(lab_issues["row"].nunique()),
        "rows_not_scored": int((results["status"] == "not_scored").sum()),
        "not_scored_by_test": _not_scored(results),
        "patient_issues": int((issues["source"] == "patients").sum()),
        "patients": int(results["patient_id"].nunique()),
        "findings": len(findings),
        "findings_by_condition": dict(sorted(Counter(str(f.condition) for f in findings).items())),
        "findings_by_severity": dict(sorted(Counter(str(f.severity) for f in findings).items())),
    }


def score_frame(
    labs: Source,
    patients: Source | None = None,
    thresholds: ThresholdInput = None,
    *,
    post_all: bool = False,
    progress: Progress | None = None,
    as_of: dt.date | str | None = None,
) -> Report:
    """Score a lab table (DataFrame, CSV path or buffer) and return a :class:`Report`.

    ``thresholds`` replaces the default table (a complete table: mapping, ``.toml``/``.json``
    path or :class:`Thresholds`). ``post_all`` posts every result to the engine instead of only
    those that pass a gate; the findings are the same, only slower (used by the tests).
    ``progress(stage, done, total)`` is called as the stages advance (the CLI draws a bar).
    With ``as_of`` (a date) the report also holds ``monitoring.overdue`` findings for tests the
    label's schedule asks for and that were not done (see :func:`lemlabs.schedule`).
    """
    report = progress or (lambda stage, done, total: None)
    table = load_thresholds(thresholds)
    report("read", 0, 1)
    frame = prepare_labs(labs)
    people = prepare_patients(patients) if patients is not None else None
    report("normalise", 0, 1)
    results, issues = normalise_prepared(frame, people)
    report("context", 0, 1)
    context = add_context(results[results["status"] == "scored"], people, table)
    hits, finding_rows = _run_engine(context, table, post_all, report)
    report("findings", 0, 1)
    findings = sorted(
        assemble(hits, context, RULES_BY_ID, table, rules_version(table), finding_rows),
        key=sort_key,
    )
    if as_of is not None:
        day = pd.Timestamp(as_of).date()
        findings += _monitoring(results, people, context, day, table)
        findings.sort(key=sort_key)
    report("findings", 1, 1)
    return Report(
        findings=findings_frame(findings),
        issues=issues,
        results=results,
        summary=_summary(len(frame), results, issues, findings),
        finding_list=tuple(findings),
        patients=people,
    )


def score(records: Iterable[Any], patients: Source | None = None) -> list[Finding]:
    """Score lab records (dicts or dataclasses with the lab columns); return the findings."""
    return list(score_frame(rows_as_frame(records), patients).finding_list)
