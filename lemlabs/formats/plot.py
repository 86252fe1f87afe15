"""Plots with matplotlib (the ``plot`` extra): one patient's trajectories, a cohort overview,
monitoring adherence and the eDISH view of liver safety.

Each function returns the matplotlib Figure; nothing is shown or saved unless you ask.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lemlabs.formats.edish import BILIRUBIN_CUT, ENZYME_CUT, QUADRANTS, liver_peaks
from lemlabs.models import Finding, Severity
from lemlabs.stages.schedule import adherence
from lemlabs.vocabulary import format_value, printable

if TYPE_CHECKING:
    from lemlabs.pipeline import Report

try:
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes
    from matplotlib.dates import date2num
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import (
        FixedLocator,
        FuncFormatter,
        MaxNLocator,
        MultipleLocator,
        NullFormatter,
    )
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "lemlabs.formats.plot needs matplotlib: pip install 'lemlabs[plot]'"
    ) from error

SEVERITY_COLOURS = {"info": "#7f7f7f", "watch": "#e3a21a", "action": "#d95f02", "urgent": "#b2182b"}
LOG_TICKS = (0.01, 0.03, 0.1, 0.4, 1.0, 4.0, 10.0, 30.0, 100.0)
"""Ticks of a log axis (an analyte with ``scale = "log"``: a suppressed TSH, 0.01, and a raised
one, 20, both read)."""
X_ULN_TICKS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0)
"""Ticks of a × ULN axis (an analyte with ``scale = "x_uln"``: the liver tests, whose cut-offs
are multiples of the upper limit)."""
DIPSTICK_GRADES = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0)
DIPSTICK_LABELS = ("neg", "trace", "1+", "2+", "3+", "4+")
_LINE = "#1f4e79"
_SHADE = "#a6cee3"


def _plain(text: str) -> str:
    """Text from the input as matplotlib draws it literally: a ``$`` would start mathtext, a
    control character is drawn as its escape (``\\x1b``)."""
    return printable(text).replace("$", r"\$")


def _courses(report: Report, patient_id: str) -> list[pd.Timestamp]:
    if report.patients is None:
        return []
    rows = report.patients[report.patients["patient_id"] == patient_id]
    return [day for courses in rows["courses"] for day in courses]


def _draw_dipstick(ax: Axes, series: pd.DataFrame) -> None:
    """Grades on a categorical axis: neg, trace, 1+, 2+, 3+ evenly spaced (4+ when present)."""
    position = np.searchsorted(DIPSTICK_GRADES, series["value"].to_numpy(dtype=float))
    top = max(4, int(np.max(position, initial=0)))
    ax.axhspan(-0.5, 1.5, color=_SHADE, alpha=0.35, lw=0, label="negative or trace")
    ax.plot(
        series["collected_at"],
        position,
        marker="o",
        markersize=3,
        lw=0.8,
        color=_LINE,
        drawstyle="steps-post",
    )
    ax.set_yticks(range(top + 1), DIPSTICK_LABELS[: top + 1])
    ax.set_ylim(-0.5, top + 0.5)


def _draw_values(ax: Axes, series: pd.DataFrame, scale: str) -> None:
    """Values with the reference interval shaded; censored values as triangles (< down, > up).
    ``scale``: linear, log, or ``x_uln`` (each value and its interval ÷ its own ULN, on a log
    axis: the ULN is 1)."""
    values = series["value"].to_numpy(dtype=float)
    low = series["ref_low"].to_numpy(dtype=float)
    high = series["ref_high"].to_numpy(dtype=float)
    if scale == "x_uln":
        uln = np.where(high > 0, high, np.nan)
        values, low, high = values / uln, low / uln, high / uln
    if scale != "linear":
        ticks = X_ULN_TICKS if scale == "x_uln" else LOG_TICKS
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        floor = np.nanmin(np.concatenate([values[values > 0], low[low > 0]]), initial=1.0) / 2
        low = np.where(np.isnan(low) | (low <= 0), floor, low)
    else:
        low = np.where(np.isnan(low), 0.0, low)
    ax.fill_between(
        series["collected_at"].to_numpy(),
        low,
        high,
        color=_SHADE,
        alpha=0.35,
        step="mid",
        lw=0,
        label="reference interval",
    )
    ax.plot(series["collected_at"], values, lw=0.8, color=_LINE)
    censor = series["censor"].astype(str).to_numpy()
    for sign, marker in (("", "o"), ("<", "v"), (">", "^")):
        mask = censor == sign
        if mask.any():
            ax.plot(
                series["collected_at"].to_numpy()[mask],
                values[mask],
                ls="",
                marker=marker,
                markersize=3 if sign == "" else 5,
                color=_LINE,
            )


def _draw_findings(
    ax: Axes, findings: Sequence[Finding], span: tuple[Any, Any], titles: Mapping[str, str]
) -> None:
    """One lane per finding, onset to latest evidence, labelled with its clinical title: labels
    sit on their own lanes, so they never overprint."""
    left, right = (pd.Timestamp(x) for x in span)
    middle = left + (right - left) / 2
    for lane, finding in enumerate(findings):
        colour = SEVERITY_COLOURS[str(finding.severity)]
        start = pd.Timestamp(finding.onset)
        end = max(pd.Timestamp(finding.date), start + pd.Timedelta(days=10))
        x0, x1 = (float(date2num(day)) for day in (start, end))  # type: ignore[no-untyped-call]
        ax.barh(lane, x1 - x0, left=x0, height=0.6, color=colour, alpha=0.85)
        label = (
            f"{titles.get(finding.code, finding.code)} ({finding.severity}, onset {start.date()})"
        )
        if end <= middle:  # room on the right
            ax.text(x1 + 15, lane, label, va="center", ha="left", fontsize=7)
        elif start >= middle:  # room on the left
            ax.text(x0 - 15, lane, label, va="center", ha="right", fontsize=7)
        else:  # a long episode: on the bar itself
            box = {"facecolor": "white", "alpha": 0.8, "lw": 0, "pad": 1}
            ax.text(x0 + 15, lane, label, va="center", ha="left", fontsize=7, bbox=box)
    ax.set_ylim(len(findings) - 0.4, -0.6)
    ax.set_yticks([])
    ax.set_label("findings")
    ax.set_ylabel("findings", fontsize=8)


def plot_patient(report: Report, patient_id: str, analytes: Sequence[str] | None = None) -> Figure:
    """A lane per finding (onset to latest evidence, its clinical title, coloured by severity),
    then a panel per analyte over time (``analytes``, else the packs' ``charts``): values in
    canonical units with the reference interval shaded, on a log axis for an analyte whose scale
    is ``log`` (TSH), as × its own ULN on a log axis for one whose scale is ``x_uln`` (the liver
    tests), dipsticks on a categorical axis (neg, trace, 1+, 2+, 3+), censored values as
    triangles, course starts as dashed lines and each finding's episode as a band in its
    severity's colour. All panels share the time axis."""
    results = report.results[
        (report.results["patient_id"] == patient_id) & (report.results["status"] == "scored")
    ]
    packs = report.packs
    wanted = analytes or packs.charts
    present = [a for a in wanted if (results["analyte"] == a).any()]
    if not present:
        raise ValueError(f"no scored results for patient {patient_id!r} and analytes {analytes!r}")
    findings = sorted(
        (f for f in report.finding_list if f.patient_id == patient_id),
        key=lambda f: (f.onset, -int(f.severity), f.code),
    )
    heights = ([0.35 * len(findings) + 0.4] if findings else []) + [1.7] * len(present)
    figure, axes = plt.subplots(
        len(heights),
        1,
        sharex=True,
        figsize=(9, sum(heights) + 0.8),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    panels = list(axes[:, 0])
    mine = results[results["analyte"].isin(present)]
    span = (mine["collected_at"].min(), mine["collected_at"].max())
    if findings:
        _draw_findings(panels.pop(0), findings, span, packs.titles)
    for ax, analyte in zip(panels, present, strict=True):
        series = results[results["analyte"] == analyte].sort_values("collected_at")
        unit = str(series["unit"].iloc[0])
        if unit == "grade":
            _draw_dipstick(ax, series)
            label = packs.label(analyte)
            ax.set_ylabel(label if "dipstick" in label else f"{label}\n(dipstick)", fontsize=8)
        else:
            scale = packs.catalogue[analyte].scale if analyte in packs.catalogue else "linear"
            _draw_values(ax, series, scale)
            axis = {"linear": format_value(1, unit)[2:], "log": f"{format_value(1, unit)[2:]}, log"}
            ax.set_ylabel(f"{packs.label(analyte)}\n({axis.get(scale, '× ULN, log')})", fontsize=8)
        for finding in findings:
            if any(e.analyte == analyte for e in finding.evidence):
                start = pd.Timestamp(finding.onset)
                end = pd.Timestamp(finding.date) + pd.Timedelta(days=3)
                colour = SEVERITY_COLOURS[str(finding.severity)]
                ax.axvspan(start, end, color=colour, alpha=0.2, lw=0)
    for ax in axes[:, 0]:
        for start in _courses(report, patient_id):
            ax.axvline(start, color="grey", ls="--", lw=0.8)
    axes[0, 0].set_title(
        f"{_plain(patient_id)}: findings, results with reference intervals (shaded), "
        "courses (dashed)",
        fontsize=9,
    )
    figure.tight_layout()
    return figure


def cohort_onsets(report: Report, bin_months: int = 3) -> pd.DataFrame:
    """One row per patient and condition: the earliest onset of the patient's findings of that
    condition in months since the patient's first course, its bin and the most severe finding's
    severity. Patients without courses and monitoring findings are left out."""
    if report.patients is None:
        raise ValueError("plot_cohort needs the patients table (course dates): score with patients")
    first = {
        pid: min(courses)
        for pid, courses in zip(
            report.patients["patient_id"], report.patients["courses"], strict=True
        )
        if courses
    }
    worst: dict[tuple[str, str], tuple[pd.Timestamp, Severity]] = {}
    for finding in report.finding_list:
        condition = str(finding.condition)
        if finding.patient_id not in first or condition == "monitoring":
            continue
        onset = pd.Timestamp(finding.onset)
        key = (finding.patient_id, condition)
        seen = worst.get(key, (onset, finding.severity))
        worst[key] = (min(seen[0], onset), max(seen[1], finding.severity))
    rows = []
    for (patient_id, condition), (onset, severity) in sorted(worst.items()):
        months = (onset - first[patient_id]).days / 30.44
        rows.append(
            {
                "patient_id": patient_id,
                "condition": condition,
                "severity": str(severity),
                "months": months,
                "bin": int(np.floor(months / bin_months)) * bin_months,
            }
        )
    return pd.DataFrame(rows, columns=["patient_id", "condition", "severity", "months", "bin"])


def plot_cohort(report: Report, bin_months: int = 3) -> Figure:
    """Patients (not findings) per condition by onset, in months since their first course: one
    panel per condition, named as a clinician names it, all on one shared x-axis; each patient
    counts once per condition, at the onset of their earliest finding of it, and is stacked by
    their most severe finding of it (see :func:`cohort_onsets`)."""
    frame = cohort_onsets(report, bin_months)
    names = report.packs.conditions
    conditions = [c for c in names if (frame["condition"] == c).any()]
    figure, axes = plt.subplots(
        max(len(conditions), 1),
        1,
        figsize=(9, 1.9 * max(len(conditions), 1) + 0.9),
        sharex=True,
        squeeze=False,
    )
    if not conditions:
        axes[0, 0].set_title("(no findings)")
    for ax, condition in zip(axes[:, 0], conditions, strict=False):
        part = frame[frame["condition"] == condition]
        count = part["patient_id"].nunique()
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
        ax.set_title(names[condition], fontsize=9, loc="left")
        ax.set_ylabel("patients", fontsize=8)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.text(
            0.99,
            0.9,
            f"{count} patient{'s' if count != 1 else ''}",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=8,
        )
    axes[-1, 0].set_xlabel(f"months from the first course to onset ({bin_months}-month bins)")
    axes[-1, 0].xaxis.set_major_locator(MultipleLocator(12 if bin_months < 12 else bin_months))
    handles = [Patch(color=colour, label=name) for name, colour in SEVERITY_COLOURS.items()]
    axes[0, 0].legend(
        handles=handles,
        fontsize=7,
        ncol=4,
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        title="most severe finding",
        title_fontsize=7,
        frameon=False,
    )
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
    packs = report.packs
    table = adherence(
        report.results, report.patients, patient_id, day, packs.defaults, packs.groups
    )
    figure, ax = plt.subplots(figsize=(10, 2.4))
    groups = list(packs.groups)
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
    ax.set_title(f"{_plain(patient_id)}: tests done and due dates missed (as of {day})")
    ax.legend(fontsize=7, loc="upper right", bbox_to_anchor=(1.0, 1.35), ncol=2)
    figure.tight_layout()
    return figure


_NO_FINDING = "#9e9e9e"


def plot_edish(report: Report, enzyme: str = "ALT", table_rows: int = 12) -> Figure:
    """The eDISH view (FDA; safetyGraphics' hepatic explorer): per patient, the peak ``enzyme``
    (ALT or AST) × ULN against the peak total bilirubin × ULN, on log axes, with lines at 3 × and
    2 × ULN and the quadrants named (potential Hy's law upper right); each point coloured by the
    patient's most severe liver finding. Beside it, a table of the highest peaks
    (:func:`lemlabs.formats.edish.liver_peaks` gives all of them)."""
    peaks = liver_peaks(report, enzyme)
    drawn = peaks.dropna(subset=["enzyme_x_uln", "bilirubin_x_uln"])
    drawn = drawn[(drawn["enzyme_x_uln"] > 0) & (drawn["bilirubin_x_uln"] > 0)]
    figure, (ax, side) = plt.subplots(
        1, 2, figsize=(11, 5.2), gridspec_kw={"width_ratios": [1.15, 1]}
    )
    colours = [SEVERITY_COLOURS.get(s, _NO_FINDING) for s in drawn["liver_severity"]]
    ax.scatter(drawn["enzyme_x_uln"], drawn["bilirubin_x_uln"], c=colours, s=22, zorder=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    low = min([0.1, *drawn["enzyme_x_uln"], *drawn["bilirubin_x_uln"]]) / 1.5
    high = max([30.0, *drawn["enzyme_x_uln"] * 1.5, *drawn["bilirubin_x_uln"] * 1.5])
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.axvline(ENZYME_CUT, color="#555555", linestyle="--", linewidth=0.8)
    ax.axhline(BILIRUBIN_CUT, color="#555555", linestyle="--", linewidth=0.8)
    for x, y, name, ha, va in (
        (0.98, 0.98, QUADRANTS[(True, True)], "right", "top"),
        (0.98, 0.02, QUADRANTS[(True, False)], "right", "bottom"),
        (0.02, 0.98, QUADRANTS[(False, True)], "left", "top"),
        (0.02, 0.02, QUADRANTS[(False, False)], "left", "bottom"),
    ):
        ax.text(x, y, name, transform=ax.transAxes, ha=ha, va=va, fontsize=8, color="#444444")
    ax.set_xlabel(f"peak {enzyme.upper()} (× ULN)")
    ax.set_ylabel("peak total bilirubin (× ULN)")
    ax.set_title(f"eDISH: {len(drawn)} patients", fontsize=10, loc="left")
    handles = [
        Patch(color=colour, label=name)
        for name, colour in [*SEVERITY_COLOURS.items(), ("no liver finding", _NO_FINDING)]
        if name != "info"
    ]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.12), ncol=4,
              frameon=False)  # fmt: skip
    side.axis("off")
    top = drawn.head(table_rows)
    cells = [
        [
            _plain(str(row.patient_id)),
            f"{row.enzyme_x_uln:.1f}",
            f"{row.bilirubin_x_uln:.1f}",
            row.quadrant,
        ]
        for row in top.itertuples()
    ]
    if cells:
        table = side.table(
            cellText=cells,
            colLabels=["patient", f"{enzyme.upper()} × ULN", "bilirubin × ULN", "quadrant"],
            loc="upper center",
            cellLoc="left",
        )
        table.auto_set_font_size(False)
        table.set_fontsize(7)
        table.scale(1, 1.25)
    side.set_title(f"highest {enzyme.upper()} peaks", fontsize=9, loc="left")
    figure.tight_layout()
    return figure
