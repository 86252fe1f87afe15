"""The bundled synthetic cohort: each planted condition is found; healthy patients stay quiet."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import lemlabs
from lemlabs import examples
from lemlabs.models import Severity
from lemlabs.synthetic import generate

EXPECTED = {
    "graves": {"thyroid.overt_hyperthyroidism"},
    "hypothyroidism": {"thyroid.overt_hypothyroidism"},
    "itp_slow": {"itp.suspected"},
    "itp_abrupt": {"itp.suspected"},
    "infusion_thrombocytopenia": {"itp.thrombocytopenia", "itp.suspected"},
    "anti_gbm": {"anti_gbm.pattern"},
    "autoimmune_neutropenia": {"cytopenia.neutropenia"},
    "autoimmune_haemolytic_anaemia": {"cytopenia.anaemia"},
}


@pytest.fixture(scope="module")
def scored() -> tuple[lemlabs.Report, pd.DataFrame]:
    report = lemlabs.score_frame(examples.path("labs"), examples.path("patients"))
    conditions = pd.read_csv(examples.path("conditions"), dtype=str, keep_default_na=False)
    return report, conditions


@pytest.mark.parametrize("condition", sorted(EXPECTED))
def test_each_planted_condition_is_found(
    scored: tuple[lemlabs.Report, pd.DataFrame], condition: str
) -> None:
    report, conditions = scored
    carriers = conditions.loc[conditions["condition"] == condition, "patient_id"]
    assert len(carriers) >= 1
    for patient in carriers:
        codes = {f.code for f in report.finding_list if f.patient_id == patient}
        assert codes & EXPECTED[condition], (patient, codes)


def test_infusion_associated_counts_carry_the_note(
    scored: tuple[lemlabs.Report, pd.DataFrame],
) -> None:
    report, conditions = scored
    carriers = set(
        conditions.loc[conditions["condition"] == "infusion_thrombocytopenia", "patient_id"]
    )
    notes = [f for f in report.finding_list if f.patient_id in carriers]
    assert notes and all("infusion-associated" in f.message for f in notes)


def test_healthy_patients_get_no_action_or_urgent_finding(
    scored: tuple[lemlabs.Report, pd.DataFrame],
) -> None:
    report, conditions = scored
    healthy = set(conditions.loc[conditions["condition"] == "healthy", "patient_id"])
    loud = [
        (f.patient_id, f.code)
        for f in report.finding_list
        if f.patient_id in healthy and f.severity >= Severity.ACTION
    ]
    assert loud == []


def test_the_bundled_files_are_what_the_generator_makes() -> None:
    cohort = generate()
    bundled = lemlabs.read_labs(examples.path("labs"))
    assert len(bundled) == len(cohort.labs)
    assert bundled["value"].tolist() == cohort.labs["value"].tolist()


def test_findings_frame_has_analyst_friendly_dtypes(
    scored: tuple[lemlabs.Report, pd.DataFrame],
) -> None:
    findings = scored[0].findings
    assert (
        isinstance(findings["severity"].dtype, pd.CategoricalDtype)
        and findings["severity"].cat.ordered
    )
    assert pd.api.types.is_datetime64_any_dtype(findings["date"])
    assert str(findings["ctcae_grade"].dtype) == "Int64"


def test_the_dataframe_accessor_scores_like_score_frame(
    scored: tuple[lemlabs.Report, pd.DataFrame],
) -> None:
    labs = lemlabs.read_labs(examples.path("labs"))
    report = labs.lemlabs.score(examples.path("patients"))
    assert [f.to_dict() for f in report.finding_list] == [
        f.to_dict() for f in scored[0].finding_list
    ]
    results, issues = labs.lemlabs.normalise()
    assert len(results) + issues["row"].nunique() == len(labs)
    assert [i.row for i in report.data_issues()] == report.issues["row"].tolist()


def test_the_readme_api_tour_runs_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's first Python block (the API tour), run from the repository's root."""
    readme = (Path(__file__).parents[2] / "README.md").read_text("utf-8")
    tour = readme.split("## A tour of the Python API", 1)[1].split("```python\n", 1)[1]
    code = tour.split("```", 1)[0]
    monkeypatch.chdir(Path(__file__).parents[2])
    scope: dict[str, object] = {}
    exec(compile(code, "README tour", "exec"), scope)
    assert scope["finding"] == scope["report"].finding_list[0]  # type: ignore[attr-defined]
    assert scope["scored"].summary == scope["report"].summary  # type: ignore[attr-defined]
    # the example cohort has no creatine kinase: a site pack adding it changes no finding, but
    # the findings name the rules they were scored with
    site, report = scope["site"].findings, scope["report"].findings  # type: ignore[attr-defined]
    assert set(site["rules_version"]).isdisjoint(report["rules_version"])
    pd.testing.assert_frame_equal(
        site.drop(columns="rules_version"), report.drop(columns="rules_version")
    )
