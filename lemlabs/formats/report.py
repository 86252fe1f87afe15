"""One self-contained HTML report a safety physician opens (the ``report`` extra: Jinja2 and
matplotlib): a worklist of patients by their most severe finding, a section per patient with the
timelines, each finding's message, action, evidence and sources, schedule adherence as of a date,
the data issues with their file lines, and what produced it (rules and CTCAE versions, inputs).

No server, no network: CSS and plots (SVG) are inline, there is no script. Every text from the
input (patient ids, raw values) is escaped by the template engine (autoescape).
"""

from __future__ import annotations

import datetime as dt
import io
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from lemlabs.formats.worklist import shown_value, worst_evidence
from lemlabs.models import Finding
from lemlabs.packs import Packs
from lemlabs.packs.thresholds import Thresholds, rules_version
from lemlabs.stages.schedule import COLUMNS as SCHEDULE_COLUMNS
from lemlabs.stages.schedule import schedule_table
from lemlabs.version import __version__
from lemlabs.vocabulary import format_value

if TYPE_CHECKING:
    from lemlabs.pipeline import Report

try:
    import matplotlib

    matplotlib.use("Agg")  # drawing to SVG text only: no window, whatever the environment
    import matplotlib.pyplot as plt
    from jinja2 import Environment, PackageLoader
    from markupsafe import Markup
    from matplotlib.figure import Figure

    from lemlabs.formats.plot import SEVERITY_COLOURS, plot_cohort, plot_edish, plot_patient
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "lemlabs.formats.report needs Jinja2 and matplotlib: pip install 'lemlabs[report]'"
    ) from error

Inputs = Mapping[str, tuple[str, int]]
"""What went in: a role (``labs``, ``patients``) → (file name, rows)."""


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("lemlabs.formats", "templates"),
        autoescape=True,  # every text from the input is untrusted
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["day"] = lambda d: "" if d is None or pd.isna(d) else pd.Timestamp(d).date()
    return env


def svg(figure: Figure, salt: str) -> Markup:
    """A figure as inline SVG text (text kept as text: small, searchable, selectable)."""
    buffer = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    text = buffer.getvalue()
    return Markup(text[text.index("<svg") :])  # matplotlib escapes the texts it draws


def _since(days: int | None, treated: bool) -> str:
    """Time from the latest course to onset, in words; no course is not "before" one."""
    if days is not None:
        return f"day {days} ({days / 30.44:.1f} months)"
    return "before the first course" if treated else "no course on record"


def _in_patient(finding: Finding, explaining: frozenset[str]) -> tuple[Any, ...]:
    """A patient's findings: those since a course first, then the most severe, then a pattern
    that explains others (a TTP pattern above the ITP finding of its platelets), then the
    earliest onset (the first leads the patient's worklist row: the episode that began it)."""
    return (finding.patient_id, finding.days_from_course is None, -int(finding.severity),
            finding.condition not in explaining, finding.onset, finding.code)  # fmt: skip


def _latest(findings: list[Finding], treated: bool) -> dt.date:
    """The latest evidence among the patient's findings as severe as its leading one (and, for
    a patient treated since, since a course)."""
    lead = findings[0]
    return max(
        f.date
        for f in findings
        if f.severity == lead.severity
        and _before_course(f, treated) == _before_course(lead, treated)
    )


def _worklist_key(lead: Finding, latest: dt.date, treated: bool) -> tuple[Any, ...]:
    """Patients since a course first, then pre-course ones; each part most severe first, then
    the most recent evidence first (urgent evidence of 2021 above urgent evidence of 2019)."""
    return (_before_course(lead, treated), -int(lead.severity), -latest.toordinal(), lead.onset,
            lead.patient_id)  # fmt: skip


def _graded_by(report: Report, default: str) -> str:
    """The CTCAE version the report's results were graded by (``--ctcae``), else the table's."""
    versions = report.results.get("ctcae_version", pd.Series(dtype=object)).dropna().unique()
    return str(versions[0]) if len(versions) else default


def _before_course(finding: Finding, treated: bool) -> bool:
    """A finding whose onset lies before the patient's first course (present before treatment)."""
    return treated and finding.days_from_course is None


def _treated(report: Report) -> set[str]:
    """The patients with at least one course day on record."""
    if report.patients is None or "courses" not in report.patients:
        return set()
    people = report.patients
    return {
        str(patient)
        for patient, courses in zip(people["patient_id"], people["courses"], strict=True)
        if isinstance(courses, list | tuple) and len(courses) > 0
    }


def _evidence_rows(finding: Finding, packs: Packs) -> list[dict[str, Any]]:
    return [
        {
            "date": e.collected_at.date(),
            "test": packs.label(e.analyte),
            "value": format_value(e.value, e.unit, e.censor, e.value_high),
            "sent": f"{e.raw_value} {e.raw_unit}".strip(),
            "baseline": (
                ""
                if e.baseline is None
                else f"{format_value(e.baseline, e.unit)} ({e.baseline_kind or 'baseline'})"
            ),
            "line": e.row + 2,
            "source_id": e.source_id or "",
        }
        for e in sorted(finding.evidence, key=lambda e: (e.collected_at, e.row))
    ]


def _finding(finding: Finding, packs: Packs, treated: bool) -> dict[str, Any]:
    return {
        "title": packs.titles.get(finding.code, finding.code),
        "code": finding.code,
        "condition": packs.conditions.get(str(finding.condition), str(finding.condition)),
        "severity": str(finding.severity),
        "grade": finding.ctcae_grade,
        "onset": finding.onset,
        "latest": finding.date,
        "since": _since(finding.days_from_course, treated),
        "worst": shown_value(worst_evidence(finding, packs), packs),
        "message": finding.message,
        "action": finding.action,
        "notes": list(finding.notes),
        "sources": [part.strip() for part in finding.source.split(";") if part.strip()],
        "rule_id": finding.rule_id,
        "evidence": _evidence_rows(finding, packs),
    }


def _schedule(report: Report, day: dt.date, thresholds: Thresholds) -> pd.DataFrame:
    if report.patients is None:
        return pd.DataFrame(columns=SCHEDULE_COLUMNS)
    return schedule_table(report.results, report.patients, day, thresholds, report.packs.groups)


def _schedule_rows(table: pd.DataFrame, packs: Packs) -> list[dict[str, Any]]:
    return [
        {
            "group": packs.groups[str(row["test_group"])].asks_for,
            "status": str(row["status"]).replace("_", " "),
            "last_done": row["last_done"],
            "next_due": row["next_due"],
            "days_overdue": int(row["days_overdue"]),
            "missed": int(row["missed_intervals"]),
        }
        for row in table.to_dict("records")
    ]


def context(
    report: Report,
    *,
    as_of: dt.date | str | None = None,
    thresholds: Thresholds | Mapping[str, Any] | str | None = None,
    inputs: Inputs | None = None,
) -> dict[str, Any]:
    """What the template shows (plain data, plots as SVG text)."""
    packs = report.packs
    table = packs.thresholds(thresholds)
    scored = report.results[report.results["status"] == "scored"]
    latest = scored["collected_at"].max() if len(scored) else pd.Timestamp.today()
    day = pd.Timestamp(as_of).date() if as_of is not None else pd.Timestamp(latest).date()
    treated = _treated(report)
    by_patient: dict[str, list[Finding]] = {}
    explaining = packs.explaining
    for finding in sorted(report.finding_list, key=lambda f: _in_patient(f, explaining)):
        by_patient.setdefault(finding.patient_id, []).append(finding)
    latest = {p: _latest(findings, p in treated) for p, findings in by_patient.items()}
    order = sorted(
        by_patient, key=lambda p: _worklist_key(by_patient[p][0], latest[p], p in treated)
    )
    plan = _schedule(report, day, table)
    patients = []
    for number, patient_id in enumerate(order, start=1):
        findings = by_patient[patient_id]
        analytes = {e.analyte for f in findings for e in f.evidence}
        shown = [a for a in packs.catalogue if a in analytes] or list(packs.catalogue)
        try:
            plot = svg(plot_patient(report, patient_id, shown), f"patient-{number}")
        except ValueError:  # no scored results to draw (a monitoring-only finding)
            plot = Markup("")
        patients.append(
            {
                "anchor": f"patient-{number}",
                "number": number,
                "patient_id": patient_id,
                "worst": _finding(findings[0], packs, patient_id in treated),
                "latest": latest[patient_id],
                "before_course": _before_course(findings[0], patient_id in treated),
                "findings": [_finding(f, packs, patient_id in treated) for f in findings],
                "plot": plot,
                "schedule": _schedule_rows(plan[plan["patient_id"] == patient_id], packs),
            }
        )
    counts = (
        plan.groupby(["test_group", "status"]).size().unstack(fill_value=0)
        if len(plan)
        else pd.DataFrame()
    )
    by_group: dict[Any, dict[Any, Any]] = counts.to_dict("index")
    statuses = [s for s in ("ok", "due", "overdue", "window_ended", "no_courses") if s in counts]
    overdue = plan[plan["status"] == "overdue"].sort_values(
        ["days_overdue", "patient_id"], ascending=[False, True]
    )
    anchors = {p["patient_id"]: p["anchor"] for p in patients}
    summary = report.summary
    ins = dict(inputs or {"labs": ("(a table in memory)", int(summary["rows_in"]))})
    cohort = Markup("")
    if report.patients is not None:
        cohort = svg(plot_cohort(report), "cohort")
    liver = Markup("")
    if scored["analyte"].isin(["alt", "bilirubin"]).any():
        liver = svg(plot_edish(report, "ALT"), "edish")
    return {
        "title": "lemlabs report",
        "generated": dt.datetime.now().replace(microsecond=0),
        "version": __version__,
        "rules_version": rules_version(table),
        "ctcae_version": _graded_by(report, str(table["ctcae.version"])),
        "as_of": day,
        "inputs": ins,
        "summary": summary,
        "severity_colours": SEVERITY_COLOURS,
        "by_severity": summary.get("findings_by_severity", {}),
        "patients": patients,
        "cohort_plot": cohort,
        "edish_plot": liver,
        "adherence": {
            "statuses": [s.replace("_", " ") for s in statuses],
            "rows": [
                {"group": group.asks_for, "counts": [int(by_group[g][s]) for s in statuses]}
                for g, group in packs.groups.items()
                if g in by_group
            ],
            "overdue": [
                {
                    "patient_id": row["patient_id"],
                    "anchor": anchors.get(row["patient_id"]),
                    "group": packs.groups[str(row["test_group"])].asks_for,
                    "last_done": row["last_done"],
                    "next_due": row["next_due"],
                    "days_overdue": int(row["days_overdue"]),
                    "missed": int(row["missed_intervals"]),
                }
                for row in overdue.to_dict("records")
            ],
        },
        "issues": report.issues.to_dict("records"),
        "has_patients": report.patients is not None,
    }


_DRAWING = threading.Lock()
"""matplotlib is not thread-safe (its text layout shares one parser): one report draws at a time."""


def render_html(report: Report, **options: Any) -> str:
    """The report as HTML text (see :func:`context` for the options); the same bytes for the
    same report and options, apart from the line that says when it was made, from any thread."""
    with _DRAWING:
        shown = context(report, **options)
    return _environment().get_template("report.html.j2").render(**shown)


def write_html(
    report: Report,
    path: str | Path,
    *,
    as_of: dt.date | str | None = None,
    thresholds: Thresholds | Mapping[str, Any] | str | None = None,
    inputs: Inputs | None = None,
) -> float:
    """Write the report to ``path`` (UTF-8); returns the seconds it took."""
    start = time.perf_counter()
    text = render_html(report, as_of=as_of, thresholds=thresholds, inputs=inputs)
    Path(path).write_text(text, "utf-8")
    return time.perf_counter() - start


def inputs_of(labs: Any, patients: Any, report: Report) -> dict[str, tuple[str, int]]:
    """File names (or "a table in memory") and row counts of what went in."""

    def name(source: Any) -> str:
        return Path(source).name if isinstance(source, str | Path) else "(a table in memory)"

    out = {"labs": (name(labs), int(report.summary["rows_in"]))}
    if patients is not None and report.patients is not None:
        out["patients"] = (name(patients), len(report.patients))
    return out


__all__: Sequence[str] = ("context", "inputs_of", "render_html", "svg", "write_html")
