"""Rules as records: the packs load and list in words, bad records are refused by name, and a
new rule with a new threshold is data only — no Python changes."""

from __future__ import annotations

from pathlib import Path

import pytest
from rules_helpers import book_of

from lemlabs import cli
from lemlabs.errors import RuleDefinitionError
from lemlabs.packs import builtin_packs, default_thresholds, load_thresholds
from lemlabs.packs.listing import rules_table
from lemlabs.packs.thresholds import site_template

ALL_RULES = builtin_packs().rules
TITLES = builtin_packs().titles
PACK = """
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
        ('when = ["upper < itp.no_such_key"]', "'itp.no_such_key' is neither a threshold key"),
        ('when = ["platelet_count < 50"]', "unknown fact fields platelet_count"),
        ('when = ["upper < platelets"]', "unknown fact fields platelets"),
        ("when = [\"upper == 'low'\"]", "upper is a number, compared with 'low'"),
        ('when = ["flag < 3"]', "flag is a text, compared with 3"),
        ('when = ["upper << 50"]', "expected a value"),
        ('when = ["(upper < 50"]', "not closed"),
        ("when = []", "expected a list of expressions"),
        ('when = ["upper < 50"]\nctcae = "no_such_term"', "no CTCAE term 'no_such_term'"),
        ('when = ["upper < 50"]\nnotes = ["no_such_note"]', "no note named 'no_such_note'"),
        ("when = [\"analyte == 'platelet'\"]", "analyte 'platelet' is in no loaded pack"),
        ('when = ["flag * 2 > 1"]', "flag is a text, not a number"),
        ('when = ["upper < 50"]\nnoted = "x"', "unknown entries noted"),
        (
            "phase = \"finding\"\nfirst = [\"code == 'a' or code == 'b'\"]\n"
            'second = ["day > first.day"]',
            "cannot use 'or'",
        ),
    ],
)
def test_a_bad_record_is_refused_naming_the_problem(when: str, problem: str) -> None:
    with pytest.raises(RuleDefinitionError, match=problem) as refused:
        book_of(PACK + when + "\n")
    assert "test/rules.toml, rule 'test.rule'" in str(refused.value)  # the file and the record


def test_a_message_placeholder_must_be_a_threshold() -> None:
    pack = PACK.replace("{itp.urgent_below}", "{itp.urgent_belo}") + 'when = ["upper < 50"]\n'
    with pytest.raises(RuleDefinitionError, match=r"unknown threshold 'itp\.urgent_belo'"):
        book_of(pack)
