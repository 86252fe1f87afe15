"""Speed and memory of lemlabs on synthetic cohorts: rows/s and peak memory per size and stage.

    python benchmarks/run.py                 # 10k, 100k and 1M rows
    python benchmarks/run.py --rows 100000   # one size
    python benchmarks/run.py --rows 100000 --abnormal 0.01 0.10 0.25 --stage score
    python benchmarks/run.py --targets       # issue #28's targets: measured, met or not
    python benchmarks/run.py --targets --cohort pilot --pilot DIR   # on the resampled pilot

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


# issue #28's targets (2-core machine), each measured in fresh processes, ratios in one run
TARGET_TEXT = {
    "read": "1M rows: read + score <= 8x a bare read_csv",
    "big_peak": "10M rows, CLI: peak < 4 GB",
    "big_time": "10M rows, CLI: time <= 12x the 1M CLI run",
    "cli": "CLI <= 1.3x the API on the same 1M file",
    "cost": "cost ratio 25 % / 1 % abnormal <= 2.5x",
    "one": "1M rows of one patient (25 %): peak < 3 GB",
}


def _cli(
    labs: Path, patients: Path, limit: float, jobs: int | None = None
) -> dict[str, float] | None:
    """``lemlabs score`` on a file, its findings and issues written as CSV: seconds and the
    peak resident memory of the command and the processes it starts, summed (``None`` when it
    ran past ``limit`` seconds)."""
    out = DATA / "out"
    out.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "lemlabs", "score", str(labs), "--patients", str(patients)]
    command += ["-o", str(out / "findings.csv"), "--issues", str(out / "issues.csv"), "-q"]
    command += [] if jobs is None else ["--jobs", str(jobs)]
    started = time.perf_counter()
    with (out / "stderr.txt").open("w+") as errors:  # a file: a pipe could fill and stall it
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        peak = 0.0
        while child.poll() is None:
            peak = max(peak, _tree_mb(child.pid))
            if time.perf_counter() - started > limit:
                child.kill()
                return None
            time.sleep(0.1)
        seconds = time.perf_counter() - started
        if child.returncode:
            errors.seek(0)
            raise SystemExit(f"{' '.join(command)} failed: {errors.read()[-2000:]}")
    return {"seconds": seconds, "peak_mb": peak}


def _tree_mb(root: int) -> float:
    """The resident memory (MB) of a process and its descendants now (Linux /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    tree, grown = {root}, True
    while grown:
        found = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= found
        grown = bool(found)
    total = 0
    for pid in tree:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except OSError:
            continue
    return total * resource.getpagesize() / 2**20


def _targets(repeat: int, limit: float, cohort: str, pilot: Path | None) -> None:
    """Measure what issue #28's targets name (on the synthetic cohort, or the resampled CDISC
    pilot: benchmarks/pilot_cohort.py) and say, for each, whether it is met."""
    files = _pilot_files(pilot) if cohort == "pilot" else None
    million = files[1_000_000] if files else _cohort(1_000_000, 0.25)
    ten = files[10_000_000] if files else _cohort(10_000_000, 0.25)
    api = _median([_run("read_and_score", *million, limit) for _ in range(repeat)])
    cli = _median([_cli(*million, limit) for _ in range(repeat)])
    alone = _cli(*million, limit, jobs=1)
    big = _cli(*ten, limit * 10)
    rows: list[tuple[str, float | None, float, str]] = []
    if api:
        rows.append(("read", api["seconds"] / api["bare_seconds"], 8.0, "x"))
    if big:
        rows.append(("big_peak", big["peak_mb"], 4096.0, " MB"))
    if big and cli:
        rows.append(("big_time", big["seconds"] / cli["seconds"], 12.0, "x"))
    if api and cli:
        rows.append(("cli", cli["seconds"] / api["seconds"], 1.3, "x"))
    if files is None:
        low = _median([_run("score", *_cohort(1_000_000, 0.01), limit) for _ in range(repeat)])
        if low and api:
            rows.append(("cost", api["seconds"] / low["seconds"], 2.5, "x"))
        one = _run("score", *_cohort(1_000_000, 0.25, one_patient=True), limit)
        rows.append(("one", one["peak_mb"] if one else None, 3072.0, " MB"))
    for key, value, bound, unit in rows:
        met = value is not None and value <= bound
        shown = "stopped" if value is None else f"{value:,.2f}{unit}"
        print(f"{'met    ' if met else 'NOT met'}  {TARGET_TEXT[key]:<58} measured {shown}")
    name = "the CDISC pilot, resampled" if files else "lemlabs' generator, 25 % abnormal"
    if api:
        print(
            f"  cohort: {name} ({api['abnormal']:.1%} of scored results outside their "
            f"interval, {api['findings']:,.0f} findings at 1M rows)"
        )
    if api and alone:
        print(f"  (CLI --jobs 1: {alone['seconds'] / api['seconds']:.2f}x the API)")
    for name, m in (("API 1M", api), ("CLI 1M", cli), ("CLI 1M --jobs 1", alone), ("CLI 10M", big)):
        if m:
            extra = f", bare read_csv {m['bare_seconds']:.2f} s" if m is api else ""
            print(f"  {name}: {m['seconds']:.1f} s, peak {m['peak_mb']:,.0f} MB{extra}")


def _pilot_files(pilot: Path | None) -> dict[int, tuple[Path, Path]]:
    """The resampled pilot's 1M and 10M files (made by benchmarks/pilot_cohort.py from the
    CSVs in ``pilot``: lb.csv, dm.csv, ex.csv)."""
    found = {}
    for rows in (1_000_000, 10_000_000):
        labs, people = DATA / f"pilot_lb_{rows}.csv", DATA / f"pilot_patients_{rows}.csv"
        if not labs.exists():
            if pilot is None:
                raise SystemExit(f"{labs} is missing: pass --pilot DIR (lb.csv, dm.csv, ex.csv)")
            from pilot_cohort import build

            table, folks = build(pilot / "lb.csv", pilot / "dm.csv", pilot / "ex.csv", rows)
            DATA.mkdir(exist_ok=True)
            table.to_csv(labs, index=False)
            folks.to_csv(people, index=False)
        found[rows] = (labs, people)
    return found


def _measure(stage: str, labs: str, patients: str) -> dict[str, float]:
    """Run one stage in this process and report seconds, rows, peak RSS and the engine's share."""
    import lemlabs

    marks: dict[str, float] = {}

    def progress(name: str, done: int, total: int) -> None:
        marks.setdefault(f"{name}:{'end' if done >= total else 'start'}", time.perf_counter())

    bare = 0.0
    if stage == "read_and_score":  # the targets' ratio: a bare read of the file, then scoring
        import pandas as pd

        started = time.perf_counter()
        pd.read_csv(labs)
        bare = time.perf_counter() - started
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
        "bare_seconds": bare,
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
    parser.add_argument("--targets", action="store_true", help="measure issue #28's targets")
    parser.add_argument(
        "--cohort",
        choices=("synthetic", "pilot"),
        default="synthetic",
        help="--targets on lemlabs' generator (default) or the resampled CDISC pilot",
    )
    parser.add_argument("--pilot", type=Path, help="folder of the pilot's lb.csv, dm.csv, ex.csv")
    parser.add_argument(
        "--limit", type=float, default=600, help="seconds before a run is stopped (default 600)"
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(*args.child)))
        return
    if args.targets:
        _targets(args.repeat, args.limit, args.cohort, args.pilot)
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
