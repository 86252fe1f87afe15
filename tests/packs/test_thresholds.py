"""The threshold table: every entry sourced, overrides validated, rules_version tracks content."""

from __future__ import annotations

import json
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rules_helpers import findings, labs, patients

import lemlabs
from lemlabs.errors import ThresholdError
from lemlabs.packs import Thresholds, builtin_packs, default_thresholds, load_thresholds


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


def test_a_threshold_file_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_bytes('\ufeff[itp.urgent_below]\nvalue = 25\nsource = "site"\n'.encode())
    assert lemlabs.load_thresholds(path)["itp.urgent_below"] == 25


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


# A site value written in another unit: (key, value, unit, the value in the key's unit or the
# reason it is refused). Factors from the clinical text: 1 /µL = 10⁻³ ×10⁹/L; creatinine
# 1 mg/dL = 88.42 µmol/L (113.12 g/mol); 1 µIU/mL = 1 mIU/L; UPCR 1 mg/g = 0.1131 mg/mmol.
SITE_UNITS = [
    ("itp.suspected_below", 100_000, "/uL", 100.0),
    ("itp.suspected_below", 100, "K/uL", 100.0),
    ("itp.urgent_below", 50_000, "/mm3", 50.0),
    ("renal.creatinine_urgent_umol", 4.0, "mg/dL", pytest.approx(353.6, abs=0.05)),
    ("renal.aki_rise_umol", 0.3, "mg/dL", pytest.approx(26.5, abs=0.05)),
    ("thyroid.tsh_action_at", 10, "uIU/mL", 10.0),
    ("renal.upcr_action_at", 500, "mg/g", pytest.approx(56.5, abs=0.1)),
    ("episode.gap_days", 13, "weeks", 91),
    ("renal.aki_window_hours", 2, "days", 48),
    ("itp.suspected_below", 100, "bananas", "unknown unit 'bananas'"),
    ("itp.suspected_below", 100, "mg/dL", "wrong dimension"),
    ("renal.creatinine_urgent_umol", 4.0, "mmol", "wrong dimension"),
    ("episode.gap_days", 1.5, "weeks", "10.5 days is not a whole number"),
    ("episode.gap_days", 2, "kg", "does not convert to days"),
    ("renal.protein_watch_grade", 1, "grade", "is not 'dipstick grade'"),
    ("label.monitoring_months", 4, "years", "is not 'months after the last infusion'"),
    ("itp.suspected_below", 100_000, "/L", "outside 20–150"),  # 10⁻⁴ ×10⁹/L
    ("itp.suspected_below", 100, "x" * 41, "too long"),
]


@pytest.mark.parametrize(("key", "value", "unit", "expected"), SITE_UNITS)
def test_a_site_value_in_another_unit_is_converted_or_refused_by_name(
    key: str, value: float, unit: str, expected: object
) -> None:
    table = {key: {"value": value, "unit": unit, "source": "Site protocol 9"}}
    if isinstance(expected, str):
        with pytest.raises(ThresholdError, match=rf"threshold '{key}': .*{re.escape(expected)}"):
            load_thresholds(table)
        return
    entry = load_thresholds(table).entry(key)
    assert entry.value == expected
    assert entry.unit == default_thresholds().entry(key).unit
    assert entry.source == f"Site protocol 9 [given as {value:g} {unit}]"


def test_a_platelet_cut_off_given_per_microlitre_scores_as_the_default() -> None:
    """The probe's case: 100 000 /µL is 100 ×10⁹/L, so a normal count of 250 raises nothing."""
    labs = pd.DataFrame(
        {
            "patient_id": ["P1", "P1"],
            "collected_at": ["2021-01-04", "2021-02-01"],
            "test": ["PLT", "PLT"],
            "value": ["250", "90"],
            "unit": ["10^9/L", "10^9/L"],
        }
    )
    site = {"itp.suspected_below": {"value": 100_000, "unit": "/uL", "source": "Site"}}
    codes = list(lemlabs.score_frame(labs, thresholds=site).findings["code"])
    assert codes == list(lemlabs.score_frame(labs).findings["code"]) == ["itp.suspected"]


def test_every_number_has_a_range_and_its_default_lies_in_it() -> None:
    table = default_thresholds()
    for key in table:
        entry = table.entry(key)
        if isinstance(entry.value, str):
            continue
        assert entry.range is not None, key
        assert entry.range[0] <= entry.value <= entry.range[1], key


@pytest.mark.parametrize(
    "key", [key for key in default_thresholds() if not isinstance(default_thresholds()[key], str)]
)
def test_no_key_takes_a_negative_value_and_cut_offs_take_no_zero(key: str) -> None:
    """The probe found 16 keys taking -1 and 23 taking 0: a zero is only a window or a gap."""
    low = default_thresholds().entry(key).range[0]  # type: ignore[index]
    assert low >= 0
    with pytest.raises(ThresholdError, match="outside"):
        load_thresholds({key: {"value": -1, "source": "probe"}})
    if low > 0:
        with pytest.raises(ThresholdError, match="outside"):
            load_thresholds({key: {"value": 0, "source": "probe"}})
    else:
        assert key.endswith("_days"), key  # zero days: the same day


def test_a_pack_number_without_a_range_is_refused_by_key() -> None:
    with pytest.raises(ThresholdError, match=r"'site\.x': a number needs a range"):
        Thresholds.from_table({"site": {"x": {"value": 3.0, "source": "s"}}})


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**15), 10**15),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
    st.lists(st.integers(), max_size=3),
)


@settings(deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(sorted(default_thresholds())),
        st.fixed_dictionaries(
            {"value": _VALUES, "source": st.one_of(st.text(max_size=5), _VALUES)},
            optional={"unit": st.one_of(st.text(max_size=12), _VALUES), "compare": _VALUES},
        ),
        max_size=4,
    )
)
def test_an_arbitrary_site_table_is_a_run_or_a_threshold_error(table: dict[str, Any]) -> None:
    try:
        site = load_thresholds(table)
    except ThresholdError:
        return
    for key in site:
        entry = site.entry(key)
        if entry.range is not None:
            assert entry.range[0] <= entry.value <= entry.range[1]
