"""Rules as records: the packs load and list in words, bad records are refused by name, and a
new rule with a new threshold is data only — no Python changes."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from rules_helpers import labs, patients

import lemlabs
from lemlabs import cli
from lemlabs.engine.rules import PACKS, read_packs
from lemlabs.errors import RuleDefinitionError
from lemlabs.engine import rules as records
from lemlabs.packs import ALL_RULES, TITLES, thresholds
from lemlabs.packs.listing import rules_table
from lemlabs.packs.thresholds import default_thresholds, load_thresholds, site_template

KEYS = set(default_thresholds())
PACK = """
condition = "itp"
source = "a test pack"
[titles]
"itp.suspected" = "a test"
[[rule]]
id = "test.rule"
code = "itp.suspected"
severity = "action"
message = "test {itp.urgent_below}"
action = "test"
"""


def test_every_rule_is_listed_in_words_with_its_effective_thresholds() -> None:
    site = load_thresholds({"itp.urgent_below": {"value": 40.0, "source": "Site protocol 9"}})
    table = rules_table(site)
    assert list(table["id"]) == [rule.id for rule in ALL_RULES]
    urgent = table.set_index("id").loc["itp.suspected.urgent"]
    assert urgent["when"] == "analyte is 'platelets' and upper < 40 (itp.urgent_below)"
    assert urgent["message"].startswith("Platelet count below 40 ×10⁹/L")
    assert "Site protocol 9" in urgent["sources"]
    assert set(table["code"]) <= set(TITLES)


def test_the_command_line_lists_every_rule(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["rules", "--markdown"]) == 0
    text = capsys.readouterr().out
    assert all(f"| {rule.id} |" in text for rule in ALL_RULES)


def test_the_threshold_dump_is_a_site_file_that_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    assert cli.main(["thresholds", "--dump", "-o", str(path)]) == 0
    assert load_thresholds(path).fingerprint() == default_thresholds().fingerprint()
    assert site_template(default_thresholds()) == path.read_text("utf-8")


@pytest.mark.parametrize(
    ("when", "problem"),
    [
        ('when = ["upper < itp.no_such_key"]', "neither a threshold key nor a quoted text"),
        ('when = ["platelet_count < 50"]', "unknown fact fields platelet_count"),
        ('when = ["upper < platelets"]', "neither a threshold key nor a quoted text"),
        ('when = ["upper << 50"]', "expected a value"),
        ('when = ["(upper < 50"]', "not closed"),
        ("when = []", "expected a list of expressions"),
        ('when = ["upper < 50"]\ngrade = "no_such_grade"', "no function named 'no_such_grade'"),
        ('when = ["upper < 50"]\nnoted = "x"', "unknown entries noted"),
        (
            "phase = \"finding\"\nfirst = [\"code == 'a' or code == 'b'\"]\n"
            'second = ["day > first.day"]',
            "cannot use 'or'",
        ),
    ],
)
def test_a_bad_record_is_refused_naming_the_problem(when: str, problem: str) -> None:
    with pytest.raises(RuleDefinitionError, match=problem):
        read_packs([PACK + when + "\n"], KEYS)


def test_a_message_placeholder_must_be_a_threshold() -> None:
    pack = PACK.replace("{itp.urgent_below}", "{itp.urgent_belo}") + 'when = ["upper < 50"]\n'
    with pytest.raises(RuleDefinitionError, match=r"unknown thresholds itp\.urgent_belo"):
        read_packs([pack], KEYS)


@pytest.fixture
def editable_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Copies of the shipped packs and threshold table, loaded instead of the package's."""
    for name in PACKS:
        shutil.copy(records.pack_path(name), tmp_path / f"{name}.toml")
    shutil.copy(thresholds.table_path(), tmp_path / "thresholds.toml")
    monkeypatch.setattr(records, "pack_path", lambda name: tmp_path / f"{name}.toml")
    monkeypatch.setattr(thresholds, "table_path", lambda: tmp_path / "thresholds.toml")
    yield tmp_path
    monkeypatch.undo()
    records.rule_book.cache_clear()
    thresholds.default_thresholds.cache_clear()


def test_a_new_rule_with_a_new_threshold_needs_no_python(editable_rules: Path) -> None:
    with (editable_rules / "thresholds.toml").open("a", encoding="utf-8") as table:
        table.write(
            '\n[itp.profound_below]\nvalue = 10.0\nunit = "10^9/L"\ncompare = "<"\n'
            'source = "Site protocol 12: counts below 10 need a haematologist today"\n'
        )
    pack = editable_rules / "platelets.toml"
    text = pack.read_text("utf-8").replace(
        "[titles]\n", '[titles]\n"itp.profound" = "Profound thrombocytopenia"\n'
    )
    pack.write_text(
        text + '\n[[rule]]\nid = "itp.profound.urgent"\ncode = "itp.profound"\n'
        'severity = "urgent"\nworst = "lowest"\n'
        'when = ["analyte == \'platelets\'", "upper < itp.profound_below"]\n'
        'message = "Platelet count below {itp.profound_below} ×10⁹/L."\n'
        'action = "Call the haematologist on duty now."\n',
        "utf-8",
    )
    records.rule_book.cache_clear()
    thresholds.default_thresholds.cache_clear()
    report = lemlabs.score_frame(labs([(100, "PLT", "8", "10^9/L")]), patients())
    (finding,) = [f for f in report.finding_list if f.code == "itp.profound"]
    assert finding.rule_id == "itp.profound.urgent"
    assert finding.message.startswith("Platelet count below 10 ×10⁹/L.")
    assert "Site protocol 12" in finding.source
