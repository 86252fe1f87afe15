"""``lemlabs --help`` and each subcommand's help, against stored snapshots (plain text, an example
per subcommand, the exit codes). Regenerate with LEMLABS_UPDATE_SNAPSHOTS=1 after a deliberate
change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lemlabs import cli

SNAPSHOTS = Path(__file__).parents[1] / "snapshots"


def help_text(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> str:
    monkeypatch.setenv("COLUMNS", "100")  # argparse wraps to the terminal's width
    monkeypatch.setenv("NO_COLOR", "1")  # Python 3.14's argparse colours help on terminals
    with pytest.raises(SystemExit) as exited:
        cli.main([*args, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(
    "command", ["main", "score", "report", "demo", "schedule", "rules", "thresholds"]
)
def test_help_matches_the_snapshot(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    text = help_text(monkeypatch, capsys, *([] if command == "main" else [command]))
    snapshot = SNAPSHOTS / f"help_{command}.txt"
    if os.environ.get("LEMLABS_UPDATE_SNAPSHOTS"):
        snapshot.write_text(text, "utf-8")
    assert text == snapshot.read_text("utf-8")


@pytest.mark.parametrize(
    "command", ["main", "score", "report", "demo", "schedule", "rules", "thresholds"]
)
def test_help_is_plain_text_with_examples_and_exit_codes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    text = help_text(monkeypatch, capsys, *([] if command == "main" else [command]))
    assert "`" not in text and "\x1b" not in text
    assert "examples:\n  lemlabs " in text
    assert (
        "exit status:" in text
        and "  2  unusable input" in text
        and "install command" in text
        and "  3  with --fail-on" in text
    )
