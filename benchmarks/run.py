"""Speed and memory of lemlabs on synthetic cohorts: rows/s and peak memory per size and stage.

    python benchmarks/run.py                 # 10k, 100k and 1M rows
    python benchmarks/run.py --rows 100000   # one size
    python benchmarks/run.py --rows 100000 --abnormal 0.01 0.10 0.25 --stage score
    python benchmarks/run.py --targets       # issue #14's targets: measured, met or not

Each run is a fresh process, so that its peak resident memory is its own; the median of
``--repeat`` runs (3 by default) is shown, since single runs on a shared machine vary by ±30 %.
The cohort comes from ``lemlabs.synthetic`` (seeded; three labs' spellings, mixed units,
~0.3 % bad rows) and is written once per size to ``benchmarks/data/`` as CSV.
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
MONTHS = 25  # about 115 results per patient


def _cohort(rows: int, abnormal: float | None, one_patient: bool = False) -> tuple[Path, Path]:
    """The cohort's CSVs, generated once. ``one_patient``: the same rows under one patient id
    (a broken export), with the first patient's courses."""
    import pandas as pd

    from lemlabs.synthetic import generate

    tag = f"{rows}" if abnormal is None else f"{rows}_abnormal{abnormal:g}"
    labs, patients = DATA / f"labs_{tag}.csv", DATA / f"patients_{tag}.csv"
    if not labs.exists():
        DATA.mkdir(exist_ok=True)
        noise = {} if abnormal is None else {"variation": True, "abnormal": abnormal}
        cohort = generate(patients=max(1, rows // 100), months=MONTHS, seed=7, **noise)
        cohort.labs.head(rows).to_csv(labs, index=False)
        cohort.patients.to_csv(patients, index=False)
    if not one_patient:
        return labs, patients
    one_labs, one_patients = DATA / f"labs_{tag}_one.csv", DATA / f"patients_{tag}_one.csv"
    if not one_labs.exists():
        frame = pd.read_csv(labs, dtype=str, keep_default_na=False)
        frame.assign(patient_id="ONE").to_csv(one_labs, index=False)
        people = pd.read_csv(patients, dtype=str, keep_default_na=False).head(1)
        people.assign(patient_id="ONE").to_csv(one_patients, index=False)
    return one_labs, one_patients


def _run(stage: str, labs: Path, patients: Path, limit: float | None) -> dict[str, float] | None:
    """One measurement in a fresh process; ``None`` when it ran past ``limit`` seconds."""
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--child", stage, str(labs), str(patients)],
            check=True,
            capture_output=True,
            text=True,
            timeout=limit,
        )
    except subprocess.TimeoutExpired:
        return None
    result: dict[str, float] = json.loads(done.stdout)
    return result


def _median(runs: list[dict[str, float] | None]) -> dict[str, float] | None:
    if any(run is None for run in runs):
        return None
    measured = sorted((run for run in runs if run is not None), key=lambda run: run["seconds"])
    return measured[len(measured) // 2]


# issue #14's targets (2-core machine): read + score seconds and peak MB
TARGETS = [
    ("1M rows, 25 % abnormal: read + score < 20 s", 1_000_000, 0.25, False, "seconds", 20.0),
    ("1M rows, 25 % abnormal: peak < 2 GB", 1_000_000, 0.25, False, "peak_mb", 2048.0),
    ("1M rows, 1 % abnormal: read + score < 6 s", 1_000_000, 0.01, False, "seconds", 6.0),
    ("1M rows of one patient (25 %): peak < 3 GB", 1_000_000, 0.25, True, "peak_mb", 3072.0),
]


def _targets(repeat: int, limit: float) -> None:
    """Measure what the targets name and say, for each, whether it is met."""
    measured: dict[tuple[int, float, bool], dict[str, float] | None] = {}
    for _, rows, share, one, _, _ in TARGETS:
        if (rows, share, one) not in measured:
            labs, patients = _cohort(rows, share, one)
            times = 1 if one else repeat
            measured[rows, share, one] = _median(
                [_run("score", labs, patients, limit) for _ in range(times)]
            )
    for text, rows, share, one, key, bound in TARGETS:
        m = measured[rows, share, one]
        shown = f"over {limit:g} s (stopped)" if m is None else f"{m[key]:,.2f}"
        met = m is not None and m[key] < bound
        print(f"{'met    ' if met else 'NOT met'}  {text:<48} measured {shown}", flush=True)
    low, high = measured[1_000_000, 0.01, False], measured[1_000_000, 0.25, False]
    if low and high:
        ratio = high["seconds"] / low["seconds"]
        print(
            f"{'met    ' if ratio <= 2.5 else 'NOT met'}  {'cost ratio 25 % / 1 % <= 2.5x':<48} "
            f"measured {ratio:.2f}x (engine share {high['engine_share']:.0%} at 25 %)"
        )


def _measure(stage: str, labs: str, patients: str) -> dict[str, float]:
    """Run one stage in this process and report seconds, rows, peak RSS and the engine's share."""
    import lemlabs

    marks: dict[str, float] = {}

    def progress(name: str, done: int, total: int) -> None:
        marks.setdefault(f"{name}:{'end' if done >= total else 'start'}", time.perf_counter())

    started = time.perf_counter()
    if stage == "normalise":
        frame = lemlabs.read_labs(labs)
        lemlabs.normalise(frame, lemlabs.read_patients(patients))
        seconds = time.perf_counter() - started
        rows, abnormal, findings = len(frame), 0.0, 0
    else:
        report = lemlabs.score_frame(labs, patients, progress=progress)
        seconds = time.perf_counter() - started
        rows = report.summary["rows_in"]
        scored = report.results[report.results["status"] == "scored"]
        abnormal, findings = float((scored["flag"] != "N").mean()), len(report.findings)
    engine = marks.get("engine:end", 0.0) - marks.get("engine:start", 0.0)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "rows": rows,
        "seconds": seconds,
        "peak_mb": peak_mb,
        "engine_share": engine / seconds,
        "abnormal": abnormal,
        "findings": findings,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append")
    parser.add_argument("--stage", choices=["normalise", "score"], action="append")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median shown)")
    parser.add_argument(
        "--abnormal",
        type=float,
        nargs="+",
        help="cohorts with biological variation and this share of spurious abnormal results "
        "(e.g. 0.01 0.10 0.25); default: the plain generator (about 0.6 %% abnormal)",
    )
    parser.add_argument(
        "--one-patient", action="store_true", help="the same rows under one patient id"
    )
    parser.add_argument("--targets", action="store_true", help="measure issue #14's targets")
    parser.add_argument(
        "--limit", type=float, default=600, help="seconds before a run is stopped (default 600)"
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(*args.child)))
        return
    if args.targets:
        _targets(args.repeat, args.limit)
        return
    sizes = args.rows or [10_000, 100_000, 1_000_000]
    stages = args.stage or ["normalise", "score"]
    print(
        f"{'stage':<10} {'rows':>9} {'abnormal':>8} {'seconds':>8} {'rows/s':>10} "
        f"{'peak MB':>8} {'engine':>7} {'findings':>8}"
    )
    for rows in sizes:
        for share in args.abnormal or [None]:
            labs, patients = _cohort(rows, share, args.one_patient)
            for stage in stages:
                m = _median([_run(stage, labs, patients, args.limit) for _ in range(args.repeat)])
                if m is None:
                    print(f"{stage:<10} {rows:>9} stopped after {args.limit:g} s", flush=True)
                    continue
                scored = stage == "score"
                engine = f"{m['engine_share']:.0%}" if scored else ""
                abnormal = f"{m['abnormal']:.1%}" if scored else ""
                found = f"{m['findings']}" if scored else ""
                rate = m["rows"] / m["seconds"]
                print(
                    f"{stage:<10} {m['rows']:>9} {abnormal:>8} {m['seconds']:>8.2f} "
                    f"{rate:>10,.0f} {m['peak_mb']:>8.0f} {engine:>7} {found:>8}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
