"""The pipeline end to end: normalise → context → engine → findings (``score_frame``)."""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

import lemlabs
from lemlabs.analytes import looks_like
from lemlabs.context import add_context
from lemlabs.ctcae import GRADE_COLUMNS, grade_results, with_version
from lemlabs.engine import engine_for
from lemlabs.facts import Progress, run_engine
from lemlabs.findings import assemble, in_row_order
from lemlabs.ingest import Source, check_as_of, prepare_labs, prepare_patients, rows_as_frame
from lemlabs.models import Finding, Report, frame_of_columns
from lemlabs.normalise import normalise_prepared
from lemlabs.rules import Rule
from lemlabs.rules.records import rule_book
from lemlabs.rules.thresholds import Thresholds, load_thresholds
from lemlabs.schedule import monitoring_findings, schedule_table

ThresholdInput = Thresholds | Mapping[str, Any] | str | os.PathLike[str] | None


def rules_version(thresholds: Thresholds) -> str:
    """Package version plus a hash of the threshold table, e.g. ``0.1.0+cb191746d7``."""
    return f"{lemlabs.__version__}+{thresholds.fingerprint()}"


def _monitoring(
    results: pd.DataFrame,
    people: pd.DataFrame | None,
    context: pd.DataFrame,
    as_of: dt.date,
    thresholds: Thresholds,
) -> list[Finding]:
    """Monitoring findings: schedule rows with a missed interval, through the engine."""
    book = rule_book()
    engine = engine_for(book.rules, thresholds)
    table = schedule_table(results, people, as_of, thresholds)
    late = table[table["missed_intervals"] >= thresholds["schedule.watch_after_missed"]]
    hits: list[tuple[int, Rule]] = []
    for session, (_, group) in enumerate(late.groupby("patient_id", sort=True)):
        facts = [
            {"key": int(index), "missed": int(missed)}
            for index, missed in zip(group.index, group["missed_intervals"], strict=True)
        ]
        for hit in engine.run("schedule", session, facts):
            hits.append((hit.keys[0], book.by_id[hit.rule_id]))
    return monitoring_findings(table, hits, context, as_of, thresholds, rules_version(thresholds))


def _not_scored(results: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Every test name that was not scored, with its row count, reasons, codes (LOINC, SDTM
    ``LBTEST``) and the monitored analyte it looks like; those that look like one come first,
    then most rows first."""
    skipped = results[results["status"] == "not_scored"]
    counts = Counter(zip(skipped["test"], skipped["status_reason"], strict=True))
    out: dict[str, dict[str, Any]] = {}
    for (test, reason), rows in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        entry = out.setdefault(str(test), {"rows": 0, "reasons": {}, "looks_like": ""})
        entry["rows"] += rows
        entry["reasons"][str(reason)] = rows
        entry["looks_like"] = entry["looks_like"] or looks_like(str(test), str(reason))
    for column, key in (("loinc", "loinc"), ("test_name", "names")):
        if column in skipped.columns:
            for test, values in skipped.groupby("test", sort=False)[column]:
                found = sorted({str(v).strip() for v in values if str(v).strip()})
                if found:
                    out[str(test)][key] = found
    return dict(
        sorted(out.items(), key=lambda item: (not item[1]["looks_like"], -item[1]["rows"], item[0]))
    )


def _summary(
    rows_in: int, results: pd.DataFrame, issues: pd.DataFrame, findings: pd.DataFrame
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
        "findings_by_condition": dict(sorted(Counter(findings["condition"].tolist()).items())),
        "findings_by_severity": dict(sorted(Counter(findings["severity"].tolist()).items())),
    }


def score_frame(
    labs: Source,
    patients: Source | None = None,
    thresholds: ThresholdInput = None,
    *,
    progress: Progress | None = None,
    as_of: dt.date | str | None = None,
    ctcae: str | None = None,
) -> Report:
    """Score a lab table (DataFrame, CSV path or buffer) and return a :class:`Report`.

    ``thresholds`` is a site table (mapping, ``.toml``/``.json`` path or :class:`Thresholds`)
    layered on the defaults: it names only the keys it changes.
    ``progress(stage, done, total)`` is called as the stages advance (the CLI draws a bar).
    With ``as_of`` (a date) the report also holds ``monitoring.overdue`` findings for tests the
    label's schedule asks for and that were not done (see :func:`lemlabs.schedule`).
    ``ctcae`` is the CTCAE version findings and results are graded by: ``"v5"`` (the default,
    unless a site table sets ``ctcae.version``), ``"v4"`` (4.03) or ``"v6"``.
    """
    return _score(labs, patients, thresholds, progress=progress, as_of=as_of, ctcae=ctcae)


def score_unfiltered(labs: Source, patients: Source | None = None) -> Report:
    """:func:`score_frame` posting every result to the engine, not only those some rule's
    condition holds for: the same findings, only slower (the tests prove the pre-filter)."""
    return _score(labs, patients, None, post_all=True)


def _score(
    labs: Source,
    patients: Source | None,
    thresholds: ThresholdInput,
    *,
    post_all: bool = False,
    progress: Progress | None = None,
    as_of: dt.date | str | None = None,
    ctcae: str | None = None,
) -> Report:
    report = progress or (lambda stage, done, total: None)
    table = with_version(load_thresholds(thresholds), ctcae)
    report("read", 0, 1)
    frame = prepare_labs(labs)
    people = prepare_patients(patients) if patients is not None else None
    report("normalise", 0, 1)
    results, issues = normalise_prepared(frame, people, table)
    rows_in = len(frame)
    del frame  # the results hold what is needed of it; its columns are memory the engine can use
    report("context", 0, 1)
    context = add_context(results[results["status"] == "scored"], people, table)
    singles, composites, finding_rows = run_engine(context, table, post_all, report)
    report("findings", 0, 1)
    version = rules_version(table)
    by_id = rule_book().by_id
    columns = assemble(singles, composites, context, by_id, table, version, finding_rows)
    if as_of is not None:
        day = check_as_of(as_of)
        for finding in _monitoring(results, people, context, day, table):
            for name, value in finding.to_dict().items():
                columns[name].append(value)
    findings = in_row_order(frame_of_columns(columns))
    report("findings", 1, 1)
    results = _with_grades(results, context, table)
    return Report(
        findings=findings,
        issues=issues,
        results=results,
        summary=_summary(rows_in, results, issues, findings),
        patients=people,
    )


def _with_grades(results: pd.DataFrame, context: pd.DataFrame, table: Thresholds) -> pd.DataFrame:
    """Every result with its CTCAE grades (low and high direction, term, version), graded on
    its context (baseline) by the evaluator findings use; not-scored rows stay ungraded."""
    grades = grade_results(context, str(table["ctcae.version"]))
    grades.index = context["row"].to_numpy()
    out = results.drop(columns=[c for c in GRADE_COLUMNS if c in results.columns])
    joined = grades.reindex(out["row"].to_numpy()).astype(GRADE_COLUMNS)
    for column in GRADE_COLUMNS:
        out[column] = joined[column].set_axis(out.index)
    out["ctcae_version"] = str(table["ctcae.version"])
    return out


def score(records: Iterable[Any], patients: Source | None = None) -> list[Finding]:
    """Score lab records (dicts or dataclasses with the lab columns); return the findings."""
    return list(score_frame(rows_as_frame(records), patients).finding_list)
