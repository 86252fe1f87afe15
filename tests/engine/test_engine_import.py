"""When durable-rules cannot load, ``import lemlabs`` raises one LemlabsError that names the cause
and the reinstall command; never a bare ``undefined symbol``. Simulated in a subprocess with an
import hook, since the real failure needs a durable-rules built without the Python 3.13 fix."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from lemlabs.errors import DURABLE_CPPFLAGS

PROBE = textwrap.dedent(
    """
    import json, sys

    BLOCKED, MESSAGE = sys.argv[1], sys.argv[2]

    class Broken:
        def find_spec(self, name, path=None, target=None):
            if name == BLOCKED:
                missing = MESSAGE.startswith("No module named")
                raise (ModuleNotFoundError if missing else ImportError)(MESSAGE, name=name)
            return None

    sys.meta_path.insert(0, Broken())
    try:
        import lemlabs
    except Exception as error:
        from lemlabs.errors import EngineUnavailableError, LemlabsError
        print(json.dumps({
            "type": type(error).__name__,
            "lemlabs_error": isinstance(error, LemlabsError),
            "engine_error": isinstance(error, EngineUnavailableError),
            "import_error": isinstance(error, ImportError),
            "message": str(error),
        }))
    else:
        print(json.dumps({"type": None}))
    """
)

SYMBOL = (
    "/venv/lib/python3.13/site-packages/durable_rules_engine.cpython-313-x86_64-linux-gnu.so: "
    "undefined symbol: PyEval_CallObject"
)


def probe(blocked: str, message: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, blocked, message],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def assert_reinstall_command(message: str) -> None:
    assert "\n" not in message
    assert "pip cache remove durable_rules" in message
    assert f"{DURABLE_CPPFLAGS} pip install --no-cache-dir" in message
    assert "durable-rules==2.0.28" in message


def test_undefined_symbol_becomes_one_lemlabs_error() -> None:
    result = probe("durable_rules_engine", SYMBOL)
    assert result["type"] == "EngineUnavailableError"
    assert result["lemlabs_error"] and result["engine_error"] and result["import_error"]
    message = str(result["message"])
    assert message.startswith("durable-rules' C extension was built without the fix for Python")
    assert "undefined symbol: PyEval_CallObject" in message
    assert_reinstall_command(message)


def test_durable_rules_not_installed() -> None:
    result = probe("durable", "No module named 'durable'")
    assert result["type"] == "EngineUnavailableError"
    message = str(result["message"])
    assert message.startswith("durable-rules (the rule engine) is not installed;")
    assert_reinstall_command(message)


@pytest.mark.parametrize("module", ["durable_rules_engine", "durable.lang"])
def test_other_load_failures_name_the_cause(module: str) -> None:
    result = probe(module, "libfoo.so: cannot open shared object file")
    assert result["engine_error"]
    message = str(result["message"])
    assert "cannot be loaded (libfoo.so: cannot open shared object file)" in message
    assert_reinstall_command(message)


def test_the_command_line_prints_the_error_without_undefined_symbol_alone() -> None:
    """The console script shows the LemlabsError's one line last, after Python's traceback."""
    script = PROBE.split("try:")[0] + "import lemlabs.cli\n"
    done = subprocess.run(
        [sys.executable, "-c", script, "durable_rules_engine", SYMBOL],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("lemlabs.errors.EngineUnavailableError: durable-rules' C extension")
    assert "During handling" not in done.stderr
