"""Typed errors raised for unusable input (row-level problems become data issues instead)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class LemlabsError(Exception):
    """Base class of every error lemlabs raises on purpose."""


class LabInputError(LemlabsError, ValueError):
    """A lab or patient table cannot be read at all (missing file, empty, not UTF-8 text)."""


class MissingColumnError(LabInputError):
    """Required columns are absent: ``columns`` names every one (``column``, the first). The
    message shows the header that was found and, where a header column looks like a missing
    one, the mapping to pass (``--columns MRN=patient_id``, ``columns={"MRN": "patient_id"}``)."""

    def __init__(
        self,
        column: str | Sequence[str],
        source: str = "input",
        header: Sequence[str] | None = None,
        mapping: Mapping[str, str] | None = None,
    ) -> None:
        self.columns = (column,) if isinstance(column, str) else tuple(column)
        self.column = self.columns[0]
        names = ", ".join(repr(c) for c in self.columns)
        plural = "s" if len(self.columns) > 1 else ""
        text = f"{source}: required column{plural} {names} {'are' if plural else 'is'} missing"
        if header is not None:
            shown = ", ".join(repr(str(c)) for c in list(header)[:20])
            more = f" and {len(header) - 20} more" if len(header) > 20 else ""
            text += f"; the header found: {shown}{more}"
            if len(header) == 1 and any(mark in str(header[0]) for mark in ";|\t,"):
                text += " (one column: is the delimiter another? pass --sep / sep=)"
        if mapping:
            pairs = ",".join(f"{found}={wanted}" for found, wanted in mapping.items())
            text += f"; map them: --columns {pairs} (Python: columns={dict(mapping)!r})"
        else:
            text += "; map a column of another name: --columns NAME=patient_id (Python: columns=)"
        super().__init__(text)


class ResourceError(LemlabsError, RuntimeError):
    """Scoring ran out of memory; the message names the largest patient and its row count."""


class OutputError(LemlabsError, ValueError):
    """An output cannot be written or read back: an unknown format, or findings in a form that
    format cannot hold."""


class ThresholdError(LemlabsError, ValueError):
    """A threshold override lacks a key, has a wrong type, or an unknown key."""


class RuleError(LemlabsError, RuntimeError):
    """A rule action failed inside the engine (durable-rules would otherwise swallow it)."""


class RuleDefinitionError(LemlabsError, ValueError):
    """A rule record is malformed: an unknown field, threshold, function or placeholder."""


class PackError(RuleDefinitionError):
    """A pack cannot be loaded: its folder, a file, or a record that contradicts another pack
    (an analyte, code or threshold defined twice); the message names the file, the record and
    the key."""


#: the compiler flag that lets durable-rules 2.0.28 build for Python 3.13 (harmless before it)
DURABLE_CPPFLAGS = "CPPFLAGS=-DPyEval_CallObject=PyObject_CallObject"
#: reinstalls durable-rules from source with that flag, never from a wheel cached without it
DURABLE_REINSTALL = (
    "pip cache remove durable_rules; "
    f"{DURABLE_CPPFLAGS} pip install --no-cache-dir --force-reinstall --no-deps "
    "durable-rules==2.0.28"
)


class EngineUnavailableError(LemlabsError, ImportError):
    """durable-rules, the rule engine (a C extension built at install time), cannot be loaded."""

    def __init__(self, cause: BaseException) -> None:
        self.cause = cause
        text = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        if isinstance(cause, ModuleNotFoundError) and cause.name in ("durable", "durable.lang"):
            why = "durable-rules (the rule engine) is not installed"
        elif "PyEval_CallObject" in text:
            why = f"durable-rules' C extension was built without the fix for Python 3.13+ ({text})"
        else:
            why = f"durable-rules' C extension cannot be loaded ({text})"
        super().__init__(f"{why}; reinstall it with: {DURABLE_REINSTALL}")


#: the modules each extra provides (any one of a tuple of alternatives will do)
EXTRA_MODULES: dict[str, tuple[tuple[str, ...], ...]] = {
    "fhir": (("fhir.resources",),),
    "parquet": (("pyarrow", "fastparquet"),),
    "dask": (("dask.dataframe",), ("distributed",), ("pyarrow",)),
    "plot": (("matplotlib",),),
    "excel": (("openpyxl",),),
    "report": (("jinja2",), ("matplotlib",)),
    "xpt": (("pyreadstat",),),
}


class MissingExtraError(LemlabsError, ImportError):
    """A feature needs an optional extra that is not installed; ``extra`` names it."""

    def __init__(self, feature: str, extra: str, module: str) -> None:
        self.extra = extra
        super().__init__(
            f"{feature} needs the '{extra}' extra ({module} is not installed): "
            f"pip install 'lemlabs[{extra}]' (in a lemlabs checkout: pip install '.[{extra}]')",
            name=module,
        )


def require_extra(extra: str, feature: str) -> None:
    """Raise :class:`MissingExtraError` unless the modules of ``extra`` import."""
    import importlib

    for alternatives in EXTRA_MODULES[extra]:
        for module in alternatives:
            try:
                importlib.import_module(module)
                break
            except ImportError:
                continue
        else:
            raise MissingExtraError(feature, extra, alternatives[0])
