"""The bundled synthetic example cohort (made by ``python -m lemlabs.synthetic``).

200 patients from three labs; ``conditions.csv`` says which condition was planted in whom.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

FILES = {"labs": "labs.csv.gz", "patients": "patients.csv", "conditions": "conditions.csv"}


def path(name: str) -> Path:
    """Path of a bundled file: ``"labs"``, ``"patients"`` or ``"conditions"``."""
    return Path(str(resources.files("lemlabs.examples").joinpath(FILES[name])))
