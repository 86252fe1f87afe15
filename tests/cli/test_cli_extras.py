"""A missing extra or an unusable option is an input error (exit 2, one line on stderr), found
before any scoring work starts; never a traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from rules_helpers import labs, patients

import lemlabs
from lemlabs import cli
from lemlabs.errors import MissingExtraError, require_extra

ROWS = [(-5, "PLT", "250", "10^9/L"), (100, "PLT", "40", "10^9/L")]

# extra → the modules to hide so that it looks uninstalled
HIDE = {
    "fhir": ("fhir.resources",),
    "parquet": ("pyarrow", "fastparquet"),
    "dask": ("dask.dataframe", "distributed", "pyarrow"),
    "plot": ("matplotlib",),
}


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    lab_path, patient_path = tmp_path / "labs.csv", tmp_path / "patients.csv"
    labs(ROWS).to_csv(lab_path, index=False)
    patients().to_csv(patient_path, index=False)
    return lab_path, patient_path


@pytest.fixture
def no_scoring(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if scoring starts (single process or Dask)."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("scoring started")

    monkeypatch.setattr(lemlabs, "score_frame", refuse)
    monkeypatch.setattr(cli, "_score_dask", refuse)


def hide(monkeypatch: pytest.MonkeyPatch, extra: str) -> None:
    """Make the extra's modules fail to import (None in sys.modules halts an import)."""
    for module in HIDE[extra]:
        monkeypatch.setitem(sys.modules, module, None)


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    code = cli.main([str(arg) for arg in args])
    return code, capsys.readouterr().err


def one_line(stderr: str) -> str:
    assert stderr.count("\n") == 1 and stderr.startswith("lemlabs: error: "), stderr
    assert "Traceback" not in stderr
    return stderr


@pytest.mark.usefixtures("no_scoring")
@pytest.mark.parametrize(
    ("extra", "args"),
    [
        ("fhir", ["-o", "{tmp}/findings.fhir.json"]),
        ("parquet", ["-o", "{tmp}/findings.parquet"]),
        ("dask", ["--dask", "-o", "{tmp}/findings.csv"]),
        ("dask", ["--dask", "--workers", "3"]),
    ],
)
def test_missing_extra_for_an_option_exits_2_before_scoring(
    inputs: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: str,
    args: list[str],
) -> None:
    hide(monkeypatch, extra)
    options = [arg.format(tmp=tmp_path) for arg in args]
    code, stderr = run(capsys, "score", inputs[0], "--patients", inputs[1], *options)
    assert code == 2
    assert f"'{extra}' extra" in one_line(stderr)
    assert f"pip install 'lemlabs[{extra}]'" in stderr
    assert not list(tmp_path.glob("findings.*"))


@pytest.mark.usefixtures("no_scoring")
@pytest.mark.parametrize(("extra", "name"), [("fhir", "obs.json"), ("fhir", "obs.ndjson")])
def test_fhir_input_without_the_extra_exits_2_before_scoring(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: str,
    name: str,
) -> None:
    path = tmp_path / name
    path.write_text("{}\n")
    hide(monkeypatch, extra)
    code, stderr = run(capsys, "score", path)
    assert code == 2 and "'fhir' extra" in one_line(stderr) and "reading FHIR" in stderr


@pytest.mark.usefixtures("no_scoring")
@pytest.mark.parametrize("command", ["score", "schedule"])
def test_parquet_input_without_the_extra_exits_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    path = tmp_path / "labs.parquet"
    path.write_bytes(b"PAR1")
    hide(monkeypatch, "parquet")
    extra_args = ["--patients", str(tmp_path / "patients.csv")] if command == "schedule" else []
    code, stderr = run(capsys, command, path, *extra_args)
    assert code == 2 and "'parquet' extra" in one_line(stderr)


@pytest.mark.usefixtures("no_scoring")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "3"], "--workers needs --dask"),
        (["--scheduler", "tcp://127.0.0.1:8786"], "--scheduler needs --dask"),
        (["-o", "{tmp}/findings.docx"], "unknown output format '.docx'"),
        (["--dask", "-o", "{tmp}/findings.xlsx"], "not Excel"),
        (["-o", "{tmp}/findings"], "unknown output format 'findings'"),
        (["--dask", "-o", "{tmp}/findings.fhir.json"], "not FHIR"),
    ],
)
def test_unusable_options_exit_2_before_scoring(
    inputs: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    if "--dask" in args:
        pytest.importorskip("dask.dataframe")
        pytest.importorskip("distributed")
    options = [arg.format(tmp=tmp_path) for arg in args]
    code, stderr = run(capsys, "score", inputs[0], *options)
    assert code == 2 and message in one_line(stderr)


def test_the_extras_installed_pass_the_check(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("pyarrow")
    out = tmp_path / "findings.parquet"
    code, stderr = run(capsys, "score", inputs[0], "--patients", inputs[1], "-o", out, "-q")
    assert code == 0, stderr
    assert out.is_file()


@pytest.mark.parametrize("extra", sorted(HIDE))
def test_require_extra_names_the_extra_and_the_command(
    monkeypatch: pytest.MonkeyPatch, extra: str
) -> None:
    hide(monkeypatch, extra)
    with pytest.raises(MissingExtraError) as raised:
        require_extra(extra, "this feature")
    assert isinstance(raised.value, lemlabs.LemlabsError) and isinstance(raised.value, ImportError)
    assert raised.value.extra == extra
    message = str(raised.value)
    assert message.startswith("this feature needs the") and "\n" not in message
    assert f"pip install '.[{extra}]'" in message


def test_plots_without_matplotlib_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, "plot")
    monkeypatch.delitem(sys.modules, "lemlabs.formats.plot", raising=False)
    with pytest.raises(ImportError, match=r"lemlabs\[plot\]"):
        import lemlabs.formats.plot  # noqa: F401


BLOCKER = textwrap.dedent(
    """
    import sys

    class Blocker:
        def __init__(self, names):
            self.names = names

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.names:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    import lemlabs  # first: pint asks whether dask is installed and would see the blocker

    sys.meta_path.insert(0, Blocker(set(sys.argv[1].split(","))))
    del sys.argv[1]

    def refuse(*args, **kwargs):
        sys.stderr.write("scoring started\\n")
        sys.exit(99)

    lemlabs.score_frame = refuse
    from lemlabs.cli import main

    sys.exit(main())
    """
)


@pytest.mark.parametrize(
    ("blocked", "args", "extra"),
    [
        ("fhir", ["-o", "{tmp}/findings.fhir.json"], "fhir"),
        ("dask,distributed", ["--dask"], "dask"),
    ],
)
def test_command_line_with_an_import_blocked_exits_2(
    inputs: tuple[Path, Path], tmp_path: Path, blocked: str, args: list[str], extra: str
) -> None:
    options = [arg.format(tmp=tmp_path) for arg in args]
    done = subprocess.run(
        [sys.executable, "-c", BLOCKER, blocked, "score", str(inputs[0]), *options],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert f"'{extra}' extra" in one_line(done.stderr)


# each extra alone: the feature it installs works with every other extra's modules hidden
EXTRA_MODULES = {
    "plot": {"matplotlib"},
    "report": {"jinja2", "matplotlib"},
    "fhir": {"fhir"},
    "parquet": {"pyarrow", "fastparquet"},
    "excel": {"openpyxl"},
    "xpt": {"pyreadstat"},
    "dask": {"dask", "distributed", "pyarrow"},
}
RUNNER = BLOCKER.split("def refuse", 1)[0] + "from lemlabs.cli import main\n\nsys.exit(main())\n"


@pytest.mark.parametrize(
    ("extra", "args", "output"),
    [
        ("", ["score", "{labs}", "-o", "{tmp}/f.csv"], "f.csv"),
        ("report", ["report", "{labs}", "-o", "{tmp}/r.html", "-q"], "r.html"),
        ("excel", ["score", "{labs}", "-o", "{tmp}/f.xlsx"], "f.xlsx"),
        ("fhir", ["score", "{labs}", "-o", "{tmp}/f.fhir.json"], "f.fhir.json"),
        ("parquet", ["score", "{labs}", "-o", "{tmp}/f.parquet"], "f.parquet"),
        ("xpt", ["score", "{labs}", "--adlb", "-o", "{tmp}/adlb.xpt"], "adlb.xpt"),
    ],
)
def test_each_extra_alone_runs_its_feature(
    inputs: tuple[Path, Path], tmp_path: Path, extra: str, args: list[str], output: str
) -> None:
    """``pip install '.[report]'`` then ``lemlabs report``: no module of another extra is
    needed (the report once imported the Excel writer and failed naming the wrong extra)."""
    own = EXTRA_MODULES.get(extra, set())
    blocked = set().union(*EXTRA_MODULES.values()) - own
    options = [arg.format(tmp=tmp_path, labs=inputs[0]) for arg in args]
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, ",".join(sorted(blocked)), *options],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / output).stat().st_size > 0
