"""The synthetic generator's noisy mode: the abnormal share it is asked for, and the pre-filter
proven on noisy cohorts (scoring with and without it gives the same findings)."""

from __future__ import annotations

import pytest

import lemlabs
from lemlabs.pipeline import score_unfiltered
from lemlabs.synthetic import VARIATION, generate


@pytest.mark.parametrize("share", [0.01, 0.10, 0.25])
def test_the_abnormal_share_is_what_was_asked(share: float) -> None:
    cohort = generate(patients=60, months=25, seed=3, variation=True, abnormal=share)
    report = lemlabs.score_frame(cohort.labs, cohort.patients)
    scored = report.results[report.results["status"] == "scored"]
    # lymphocytes (and with them white cells) are low after each course by design: not noise
    scored = scored[~scored["analyte"].isin(["lymphocytes", "wbc"])]
    measured = float((scored["flag"] != "N").mean())
    assert share * 0.6 < measured < share + 0.03, measured


def test_every_variation_cites_its_source() -> None:
    assert set(VARIATION) == {"platelets", "creatinine", "tsh", "free_t4"}
    assert all(0 < cv < 0.3 and source for cv, source in VARIATION.values())


@pytest.mark.parametrize("seed", [1, 2])
def test_the_prefilter_hides_no_finding_on_noisy_cohorts(seed: int) -> None:
    cohort = generate(patients=25, months=30, seed=seed, variation=True, abnormal=0.25)
    filtered = lemlabs.score_frame(cohort.labs, cohort.patients)
    everything = score_unfiltered(cohort.labs, cohort.patients)
    assert len(filtered.finding_list) > 100
    assert [f.to_dict() for f in filtered.finding_list] == [
        f.to_dict() for f in everything.finding_list
    ]
