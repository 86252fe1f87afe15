"""The durable-rules engine behind lemlabs: private host, unique ids, state cleanup, threads."""

from __future__ import annotations

import threading

import pytest
from durable.lang import m
from rules_helpers import labs, patients

import lemlabs
from lemlabs import examples
from lemlabs.engine import RuleEngine
from lemlabs.errors import RuleError
from lemlabs.models import Condition, Severity
from lemlabs.rules.base import Rule
from lemlabs.rules.thresholds import default_thresholds

ROWS = [
    (-5, "PLT", "250", "10^9/L"),
    (100, "PLT", "40", "10^9/L"),
    (100, "TSH", "0.01", "mIU/L"),
    (103, "Free T4", "30", "pmol/L"),
    (120, "U-Blood", "2+", ""),
    (125, "Creat", "1.4", "mg/dL"),
    (-5, "Creat", "60", "umol/L"),
]


def _dicts(report: lemlabs.Report) -> list[dict[str, object]]:
    return [f.to_dict() for f in report.finding_list]


def test_scoring_twice_in_one_process_gives_identical_findings() -> None:
    first = lemlabs.score_frame(labs(ROWS), patients())
    second = lemlabs.score_frame(labs(ROWS), patients())
    assert _dicts(first) == _dicts(second) and first.finding_list


def test_scoring_from_threads_at_once_gives_identical_findings() -> None:
    cohort = lemlabs.read_labs(examples.path("labs"))
    people = lemlabs.read_patients(examples.path("patients"))
    expected = _dicts(lemlabs.score_frame(cohort, people))
    results: list[list[dict[str, object]]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(_dicts(lemlabs.score_frame(cohort, people)))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 4 and all(found == expected for found in results)


def test_the_same_facts_can_be_posted_again_after_the_state_is_deleted() -> None:
    engine = RuleEngine([_rule("plt.low", m.value < 100)], default_thresholds())
    facts = [
        {"id": "r1", "kind": "result", "value": 40},
        {"id": "r2", "kind": "result", "value": 400},
    ]
    assert [h.facts for h in engine.run("result", "s1", facts)] == [("r1",)]
    assert [h.facts for h in engine.run("result", "s1", facts)] == [("r1",)]


def test_a_failing_rule_action_is_raised_not_swallowed() -> None:
    broken = _rule("broken", m.value < 100, aliases=("nonexistent",))
    engine = RuleEngine([broken], default_thresholds())
    with pytest.raises(RuleError, match="broken"):
        engine.run("result", "s1", [{"id": "r1", "kind": "result", "value": 40}])


def test_posting_only_gated_results_gives_the_same_findings_as_posting_all() -> None:
    cohort = lemlabs.read_labs(examples.path("labs"))
    people = lemlabs.read_patients(examples.path("patients"))
    gated = lemlabs.score_frame(cohort, people)
    everything = lemlabs.score_frame(cohort, people, post_all=True)
    assert _dicts(gated) == _dicts(everything)


def _rule(rule_id: str, condition: object, aliases: tuple[str, ...] = ("m",)) -> Rule:
    return Rule(
        id=rule_id,
        code="itp.suspected",
        condition=Condition.ITP,
        severity=Severity.ACTION,
        when=lambda t: (condition,),
        message="test",
        action="test",
        thresholds=(),
        aliases=aliases,
    )
