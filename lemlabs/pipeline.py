"""The pipeline end to end: read → ingest → normalise → context → engine → findings
(``score_frame``), and the :class:`Report` it returns."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lemlabs.ctcae import GRADE_COLUMNS, Criteria, grade_results, with_version
from lemlabs.errors import LabInputError, ResourceError
from lemlabs.formats.files import Source
from lemlabs.formats.labs import read_labs, read_patients
from lemlabs.models import DataIssue, Finding
from lemlabs.packs import PackPath, Packs, builtin_packs, packs_of
from lemlabs.packs.thresholds import Thresholds, rules_version
from lemlabs.stages.context import add_context
from lemlabs.stages.facts import Progress, run_engine
from lemlabs.stages.findings import assemble, in_row_order
from lemlabs.stages.findings.reference import assemble_plainly
from lemlabs.stages.ingest import check_as_of, rows_as_frame
from lemlabs.stages.monitoring import monitoring
from lemlabs.stages.normalise import LAB_ISSUE_SOURCES, line_of, normalise_prepared
from lemlabs.stages.schedule import schedule_table
from lemlabs.stages.summary import Tally
from lemlabs.tables import frame_of_columns, rows_of_frame, stable_dtypes, typed_issues

ThresholdInput = Thresholds | Mapping[str, Any] | str | os.PathLike[str] | None
PackInput = Packs | PackPath | Iterable[PackPath] | None
"""A site's pack folders (beside the built-in packs), or a loaded :class:`Packs`."""


@dataclass(frozen=True)
class Report:
    """What :func:`lemlabs.score_frame` returns."""

    findings: pd.DataFrame
    issues: pd.DataFrame
    results: pd.DataFrame
    summary: dict[str, Any]
    patients: pd.DataFrame | None = None
    """The patients table as read (with ``courses`` as lists of dates), when one was given."""
    packs: Packs = field(default_factory=builtin_packs)
    """The packs it was scored with (their titles and labels are what the formats show)."""

    def __post_init__(self) -> None:
        """The tables' dtypes do not depend on the pandas version (see :func:`stable_dtypes`)."""
        for name in ("findings", "issues", "results", "patients"):
            table = getattr(self, name)
            if table is not None:
                object.__setattr__(self, name, stable_dtypes(table))
        object.__setattr__(self, "issues", typed_issues(self.issues))

    @cached_property
    def finding_list(self) -> tuple[Finding, ...]:
        """The findings table as :class:`Finding` records, built when first asked for."""
        return tuple(Finding.from_dict(row) for row in rows_of_frame(self.findings))

    def to_html(self, path: str | Path, **options: Any) -> None:
        """This report as one self-contained HTML file (the ``report`` extra); ``options`` go to
        :func:`lemlabs.formats.report.write_html` (``as_of``, ``thresholds``, ``inputs``)."""
        from lemlabs.formats.report import write_html

        write_html(self, path, **options)

    def to_excel(self, path: str | Path, thresholds: Any = None) -> None:
        """Findings, evidence, issues, summary and rules as an Excel workbook (``excel`` extra)."""
        from lemlabs.formats.excel import write_workbook

        write_workbook(path, self.finding_list, self.issues, self.summary, thresholds, self.packs)

    def to_adlb(self) -> pd.DataFrame:
        """One row per scored result with ADaM ADLB names (:func:`lemlabs.formats.adlb.to_adlb`)."""
        from lemlabs.formats.adlb import to_adlb

        return to_adlb(self)

    def shift_table(
        self,
        term: str,
        by: str | None = None,
        direction: str | None = None,
        form: str = "wide",
    ) -> pd.DataFrame:
        """Patients by baseline × worst post-baseline CTCAE grade of ``term`` (``"platelets"``,
        ``"creatinine"``, ``"PLAT"`` or a CTCAE term name), split ``by`` a patients column (the
        arm), ``wide`` or ``long`` with percentages (:func:`lemlabs.formats.adlb.shift_table`)."""
        from lemlabs.formats.adlb import shift_table

        return shift_table(self, term, by=by, direction=direction, form=form)

    def data_issues(self) -> list[DataIssue]:
        """The issues table as :class:`DataIssue` records."""
        records = self.issues.to_dict("records")
        return [DataIssue(**{str(k): v for k, v in record.items()}) for record in records]


def _summary(
    rows_in: int,
    results: pd.DataFrame,
    issues: pd.DataFrame,
    findings: pd.DataFrame,
    packs: Packs,
) -> dict[str, Any]:
    tally = Tally()
    tally.add(rows_in, results, findings)
    return tally.summary(issues, packs)


def score_frame(
    labs: Source,
    patients: Source | None = None,
    thresholds: ThresholdInput = None,
    *,
    progress: Progress | None = None,
    as_of: dt.date | str | None = None,
    ctcae: str | None = None,
    packs: PackInput = None,
) -> Report:
    """Score a lab table (DataFrame, CSV path or buffer) and return a :class:`Report`.

    ``thresholds`` is a site table (mapping, ``.toml``/``.json`` path or :class:`Thresholds`)
    layered on the defaults: it names only the keys it changes.
    ``progress(stage, done, total)`` is called as the stages advance (the CLI draws a bar).
    With ``as_of`` (a date) the report also holds ``monitoring.overdue`` findings for tests the
    label's schedule asks for and that were not done (see :func:`lemlabs.schedule`).
    ``ctcae`` is the CTCAE version findings and results are graded by: ``"v5"`` (the default,
    unless a site table sets ``ctcae.version``), ``"v4"`` (4.03) or ``"v6"``.
    ``packs``: a site's own pack folders (a path or a list of paths), scored beside the
    built-in packs (README, "Adding an analyte"), or a :class:`lemlabs.packs.Packs`.
    """
    return _score(
        labs, patients, thresholds, progress=progress, as_of=as_of, ctcae=ctcae, packs=packs
    )


def score_unfiltered(
    labs: Source, patients: Source | None = None, packs: PackInput = None
) -> Report:
    """:func:`score_frame` posting every result to the engine, not only those some rule's
    condition holds for: the same findings, only slower (the tests prove the pre-filter)."""
    return _score(labs, patients, None, post_all=True, packs=packs)


def score_plain(labs: Source, patients: Source | None = None, packs: PackInput = None) -> Report:
    """:func:`score_unfiltered` with the findings assembled by the plain reference
    (:mod:`lemlabs.stages.findings.reference`): the same findings, only slower (the tests prove
    the fast assembly)."""
    return _score(labs, patients, None, post_all=True, plain=True, packs=packs)


def _score(
    labs: Source,
    patients: Source | None,
    thresholds: ThresholdInput,
    *,
    post_all: bool = False,
    plain: bool = False,
    progress: Progress | None = None,
    as_of: dt.date | str | None = None,
    ctcae: str | None = None,
    packs: PackInput = None,
) -> Report:
    report = progress or (lambda stage, done, total: None)
    loaded = packs_of(packs)
    table = with_version(loaded.thresholds(thresholds), ctcae)
    report("read", 0, 1)
    frame = read_labs(labs, packs=loaded)
    people = read_patients(patients) if patients is not None else None
    return score_prepared(
        frame, people, table, loaded, post_all=post_all, plain=plain, progress=report, as_of=as_of
    )


def score_prepared(
    frame: pd.DataFrame,
    people: pd.DataFrame | None,
    table: Thresholds,
    loaded: Packs,
    *,
    post_all: bool = False,
    plain: bool = False,
    progress: Progress | None = None,
    as_of: dt.date | str | None = None,
    rows: np.ndarray | None = None,
) -> Report:
    """Score a prepared lab table (:func:`read_labs`) with its prepared patients, the
    thresholds ``table`` (its CTCAE version set) and the packs. ``rows``: the input row of each
    of ``frame``'s rows, when it is a part of a larger input (a batch of patients): results,
    issues and evidence then name those rows."""
    report = progress or (lambda stage, done, total: None)
    report("normalise", 0, 1)
    rows_in = len(frame)
    try:
        results, issues = normalise_prepared(frame, people, table, loaded)
    except MemoryError:
        raise _out_of_memory(frame["patient_id"], rows_in) from None
    del frame  # the results hold what is needed of it; its columns are memory the engine can use
    if rows is not None:
        results, issues = _renumbered(results, issues, rows)
    try:
        report("context", 0, 1)
        context = add_context(results[results["status"] == "scored"], people, table, loaded.book)
        singles, composites, finding_rows = run_engine(
            context, table, loaded.book, post_all, report
        )
        report("findings", 0, 1)
        version = rules_version(table)
        findings_of = assemble_plainly if plain else assemble
        columns = findings_of(singles, composites, context, loaded, table, version, finding_rows)
    except MemoryError:
        raise _out_of_memory(results["patient_id"], rows_in) from None
    if as_of is not None:
        day = check_as_of(as_of)
        for finding in monitoring(results, people, context, day, table, loaded):
            for name, value in finding.to_dict().items():
                columns[name].append(value)
    findings = in_row_order(frame_of_columns(columns))
    report("findings", 1, 1)
    results = _with_grades(results, context, loaded.criteria(str(table["ctcae.version"])))
    return Report(
        findings=findings,
        issues=issues,
        results=results,
        summary=_summary(rows_in, results, issues, findings, loaded),
        patients=people,
        packs=loaded,
    )


def _renumbered(
    results: pd.DataFrame, issues: pd.DataFrame, rows: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Results and issues of a part of an input, their rows (and issues' lines) renamed to the
    input's: ``rows[i]`` is the input row of the part's row ``i``."""
    results["row"] = rows[results["row"].to_numpy()]
    of_labs = issues["source"].isin(LAB_ISSUE_SOURCES).to_numpy()
    if of_labs.any():
        issues = issues.copy()
        moved = rows[issues.loc[of_labs, "row"].to_numpy()]
        issues.loc[of_labs, "row"] = moved
        issues.loc[of_labs, "line"] = line_of(moved)
    return results, issues


def _out_of_memory(ids: pd.Series, rows: int) -> ResourceError:
    """Memory ran out while scoring: one line naming the largest patient and its row count (a
    patient's history is scored whole, so that is the least a run needs)."""
    counts = ids.value_counts()
    if counts.empty:
        return ResourceError(f"out of memory scoring {rows} rows")
    return ResourceError(
        f"out of memory scoring {rows} rows; the largest patient, {counts.index[0]!r}, has "
        f"{int(counts.iloc[0])} rows (a patient's history is scored whole): score on a "
        "machine with more memory, or that patient's rows apart"
    )


def _with_grades(results: pd.DataFrame, context: pd.DataFrame, table: Criteria) -> pd.DataFrame:
    """Every result with its CTCAE grades (low and high direction, term, version), graded on
    its context (baseline) by the evaluator findings use; not-scored rows stay ungraded."""
    grades = grade_results(context, table)
    grades.index = context["row"].to_numpy()
    out = results.drop(columns=[c for c in GRADE_COLUMNS if c in results.columns])
    joined = grades.reindex(out["row"].to_numpy()).astype(GRADE_COLUMNS)
    for column in GRADE_COLUMNS:
        out[column] = joined[column].set_axis(out.index)
    out["ctcae_version"] = table.version
    return out


def score(
    records: Iterable[Any], patients: Source | None = None, packs: PackInput = None
) -> list[Finding]:
    """Score lab records (dicts or dataclasses with the lab columns); return the findings."""
    return list(score_frame(rows_as_frame(records), patients, packs=packs).finding_list)


def normalise(
    labs: Source,
    patients: Source | None = None,
    thresholds: ThresholdInput = None,
    packs: PackInput = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Normalise a lab table: ``(results, issues)``.

    ``results`` holds every accepted row (``status`` ``scored`` or ``not_scored`` for analytes
    lemlabs does not score), values in canonical units with the raw value and unit kept, the
    reference interval and an interpretation flag (L/H/N). ``issues`` holds one record per
    rejected row (``row`` is its 0-based position) and per unusable patient record.
    """
    loaded = packs_of(packs)
    people = read_patients(patients) if patients is not None else None
    frame = read_labs(labs, packs=loaded)
    return normalise_prepared(frame, people, loaded.thresholds(thresholds), loaded)


def schedule(
    labs: Source,
    patients: Source,
    as_of: dt.date | str | None = None,
    thresholds: ThresholdInput = None,
    packs: PackInput = None,
) -> pd.DataFrame:
    """Which tests are due or overdue for each patient as of ``as_of`` (default: today).

    One row per patient and test group of the packs (blood_count, creatinine, urinalysis,
    thyroid, ...): last done, next due, days overdue, missed intervals, the monitoring window's
    end and a status (ok, due, overdue, window_ended, no_courses).
    """
    if patients is None:
        raise LabInputError("schedule needs a patients table with course_dates, not None")
    day = check_as_of(as_of) if as_of is not None else dt.date.today()
    loaded = packs_of(packs)
    people = read_patients(patients)
    table = loaded.thresholds(thresholds)
    results, _ = normalise_prepared(read_labs(labs, packs=loaded), people, table, loaded)
    plan = schedule_table(results, people, day, table, loaded.groups)
    return stable_dtypes(plan.drop(columns="last_row"))
