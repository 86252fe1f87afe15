"""Scoring cohorts larger than one machine with Dask (extra ``dask``); the core never imports it.

lemlabs scores per patient, so the work splits by patient: rows are numbered in input order,
shuffled once on ``patient_id`` so that each patient's rows meet in one partition, and each
partition goes through the same :func:`lemlabs.score_frame` as a single process (each worker
builds its own rule engine). Findings and issues carry the input row numbers, so the result
equals ``score_frame`` on the same data, order aside.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

try:
    import dask.dataframe as dd
    from dask.base import compute
    from dask.delayed import Delayed, delayed
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("lemlabs.dask needs Dask: pip install 'lemlabs[dask]'") from error

from lemlabs.errors import LabInputError, MissingColumnError
from lemlabs.formats.export import findings_table
from lemlabs.formats.files import COMPRESSED_SUFFIXES, Source, unshift
from lemlabs.formats.labs import read_patients
from lemlabs.models import Finding
from lemlabs.packs import PackPath, load_packs
from lemlabs.packs.thresholds import Thresholds
from lemlabs.pipeline import ThresholdInput, score_frame
from lemlabs.stages.ingest import LAB_COLUMNS, check_duplicates
from lemlabs.stages.normalise import ISSUE_COLUMNS, LAB_ISSUE_SOURCES, line_of
from lemlabs.tables import typed_findings

ROW = "__lemlabs_row"
SHIFT = 32  # packed row ids: input partition << SHIFT | position in it
COUNTS = ("rows_in", "rows_normalised", "rows_rejected", "rows_not_scored")


@dataclass(frozen=True)
class DaskReport:
    """Lazy results of :func:`score_dask`: findings and issues as dask DataFrames (evidence and
    notes as JSON text), and a delayed summary. ``compute()`` runs it all in one pass."""

    findings: dd.DataFrame
    issues: dd.DataFrame
    summary: Delayed
    parts: tuple[Delayed, ...]
    lengths: Delayed
    patient_issues: int

    def compute(self) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
        """``(findings, issues, summary)`` as pandas objects, computed together (one read)."""
        lengths, *results = compute(self.lengths, *self.parts)
        findings = pd.concat([r[0] for r in results], ignore_index=True)
        issues = pd.concat([r[1] for r in results], ignore_index=True)
        summary = _summary([r[2] for r in results], self.patient_issues)
        sizes = list(lengths)
        return _findings_with_rows(findings, sizes), _issues_with_rows(issues, sizes), summary


def read_labs_dask(path: str | os.PathLike[str], blocksize: str | None = "64MB") -> dd.DataFrame:
    """A lab table from CSV or Parquet files (a path or a glob), every column read as text."""
    text = os.fspath(path)
    if "://" not in text and not glob.glob(text):
        raise LabInputError(f"{text}: no such file (no file matches)")
    try:
        if text.endswith(".parquet") or os.path.isdir(text):
            frame = dd.read_parquet(text)
            return frame.astype({c: "object" for c in frame.columns}).fillna("").astype(str)
        compressed = text.lower().endswith(COMPRESSED_SUFFIXES)
        frame = dd.read_csv(  # a compressed file cannot be split: one block per file
            text,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            blocksize=None if compressed else blocksize,
        )
    except Exception as error:  # dask wraps the reader's error in its own type
        raise _input_error(text, error) from error
    if not isinstance(frame._meta.index, pd.RangeIndex):  # a trailing delimiter on the rows
        meta = unshift(frame._meta, text)
        frame = frame.map_partitions(unshift, text, meta=meta)
    return frame


def _check_columns(header: list[str], name: str) -> None:
    """The columns a worker needs, checked before any worker runs: every problem one line
    naming the file (a worker's error would come with its traceback)."""
    folded = {c.strip().casefold() for c in header}
    if {"usubjid", "lbtestcd"} <= folded:
        raise LabInputError(
            f"{name}: an SDTM LB table; --dask reads lemlabs' lab columns only: score it "
            "without --dask (SDTM LB is recognised by its columns)"
        )
    if len(header) == 1 and any(mark in header[0] for mark in ";\t|"):
        raise LabInputError(
            f"{name}: one column {header[0][:60]!r}: --dask reads comma-separated files only; "
            "score it without --dask (the delimiter is sniffed) or re-export it with commas"
        )
    check_duplicates(header, name)
    missing = [c for c in LAB_COLUMNS if c not in folded]
    if missing:
        raise MissingColumnError(missing, name, header)


def _input_error(name: str, error: BaseException) -> LabInputError:
    """A reader's error (dask keeps the original message on its last line) as one line."""
    if isinstance(error, UnicodeDecodeError):
        return LabInputError(f"{name}: not UTF-8 text; re-export the file as UTF-8")
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    original = lines[-1].removeprefix("Original Message: ") if lines else type(error).__name__
    if isinstance(error, pd.errors.EmptyDataError):
        return LabInputError(f"{name}: the file is empty (no header row)")
    return LabInputError(f"{name}: not a readable table ({original})")


def _numbered(frame: dd.DataFrame) -> dd.DataFrame:
    """Each row tagged with (input partition, position) packed in one integer; turned into the
    row's 0-based position in the whole input once the partition lengths are known (see
    :func:`_global_rows`), so that the input is read only once."""

    def number(part: pd.DataFrame, partition_info: Mapping[str, Any] | None = None) -> pd.DataFrame:
        index = int(partition_info["number"]) if partition_info else 0
        return part.assign(**{ROW: (index << SHIFT) + np.arange(len(part), dtype="int64")})

    meta = frame._meta.assign(**{ROW: np.array([], dtype="int64")})
    return frame.map_partitions(number, meta=meta)


def _global_rows(packed: np.ndarray, lengths: Sequence[int]) -> np.ndarray:
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype("int64")
    packed = np.asarray(packed, dtype="int64")
    return offsets[packed >> SHIFT] + (packed & ((1 << SHIFT) - 1))


def _finding_rows(findings: list[Finding], rows: np.ndarray) -> pd.DataFrame:
    """The flat findings table, evidence rows mapped to the packed input row ids."""
    table = findings_table(findings)
    table["evidence"] = [
        json.dumps(
            [{**item, "row": int(rows[item["row"]])} for item in json.loads(text)],
            ensure_ascii=False,
        )
        for text in table["evidence"]
    ]
    return _typed_findings(table)


def _typed_findings(frame: pd.DataFrame) -> pd.DataFrame:
    """The dtypes of ``score_frame``'s findings (evidence and notes as JSON text), fixed so that
    every partition matches the meta."""
    return typed_findings(frame.astype({"evidence": "str", "notes": "str"}))


def _findings_with_rows(findings: pd.DataFrame, lengths: Sequence[int]) -> pd.DataFrame:
    """Packed row ids in the evidence → 0-based positions in the whole input."""
    evidence = []
    for text in findings["evidence"]:
        items = json.loads(text)
        rows = _global_rows(np.array([item["row"] for item in items], dtype="int64"), lengths)
        evidence.append(
            json.dumps(
                [{**item, "row": int(row)} for item, row in zip(items, rows, strict=True)],
                ensure_ascii=False,
            )
        )
    return _typed_findings(findings.assign(evidence=evidence))


def _issues_with_rows(issues: pd.DataFrame, lengths: Sequence[int]) -> pd.DataFrame:
    """Packed row ids of the issues → 0-based positions in the whole input."""
    rows = _global_rows(issues["row"].to_numpy(), lengths)
    return _typed_issues(issues.assign(row=rows, line=line_of(rows)))


def _typed_issues(frame: pd.DataFrame) -> pd.DataFrame:
    numbers = {"row": "int64", "line": "int64"}
    return frame.astype({**{c: "str" for c in ISSUE_COLUMNS if c not in numbers}, **numbers})


def _score_partition(
    part: pd.DataFrame,
    patients: pd.DataFrame | None,
    thresholds: Thresholds,
    packs: Sequence[str],
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    rows = part[ROW].to_numpy()
    if patients is not None:  # only this partition's patients: no work for the others
        patients = patients[patients["patient_id"].isin(part["patient_id"].str.strip().unique())]
    frame = part.drop(columns=ROW).reset_index(drop=True)
    report = score_frame(frame, patients, thresholds, packs=load_packs(packs))
    issues = report.issues[report.issues["source"].isin(LAB_ISSUE_SOURCES)].copy()
    issues["row"] = rows[issues["row"].to_numpy()] if len(issues) else issues["row"]
    counts: dict[str, Any] = {key: int(report.summary[key]) for key in COUNTS}
    counts["findings_by_condition"] = report.summary["findings_by_condition"]
    counts["findings_by_severity"] = report.summary["findings_by_severity"]
    findings = _finding_rows(list(report.finding_list), rows)
    return findings, _typed_issues(issues.reset_index(drop=True)), counts


def _summary(counts: list[dict[str, Any]], patient_issues: int) -> dict[str, Any]:
    total: dict[str, Any] = {key: sum(c[key] for c in counts) for key in COUNTS}
    for key in ("findings_by_condition", "findings_by_severity"):
        merged: dict[str, int] = {}
        for c in counts:
            for name, number in c[key].items():
                merged[name] = merged.get(name, 0) + number
        total[key] = dict(sorted(merged.items()))
    total["patient_issues"] = patient_issues
    total["findings"] = sum(total["findings_by_condition"].values())
    return total


def score_dask(
    labs: dd.DataFrame | str | os.PathLike[str],
    patients: Source | None = None,
    thresholds: ThresholdInput = None,
    npartitions: int | None = None,
    packs: Sequence[PackPath] = (),
) -> DaskReport:
    """Score a lab table held in a dask DataFrame or CSV/Parquet files (path or glob), lazily.

    ``patients`` is a small table (pandas DataFrame or path) sent to every partition.
    ``npartitions`` sets the number of patient partitions (default: as many as the input has).
    ``packs``: a site's pack folders (each worker reads them: a path every worker can reach).
    """
    frame = labs if isinstance(labs, dd.DataFrame) else read_labs_dask(labs)
    name = "dask input" if isinstance(labs, dd.DataFrame) else os.fspath(labs)
    _check_columns([str(c) for c in frame.columns], name)
    folders = [os.fspath(Path(path).resolve()) for path in packs]
    table = load_packs(folders).thresholds(thresholds)  # checked here, before any worker runs
    people = read_patients(patients) if patients is not None else None
    patient_issues = 0 if people is None else int((people["problem"] != "").sum())
    if "patient_id" in frame.columns:  # "P1 " is "P1": one patient, one partition
        frame = frame.map_partitions(_stripped_ids, meta=frame._meta)
    numbered = _numbered(frame)
    by_patient = numbered.shuffle(
        on="patient_id", npartitions=npartitions or frame.npartitions, shuffle_method="tasks"
    )
    parts = [delayed(_score_partition)(p, people, table, folders) for p in by_patient.to_delayed()]
    finding_meta = _finding_rows([], np.array([], dtype="int64"))
    issue_meta = _typed_issues(pd.DataFrame(columns=ISSUE_COLUMNS))
    findings = dd.from_delayed([delayed(lambda r: r[0])(p) for p in parts], meta=finding_meta)
    issues = dd.from_delayed([delayed(lambda r: r[1])(p) for p in parts], meta=issue_meta)
    counts = [delayed(lambda r: r[2])(p) for p in parts]
    summary = delayed(_summary)(counts, patient_issues)
    lengths = delayed(list)(numbered.map_partitions(len).to_delayed())
    findings = findings.map_partitions(_findings_with_rows, lengths, meta=finding_meta)
    issues = issues.map_partitions(_issues_with_rows, lengths, meta=issue_meta)
    return DaskReport(findings, issues, summary, tuple(parts), lengths, patient_issues)


def _stripped_ids(part: pd.DataFrame) -> pd.DataFrame:
    return part.assign(patient_id=part["patient_id"].astype(str).str.strip().astype(object))


def _computed(report: DaskReport, name: str) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """``report.compute()``, a file found unreadable while reading it raising one line."""
    try:
        return report.compute()
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise _input_error(name, error) from error


def score_on_cluster(
    labs: dd.DataFrame | str | os.PathLike[str],
    patients: Source | None = None,
    thresholds: ThresholdInput = None,
    scheduler: str | None = None,
    workers: int = 2,
    packs: Sequence[PackPath] = (),
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """:func:`score_dask` computed on a scheduler (its address) or a local cluster of ``workers``
    single-threaded processes, closed afterwards."""
    from distributed import Client, LocalCluster

    name = "dask input" if isinstance(labs, dd.DataFrame) else os.fspath(labs)
    # reads the headers and the packs: errors before a cluster starts
    report = score_dask(labs, patients, thresholds, packs=packs)
    if scheduler:
        with Client(scheduler):
            return _computed(report, name)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None)
    with cluster, Client(cluster):
        return _computed(report, name)
