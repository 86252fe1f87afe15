"""A cohort lemlabs' generator did not write: the CDISC pilot's SDTM LB (pharmaversesdtm),
resampled to a size, for the speed and memory targets.

    python benchmarks/pilot_cohort.py lb.csv dm.csv ex.csv --rows 1000000 --out benchmarks/data

``lb.csv``, ``dm.csv``, ``ex.csv``: pharmaversesdtm's ``lb``, ``dm`` and ``ex`` as CSV
(docs/pilot_adlb_check.py says how to make them). Each copy of the 254 subjects gets its own
ids (``01-701-1015-R03``), its dates shifted by a whole number of days drawn per copy (0-3 years)
and each numeric result multiplied by a factor drawn per row (log-normal, sigma 0.15: a
spread like a second lab's), written with the original's decimals. Non-numeric results
(``NEGATIVE``, ``<1``) are kept. The rows keep the pilot's order with a copy's rows following the
original's, so every subject's rows are spread through the whole file (the hard case for
batching). Written as SDTM LB (read by ``read_labs``) and a lemlabs patients CSV (courses from
EX: the pilot's XANOMELINE and PLACEBO infusions).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pandas as pd

from lemlabs.formats.sdtm import patients_from

NUMBER = re.compile(r"^\d+(?:\.(\d+))?$")
TREATMENT = ["XANOMELINE", "PLACEBO"]


def _shifted(dates: pd.Series, days: int) -> pd.Series:
    """ISO dates or date-times moved by ``days``, in their own format (partial dates kept)."""
    text = dates.astype(str)
    day = pd.to_datetime(text.str[:10], format="%Y-%m-%d", errors="coerce")
    moved = (day + pd.Timedelta(days=days)).dt.strftime("%Y-%m-%d")
    return moved.where(day.notna(), text) + text.str[10:].where(day.notna(), "")


def _jittered(values: pd.Series, factors: np.ndarray) -> pd.Series:
    """Numeric results times ``factors``, with the original's decimals; other text kept."""
    match = values.str.extract(NUMBER)
    numeric = values.str.fullmatch(NUMBER.pattern).fillna(False).to_numpy()
    decimals = match[0].fillna("").str.len().to_numpy()
    out = values.to_numpy(dtype=object).copy()
    for places in np.unique(decimals[numeric]):
        mine = numeric & (decimals == places)
        scaled = values[mine].astype(float).to_numpy() * factors[mine]
        out[mine] = [f"{number:.{places}f}" for number in scaled]
    return pd.Series(out, index=values.index)


def build(
    lb: Path, dm: Path, ex: Path, rows: int, seed: int = 28
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The resampled LB table (``rows`` rows) and its patients table."""
    read = {"dtype": str, "keep_default_na": False}
    labs, demo, exposure = (pd.read_csv(path, **read) for path in (lb, dm, ex))
    people = patients_from(demo, exposure, sorted(set(labs["USUBJID"])), treatment=TREATMENT)
    people = people[["patient_id", "sex", "birth_date", "course_dates"]]
    random = np.random.default_rng(seed)
    copies = -(-rows // len(labs))
    lab_parts, people_parts = [], []
    for copy in range(copies):
        days = 0 if copy == 0 else int(random.integers(0, 3 * 365))
        suffix = "" if copy == 0 else f"-R{copy:02d}"
        part = labs.copy()
        part["USUBJID"] = part["USUBJID"] + suffix
        part["LBDTC"] = _shifted(part["LBDTC"], days)
        if copy:
            factors = np.exp(random.normal(0.0, 0.15, len(part)))
            part["LBORRES"] = _jittered(part["LBORRES"], factors)
        lab_parts.append(part.assign(_order=np.arange(len(part)), _copy=copy))
        mine = people.copy()
        mine["patient_id"] = mine["patient_id"] + suffix
        mine["course_dates"] = mine["course_dates"].map(
            lambda text, d=days: ";".join(_shifted(pd.Series(text.split(";")), d) if text else [])
        )
        people_parts.append(mine)
    out = pd.concat(lab_parts, ignore_index=True).sort_values(["_order", "_copy"], kind="stable")
    out = out.drop(columns=["_order", "_copy"]).head(rows)
    kept = set(out["USUBJID"])
    folks = pd.concat(people_parts, ignore_index=True)
    return out, folks[folks["patient_id"].isin(kept)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lb", type=Path)
    parser.add_argument("dm", type=Path)
    parser.add_argument("ex", type=Path)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    args = parser.parse_args()
    labs, people = build(args.lb, args.dm, args.ex, args.rows)
    args.out.mkdir(parents=True, exist_ok=True)
    labs.to_csv(args.out / f"pilot_lb_{args.rows}.csv", index=False)
    people.to_csv(args.out / f"pilot_patients_{args.rows}.csv", index=False)
    print(args.out / f"pilot_lb_{args.rows}.csv", len(labs), "rows", len(people), "patients")


if __name__ == "__main__":
    main()
