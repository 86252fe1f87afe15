"""The lab and patient tables lemlabs reads: files (:mod:`lemlabs.formats.files`) or DataFrames,
an SDTM LB table recognised by its columns, prepared by :mod:`lemlabs.stages.ingest`."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from lemlabs.formats.files import Source, read_frame
from lemlabs.formats.sdtm import is_lb, lb_to_labs
from lemlabs.stages.ingest import is_prepared, prepare_labs, prepare_patients


def read_labs(
    path_or_buffer: Source, columns: Mapping[str, str] | None = None, sep: str | None = None
) -> pd.DataFrame:
    """Read a long-format lab CSV or Parquet file (one result a row); see the README.

    ``columns`` maps other column names onto lemlabs' (``{"MRN": "patient_id"}``). The CSV
    delimiter (``;``, tab or ``,``) is sniffed unless ``sep`` gives it. An SDTM LB table (CSV,
    Parquet or SAS transport ``.xpt``) is recognised by its columns (:func:`lemlabs.read_sdtm`).
    Raises :class:`~lemlabs.errors.LabInputError` for a file that cannot be used at all.
    """
    if columns is None and is_prepared(path_or_buffer):
        return path_or_buffer  # type: ignore[return-value]
    frame, name = read_frame(path_or_buffer, sep)
    if columns is None and is_lb(frame.columns) and "patient_id" not in frame.columns:
        frame = lb_to_labs(frame, name)  # SDTM LB, recognised by its columns
    return prepare_labs(frame, columns, name)


def read_patients(path_or_buffer: Source, columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Read the patients CSV: patient_id, sex, birth_date, course_dates (``;``-separated)."""
    frame, name = read_frame(path_or_buffer)
    return prepare_patients(frame, columns, name)
