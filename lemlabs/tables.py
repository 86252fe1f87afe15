"""The findings table's columns and dtypes, the same on pandas 2.2 and 3.x (no model imports:
every stage and format can use them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from lemlabs.vocabulary import Severity

if TYPE_CHECKING:
    from lemlabs.models import Finding

FINDING_COLUMNS = [
    "patient_id",
    "condition",
    "code",
    "severity",
    "ctcae_grade",
    "date",
    "evidence",
    "message",
    "action",
    "source",
    "rule_id",
    "rules_version",
    "episode_start",
    "days_from_course",
    "results_in_episode",
    "notes",
]
"""The findings table's columns: the fields of :class:`~lemlabs.models.Finding`, in order."""


ISSUE_TEXT = ("patient_id", "field", "raw_value", "reason", "source")  # object, even when empty


def stable_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """The same dtypes on pandas 2.2 and 3.x: text as object (plain Python str, never pandas 3's
    inferred ``str`` dtype, which pandas 2.2 lacks), datetimes in nanoseconds, categoricals with
    object categories."""
    changes: dict[Any, Any] = {}
    categoricals: dict[Any, pd.CategoricalDtype] = {}
    for column, dtype in frame.dtypes.items():
        if isinstance(dtype, pd.StringDtype):
            changes[column] = object
        elif isinstance(dtype, pd.CategoricalDtype) and isinstance(
            dtype.categories.dtype, pd.StringDtype
        ):
            categories = pd.Index(list(dtype.categories), dtype=object)
            categoricals[column] = pd.CategoricalDtype(categories, ordered=dtype.ordered)
        elif (
            dtype.kind == "M"
            and not isinstance(dtype, pd.DatetimeTZDtype)
            and (str(dtype) != "datetime64[ns]")
        ):
            changes[column] = "datetime64[ns]"
    if not changes and not categoricals:
        return frame
    frame = frame.astype(changes)
    for column, categorical in categoricals.items():  # astype keeps "equal" categories as they are
        codes = frame[column].cat.codes.to_numpy()
        frame[column] = pd.Categorical.from_codes(codes, dtype=categorical)
    return frame


def typed_issues(frame: pd.DataFrame) -> pd.DataFrame:
    """The issues table's dtypes (``Report.issues``): :func:`stable_dtypes`, its text columns as
    object even when empty."""
    frame = stable_dtypes(frame)
    text = [column for column in ISSUE_TEXT if column in frame.columns]
    return frame.astype(dict.fromkeys(text, object))


def typed_findings(frame: pd.DataFrame) -> pd.DataFrame:
    """The one set of dtypes of every findings table (``score_frame``, ``score_dask``): text as
    object, dates as ``datetime64[ns]``, severity an ordered categorical, grades and days as
    nullable integers — the same on pandas 2.2 and 3.x."""
    text = [c for c in FINDING_COLUMNS if c not in (*_TYPED_COLUMNS, "evidence", "notes")]
    frame = frame.astype(
        {
            **dict.fromkeys(text, object),
            "ctcae_grade": "Int64",
            "days_from_course": "Int64",
            "results_in_episode": "int64",
        }
    )
    for column in ("date", "episode_start"):
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ns]")
    frame["severity"] = pd.Categorical(
        frame["severity"], categories=[str(s) for s in Severity], ordered=True
    )
    return stable_dtypes(frame)


_TYPED_COLUMNS = (
    "severity",
    "ctcae_grade",
    "date",
    "episode_start",
    "days_from_course",
    "results_in_episode",
)


def findings_frame(findings: Sequence[Finding]) -> pd.DataFrame:
    """Findings as a tidy DataFrame (see :func:`typed_findings`); evidence and notes as lists."""
    return frame_of_rows([finding.to_dict() for finding in findings])


def frame_of_rows(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Findings as :meth:`Finding.to_dict` gives them → the typed findings table."""
    return frame_of_columns({name: [row.get(name) for row in rows] for name in FINDING_COLUMNS})


def frame_of_columns(columns: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    """Findings as columns (a list per field of :data:`FINDING_COLUMNS`, values as
    :meth:`Finding.to_dict` gives them) → the typed findings table."""
    return typed_findings(pd.DataFrame(columns, columns=FINDING_COLUMNS, dtype=object))


def rows_of_frame(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A typed findings table (:func:`typed_findings`) → the dicts :meth:`Finding.to_dict` gives."""
    columns = [frame[name].tolist() for name in FINDING_COLUMNS]
    rows = []
    for values in zip(*columns, strict=True):
        row = dict(zip(FINDING_COLUMNS, values, strict=True))
        for name in ("ctcae_grade", "days_from_course"):
            row[name] = None if pd.isna(row[name]) else int(row[name])
        for name in ("date", "episode_start"):
            row[name] = None if pd.isna(row[name]) else row[name].date().isoformat()
        row["severity"] = str(row["severity"])
        row["results_in_episode"] = int(row["results_in_episode"])
        row["evidence"] = [dict(item) for item in row["evidence"]]
        row["notes"] = list(row["notes"])
        rows.append(row)
    return rows
