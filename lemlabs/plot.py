"""Plots with matplotlib (the ``plot`` extra): one patient's trajectories and a cohort overview.

Each function returns the matplotlib Figure; nothing is shown or saved unless you ask.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from lemlabs.models import Report, Severity
from lemlabs.rules.thresholds import default_thresholds
from lemlabs.schedule import GROUPS, adherence

try:
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("lemlabs.plot needs matplotlib: pip install 'lemlabs[plot]'") from error

SEVERITY_COLOURS = {"info": "#7f7f7f", "watch": "#e3a21a", "action": "#d95f02", "urgent": "#b2182b"}
DEFAULT_ANALYTES = ("platelets", "creatinine", "tsh", "free_t4")


def _courses(report: Report, patient_id: str) -> list[pd.Timestamp]:
    if report.patients is None:
        return []
    rows = report.patients[report.patients["patient_id"] == patient_id]
    return [day for courses in rows["courses"] for day in courses]


def plot_patient(report: Report, patient_id: str, analytes: Sequence[str] | None = None) -> Figure:
    """One panel per analyte over time: values (canonical units), the reference interval shaded,
    course starts as dashed lines, and each finding's episode as a band in its severity's colour."""
    results = report.results[
        (report.results["patient_id"] == patient_id) & (report.results["status"] == "scored")
    ]
    present = [a for a in (analytes or DEFAULT_ANALYTES) if (results["analyte"] == a).any()]
    if not present:
        raise ValueError(f"no scored results for patient {patient_id!r} and analytes {analytes!r}")
    figure, axes = plt.subplots(
        len(present), 1, sharex=True, figsize=(9, 2.2 * len(present)), squeeze=False
    )
    findings = [f for f in report.finding_list if f.patient_id == patient_id]
    for ax, analyte in zip(axes[:, 0], present, strict=True):
        series = results[results["analyte"] == analyte].sort_values("collected_at")
        ax.plot(
            series["collected_at"], series["value"], marker="o", markersize=3, lw=1, color="#1f4e79"
        )
        ax.fill_between(
            series["collected_at"],
            series["ref_low"].fillna(0).to_numpy(),  # arrays: matplotlib with numpy 1.24 fails
            series["ref_high"].to_numpy(),  # on float Series here ("ufunc 'isfinite'")
            color="#a6cee3",
            alpha=0.35,
            step="mid",
            label="reference interval",
        )
        for start in _courses(report, patient_id):
            ax.axvline(start, color="grey", ls="--", lw=0.8)
        for finding in findings:
            if any(e.analyte == analyte for e in finding.evidence):
                colour = SEVERITY_COLOURS[str(finding.severity)]
                start = pd.Timestamp(finding.episode_start or finding.date)
                end = pd.Timestamp(finding.date) + pd.Timedelta(days=3)
                ax.axvspan(start, end, color=colour, alpha=0.25, lw=0)
                ax.annotate(
                    finding.code.split(".", 1)[1],
                    (start, 0.98),
                    xycoords=("data", "axes fraction"),
                    rotation=90,
                    va="top",
                    ha="right",
                    fontsize=7,
                    color=colour,
                )
        ax.set_ylabel(f"{analyte}\n({series['unit'].iloc[0]})", fontsize=8)
    axes[0, 0].set_title(f"{patient_id}: results, reference intervals (shaded), courses (dashed)")
    figure.tight_layout()
    return figure


def plot_cohort(report: Report, bin_months: int = 3) -> Figure:
    """Findings per condition by onset, in months since the first course, stacked by severity."""
    if report.patients is None:
        raise ValueError("plot_cohort needs the patients table (course dates): score with patients")
    first = {
        pid: min(courses)
        for pid, courses in zip(
            report.patients["patient_id"], report.patients["courses"], strict=True
        )
        if courses
    }
    rows: list[dict[str, Any]] = []
    for finding in report.finding_list:
        if finding.patient_id in first:
            onset = finding.episode_start or finding.date
            months = (pd.Timestamp(onset) - first[finding.patient_id]).days / 30.44
            rows.append(
                {
                    "condition": str(finding.condition),
                    "severity": str(finding.severity),
                    "bin": int(np.floor(months / bin_months)) * bin_months,
                }
            )
    frame = pd.DataFrame(rows, columns=["condition", "severity", "bin"])
    conditions = sorted(frame["condition"].unique()) or ["(no findings)"]
    figure, axes = plt.subplots(
        1, len(conditions), figsize=(4 * len(conditions), 3), sharey=True, squeeze=False
    )
    for ax, condition in zip(axes[0], conditions, strict=True):
        part = frame[frame["condition"] == condition]
        table = part.pivot_table(index="bin", columns="severity", aggfunc="size", fill_value=0)
        bottom = np.zeros(len(table))
        for severity in (str(s) for s in Severity):
            if severity in table.columns:
                ax.bar(
                    table.index,
                    table[severity],
                    width=bin_months * 0.9,
                    bottom=bottom,
                    color=SEVERITY_COLOURS[severity],
                    label=severity,
                    align="edge",
                )
                bottom += table[severity].to_numpy()
        ax.set_title(condition)
        ax.set_xlabel("months since the first course")
    axes[0, 0].set_ylabel("findings")
    handles = [Patch(color=colour, label=name) for name, colour in SEVERITY_COLOURS.items()]
    axes[0, -1].legend(handles=handles, fontsize=7)
    figure.tight_layout()
    return figure


def plot_adherence(report: Report, patient_id: str, as_of: dt.date | str | None = None) -> Figure:
    """Monitoring adherence of one patient: for each test group, a square for each test done and a
    red cross at each due date missed since the first course. ``as_of`` defaults to the patient's
    latest result."""
    if report.patients is None:
        raise ValueError("plot_adherence needs the patients table (course dates)")
    own = report.results[report.results["patient_id"] == patient_id]
    day = pd.Timestamp(as_of).date() if as_of is not None else own["collected_at"].max().date()
    table = adherence(report.results, report.patients, patient_id, day, default_thresholds())
    figure, ax = plt.subplots(figsize=(10, 2.4))
    groups = list(GROUPS)
    for done, marker, colour, label in (
        (True, "s", "#1b7837", "done"),
        (False, "x", "#b2182b", "missed"),
    ):
        part = table[table["done"] == done]
        ax.scatter(
            part["date"],
            part["test_group"].map(groups.index),
            marker=marker,
            color=colour,
            s=18,
            label=label,
        )
    ax.set_yticks(range(len(groups)), groups)
    ax.set_ylim(-0.6, len(groups) - 0.4)
    ax.set_title(f"{patient_id}: tests done and due dates missed (as of {day})")
    ax.legend(fontsize=7, loc="upper right", bbox_to_anchor=(1.0, 1.35), ncol=2)
    figure.tight_layout()
    return figure
