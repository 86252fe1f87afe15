"""A site's own packs: folders of data beside the built-in ones, no Python. The README's example
pack scores its written case; every built-in pack loads from outside the package like a site's;
a pack that contradicts another, or names what no pack declares, is refused by name."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import lemlabs
from lemlabs import cli
from lemlabs.errors import PackError, RuleDefinitionError
from lemlabs.packs import builtin_names, load_packs
from lemlabs.packs.loader import read_pack

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "docs" / "site-pack" / "muscle"
BUILTIN = Path(lemlabs.__file__).parent / "rules"


def test_the_readme_shows_the_example_pack_file_by_file() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    section = readme.split("## Adding an analyte", 1)[1].split("\n## ", 1)[0]
    shown = dict(re.findall(r"`(\w+\.toml)`:\n\n```toml\n(.*?)```", section, re.S))
    files = {path.name: path.read_text("utf-8") for path in EXAMPLE.glob("*.toml")}
    assert shown == files


def _ck(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [(p, day, "CK", value, unit) for p, day, value, unit in rows],
        columns=["patient_id", "collected_at", "test", "value", "unit"],
    )


CASE = [  # ULN 200 U/L; baselines of 100 U/L before the course on 2020-01-10
    ("P1", "2020-01-01", "100", "U/L"),
    ("P1", "2020-03-01", "1000", "U/L"),  # exactly 5 × ULN: not above it, above 2.5 ×: watch
    ("P2", "2020-01-01", "100", "U/L"),
    ("P2", "2020-03-01", "1000.1", "IU/L"),  # just above 5 × ULN: action (IU/L read as U/L)
    ("P3", "2020-01-01", "100", "U/L"),
    ("P3", "2020-03-01", "300", "U/L"),  # exactly 3 × baseline: watch
    ("P4", "2020-01-01", "100", "U/L"),
    ("P4", "2020-03-01", "299.9", "U/L"),  # just below 3 × baseline and 2.5 × ULN: nothing
    ("P5", "2020-03-01", "500", "U/L"),  # exactly 2.5 × ULN, no earlier baseline: nothing
    ("P6", "2020-03-01", "8.3335", "ukat/L"),  # 500.01 U/L, just above 2.5 × ULN: watch
]


def test_the_example_site_pack_scores_its_written_case_from_outside_the_package() -> None:
    people = pd.DataFrame({"patient_id": [f"P{n}" for n in range(1, 7)]}).assign(
        course_dates="2020-01-10"
    )
    report = lemlabs.score_frame(_ck(CASE), people, packs=[EXAMPLE])
    found = {
        (row.patient_id, row.code, str(row.severity), row.date.date().isoformat())
        for row in report.findings.itertuples()
    }
    assert found == {
        ("P1", "muscle.ck_raised", "watch", "2020-03-01"),
        ("P2", "muscle.ck_raised", "action", "2020-03-01"),
        ("P3", "muscle.ck_raised", "watch", "2020-03-01"),
        ("P6", "muscle.ck_raised", "watch", "2020-03-01"),
    }
    assert report.issues.empty and report.summary["rows_not_scored"] == 0
    (finding,) = [f for f in report.finding_list if f.patient_id == "P3"]
    assert finding.evidence[0].baseline == 100.0  # its rule reads the baseline: evidence shows it
    assert "Site protocol 14" in finding.source and finding.rules_version.startswith("0.")
    without = lemlabs.score_frame(_ck(CASE), people)  # without the pack: not scored, by name
    assert without.findings.empty
    assert without.summary["not_scored_by_test"]["CK"]["rows"] == len(CASE)


def test_the_command_line_takes_a_site_pack(capsys: pytest.CaptureFixture[str], tmp_path: Path):  # type: ignore[no-untyped-def]
    labs = tmp_path / "labs.csv"
    _ck(CASE).to_csv(labs, index=False)
    out = tmp_path / "findings.csv"
    assert cli.main(["score", str(labs), "--pack", str(EXAMPLE), "-o", str(out), "-q"]) == 0
    assert set(pd.read_csv(out)["code"]) == {"muscle.ck_raised"}
    assert cli.main(["rules", "--pack", str(EXAMPLE)]) == 0
    assert "muscle.ck_raised.action" in capsys.readouterr().out
    assert cli.main(["score", str(labs), "--pack", str(tmp_path / "nowhere"), "-q"]) == 2
    assert "no such pack folder" in capsys.readouterr().err


def _findings(packs: object = None) -> list[dict[str, object]]:
    from lemlabs import examples

    report = lemlabs.score_frame(
        examples.path("labs"), examples.path("patients"), packs=packs, as_of="2023-06-01"
    )
    return [
        {k: v for k, v in f.to_dict().items() if k != "rules_version"} for f in report.finding_list
    ]


@pytest.mark.parametrize("name", builtin_names())
def test_a_built_in_pack_moved_out_of_the_package_gives_the_same_findings(
    name: str, tmp_path: Path
) -> None:
    every = _findings()
    moved = shutil.copytree(BUILTIN / name, tmp_path / name)
    others = [other for other in builtin_names() if other != name]
    assert _findings(load_packs([moved], builtin=others)) == every
    gone = _needing(name)  # the pack and those that need it (their rules read its analytes)
    kept_packs = [other for other in builtin_names() if other not in gone]
    without = _findings(load_packs(builtin=kept_packs))
    conditions = {read_pack(BUILTIN / pack).condition for pack in gone}
    asked = [group.asks_for for pack in gone for group in read_pack(BUILTIN / pack).schedule]
    kept = [
        f
        for f in every
        if f["condition"] not in conditions  # their findings go, and the overdue tests of
        and not any(f" {g[0].upper()}{g[1:]}: " in str(f["message"]) for g in asked)  # groups
    ]
    assert without == kept
    (condition,) = {read_pack(BUILTIN / name).condition}
    silent = {"monitoring", "ttp", "haemophilia", "hlh"}  # no finding in the example cohort
    assert any(f["condition"] == condition for f in every) or name in silent


def _needing(name: str) -> set[str]:
    """``name`` and every built-in pack that needs it, directly or through another."""
    gone = {name}
    while True:
        more = {
            other
            for other in builtin_names()
            if set(read_pack(BUILTIN / other).needs) & gone and other not in gone
        }
        if not more:
            return gone
        gone |= more


def test_a_pack_loaded_without_a_pack_it_needs_is_refused_by_name() -> None:
    with pytest.raises(PackError, match="pack 'ttp' needs pack 'cytopenia'"):
        load_packs(builtin=["itp", "ttp"])


def _site(tmp_path: Path, **files: str) -> Path:
    folder = tmp_path / "site"
    folder.mkdir(exist_ok=True)
    files.setdefault("pack.toml", 'condition = "site"\nsource = "a site"\n')
    for name, text in files.items():
        (folder / f"{name}" if name.endswith(".toml") else folder / f"{name}.toml").write_text(
            text, "utf-8"
        )
    return folder


ANALYTE = """[ck]
label = "creatine kinase"
kind = "quantitative"
unit = "U/L"
specimen = "blood"
loinc = ["2157-6"]
aliases = ["ck"]
ref = { high = 200.0 }
ref_source = "x"
"""


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"analytes": ANALYTE.replace("[ck]", "[platelets]")},
            r"site/analytes.toml: analyte 'platelets' is defined by pack 'itp' already",
        ),
        (
            {"analytes": ANALYTE.replace('"2157-6"', '"777-3"')},
            r"site/analytes.toml, analyte 'ck': code '777-3' is analyte 'platelets''s already",
        ),
        (
            {"thresholds": '[itp.urgent_below]\nvalue = 40.0\nrange = [10, 90]\nsource = "x"\n'},
            r"site/thresholds.toml: threshold 'itp.urgent_below' is defined in "
            r"rules/itp/thresholds.toml already",
        ),
        (
            {"analytes": ANALYTE.replace('unit = "U/L"', 'unit = "U/L"\nunits = ["mg/dL"]')},
            r"site/analytes.toml, analyte 'ck', units: unit 'mg/dL' has the wrong dimension",
        ),
        (
            {
                "rules": '[titles]\n"site.x" = "x"\n[[rule]]\nid = "site.x"\ncode = "site.x"\n'
                'severity = "watch"\nwhen = ["uper > 3"]\nmessage = "m"\naction = "a"\n'
            },
            r"site/rules.toml, rule 'site.x', when: unknown fact fields uper",
        ),
        (
            {
                "rules": '[titles]\n"site.x" = "x"\n[[rule]]\nid = "site.x"\ncode = "site.x"\n'
                'severity = "watch"\nwhen = ["upper > 3"]\nctcae = "ck"\nmessage = "m"\n'
                'action = "a"\n'
            },
            r"site/rules.toml, rule 'site.x': ctcae: no CTCAE term 'ck'",
        ),
        (
            {
                "rules": '[titles]\n"site.x" = "x"\n[[rule]]\nid = "itp.suspected.urgent"\n'
                'code = "site.x"\nseverity = "watch"\nwhen = ["upper > 3"]\nmessage = "m"\n'
                'action = "a"\n'
            },
            r"rule ids used twice: itp\.suspected\.urgent",
        ),
        (
            {"rules": '[titles]\n"itp.suspected" = "again"\n'},
            r"site/rules.toml, \[titles\]: code 'itp.suspected' has a title already",
        ),
        (
            {"pack.toml": 'condition = "itp"\nsource = "x"\n'},
            r"site/pack.toml: condition 'itp' is pack 'itp''s already",
        ),
        (
            {"thresholds": '[site.x]\nvalue = 40.0\nsource = "x"\n'},
            r"site/thresholds.toml: threshold 'site.x': a number needs a range",
        ),
        (
            {
                "thresholds": '[site.x]\nvalue = 4\nunit = "mg/dL"\nanalyte = "creatinine"\n'
                'range = [1, 9]\nsource = "x"\n'
            },
            r"site/thresholds.toml: threshold 'site.x': unit 'mg/dL' is not analyte 'creatinine''s",
        ),
        (
            {
                "rules": '[[feature]]\nname = "a"\nkind = "window"\nanalytes = ["platelets"]\n'
                'of = ["platelets"]\nbefore = 1\nafter = 0\npick = "nearest"\n'
                'take = { r = "b_v" }\n'
                '[[feature]]\nname = "b"\nkind = "window"\nanalytes = ["platelets"]\n'
                'of = ["platelets"]\n'
                'before = 1\nafter = 0\npick = "nearest"\ntake = { v = "value" }\n'
            },
            r"site/rules.toml, feature 'a': take: 'b_v' reads b_v; it may read the other "
            r"result's own numbers and those of the features above it",
        ),
        (
            {"rules": '[notes.n]\nwhen = "value > 1"\ntext = "t"\nof = "best"\n'},
            r"site/rules.toml, \[notes.n\]: of: 'each' \(result\) or 'worst'",
        ),
        (
            {"rules": '[notes.n]\nwhen = "value > 1"\ntext = "t"\non = ["itp.nothing"]\n'},
            r"note 'n': on: no rule has code 'itp.nothing'",
        ),
        (
            {
                "rules": '[titles]\n"site.x" = "x"\n[[rule]]\nid = "site.x"\ncode = "site.x"\n'
                'severity = "watch"\nwhen = ["upper > 3"]\nmessage = "m"\naction = "a"\n'
                'supersedes = ["itp.nothing"]\n'
            },
            r"rule 'site.x': supersedes 'itp.nothing': no such code",
        ),
        (
            {"pack.toml": 'condition = "site"\nsource = "x"\nexplains = ["gout"]\n'},
            r"site/pack.toml: explains 'gout', which is no loaded pack's condition",
        ),
        (
            {"pack.toml": 'condition = "site"\nsource = "x"\nneeds = ["gout"]\n'},
            r"site/pack.toml: pack 'site' needs pack 'gout'",
        ),
        (
            {"analytes": ANALYTE + 'unscored_units = ["%"]\n'},
            r"site/analytes.toml, analyte 'ck', unscored_units: a table of spelling = reason",
        ),
        ({"rule.toml": ""}, r"site/rule.toml: not a pack file"),
        ({"rules": "[titles\n"}, r"site/rules.toml: not valid TOML"),
        ({"pack.toml": 'condition = "site"\n'}, r"site/pack.toml: 'source' .* is missing"),
    ],
)
def test_a_pack_that_contradicts_or_misnames_is_refused_by_file_record_and_key(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    folder = _site(tmp_path, **files)
    with pytest.raises(RuleDefinitionError, match=message):
        load_packs([folder])
    assert isinstance(_error(folder), PackError | RuleDefinitionError)
    assert lemlabs.score_frame(_ck(CASE[:1])).summary["rows_in"] == 1  # the built-ins still work


def _error(folder: Path) -> Exception:
    try:
        load_packs([folder])
    except Exception as error:
        return error
    raise AssertionError("loaded")


def test_import_lemlabs_reads_no_pack() -> None:
    code = (
        "import lemlabs, lemlabs.packs as p; "
        "assert p._builtin.cache_info().currsize == 0, 'a pack was read at import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
