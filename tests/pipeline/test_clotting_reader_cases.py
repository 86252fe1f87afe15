"""Haemolysis, pancytopenia, TTP, acquired haemophilia A and HLH against cases an independent
reader wrote from ../shared/domain.md alone (data/clotting_reader_cases.json: 100 cases, each
citing the text it comes from): every cut-off at, just below and just above it, window edges (7
and 8 days; the same day and the next for PT and INR), the TTP/ITP pair, near misses, the lab's
own interval, units of the new analytes, percentages with and without the same sample's white
count, bad input. Scored in one run, one patient per case. An expectation changes only when
domain.md does; where lemlabs reads an ambiguous sentence otherwise, :data:`READ_OTHERWISE`
says how and why (README, "What lemlabs looks for")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rules_helpers import score_cases

import lemlabs

CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parents[1] / "data" / "clotting_reader_cases.json").read_text("utf-8")
)
READ_OTHERWISE = {
    # "ferritin ≥ 500 with at least two of ..., all within 7 days": the reader (marking it
    # ambiguous) asks for one 7-day span; lemlabs takes each count within 7 days of the
    # ferritin (a screen: an urgent evaluation too many rather than an HLH missed)
    "hlh_span_14d": {
        "expect": [{"code": "hlh.screen", "severity": "urgent"}],
        "drop": "hlh.screen",
    },
}


@pytest.fixture(scope="module")
def report() -> lemlabs.Report:
    return score_cases(CASES)


def _expected(case: dict[str, Any]) -> tuple[set[tuple[str, str]], set[str]]:
    expect = {(e["code"], e["severity"]) for e in case["expect"]}
    absent = set(case["expect_absent"])
    otherwise = READ_OTHERWISE.get(case["id"])
    if otherwise:
        expect |= {(e["code"], e["severity"]) for e in otherwise["expect"]}
        absent -= {otherwise["drop"]}
    return expect, absent


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_the_readers_case(report: lemlabs.Report, case: dict[str, Any]) -> None:
    mine = [f for f in report.finding_list if f.patient_id == case["id"]]
    found = {(f.code, str(f.severity)) for f in mine}
    expect, absent = _expected(case)
    assert expect <= found, case["why"]
    assert not {f.code for f in mine} & absent, case["why"]
    for note in case.get("expect_notes", []):  # in what the finding says: message, notes, action
        said = [" ".join((f.message, *f.notes, f.action)).lower() for f in mine
                if f.code == note["code"]]  # fmt: skip
        assert any(note["contains"].lower() in text for text in said), case["why"]
    assert (case["id"] in set(report.issues["patient_id"])) == case["data_issue"], case["why"]
    results = report.results[report.results["patient_id"] == case["id"]]
    not_scored = bool((results["status"] == "not_scored").any())
    assert not_scored == case.get("not_scored", False), case["why"]
