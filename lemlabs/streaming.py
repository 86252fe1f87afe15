"""Scoring a lab file in batches of patients (:func:`score_file`): each batch goes through
every stage and its findings are written before the next batch is read, so that memory is set
by the batch, not by the file.

A CSV file is parsed once, a chunk at a time, counting its patients' rows; once it outgrows a
batch, its prepared chunks are set aside in a temporary file, then dealt to a file per batch.
Patients are batched in the order the findings are sorted in (their ids), never split, so that
the batches' findings, written one after the other, are the file a single pass writes. Other
inputs (Parquet, SAS, a DataFrame or an open file) are read whole and scored in batches.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import pickle
import tempfile
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lemlabs.ctcae import with_version
from lemlabs.errors import ResourceError
from lemlabs.formats.export import RESULT_DATES, CsvFile, FindingsFile, write_issues
from lemlabs.formats.files import Source, read_csv_chunks
from lemlabs.formats.labs import labs_of, read_labs, read_patients
from lemlabs.packs import Packs, packs_of
from lemlabs.packs.thresholds import Thresholds
from lemlabs.pipeline import PackInput, ThresholdInput, score_prepared
from lemlabs.stages.facts import Progress
from lemlabs.stages.normalise import LAB_ISSUE_SOURCES, patient_issues
from lemlabs.stages.summary import Tally
from lemlabs.tables import typed_issues

BATCH_ROWS = 250_000
"""Rows per batch unless told (a patient with more rows is a batch of its own)."""
CHUNK_ROWS = 100_000
"""Rows read from a CSV file at a time."""
READ_SUFFIXES = (".parquet", ".xpt")
"""Files read whole rather than a chunk at a time."""


@dataclass(frozen=True)
class Scored:
    """What :func:`score_file` returns (the findings are in the file it wrote)."""

    summary: dict[str, Any]
    """As ``Report.summary``."""
    issues: pd.DataFrame
    """As ``Report.issues``."""
    batches: int
    """How many batches the patients were scored in."""


def score_file(
    labs: Source,
    patients: Source | None = None,
    thresholds: ThresholdInput = None,
    *,
    findings: str | os.PathLike[str] | None = None,
    issues: str | os.PathLike[str] | None = None,
    results: str | os.PathLike[str] | None = None,
    batch_rows: int = BATCH_ROWS,
    progress: Progress | None = None,
    as_of: dt.date | str | None = None,
    ctcae: str | None = None,
    packs: PackInput = None,
    columns: Mapping[str, str] | None = None,
    sep: str | None = None,
    date_format: str | None = None,
    jobs: int = 1,
) -> Scored:
    """Score a lab file in batches of about ``batch_rows`` rows of whole patients, writing
    each batch's ``findings`` (CSV, JSON or JSON Lines) and, when asked, its normalised
    ``results`` (CSV) before the next batch; the data ``issues`` (CSV) are written at the end.

    The findings file, the issues and the summary are those :func:`lemlabs.score_frame`
    gives for the same input in one pass; the results file holds the same rows batch by batch
    (sort it by ``row`` for the input's order). Memory is set by the largest batch and by the
    patients' ids, not by the file. The other arguments are those of :func:`score_frame` and
    :func:`lemlabs.read_labs`; ``progress(stage, done, total)`` is called as batches are done
    (stage ``"batch"``). ``jobs``: processes that score batches side by side (each holds its
    batch: memory grows with them).
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, not {batch_rows}")
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, not {jobs}")
    loaded = packs_of(packs)
    table = with_version(loaded.thresholds(thresholds), ctcae)
    people = read_patients(patients, date_format=date_format) if patients is not None else None
    report = progress or (lambda stage, done, total: None)
    tally, lab_issues, count = Tally(), [], 0
    writer = FindingsFile(Path(findings)) if findings is not None else None
    kept = CsvFile(Path(results), RESULT_DATES) if results is not None else None
    task = partial(_score_batch, table=table, packs=loaded, as_of=as_of, results=kept is not None)
    try:
        with tempfile.TemporaryDirectory(prefix="lemlabs-") as spill, ExitStack() as stack:
            read = _Batches(labs, columns, sep, date_format, loaded, people, batch_rows)
            batches = read.batches(Path(spill))
            first = next(batches)  # the batches are planned: processes only for more than one
            run = stack.enter_context(_runner(jobs if read.count > 1 else 1))
            for count, part in enumerate(run(task, chain([first], batches)), start=1):
                tally.merge(part.tally)
                if writer is not None:
                    writer.write(part.findings)
                if kept is not None and part.results is not None:
                    kept.write(part.results)
                lab_issues.append(part.issues)
                report("batch", count, read.count)
    finally:
        for out in (writer, kept):
            if out is not None:
                out.close()
    all_issues = _issues(lab_issues, people)
    if issues is not None:
        write_issues(all_issues, Path(issues))
    return Scored(tally.summary(all_issues, loaded), all_issues, count)


@dataclass(frozen=True)
class _Batch:
    """One batch of patients: how to load its rows with their input rows (from memory, or
    from the file they were set aside in: :func:`_load`), and the patients' records."""

    load: Callable[[], tuple[pd.DataFrame, np.ndarray]]
    people: pd.DataFrame | None


def _held(frame: pd.DataFrame, rows: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """A batch's rows held in memory and their input rows."""
    return frame, rows


@dataclass(frozen=True)
class _Part:
    """What scoring a batch gives the file's outputs."""

    tally: Tally
    findings: pd.DataFrame
    issues: pd.DataFrame
    """The batch's lab rows' issues (the patients' are the run's, written once)."""
    results: pd.DataFrame | None


def _score_batch(
    batch: _Batch, table: Thresholds, packs: Packs, as_of: dt.date | str | None, results: bool
) -> _Part:
    frame, rows = batch.load()
    part = score_prepared(frame, batch.people, table, packs, as_of=as_of, rows=rows)
    tally = Tally.of(part.summary)
    lab_issues = part.issues[part.issues["source"].isin(LAB_ISSUE_SOURCES)]
    return _Part(tally, part.findings, lab_issues, part.results if results else None)


Run = Callable[[Callable[[_Batch], _Part], Iterator[_Batch]], Iterator[_Part]]


@contextmanager
def _runner(jobs: int) -> Iterator[Run]:
    """How batches are scored: here, or by ``jobs`` processes side by side (at most ``jobs``
    batches ahead of the one being written, their parts in the batches' order)."""
    if jobs == 1:
        yield lambda task, batches: map(task, batches)
        return
    context = multiprocessing.get_context("spawn")  # no fork of the rule engine's C state
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:

        def run(task: Callable[[_Batch], _Part], batches: Iterator[_Batch]) -> Iterator[_Part]:
            waiting: deque[Future[_Part]] = deque()
            for batch in batches:
                waiting.append(pool.submit(task, batch))
                if len(waiting) > jobs:
                    yield waiting.popleft().result()
            while waiting:
                yield waiting.popleft().result()

        try:
            yield run
        except BrokenProcessPool as error:
            raise ResourceError(
                "a process scoring a batch ended abruptly (out of memory?): score with fewer "
                "jobs or smaller batches (--jobs, --batch-rows)"
            ) from error


def _issues(lab_issues: list[pd.DataFrame], people: pd.DataFrame | None) -> pd.DataFrame:
    """The run's issues as one pass has them: the lab rows' in row order, then the patients'."""
    found = pd.concat(lab_issues, ignore_index=True).sort_values(
        "row", kind="mergesort", ignore_index=True
    )
    if people is not None:
        found = pd.concat([found, patient_issues(people)], ignore_index=True)
    return typed_issues(found.astype({"row": "int64", "line": "int64"}))


class _Batches:
    """A lab input's batches of whole patients (:class:`_Batch`), in patient-id order;
    ``count`` of them once the first is given."""

    def __init__(
        self,
        labs: Source,
        columns: Mapping[str, str] | None,
        sep: str | None,
        date_format: str | None,
        packs: Packs,
        people: pd.DataFrame | None,
        batch_rows: int,
    ) -> None:
        self.labs, self.columns, self.sep = labs, columns, sep
        self.date_format, self.packs, self.people = date_format, packs, people
        self.batch_rows = batch_rows
        self.count = 0
        self._columns = pd.DataFrame()

    def batches(self, spill: Path) -> Iterator[_Batch]:
        if not self._chunked():
            yield from self._in_memory(self._whole())
            return
        held: list[pd.DataFrame] = []
        counts: Counter[str] = Counter()
        total = 0
        prepared = spill / "prepared.pickle"  # the prepared chunks, once the file outgrows a batch
        with prepared.open("wb") as aside:
            for chunk in self._chunks():
                self._columns = chunk.head(0)
                counts.update(_rows_per_patient(chunk))
                total += len(chunk)
                held.append(chunk)
                if total > self.batch_rows:
                    for each in held:
                        pickle.dump(each, aside, pickle.HIGHEST_PROTOCOL)
                    held.clear()
        if total <= self.batch_rows:  # the whole file is one batch, held: nothing set aside
            frame = pd.concat(held, ignore_index=True) if held else self._whole()
            yield from self._in_memory(frame)
            return
        plan = self._plan(counts)
        files = self._spill(plan, _unpickled(prepared), spill)
        for number, path in enumerate(files):
            yield _Batch(partial(_load, path, self._columns), self._people_of(plan, number))

    def _chunked(self) -> bool:
        return isinstance(self.labs, str | os.PathLike) and (
            Path(self.labs).suffix.lower() not in READ_SUFFIXES
        )

    def _chunks(self) -> Iterator[pd.DataFrame]:
        assert isinstance(self.labs, str | os.PathLike)
        name = os.fspath(self.labs)
        for chunk in read_csv_chunks(self.labs, CHUNK_ROWS, self.sep):
            yield labs_of(chunk, name, self.columns, self.packs, self.date_format)

    def _whole(self) -> pd.DataFrame:
        """The input read whole (not a CSV file; a header-only one, its columns checked as in
        one pass)."""
        return read_labs(
            self.labs, self.columns, self.sep, packs=self.packs, date_format=self.date_format
        )

    def _in_memory(self, frame: pd.DataFrame) -> Iterator[_Batch]:
        plan = self._plan(_rows_per_patient(frame))
        if self.count <= 1:
            yield _Batch(partial(_held, frame, np.arange(len(frame))), self.people)
            return
        batch = frame["patient_id"].map(plan).to_numpy()
        for number in range(self.count):
            rows = np.flatnonzero(batch == number)
            part = frame.take(rows).reset_index(drop=True)
            yield _Batch(partial(_held, part, rows), self._people_of(plan, number))

    def _plan(self, counts: Counter[str]) -> dict[str, int]:
        """Each patient's batch: ids in order, a batch filled up to ``batch_rows`` rows (the
        patients table's ids without rows too, for the schedule's findings)."""
        if self.people is not None:
            for patient in self.people["patient_id"]:
                counts.setdefault(str(patient), 0)
        plan, number, filled = {}, 0, 0
        for patient in sorted(counts):
            if filled and filled + counts[patient] > self.batch_rows:
                number, filled = number + 1, 0
            plan[patient] = number
            filled += counts[patient]
        self.count = number + 1 if plan else 1
        return plan

    def _people_of(self, plan: dict[str, int], number: int) -> pd.DataFrame | None:
        if self.people is None or self.count <= 1:
            return self.people
        ids = self.people["patient_id"].astype(str)
        mine: pd.DataFrame = self.people[ids.map(plan).to_numpy() == number]
        return mine

    def _spill(
        self, plan: dict[str, int], chunks: Iterator[pd.DataFrame], spill: Path
    ) -> list[Path]:
        """Each batch's rows (of the prepared ``chunks``, in input order) set aside in a file of
        its own (a file is opened only to add a chunk's rows to it: batches may be many)."""
        files = [spill / f"batch{number}.pickle" for number in range(self.count)]
        offset = 0
        for chunk in chunks:
            batch = chunk["patient_id"].map(plan).to_numpy()
            for number in np.unique(batch):
                mine = np.flatnonzero(batch == number)
                with files[int(number)].open("ab") as handle:
                    pickle.dump((chunk.take(mine), mine + offset), handle, pickle.HIGHEST_PROTOCOL)
            offset += len(chunk)
        return files


def _unpickled(path: Path) -> Iterator[Any]:
    """The objects pickled one after the other in ``path``, in order (the file removed once
    read)."""
    with path.open("rb") as handle:
        while True:
            try:
                yield pickle.load(handle)
            except EOFError:
                break
    path.unlink()


def _rows_per_patient(frame: pd.DataFrame) -> Counter[str]:
    return Counter(
        {str(patient): int(n) for patient, n in frame["patient_id"].value_counts().items()}
    )


def _load(path: Path, columns: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """A batch's rows as set aside, in input order, and their input rows (``columns``: the
    prepared table's columns, for a batch of patients without rows)."""
    frames, rows = [columns], [np.zeros(0, dtype="int64")]
    if not path.exists():  # a batch of the patients table's patients without rows
        return columns, rows[0]
    for frame, positions in _unpickled(path):
        frames.append(frame)
        rows.append(positions)
    return pd.concat(frames, ignore_index=True), np.concatenate(rows)
