"""Speed and memory of lemlabs on synthetic cohorts: rows/s and peak memory per size and stage.

    python benchmarks/run.py                 # 10k, 100k and 1M rows
    python benchmarks/run.py --rows 100000   # one size
    python benchmarks/run.py --rows 100000 --abnormal 0.01 0.10 0.25 --stage score

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


def _cohort(rows: int, abnormal: float | None) -> tuple[Path, Path]:
    from lemlabs.synthetic import generate

    tag = f"{rows}" if abnormal is None else f"{rows}_abnormal{abnormal:g}"
    labs, patients = DATA / f"labs_{tag}.csv", DATA / f"patients_{tag}.csv"
    if not labs.exists():
        DATA.mkdir(exist_ok=True)
        noise = {} if abnormal is None else {"variation": True, "abnormal": abnormal}
        cohort = generate(patients=max(1, rows // 100), months=MONTHS, seed=7, **noise)
        cohort.labs.head(rows).to_csv(labs, index=False)
        cohort.patients.to_csv(patients, index=False)
    return labs, patients


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
        rows = len(frame)
        abnormal, findings = 0.0, 0
    else:
        report = lemlabs.score_frame(labs, patients, progress=progress)
        rows = report.summary["rows_in"]
        scored = report.results[report.results["status"] == "scored"]
        abnormal, findings = float((scored["flag"] != "N").mean()), len(report.finding_list)
    seconds = time.perf_counter() - started
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
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(*args.child)))
        return
    sizes = args.rows or [10_000, 100_000, 1_000_000]
    stages = args.stage or ["normalise", "score"]
    print(
        f"{'stage':<10} {'rows':>9} {'abnormal':>8} {'seconds':>8} {'rows/s':>10} "
        f"{'peak MB':>8} {'engine':>7} {'findings':>8}"
    )
    for rows in sizes:
        for share in args.abnormal or [None]:
            labs, patients = _cohort(rows, share)
            for stage in stages:
                runs = [
                    json.loads(
                        subprocess.run(
                            [sys.executable, __file__, "--child", stage, str(labs), str(patients)],
                            check=True,
                            capture_output=True,
                            text=True,
                        ).stdout
                    )
                    for _ in range(args.repeat)
                ]
                m = sorted(runs, key=lambda run: run["seconds"])[len(runs) // 2]
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
