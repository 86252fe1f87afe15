"""The lab and patient tables lemlabs reads: files (:mod:`lemlabs.formats.files`) or DataFrames,
an SDTM LB table recognised by its columns, prepared by :mod:`lemlabs.stages.ingest`."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from lemlabs.ctcae import GRADE_COLUMNS
from lemlabs.formats.files import Source, read_frame
from lemlabs.formats.sdtm import is_lb, lb_to_labs
from lemlabs.packs import Packs, builtin_packs
from lemlabs.stages.context import context_columns
from lemlabs.stages.ingest import (
    LAB_COLUMNS,
    LAB_OPTIONAL,
    is_prepared,
    prepare_labs,
    prepare_patients,
)
from lemlabs.stages.normalise import NORMALISED_COLUMNS


def reserved_columns(packs: Packs | None = None) -> tuple[str, ...]:
    """Every column lemlabs adds to a lab table as it reads, normalises, grades and scores it
    (its context, the packs' features and derived fields): an input column of one of these names
    is carried as ``input_<name>`` instead of being overwritten."""
    book = (packs or builtin_packs()).book
    added = [
        "collected_at_raw",
        *NORMALISED_COLUMNS,
        *GRADE_COLUMNS,
        *context_columns(book),
        *book.fields,
        "key",
        "code",
    ]
    own = {*LAB_COLUMNS, *LAB_OPTIONAL}
    return tuple(name for name in dict.fromkeys(added) if name not in own)


def read_labs(
    path_or_buffer: Source,
    columns: Mapping[str, str] | None = None,
    sep: str | None = None,
    packs: Packs | None = None,
    date_format: str | None = None,
) -> pd.DataFrame:
    """Read a long-format lab CSV or Parquet file (one result a row); see the README.

    ``columns`` maps other column names onto lemlabs' (``{"MRN": "patient_id"}``). The CSV
    delimiter (``;``, tab, ``,`` or ``|``) is sniffed unless ``sep`` gives it. An SDTM LB table
    (CSV, Parquet or SAS transport ``.xpt``) is recognised by its columns
    (:func:`lemlabs.read_sdtm`). ``date_format``: ``"ISO"`` (the default), ``"DMY"`` (day
    first: ``05/03/2021`` is 5 March) or ``"MDY"`` (US: ``03/05/2021`` is 5 March); ISO dates
    are read whatever it says.
    Raises :class:`~lemlabs.errors.LabInputError` for a file that cannot be used at all.
    """
    if columns is None and date_format is None and is_prepared(path_or_buffer):
        return path_or_buffer  # type: ignore[return-value]
    frame, name = read_frame(path_or_buffer, sep)
    return labs_of(frame, name, columns, packs, date_format)


def labs_of(
    frame: pd.DataFrame,
    name: str,
    columns: Mapping[str, str] | None = None,
    packs: Packs | None = None,
    date_format: str | None = None,
) -> pd.DataFrame:
    """A table as read (text columns; ``name`` is how messages call it) in lemlabs' shape, as
    :func:`read_labs` gives it: an SDTM LB table recognised by its columns."""
    if columns is None and is_lb(frame.columns) and "patient_id" not in frame.columns:
        frame = lb_to_labs(frame, name)  # SDTM LB, recognised by its columns
    return prepare_labs(frame, columns, name, reserved_columns(packs), date_format)


def read_patients(
    path_or_buffer: Source,
    columns: Mapping[str, str] | None = None,
    date_format: str | None = None,
) -> pd.DataFrame:
    """Read the patients CSV: patient_id, sex, birth_date, course_dates (``;``-separated);
    ``date_format`` as in :func:`read_labs`."""
    frame, name = read_frame(path_or_buffer)
    return prepare_patients(frame, columns, name, date_format)
