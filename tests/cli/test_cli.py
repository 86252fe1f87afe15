"""The lemlabs command, run as a user would (subprocess)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from rules_helpers import labs, patients

import lemlabs
from lemlabs.formats.export import read_findings

ROWS = [
    (-5, "PLT", "250", "10^9/L"),
    (100, "PLT", "40", "10^9/L"),
    (100, "TSH", "0.01", "mIU/L"),
    (103, "Free T4", "30", "pmol/L"),
    (120, "U-Blood", "2+", ""),
    (130, "Hb", "12", "g/dL"),
    (140, "PLT", "oops", "10^9/L"),
]


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lemlabs", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    lab_path, patient_path = tmp_path / "labs.csv", tmp_path / "patients.csv"
    labs(ROWS).to_csv(lab_path, index=False)
    patients().to_csv(patient_path, index=False)
    return lab_path, patient_path


@pytest.mark.parametrize("suffix", [".csv", ".json", ".jsonl"])
def test_each_output_format_round_trips(
    inputs: tuple[Path, Path], tmp_path: Path, suffix: str
) -> None:
    lab_path, patient_path = inputs
    out = tmp_path / f"findings{suffix}"
    issues = tmp_path / "issues.csv"
    done = run("score", lab_path, "--patients", patient_path, "-o", out, "--issues", issues, "-q")
    assert done.returncode == 0, done.stderr
    expected = [f.to_dict() for f in lemlabs.score_frame(lab_path, patient_path).finding_list]
    assert read_findings(out) == expected and expected
    assert "oops" in issues.read_text()


def test_score_says_what_it_wrote_unless_quiet(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lemlabs.cli import main

    out, issues = tmp_path / "findings.csv", tmp_path / "issues.csv"
    args = ["score", str(inputs[0]), "--patients", str(inputs[1]), "-o", str(out)]
    assert main([*args, "--issues", str(issues)]) == 0
    found = len(lemlabs.score_frame(inputs[0], inputs[1]).finding_list)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"wrote {out} ({found} findings, ") and lines[0].endswith(" KB)")
    assert lines[1].startswith(f"wrote {issues} (1 data issue, ")
    assert main([*args, "-q"]) == 0
    assert capsys.readouterr().out == ""


def test_the_printed_data_issues_show_the_commonest_kinds_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lemlabs.cli import main

    rows = [(0, "PLT", "", "10^9/L")] + [(d, "PLT", f"bad{d}", "10^9/L") for d in range(3)]
    rows += [(d, "PLT", "5", "furlongs") for d in range(5, 7)] + [(9, "PLT", "250", "10^9/L")]
    path = tmp_path / "labs.csv"
    labs(rows).to_csv(path, index=False)
    assert main(["score", str(path), "-q"]) == 0
    out = capsys.readouterr().out
    lines = out[out.index("data issues:") :].splitlines()
    assert lines[0].startswith("data issues: 6 rows, 3 kinds (the 3 commonest;")
    assert lines[1].split() == ["3", "value:", "unreadable", "value", "'…'", "(e.g.", "row", "1,",
                                "'bad0')"]  # fmt: skip
    assert lines[2].lstrip().startswith("2  unit: unit '…' has the wrong dimension")
    assert lines[3].lstrip().startswith("1  ")


def test_without_output_a_summary_is_printed(inputs: tuple[Path, Path]) -> None:
    done = run("score", inputs[0], "--patients", inputs[1])
    assert done.returncode == 0
    assert "findings by condition and severity" in done.stdout
    assert "itp.suspected" in done.stdout and "rejected 1" in done.stdout


def test_missing_file_exits_2_with_one_line(tmp_path: Path) -> None:
    done = run("score", tmp_path / "absent.csv")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "absent.csv" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_column_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "labs.csv"
    path.write_text("patient_id,collected_at,test,value\nP1,2021-01-01,PLT,100\n")
    done = run("score", path)
    assert done.returncode == 2 and "'unit' is missing" in done.stderr
    assert "Traceback" not in done.stderr


def test_empty_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "labs.csv"
    path.write_text("")
    done = run("score", path)
    assert done.returncode == 2 and "empty" in done.stderr


def test_bad_threshold_file_exits_2(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    table = tmp_path / "site.toml"
    table.write_text('[itp.suspected_belo]\nvalue = 120\nsource = "site"\n')
    done = run("score", inputs[0], "--thresholds", table)
    assert done.returncode == 2 and "unknown keys itp.suspected_belo" in done.stderr


def test_unknown_output_format_exits_2(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    done = run("score", inputs[0], "-o", tmp_path / "findings.docx")
    assert done.returncode == 2 and "unknown output format" in done.stderr


@pytest.mark.parametrize(("level", "code"), [("urgent", 3), ("action", 3), ("info", 3)])
def test_fail_on_exits_3_when_a_finding_reaches_the_severity(
    inputs: tuple[Path, Path], level: str, code: int
) -> None:
    assert run("score", inputs[0], "--patients", inputs[1], "--fail-on", level).returncode == code


def test_fail_on_stays_0_below_the_severity(tmp_path: Path) -> None:
    path = tmp_path / "labs.csv"
    labs([(100, "PLT", "140", "10^9/L")]).to_csv(path, index=False)
    assert run("score", path, "--fail-on", "action").returncode == 0
    assert run("score", path, "--fail-on", "watch").returncode == 3
    assert run("score", path, "--fail-on", "severe").returncode == 2


def test_version() -> None:
    done = run("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"lemlabs {lemlabs.__version__}"


def test_demo_scores_the_bundled_cohort() -> None:
    done = run("demo")
    assert done.returncode == 0, done.stderr
    assert "most severe findings" in done.stdout and "anti_gbm.creatinine_rise" in done.stdout


# A run in which no row could be used is an input error, not "nothing found": (rows, exit code,
# the start of the one line on stderr). Outputs and --issues are written first.
NO_ROW_USED = [
    (
        [("P1", "03/05/2021", "PLT", "40"), ("P2", "03/06/2021", "PLT", "40")],
        2,
        "lemlabs: error: no row could be used: all 2 rows were rejected, most often 'not an "
        "ISO date' in collected_at (2 rows, e.g. '03/05/2021'); dates must be ISO 8601",
    ),
    (
        [("P1", "2021-03-05", "PLT", "abc")],
        2,
        'lemlabs: error: no row could be used: all 1 row was rejected, most often "unreadable '
        "value 'abc'\" in value (1 row, e.g. 'abc'); values are numbers",
    ),
    ([("P1", "2021-03-05", "PLT", "abc"), ("P1", "2021-03-06", "PLT", "200")], 0, ""),
    ([("P1", "2021-03-05", "Sodium", "140")], 0, ""),  # not scored is not rejected
]


@pytest.mark.parametrize(("rows", "code", "line"), NO_ROW_USED)
@pytest.mark.parametrize("command", ["score", "report"])
def test_a_run_where_no_row_could_be_used_exits_2_naming_the_commonest_reason(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    rows: list[tuple[str, ...]],
    code: int,
    line: str,
    command: str,
) -> None:
    from lemlabs import cli

    path = tmp_path / "labs.csv"
    frame = pd.DataFrame(rows, columns=["patient_id", "collected_at", "test", "value"])
    frame.assign(unit="10^9/L").to_csv(path, index=False)
    out = tmp_path / ("out.html" if command == "report" else "out.csv")
    extra = ["--issues", str(tmp_path / "issues.csv")] if command == "score" else []
    assert cli.main([command, str(path), "-q", "-o", str(out), *extra]) == code
    err = capsys.readouterr().err
    assert err.startswith(line) and err.count("\n") == (1 if line else 0), err
    assert out.exists()
    if code == 2 and command == "score":  # every row is in the issues file
        assert len(pd.read_csv(tmp_path / "issues.csv")) == len(rows)


def test_a_reader_that_stops_reading_ends_the_run_quietly() -> None:
    """``lemlabs rules | head``: a closed pipe is not an error to print."""
    process = subprocess.Popen(
        [sys.executable, "-m", "lemlabs", "rules"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before lemlabs writes its first line
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0 and err == ""


def test_running_out_of_memory_is_one_line_naming_the_largest_patient(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A patient of millions of rows can exhaust memory (a MemoryError traceback before):
    simulated here by the context stage failing as an allocation would."""
    import lemlabs.pipeline
    from lemlabs.cli import main

    def exhausted(*args: object, **kwargs: object) -> None:
        raise MemoryError

    rows = [(d, "PLT", "250", "10^9/L") for d in range(5)]
    frame = pd.concat([labs(rows, patient="BIG"), labs(rows[:2], patient="small")])
    path = tmp_path / "labs.csv"
    frame.to_csv(path, index=False)
    monkeypatch.setattr(lemlabs.pipeline, "add_context", exhausted)
    with pytest.raises(lemlabs.ResourceError, match=r"the largest patient, 'BIG', has 5 rows"):
        lemlabs.score_frame(path)
    assert main(["score", str(path), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lemlabs: error: out of memory scoring 7 rows;") and err.count("\n") == 1
