"""Dask against one process on a large Parquet cohort: rows/s, speed-up, peak memory per worker.

    python benchmarks/dask_run.py                    # 10M rows, 2-worker LocalCluster
    python benchmarks/dask_run.py --rows 1000000     # a smaller run

The cohort (``lemlabs.synthetic``, ~112 rows per patient) is written once to
``benchmarks/data/parquet_<rows>/labs/`` in files of ~100k rows, the patients beside them. The
single-process run reads it all with pandas and calls ``score_frame``; the Dask run calls
``lemlabs.dask.score_dask`` on the files with a ``LocalCluster`` of single-threaded worker
processes. Each run is a fresh process.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).parent / "data"
CHUNK_PATIENTS = 900  # ~100k rows a file


def _cohort(rows: int) -> Path:
    from lemlabs.synthetic import generate

    folder = DATA / f"parquet_{rows}"
    if not folder.exists():
        (folder / "labs").mkdir(parents=True)
        written, chunk, patients = 0, 0, []
        while written < rows:
            cohort = generate(
                CHUNK_PATIENTS, months=25, seed=chunk, first_id=1 + chunk * CHUNK_PATIENTS
            )
            part = cohort.labs.head(rows - written)
            part.to_parquet(folder / "labs" / f"{chunk:04d}.parquet", index=False)
            patients.append(cohort.patients)
            written += len(part)
            chunk += 1
        import pandas as pd

        pd.concat(patients).to_csv(folder / "patients.csv", index=False)
    return folder


def _single(folder: str) -> dict[str, float]:
    import pandas as pd

    import lemlabs

    started = time.perf_counter()
    labs = pd.read_parquet(Path(folder) / "labs")
    report = lemlabs.score_frame(labs, Path(folder) / "patients.csv")
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "rows": report.summary["rows_in"],
        "seconds": seconds,
        "peak_mb": peak,
        "findings": report.summary["findings"],
    }


def _dask(folder: str, workers: int) -> dict[str, float]:
    from distributed import Client, LocalCluster

    from lemlabs.dask import score_dask

    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=1, dashboard_address=None, memory_limit="8GiB"
    )
    with cluster, Client(cluster) as client:
        started = time.perf_counter()
        labs = f"{folder}/labs/*.parquet"
        _, _, summary = score_dask(labs, Path(folder) / "patients.csv").compute()
        seconds = time.perf_counter() - started
        peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {
        "rows": summary["rows_in"],
        "seconds": seconds,
        "peak_mb": max(peaks.values()),
        "findings": summary["findings"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, folder = args.child
        result = _single(folder) if mode == "single" else _dask(folder, args.workers)
        print(json.dumps(result))
        return
    folder = str(_cohort(args.rows))
    runs = {}
    for mode in ("single", "dask"):
        done = subprocess.run(
            [sys.executable, __file__, "--child", mode, folder, "--workers", str(args.workers)],
            check=True,
            capture_output=True,
            text=True,
        )
        runs[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    single, dask = runs["single"], runs["dask"]
    assert single["findings"] == dask["findings"], "the two runs disagree"
    for mode, run in runs.items():
        rate = run["rows"] / run["seconds"]
        print(
            f"{mode:<7} rows {run['rows']:>10,} {run['seconds']:>8.1f} s {rate:>10,.0f} rows/s "
            f"peak {run['peak_mb']:>7,.0f} MB{' per worker' if mode == 'dask' else ''}"
        )
    speedup = single["seconds"] / dask["seconds"]
    per_worker = (
        (dask["rows"] / dask["seconds"]) / args.workers / (single["rows"] / single["seconds"])
    )
    print(
        f"speed-up {speedup:.2f}× on {args.workers} workers; throughput per worker "
        f"{per_worker:.0%} of one process"
    )


if __name__ == "__main__":
    main()
