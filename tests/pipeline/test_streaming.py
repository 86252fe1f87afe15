"""Scoring in batches of patients (``lemlabs.score_file``) writes what one pass writes: the same
findings file byte for byte (CSV, JSON, JSON Lines), the same issues and summary, whatever the
batch size and however the patients' rows are scattered through the file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lemlabs
from lemlabs.errors import OutputError
from lemlabs.formats.export import (
    RESULT_DATES,
    FindingsFile,
    findings_table,
    flat_findings,
    write_csv,
    write_findings,
    write_issues,
)
from lemlabs.synthetic import generate

AS_OF = "2019-06-01"
SUFFIXES = ("csv", "json", "jsonl")


def _cohort(patients: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A noisy cohort (a quarter of results abnormal), its rows shuffled so that every
    patient's rows are scattered through the file, with what real exports add: a row without
    a patient, a lab bound that cannot be used, a patient of the table without results and one
    with an unreadable course date."""
    cohort = generate(patients=patients, months=25, seed=seed, variation=True, abnormal=0.25)
    labs = cohort.labs.sample(frac=1, random_state=seed).reset_index(drop=True)
    labs.loc[3, "patient_id"] = ""
    labs.loc[5, ["ref_low", "ref_high"]] = ["9", "2"]
    people = cohort.patients.astype(str)
    extra = pd.DataFrame(
        [
            {"patient_id": "ZZ-NO-LABS", "sex": "F", "course_dates": "2016-01-04"},
            {"patient_id": "AA-BAD-COURSE", "sex": "M", "course_dates": "2016-13-45"},
        ]
    )
    return labs, pd.concat([people, extra.reindex(columns=people.columns, fill_value="")])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The cohort's files and what one pass (score_frame) writes from them."""
    where = tmp_path_factory.mktemp("stream")
    labs, people = _cohort(12, seed=5)
    out = {"labs": where / "labs.csv", "patients": where / "patients.csv"}
    labs.to_csv(out["labs"], index=False)
    people.to_csv(out["patients"], index=False)
    one = lemlabs.score_frame(out["labs"], out["patients"], as_of=AS_OF)
    assert len(one.findings) > 100 and len(one.issues) >= 3  # a cohort worth comparing
    for suffix in SUFFIXES:
        out[suffix] = where / f"one.{suffix}"
        write_findings(one.findings, out[suffix])
    # the findings table written as its Finding records are, and the one-pass files what
    # json.dumps writes of their records, at once and a line each
    pd.testing.assert_frame_equal(flat_findings(one.findings), findings_table(one.finding_list))
    text = out["json"].read_text("utf-8")
    assert text == json.dumps(json.loads(text), ensure_ascii=False, indent=1) + "\n"
    lines = out["jsonl"].read_text("utf-8").split("\n")
    assert lines[:-1] == [json.dumps(json.loads(line), ensure_ascii=False) for line in lines[:-1]]
    assert lines[-1] == ""
    out["issues"] = where / "one_issues.csv"
    write_issues(one.issues, out["issues"])
    out["summary"] = where / "summary.txt"
    out["summary"].write_text(repr(one.summary))
    return out


def _as_one_pass(
    files: dict[str, Path], tmp_path: Path, suffix: str, **options: Any
) -> lemlabs.Scored:
    """``score_file`` with ``options``, its findings file (as ``suffix``), issues and summary
    checked against one pass's."""
    findings, issues = tmp_path / f"f.{suffix}", tmp_path / "issues.csv"
    scored = lemlabs.score_file(
        files["labs"], files["patients"], findings=findings, issues=issues, as_of=AS_OF, **options
    )
    assert findings.read_bytes() == files[suffix].read_bytes()
    assert issues.read_bytes() == files["issues"].read_bytes()
    assert repr(scored.summary) == files["summary"].read_text()
    return scored


@pytest.mark.parametrize("batch_rows", [1, 7, 400, 10**9])
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_batches_write_what_one_pass_writes(
    files: dict[str, Path], tmp_path: Path, batch_rows: int, suffix: str
) -> None:
    scored = _as_one_pass(files, tmp_path, suffix, batch_rows=batch_rows)
    if batch_rows == 10**9:
        assert scored.batches == 1
    else:
        assert scored.batches > 1 + 12 * (batch_rows < 400)  # patients, the row without one


@pytest.mark.parametrize(("chunk_rows", "batch_rows"), [(1, 400), (97, 7), (500, 400), (500, 1500)])
def test_a_file_read_in_many_chunks_writes_what_one_pass_writes(
    files: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    chunk_rows: int,
    batch_rows: int,
) -> None:
    """A CSV is read a chunk at a time: the chunks set aside before the file outgrows a batch,
    and those after, give every batch its rows in input order."""
    monkeypatch.setattr(lemlabs.streaming, "CHUNK_ROWS", chunk_rows)
    rows = len(pd.read_csv(files["labs"], dtype=str))
    assert rows > 2 * max(chunk_rows, batch_rows)  # several chunks, several batches
    assert _as_one_pass(files, tmp_path, "jsonl", batch_rows=batch_rows).batches > 1


def test_batches_scored_side_by_side_write_what_one_pass_writes(
    files: dict[str, Path], tmp_path: Path
) -> None:
    assert _as_one_pass(files, tmp_path, "csv", batch_rows=300, jobs=2).batches > 2


def test_a_table_in_memory_is_scored_in_batches_too(files: dict[str, Path], tmp_path: Path) -> None:
    labs = pd.read_csv(files["labs"], dtype=str, keep_default_na=False)
    findings = tmp_path / "f.csv"
    scored = lemlabs.score_file(
        labs, files["patients"], findings=findings, batch_rows=50, as_of=AS_OF
    )
    assert scored.batches > 10
    assert findings.read_bytes() == files["csv"].read_bytes()


def test_results_hold_one_pass_rows_batch_by_batch(files: dict[str, Path], tmp_path: Path) -> None:
    one = lemlabs.score_frame(files["labs"], files["patients"])
    written = tmp_path / "results.csv"
    lemlabs.score_file(files["labs"], files["patients"], results=written, batch_rows=300)
    batched = pd.read_csv(written, dtype=str, keep_default_na=False)
    assert not batched["row"].astype(int).is_monotonic_increasing  # scattered patients
    expected = tmp_path / "one.csv"
    write_csv(one.results, expected, dates=RESULT_DATES)
    by_row = batched.sort_values("row", key=lambda rows: rows.astype(int), ignore_index=True)
    pd.testing.assert_frame_equal(by_row, pd.read_csv(expected, dtype=str, keep_default_na=False))


def test_a_carriage_return_in_a_later_batch_gives_the_line_ends_of_one_pass(
    tmp_path: Path,
) -> None:
    rows = [
        ("A1", "2020-01-0{}", "PLT", "{}", "10^9/L"),
        ("Z\r9", "2020-01-0{}", "PLT", "{}", "10^9/L"),
    ]
    labs = pd.DataFrame(
        [
            (p, d.format(day), t, v.format(value), u)
            for p, d, t, v, u in rows
            for day, value in ((1, 20), (2, 25), (3, 30))
        ],
        columns=["patient_id", "collected_at", "test", "value", "unit"],
    )
    one = tmp_path / "one.csv"
    write_findings(lemlabs.score_frame(labs).findings, one)
    assert b"\r\n" in one.read_bytes()
    batched = tmp_path / "batched.csv"
    assert lemlabs.score_file(labs, findings=batched, batch_rows=1).batches == 2
    assert batched.read_bytes() == one.read_bytes()


def test_a_header_only_file_writes_what_one_pass_writes(tmp_path: Path) -> None:
    labs = tmp_path / "labs.csv"
    labs.write_text("patient_id,collected_at,test,value,unit\n")
    findings, one = tmp_path / "f.json", tmp_path / "one.json"
    scored = lemlabs.score_file(labs, findings=findings)
    write_findings(lemlabs.score_frame(labs).findings, one)
    assert findings.read_text() == one.read_text() == "[]\n"
    assert scored.summary["rows_in"] == 0


def test_a_missing_column_is_the_error_one_pass_raises(tmp_path: Path) -> None:
    labs = tmp_path / "labs.csv"
    labs.write_text("patient_id,collected_at,test,value\nP1,2020-01-01,PLT,20\n")
    with pytest.raises(lemlabs.LabInputError) as one:
        lemlabs.score_frame(labs)
    with pytest.raises(lemlabs.LabInputError) as batched:
        lemlabs.score_file(labs, findings=tmp_path / "f.csv")
    assert str(batched.value) == str(one.value)


def test_formats_written_whole_are_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"\.csv, \.json, \.jsonl"):
        FindingsFile(tmp_path / "f.parquet")
    with pytest.raises(ValueError, match="batch_rows"):
        lemlabs.score_file(pd.DataFrame(), batch_rows=0)
    with pytest.raises(ValueError, match="jobs"):
        lemlabs.score_file(pd.DataFrame(), jobs=0)


@given(
    order=st.randoms(use_true_random=False),
    batch_rows=st.integers(min_value=1, max_value=200),
)
def test_any_order_and_batch_size_give_the_one_pass_findings(
    order: object, batch_rows: int
) -> None:
    labs, people = _cohort(3, seed=11)
    labs = labs.head(150)
    positions = list(range(len(labs)))
    order.shuffle(positions)  # type: ignore[attr-defined]
    shuffled = labs.iloc[np.array(positions)].reset_index(drop=True)
    one = lemlabs.score_frame(shuffled, people, as_of=AS_OF)
    with tempfile.TemporaryDirectory() as where:
        expected, written = Path(where) / "one.jsonl", Path(where) / "batched.jsonl"
        write_findings(one.findings, expected)
        batched = lemlabs.score_file(
            shuffled, people, findings=written, batch_rows=batch_rows, as_of=AS_OF
        )
        assert written.read_bytes() == expected.read_bytes()
    assert batched.summary == one.summary
    pd.testing.assert_frame_equal(batched.issues, one.issues)


def test_a_process_that_dies_is_a_resource_error() -> None:
    from lemlabs.streaming import _runner

    with pytest.raises(lemlabs.ResourceError, match="ended abruptly"), _runner(2) as run:
        list(run(os._exit, iter([3, 3, 3])))
