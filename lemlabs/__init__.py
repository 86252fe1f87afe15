"""lemlabs: alemtuzumab (Lemtrada) monitoring labs in, auditable findings out.

The pipeline: ingest (read_labs) → normalise → context → engine → findings (score_frame).
"""

# engine first: when durable-rules cannot load, its guard raises one EngineUnavailableError (with
# the reinstall command) before any rule module imports durable and fails with a bare ImportError
from lemlabs import _moved
from lemlabs import engine as _engine  # noqa: F401
from lemlabs import frame as _frame  # noqa: F401  registers DataFrame.lemlabs
from lemlabs.errors import (
    EngineUnavailableError,
    LabInputError,
    LemlabsError,
    MissingColumnError,
    MissingExtraError,
    OutputError,
    ResourceError,
    RuleError,
    ThresholdError,
)
from lemlabs.formats.edish import liver_peaks
from lemlabs.formats.labs import read_labs, read_patients
from lemlabs.formats.sdtm import read_sdtm
from lemlabs.models import Condition, DataIssue, Evidence, Finding, Severity
from lemlabs.packs import Packs, default_thresholds, load_packs, load_thresholds
from lemlabs.packs.thresholds import Thresholds, rules_version
from lemlabs.pipeline import Report, normalise, schedule, score, score_frame
from lemlabs.streaming import Scored, score_file
from lemlabs.version import __version__

_moved.install()  # old module names (lemlabs.ingest, ...) still import, with a warning

__all__ = [
    "Condition",
    "DataIssue",
    "EngineUnavailableError",
    "Evidence",
    "Finding",
    "LabInputError",
    "LemlabsError",
    "MissingColumnError",
    "MissingExtraError",
    "OutputError",
    "Packs",
    "Report",
    "ResourceError",
    "RuleError",
    "Scored",
    "Severity",
    "ThresholdError",
    "Thresholds",
    "__version__",
    "default_thresholds",
    "liver_peaks",
    "load_packs",
    "load_thresholds",
    "normalise",
    "read_labs",
    "read_patients",
    "read_sdtm",
    "rules_version",
    "schedule",
    "score",
    "score_file",
    "score_frame",
]
