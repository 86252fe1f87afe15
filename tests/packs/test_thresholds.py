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
from lemlabs.packs import builtin_packs, default_thresholds, load_thresholds


def test_every_threshold_has_a_value_and_a_source() -> None:
    table = default_thresholds()
    for key in table:
        entry = table.entry(key)
        assert entry.source.strip(), key
        assert isinstance(entry.value, int | float | str), key


def test_every_threshold_a_rule_names_exists_and_every_entry_is_used() -> None:
    """Every key is read by a rule (its conditions, texts, notes, fields), a schedule group, an
    analyte's critical values, or the few stages that read a shared key by name."""
    packs = builtin_packs()
    table = default_thresholds()
    named = {key for rule in packs.rules for key in rule.thresholds}
    named |= {key for group in packs.groups.values() for key in (group.interval, group.tolerance)}
    for analyte in packs.catalogue.values():
        named |= {key for key in (analyte.critical_low, analyte.critical_high) if key}
    assert named <= set(table.keys())
    code = "\n".join(
        resources.files("lemlabs").joinpath(path).read_text("utf-8")
        for path in (
            "stages/context.py",
            "stages/findings/fast.py",
            "stages/findings/writer.py",
            "formats/fhir.py",
            "formats/sdtm.py",
        )
    )
    unused = [key for key in table if key not in named and f'"{key}"' not in code]
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
    text = resources.files("lemlabs").joinpath("rules/thresholds.toml").read_text("utf-8")
    path = tmp_path / "copy.toml"
    path.write_text(text)
    assert load_thresholds(path).fingerprint() == default_thresholds().fingerprint()
    assert tomllib.loads(text)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.__setitem__("itp.extra", {"value": 1, "source": "x"}), "unknown keys"),
        (lambda t: t["itp.urgent_below"].__setitem__("value", "fifty"), "not a number"),
        (lambda t: t["itp.urgent_below"].__setitem__("value", True), "not a number"),
        (lambda t: t["ctcae.version"].__setitem__("value", 5), "not text"),
        (lambda t: t["itp.urgent_below"].__setitem__("source", ""), "source"),
        (lambda t: t["itp.urgent_below"].__setitem__("value", 1e-7), "outside"),
        (lambda t: t["schedule.monthly_days"].__setitem__("value", 0), "outside 1–3650"),
        (lambda t: t["thyroid.pair_window_days"].__setitem__("value", -1), "outside"),
        (lambda t: t["episode.gap_days"].__setitem__("value", 1e12), "outside 1–3650"),
        (lambda t: t["episode.gap_days"].__setitem__("value", 92.5), "not a whole number"),
    ],
)
def test_bad_overrides_are_rejected_clearly(change: object, message: str) -> None:
    table = default_thresholds().as_table()
    change(table)  # type: ignore[operator]
    with pytest.raises(ThresholdError, match=message):
        load_thresholds(table)


def test_a_site_table_names_only_the_keys_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text('[itp.suspected_below]\nvalue = 120.0\nsource = "Site protocol 7"\n')
    site = load_thresholds(path)
    assert site["itp.suspected_below"] == 120.0
    assert site.entry("itp.suspected_below").source == "Site protocol 7"
    assert site.entry("itp.suspected_below").unit == "10^9/L"  # the default's unit stays
    others = [key for key in site if key != "itp.suspected_below"]
    assert all(site.entry(key) == default_thresholds().entry(key) for key in others)
    assert lemlabs.rules_version(site) != lemlabs.rules_version(default_thresholds())


def test_a_new_default_threshold_never_breaks_a_site_file(tmp_path: Path) -> None:
    # a site file written before a key existed still loads: the default fills the new key
    path = tmp_path / "old-site.toml"
    path.write_text('[itp]\nurgent_below = { value = 45.0, source = "Site protocol 3" }\n')
    site = load_thresholds(path)
    assert site["itp.urgent_below"] == 45.0
    assert site["fhir.course_gap_days"] == default_thresholds()["fhir.course_gap_days"]


@pytest.mark.parametrize("table", [[1, 2, 3], {"a": {"b": {"c": {"d": {"e": {}}}}}}])
def test_a_threshold_table_of_the_wrong_shape_is_refused(table: object) -> None:
    with pytest.raises(ThresholdError):
        load_thresholds(table)  # type: ignore[arg-type]


def test_a_deeply_nested_json_table_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ThresholdError, match="cannot read"):
        load_thresholds(path)


def test_an_unreadable_threshold_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("this is = = not toml")
    with pytest.raises(ThresholdError, match="cannot read"):
        load_thresholds(path)
