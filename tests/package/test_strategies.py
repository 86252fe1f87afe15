"""lemlabs.strategies: what they generate is valid input (or invalid where asked), and planted
patterns are found."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lemlabs
from lemlabs import strategies as ls
from lemlabs.models import Severity
from lemlabs.packs import builtin_packs, load_packs


@given(st.data())
def test_lab_values_normalise_to_their_canonical_value(data: st.DataObject) -> None:
    analyte = data.draw(st.sampled_from(sorted(builtin_packs().catalogue)))
    lab = data.draw(ls.lab_values(analyte))
    test = ls.name_spellings(builtin_packs().catalogue[analyte])[0]
    results, issues = lemlabs.normalise(
        ls.History(
            {},
            (
                {
                    "patient_id": "P1",
                    "collected_at": "2021-01-01",
                    "test": test,
                    "value": lab.value,
                    "unit": lab.unit,
                },
            ),
        ).labs()
    )
    assert issues.empty, issues.to_dict("records")
    assert results.loc[0, "analyte"] == analyte
    assert results.loc[0, "value"] == pytest.approx(lab.canonical, rel=1e-6, abs=1e-9)


@given(st.data(), st.booleans())
def test_within_reference_is_inside_or_outside(data: st.DataObject, inside: bool) -> None:
    analyte = data.draw(st.sampled_from(["tsh", "free_t4", "platelets", "creatinine", "upcr"]))
    lab = data.draw(ls.lab_values(analyte, within_reference=inside))
    frame = ls.History(
        {},
        (
            {
                "patient_id": "P1",
                "collected_at": "2021-01-01",
                "test": ls.name_spellings(builtin_packs().catalogue[analyte])[0],
                "value": lab.value,
                "unit": lab.unit,
            },
        ),
    ).labs()
    results, _ = lemlabs.normalise(frame)
    assert (results.loc[0, "flag"] == "N") is inside


@given(st.lists(ls.lab_rows(), min_size=1, max_size=20))
def test_lab_rows_are_valid_input(rows: list[dict[str, str]]) -> None:
    report = lemlabs.score_frame(ls.History({}, tuple(rows)).labs())
    assert report.issues.empty, report.issues.to_dict("records")
    assert report.summary["rows_normalised"] == len(rows)


@given(st.lists(ls.lab_rows(invalid=True), min_size=1, max_size=20))
def test_invalid_lab_rows_become_data_issues(rows: list[dict[str, str]]) -> None:
    report = lemlabs.score_frame(ls.History({}, tuple(rows)).labs())
    assert report.summary["rows_rejected"] == len(rows)


@given(ls.patients())
def test_patients_are_valid_input(patient: dict[str, str]) -> None:
    history = ls.History(patient, ())
    report = lemlabs.score_frame(history.labs(), history.patients())
    assert report.issues.empty


@given(ls.histories())
def test_healthy_histories_are_valid_and_quiet(history: ls.History) -> None:
    report = lemlabs.score_frame(history.labs(), history.patients())
    assert report.issues.empty
    assert all(f.severity <= Severity.INFO for f in report.finding_list), [
        f.code for f in report.finding_list
    ]


@given(ls.histories(condition="itp"))
def test_a_planted_platelet_fall_below_50_is_an_urgent_itp_finding(history: ls.History) -> None:
    report = lemlabs.score_frame(history.labs(), history.patients())
    assert any(f.condition == "itp" and f.severity == Severity.URGENT for f in report.finding_list)


@given(ls.histories(condition="graves"))
def test_a_planted_suppressed_tsh_with_high_free_t4_is_overt_hyperthyroidism(
    history: ls.History,
) -> None:
    report = lemlabs.score_frame(history.labs(), history.patients())
    assert "thyroid.overt_hyperthyroidism" in {f.code for f in report.finding_list}


@given(ls.histories(condition="hypothyroidism"))
def test_a_planted_high_tsh_with_low_free_t4_is_overt_hypothyroidism(history: ls.History) -> None:
    report = lemlabs.score_frame(history.labs(), history.patients())
    assert "thyroid.overt_hypothyroidism" in {f.code for f in report.finding_list}


@given(ls.histories(condition="anti_gbm", months=(3, 24)))
def test_a_planted_anti_gbm_course_is_the_urgent_pattern(history: ls.History) -> None:
    report = lemlabs.score_frame(history.labs(), history.patients())
    patterns = [f for f in report.finding_list if f.code == "anti_gbm.pattern"]
    assert patterns and patterns[0].severity == Severity.URGENT


@given(ls.cohorts())
def test_cohorts_are_valid_input_and_every_planted_condition_is_found(cohort: ls.Cohort) -> None:
    report = lemlabs.score_frame(cohort.labs, cohort.patients)
    assert report.issues.empty
    wanted = {
        "itp": "itp",
        "graves": "thyroid",
        "hypothyroidism": "thyroid",
        "anti_gbm": "anti_gbm",
    }
    for history in cohort.histories:
        found = {
            str(f.condition)
            for f in report.finding_list
            if f.patient_id == history.patient["patient_id"]
        }
        if history.condition:
            assert wanted[history.condition] in found
        else:
            assert not found


def test_an_unknown_condition_is_refused() -> None:
    with pytest.raises(ValueError, match="condition"):
        ls.histories(condition="flu")


SITE = load_packs([Path(__file__).parents[2] / "docs" / "site-pack" / "muscle"])


@given(st.data(), st.booleans())
def test_strategies_draw_a_site_packs_analyte_in_its_units(
    data: st.DataObject, inside: bool
) -> None:
    """A site pack's analyte (creatine kinase, in U/L, IU/L or µkat/L) is drawn like a built-in
    one: it normalises to its canonical value and flags as drawn."""
    lab = data.draw(ls.lab_values("ck", within_reference=inside, packs=SITE))
    rows = [
        {
            "patient_id": "P1",
            "collected_at": "2021-01-01",
            "test": data.draw(st.sampled_from(ls.name_spellings(SITE.catalogue["ck"]))),
            "value": lab.value,
            "unit": lab.unit,
        }
    ]
    results, issues = lemlabs.normalise(pd.DataFrame(rows), packs=SITE)
    assert issues.empty, issues.to_dict("records")
    assert results.loc[0, "analyte"] == "ck"
    assert results.loc[0, "value"] == pytest.approx(lab.canonical, rel=1e-6)
    assert (results.loc[0, "flag"] == "N") is inside
