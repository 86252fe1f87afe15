"""The threshold table: every entry sourced, overrides validated, rules_version tracks content."""

from __future__ import annotations

import json
import tomllib
from importlib import resources
from pathlib import Path

import pytest
from rules_helpers import findings, labs, patients

import lemlabs
from lemlabs.errors import ThresholdError
from lemlabs.rules import ALL_RULES
from lemlabs.rules.thresholds import default_thresholds, load_thresholds


def test_every_threshold_has_a_value_and_a_source() -> None:
    table = default_thresholds()
    for key in table:
        entry = table.entry(key)
        assert entry.source.strip(), key
        assert isinstance(entry.value, int | float | str), key


def test_every_threshold_a_rule_names_exists_and_every_entry_is_used() -> None:
    table = default_thresholds()
    named = {key for rule in ALL_RULES for key in rule.thresholds}
    assert named <= set(table.keys())
    text = "\n".join(
        resources.files("lemlabs").joinpath(path).read_text("utf-8")
        for path in (
            "rules/thyroid.py",
            "rules/platelets.py",
            "rules/renal.py",
            "rules/monitoring.py",
            "schedule.py",
            "context.py",
            "findings.py",
            "scoring.py",
        )
    )
    unused = [key for key in table if f'"{key}"' not in text]
    assert unused == []


def test_findings_carry_rules_version_and_sources() -> None:
    (finding,) = findings([(200, "PLT", "40", "10^9/L")])
    assert finding.rules_version == lemlabs.rules_version(default_thresholds())
    assert finding.rules_version.startswith(lemlabs.__version__ + "+")
    assert "CTCAE" in finding.source or "IWG" in finding.source
    assert finding.rule_id == "itp.suspected.urgent"


def test_a_site_override_changes_findings_and_the_rules_version(tmp_path: Path) -> None:
    table = default_thresholds().as_table()
    table["itp.suspected_below"]["value"] = 120.0
    table["itp.suspected_below"]["source"] = "Site protocol 7"
    path = tmp_path / "site.json"
    path.write_text(json.dumps(table))
    frame = labs([(200, "PLT", "110", "10^9/L")])
    default = lemlabs.score_frame(frame, patients())
    site = lemlabs.score_frame(frame, patients(), thresholds=path)
    assert [f.code for f in default.finding_list] == ["itp.thrombocytopenia"]
    (override,) = site.finding_list
    assert override.code == "itp.suspected" and "Site protocol 7" in override.source
    assert override.rules_version != default.finding_list[0].rules_version


def test_the_shipped_toml_loads_as_an_override(tmp_path: Path) -> None:
    text = resources.files("lemlabs.rules").joinpath("thresholds.toml").read_text("utf-8")
    path = tmp_path / "copy.toml"
    path.write_text(text)
    assert load_thresholds(path).fingerprint() == default_thresholds().fingerprint()
    assert tomllib.loads(text)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.pop("itp.suspected_below"), "lacks itp.suspected_below"),
        (lambda t: t.__setitem__("itp.extra", {"value": 1, "source": "x"}), "unknown keys"),
        (lambda t: t["itp.urgent_below"].__setitem__("value", "fifty"), "not a number"),
        (lambda t: t["itp.urgent_below"].__setitem__("value", True), "not a number"),
        (lambda t: t["ctcae.version"].__setitem__("value", 5), "not text"),
        (lambda t: t["itp.urgent_below"].__setitem__("source", ""), "source"),
        (lambda t: t["itp.urgent_below"].__setitem__("value", 1e-7), "outside"),
    ],
)
def test_bad_overrides_are_rejected_clearly(change: object, message: str) -> None:
    table = default_thresholds().as_table()
    change(table)  # type: ignore[operator]
    with pytest.raises(ThresholdError, match=message):
        load_thresholds(table)


def test_an_unreadable_threshold_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("this is = = not toml")
    with pytest.raises(ThresholdError, match="cannot read"):
        load_thresholds(path)
