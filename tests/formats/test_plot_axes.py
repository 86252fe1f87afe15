"""Plots that read at a glance: TSH on a log axis, dipsticks on a categorical axis, finding
labels that never overprint, a cohort plot that counts patients on one shared time axis."""

from __future__ import annotations

import itertools

import matplotlib
import pandas as pd
import pytest

import lemlabs
from lemlabs import examples

matplotlib.use("Agg")

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lemlabs.formats.plot import cohort_onsets, plot_cohort, plot_patient
from lemlabs.packs import builtin_packs

ALL = ("platelets", "creatinine", "tsh", "free_t4", "urine_blood", "urine_protein", "urine_rbc")


@pytest.fixture(scope="module")
def report() -> lemlabs.Report:
    return lemlabs.score_frame(examples.path("labs"), examples.path("patients"))


def _panel(figure: Figure, words: str) -> Axes:
    (ax,) = [ax for ax in figure.axes if words in ax.get_ylabel()]
    return ax


def test_tsh_is_on_a_log_axis_with_the_interval_shaded(report: lemlabs.Report) -> None:
    figure = plot_patient(report, "LEM-0001", ALL)
    tsh = _panel(figure, "TSH")
    assert tsh.get_yscale() == "log"
    assert _panel(figure, "platelet").get_yscale() == "linear"
    low, high = tsh.get_ylim()
    assert low < 0.01 < 4.0 < high  # a suppressed TSH is drawn, not squashed on zero
    assert any(c.get_label() == "reference interval" for c in tsh.collections)


def test_liver_tests_are_drawn_as_times_their_own_uln(report: lemlabs.Report) -> None:
    figure = plot_patient(report, "LEM-0154", ["alt", "bilirubin", "platelets"])
    alt = _panel(figure, "ALT")
    assert "× ULN" in alt.get_ylabel() and alt.get_yscale() == "log"
    assert "× ULN" not in _panel(figure, "platelet").get_ylabel()
    results = report.results
    mine = results[(results["patient_id"] == "LEM-0154") & (results["analyte"] == "alt")]
    mine = mine[mine["status"] == "scored"].sort_values("collected_at")
    (line,) = [line for line in alt.get_lines() if len(line.get_xdata()) == len(mine)][:1]
    drawn = pd.Series(line.get_ydata(), dtype=float).to_numpy()
    expected = (mine["value"] / mine["ref_high"]).to_numpy(dtype=float)
    assert drawn == pytest.approx(expected)
    assert drawn.max() > 5  # the autoimmune hepatitis peak reads as more than 5 × ULN


def test_dipsticks_are_on_a_categorical_axis(report: lemlabs.Report) -> None:
    figure = plot_patient(report, "LEM-0033", ["urine_blood", "creatinine"])
    dipstick = _panel(figure, "blood")
    labels = [t.get_text() for t in dipstick.get_yticklabels()]
    assert labels[:5] == ["neg", "trace", "1+", "2+", "3+"]
    assert list(dipstick.get_yticks())[:5] == [0, 1, 2, 3, 4]  # evenly spaced categories


def _overlaps(figure: Figure, ax: Axes) -> list[tuple[str, str]]:
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in ax.texts]
    return [(a, b) for (a, x), (b, y) in itertools.combinations(boxes, 2) if x.overlaps(y)]


@pytest.mark.parametrize("patient", ["LEM-0033", "LEM-0001", "LEM-0024", "LEM-0021"])
def test_finding_labels_never_overprint(report: lemlabs.Report, patient: str) -> None:
    figure = plot_patient(report, patient, ALL)
    (lanes,) = [ax for ax in figure.axes if ax.get_label() == "findings"]
    mine = [f for f in report.finding_list if f.patient_id == patient]
    assert len(lanes.texts) == len(mine)
    assert _overlaps(figure, lanes) == []
    titles = {t.get_text().rsplit(" (", 1)[0] for t in lanes.texts}
    assert titles == {builtin_packs().titles[f.code] for f in mine}  # words, not codes


def test_many_findings_on_one_day_do_not_overprint(report: lemlabs.Report) -> None:
    """Four findings with the same onset (the anti-GBM patient's urine and creatinine)."""
    figure = plot_patient(report, "LEM-0033", ALL)
    (lanes,) = [ax for ax in figure.axes if ax.get_label() == "findings"]
    assert len(lanes.texts) >= 4 and _overlaps(figure, lanes) == []


def test_cohort_plot_counts_patients_on_one_shared_axis(report: lemlabs.Report) -> None:
    figure = plot_cohort(report)
    axes = figure.axes
    assert all(ax.get_shared_x_axes().joined(axes[0], ax) for ax in axes)
    findings = report.findings[report.findings["condition"] != "monitoring"]
    for ax in axes:
        names = builtin_packs().conditions
        condition = {name: key for key, name in names.items()}[ax.get_title(loc="left")]
        drawn = sum(patch.get_height() for patch in ax.patches)
        patients = findings.loc[findings["condition"] == condition, "patient_id"].nunique()
        found = (findings["condition"] == condition).sum()
        assert drawn == patients
        if condition == "anti_gbm":
            assert found > patients  # one patient, several findings: counted once
        assert ax.get_ylabel() == "patients"
    assert "months from the first course to onset" in axes[-1].get_xlabel()


def test_cohort_onset_is_the_earliest_finding_of_the_condition(report: lemlabs.Report) -> None:
    onsets = cohort_onsets(report)
    row = onsets[(onsets["patient_id"] == "LEM-0033") & (onsets["condition"] == "anti_gbm")]
    first_course = min(
        report.patients.set_index("patient_id").loc["LEM-0033", "courses"]  # type: ignore[union-attr]
    )
    onset = min(
        pd.Timestamp(f.episode_start or f.date)
        for f in report.finding_list
        if f.patient_id == "LEM-0033"
    )
    assert row["months"].item() == pytest.approx((onset - first_course).days / 30.44)
    assert row["severity"].item() == "urgent"


def test_a_dollar_in_a_patient_id_is_drawn_literally() -> None:
    labs = pd.DataFrame(
        {
            "patient_id": ["$x$"] * 2,
            "collected_at": ["2021-01-01", "2021-02-01"],
            "test": ["TSH"] * 2,
            "value": ["<0.01", "5"],
            "unit": ["mIU/L"] * 2,
        }
    )
    figure = plot_patient(lemlabs.score_frame(labs), "$x$", ["tsh"])
    figure.canvas.draw()
    assert figure.axes[0].get_title().startswith(r"\$x\$")
