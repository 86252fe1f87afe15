"""lemlabs: alemtuzumab (Lemtrada) monitoring labs in, auditable findings out.

The pipeline: ingest (read_labs) → normalise → context → engine → findings (score_frame).
"""

__version__ = "0.1.0"

# engine first: when durable-rules cannot load, its guard raises one EngineUnavailableError (with
# the reinstall command) before any rule module imports durable and fails with a bare ImportError
from lemlabs import engine as _engine  # noqa: F401
from lemlabs import frame as _frame  # noqa: F401  registers DataFrame.lemlabs
from lemlabs.errors import (
    EngineUnavailableError,
    LabInputError,
    LemlabsError,
    MissingColumnError,
    MissingExtraError,
    OutputError,
    RuleError,
    ThresholdError,
)
from lemlabs.ingest import read_labs, read_patients
from lemlabs.models import Condition, DataIssue, Evidence, Finding, Report, Severity
from lemlabs.normalise import normalise
from lemlabs.rules.thresholds import Thresholds, default_thresholds, load_thresholds
from lemlabs.schedule import schedule
from lemlabs.scoring import rules_version, score, score_frame
from lemlabs.sdtm import read_sdtm

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
    "Report",
    "RuleError",
    "Severity",
    "ThresholdError",
    "Thresholds",
    "__version__",
    "default_thresholds",
    "load_thresholds",
    "normalise",
    "read_labs",
    "read_patients",
    "read_sdtm",
    "rules_version",
    "schedule",
    "score",
    "score_frame",
]
