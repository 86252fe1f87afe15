"""lemlabs: alemtuzumab (Lemtrada) monitoring labs in, auditable findings out."""

from lemlabs.errors import LabInputError, LemlabsError, MissingColumnError
from lemlabs.ingest import read_labs, read_patients
from lemlabs.normalise import normalise

__version__ = "0.1.0"

__all__ = [
    "LabInputError",
    "LemlabsError",
    "MissingColumnError",
    "__version__",
    "normalise",
    "read_labs",
    "read_patients",
]
