"""The fast assembly of findings (finding facts for a day's findings, one occurrence for many
matches, spans, chunks) writes exactly the findings of the plain reference (one fact a finding,
one occurrence a match, episodes by a loop), on noisy generated cohorts."""

from __future__ import annotations

import pandas as pd
import pytest

import lemlabs
from lemlabs.pipeline import score_plain
from lemlabs.synthetic import generate


@pytest.mark.parametrize(
    ("seed", "abnormal"), [(1, 0.25), (2, 0.10), pytest.param(3, 0.25, marks=pytest.mark.slow)]
)
def test_the_fast_findings_are_the_plain_references(seed: int, abnormal: float) -> None:
    cohort = generate(patients=25, months=30, seed=seed, variation=True, abnormal=abnormal)
    fast = lemlabs.score_frame(cohort.labs, cohort.patients)
    plain = score_plain(cohort.labs, cohort.patients)
    assert len(fast.findings) > 100  # every kind of episode: mixed, composite, split
    assert set(fast.findings["rule_id"]) >= {"anti_gbm.pattern.urgent", "itp.suspected.urgent"}
    pd.testing.assert_frame_equal(fast.findings, plain.findings)


def test_one_patient_with_many_results_a_day_gets_the_plain_references_findings() -> None:
    """Finding facts that stand for many results of one day, and absorbed composite matches."""
    cohort = generate(patients=20, months=24, seed=5, variation=True, abnormal=0.25)
    labs = cohort.labs.assign(patient_id="ONE")
    people = cohort.patients.head(1).assign(patient_id="ONE")
    fast = lemlabs.score_frame(labs, people)
    pd.testing.assert_frame_equal(fast.findings, score_plain(labs, people).findings)
