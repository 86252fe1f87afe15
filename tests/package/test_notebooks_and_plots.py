"""The notebooks run top to bottom, and the plot functions draw on the example cohort."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import nbformat
import pytest
from nbclient import NotebookClient

import lemlabs
from lemlabs import examples

matplotlib.use("Agg")

from lemlabs.formats.plot import plot_adherence, plot_cohort, plot_patient

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path: Path, tmp_path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    os.environ.setdefault("MPLBACKEND", "Agg")
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    errors = [
        o
        for cell in notebook.cells
        for o in cell.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert errors == []


def test_there_are_two_notebooks() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "01_score_a_cohort.ipynb",
        "02_patient_trajectories.ipynb",
    ]


@pytest.fixture(scope="module")
def report() -> lemlabs.Report:
    return lemlabs.score_frame(examples.path("labs"), examples.path("patients"))


def test_patient_plot_has_a_panel_per_analyte(report: lemlabs.Report) -> None:
    figure = plot_patient(report, "LEM-0033", ["creatinine", "urine_blood", "tsh"])
    panels = [ax for ax in figure.axes if ax.has_data()]
    assert len(panels) >= 2


def test_patient_plot_of_an_unknown_patient_is_a_clear_error(report: lemlabs.Report) -> None:
    with pytest.raises(ValueError, match="no scored results"):
        plot_patient(report, "nobody")


def test_cohort_plot_has_a_panel_per_condition(report: lemlabs.Report) -> None:
    figure = plot_cohort(report)
    assert {ax.get_title(loc="left") for ax in figure.axes} == {
        "Anti-GBM disease and other nephropathies",
        "Autoimmune cytopenias",
        "Immune thrombocytopenia (ITP)",
        "Liver injury (autoimmune hepatitis)",
        "Thyroid disease",
    }


def test_cohort_plot_needs_patients() -> None:
    bare = lemlabs.score_frame(examples.path("labs"))
    with pytest.raises(ValueError, match="patients"):
        plot_cohort(bare)


def test_adherence_plot_draws_done_and_missed(report: lemlabs.Report) -> None:
    figure = plot_adherence(report, "LEM-0123", "2023-04-01")
    (ax,) = figure.axes
    labels = [t.get_text() for t in ax.get_yticklabels()]  # the packs' groups, in their order
    assert labels == ["thyroid", "blood_count", "creatinine", "urinalysis", "liver"]
    assert len(ax.collections) == 2
