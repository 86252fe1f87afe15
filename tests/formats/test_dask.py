"""Scale-out with Dask: identical findings to one process, on a 2-worker LocalCluster."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import pandas as pd
import pytest
from distributed import Client, LocalCluster
from hypothesis import HealthCheck, given, settings

import lemlabs
from lemlabs import examples
from lemlabs import strategies as ls
from lemlabs.dask import score_dask
from lemlabs.formats.export import table_records


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with cluster, Client(cluster) as connected:
        yield connected


def _single(report: lemlabs.Report) -> list[str]:
    return sorted(json.dumps(f.to_dict(), sort_keys=True) for f in report.finding_list)


def _distributed(findings: pd.DataFrame) -> list[str]:
    return sorted(json.dumps(record, sort_keys=True) for record in table_records(findings))


def _same(
    labs: Any, single_labs: pd.DataFrame, patients: Any, npartitions: int | None = None
) -> None:
    findings, issues, summary = score_dask(labs, patients, npartitions=npartitions).compute()
    expected = lemlabs.score_frame(single_labs, patients)
    assert _distributed(findings) == _single(expected)
    lab_issues = expected.issues[expected.issues["source"] == "labs"]
    assert sorted(map(tuple, issues.astype(str).to_numpy())) == sorted(
        map(tuple, lab_issues.astype(str).to_numpy())
    )
    for key in ("rows_in", "rows_normalised", "rows_rejected", "findings", "findings_by_severity"):
        assert summary[key] == expected.summary[key], key
    assert (
        summary["rows_in"]
        == summary["rows_normalised"] + summary["rows_rejected"]
        == len(single_labs)
    )


@pytest.mark.slow
def test_the_example_cohort_gives_the_single_process_findings(client: Client) -> None:
    labs = pd.read_csv(examples.path("labs"), dtype=str, keep_default_na=False)
    _same(dd.from_pandas(labs, npartitions=5), labs, examples.path("patients"), npartitions=3)


@pytest.mark.slow
@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ls.cohorts(size=(2, 5), months=(3, 12)))
def test_generated_cohorts_give_the_single_process_findings(
    client: Client, cohort: ls.Cohort
) -> None:
    _same(dd.from_pandas(cohort.labs, npartitions=3), cohort.labs, cohort.patients, npartitions=2)


@pytest.mark.slow
def test_a_patient_split_over_files_gets_one_history(client: Client, tmp_path: Path) -> None:
    labs = pd.read_csv(examples.path("labs"), dtype=str, keep_default_na=False)
    parts = [labs.iloc[i::3] for i in range(3)]  # every patient's rows in all three files
    for number, part in enumerate(parts):
        part.to_csv(tmp_path / f"labs_{number}.csv", index=False)
    in_file_order = pd.concat(parts, ignore_index=True)
    _same(str(tmp_path / "labs_*.csv"), in_file_order, examples.path("patients"))


@pytest.mark.slow
def test_parquet_files_are_read(client: Client, tmp_path: Path) -> None:
    labs = pd.read_csv(examples.path("labs"), dtype=str, keep_default_na=False).head(5000)
    labs.to_parquet(tmp_path / "labs.parquet")
    _same(str(tmp_path / "labs.parquet"), labs, examples.path("patients"))
    single = lemlabs.read_labs(tmp_path / "labs.parquet")
    assert single["value"].tolist() == labs["value"].tolist()


def test_missing_dask_is_a_clear_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in sys.modules if n == "dask" or n.startswith(("dask.", "lemlabs.dask"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "dask", None)
    with pytest.raises(ImportError, match=r"lemlabs\[dask\]"):
        importlib.import_module("lemlabs.dask")


def test_the_core_library_does_not_import_dask() -> None:
    # (pint itself imports dask's core when it is installed, for its dask-array support)
    code = (
        "import sys, lemlabs; from lemlabs import examples; "
        "lemlabs.score_frame(examples.path('labs')); "
        "print(sorted({'lemlabs.dask', 'dask.dataframe', 'distributed'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.slow
def test_the_command_line_scores_a_glob_with_dask(tmp_path: Path) -> None:
    labs = pd.read_csv(examples.path("labs"), dtype=str, keep_default_na=False).head(8000)
    for number in range(2):
        labs.iloc[number::2].to_parquet(tmp_path / f"part{number}.parquet")
    out = tmp_path / "findings.parquet"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lemlabs",
            "score",
            str(tmp_path / "part*.parquet"),
            "--dask",
            "--workers",
            "1",
            "--patients",
            str(examples.path("patients")),
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    in_file_order = pd.concat([labs.iloc[0::2], labs.iloc[1::2]], ignore_index=True)
    expected = lemlabs.score_frame(in_file_order, examples.path("patients"))
    assert _distributed(pd.read_parquet(out)) == _single(expected)


@pytest.mark.slow
def test_findings_have_the_dtypes_of_score_frame(client: Client) -> None:
    labs = pd.read_csv(examples.path("labs"), dtype=str, keep_default_na=False).head(8000)
    findings, _, _ = score_dask(
        dd.from_pandas(labs, npartitions=2), examples.path("patients")
    ).compute()
    single = lemlabs.score_frame(labs, examples.path("patients")).findings
    assert not findings.empty
    # evidence and notes are JSON text in the flat table, lists in score_frame: all else is equal
    same = [c for c in single.columns if c not in ("evidence", "notes")]
    assert findings[same].dtypes.to_dict() == single[same].dtypes.to_dict()
    assert len(findings[findings["severity"] >= "urgent"]) == len(
        single[single["severity"] >= "urgent"]
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "patient_id,Patient_ID,collected_at,test,value,unit\nP1,P1,2021-01-01,PLT,15,10^9/L\n",
            r"labs.csv: columns 'patient_id' and 'Patient_ID' have the same name",
        ),
        (
            "patient_id;collected_at;test;value;unit\nP1;2021-01-01;PLT;15;10^9/L\n",
            r"labs.csv: one column .*--dask reads comma-separated files only",
        ),
        (
            "STUDYID,USUBJID,LBTESTCD,LBORRES,LBORRESU,LBDTC\nS,P1,PLAT,15,10^9/L,2021-01-01\n",
            r"labs.csv: an SDTM LB table; --dask reads lemlabs' lab columns only",
        ),
        (
            "patient,date,test,value,unit\nP1,2021-01-01,PLT,15,10^9/L\n",
            r"labs.csv: required columns 'patient_id', 'collected_at' are missing",
        ),
    ],
)
def test_what_a_worker_cannot_read_is_one_line_before_any_worker_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    from lemlabs.cli import main

    path = tmp_path / "labs.csv"
    path.write_text(text)
    with pytest.raises(lemlabs.LabInputError, match=message):
        score_dask(path)
    assert main(["score", str(path), "--dask", "-o", str(tmp_path / "f.csv"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
