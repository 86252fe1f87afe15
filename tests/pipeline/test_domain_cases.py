"""Clinical cases from the specification, run through the public API only.

These cases were written by an independent reader from ../shared/domain.md without reading
lemlabs' code (data/domain_cases.json, with the checks of that reader's black-box runner ported
here). An expectation here is changed only when domain.md changes: a failing case is a finding
about lemlabs, never a reason to edit the case.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import lemlabs

Case = dict[str, Any]
Expect = dict[str, Any]

CASES: list[Case] = json.loads(
    (Path(__file__).parents[1] / "data" / "domain_cases.json").read_text(encoding="utf-8")
)
REQUIRED_LAB_COLS = ["patient_id", "collected_at", "test", "value", "unit"]
LAB_COLS = [*REQUIRED_LAB_COLS, "loinc", "specimen", "ref_low", "ref_high"]
PAT_COLS = ["patient_id", "sex", "course_dates"]
CHECKED_COLS = ["severity", "ctcae_grade", "date", "episode_start", "days_from_course"]
SHOW_COLS = ["patient_id", "code", *CHECKED_COLS, "message"]
SEEN = (re.compile(r"[Ss]een (\d+|once|twice)"), re.compile(r"\b(\d+) results?\b"))


def _write_csv(path: Path, rows: list[dict[str, str]], cols: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(cols)
        writer.writerows([row.get(c, "") for c in cols] for row in rows)
    return path


def _empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _date(value: object) -> str | None:
    return None if _empty(value) else str(value)[:10]


def _int(value: object) -> object:
    if _empty(value):
        return None
    try:
        return int(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return value


def _shown(column: str, value: object) -> object:
    """A finding's cell as compared and shown: dates as YYYY-MM-DD, grades and days as ints."""
    if column in ("date", "episode_start"):
        return _date(value)
    if column in ("ctcae_grade", "days_from_course"):
        return _int(value)
    if column == "message":
        return (str(value)[:260] + "...") if len(str(value)) > 260 else str(value)
    return str(value)


def _short_row(row: pd.Series[Any]) -> str:
    parts = [
        f"{c}={_shown(c, row[c])}" if c in row.index else f"{c}=<missing column>" for c in SHOW_COLS
    ]
    notes = row.get("notes")
    if isinstance(notes, list | tuple) and notes:
        parts.append(f"notes={list(notes)}")
    return "{" + ", ".join(parts) + "}"


def _rows(frame: pd.DataFrame) -> str:
    return "; ".join(_short_row(row) for _, row in frame.iterrows())


def _row_problems(exp: Expect, row: pd.Series[Any]) -> list[str]:
    """Why one finding row does not meet ``exp`` (empty when it does)."""
    problems = []
    for column in (c for c in CHECKED_COLS if c in exp):
        if column not in row.index:
            problems.append(f"column {column} missing")
        elif (got := _shown(column, row[column])) != exp[column]:
            problems.append(f"{column} {got} != {exp[column]}")
    msg = str(row["message"]) if "message" in row.index else ""
    low = msg.lower()
    problems += [
        f"message lacks {s!r}" for s in exp.get("message_contains", []) if s.lower() not in low
    ]
    any_of = exp.get("message_contains_any")
    if any_of and not any(s.lower() in low for s in any_of):
        problems.append(f"message lacks any of {any_of}")
    problems += [
        f"message contains {s!r}" for s in exp.get("message_not_contains", []) if s.lower() in low
    ]
    problems += [
        f"message matches /{rx}/" for rx in exp.get("message_not_regex", []) if re.search(rx, msg)
    ]
    if "seen_times" in exp and (match := SEEN[0].search(msg) or SEEN[1].search(msg)):
        word = match.group(1)
        if ({"once": 1, "twice": 2}.get(word) or int(word)) != exp["seen_times"]:
            problems.append(f"message says seen {word}, expected {exp['seen_times']}")
    return problems


def _check_present(exp: Expect, findings: pd.DataFrame) -> str | None:
    """None when some finding meets every key of ``exp``, else why not."""
    found = findings
    if "patient_id" in exp:
        pid = str(exp["patient_id"])
        found = (
            found[found["patient_id"].astype(str) == pid] if "patient_id" in found else found[:0]
        )
    codes = exp.get("code_in") or ([exp["code"]] if exp.get("code") else None)
    if codes:
        found = found[found["code"].astype(str).isin(codes)] if "code" in found else found[:0]
    if "count" in exp and len(found) != exp["count"]:
        return f"expected {exp['count']} finding(s) {codes}, got {len(found)}: {_rows(found)}"
    if found.empty:
        return f"missing {exp}"
    candidates = []
    for _, row in found.iterrows():
        if not (problems := _row_problems(exp, row)):
            return None
        candidates.append(f"{_short_row(row)} -> " + "; ".join(problems))
    return f"no finding matching {exp}; candidates: " + " | ".join(candidates)


def _check_absent(exp: str | Expect, findings: pd.DataFrame) -> str | None:
    """None when no finding has the code (and patient, severity, date) of ``exp``."""
    spec = {"code": exp} if isinstance(exp, str) else exp
    if "code" not in findings:
        return None
    hit = findings[findings["code"].astype(str) == spec["code"]]
    if "patient_id" in spec:
        hit = hit[hit["patient_id"].astype(str) == str(spec["patient_id"])]
    if "severity" in spec:
        hit = hit[hit["severity"].astype(str) == spec["severity"]]
    if "date" in spec and "date" in hit:
        hit = hit[hit["date"].map(_date) == spec["date"]]
    return None if hit.empty else f"unexpected {spec}: {_rows(hit)}"


def _issue_rows(report: lemlabs.Report) -> set[object]:
    issues = report.issues
    if issues is None or issues.empty or "row" not in issues:
        return set()
    return {_int(x) for x in issues["row"]}


def _unscored(i: int, report: lemlabs.Report) -> bool:
    """Row ``i`` is a data issue, has no result, or has no result with status ``scored``."""
    if i in _issue_rows(report):
        return True
    results = report.results
    if results is None or "row" not in results:
        return False
    sub = results[results["row"].map(_int) == i]
    return sub.empty or ("status" in sub and not (sub["status"].astype(str) == "scored").any())


def _failures(case: Case, report: lemlabs.Report) -> list[str]:
    exp, labs, findings = case["expect"], case["labs"], report.findings
    failures = [_check_present(e, findings) for e in exp.get("codes_present", [])]
    failures += [_check_absent(e, findings) for e in exp.get("codes_absent", [])]

    def lab(i: int, unit: bool = True) -> str:
        row = labs[i]
        return f"row {i} ({row['test']}={row['value']}" + (f" {row['unit']})" if unit else ")")

    if exp.get("not_scored_or_issue"):
        rows = exp.get("not_scored_rows", list(range(len(labs))))
        for i in rows:
            if not _unscored(i, report):
                failures.append(f"{lab(i, False)} was scored; expected not_scored or a data issue")
            pid = labs[i]["patient_id"]
            # findings for this patient count only when all its rows are meant to be unscored
            if "patient_id" in findings and all(
                j in rows for j, r in enumerate(labs) if r["patient_id"] == pid
            ):
                hit = findings[findings["patient_id"].astype(str) == pid]
                if not hit.empty:
                    failures.append(f"unscored row {i} raised findings: {_rows(hit)}")
    issue_rows = _issue_rows(report)
    failures += [
        f"{lab(i)} not in report.issues" for i in exp.get("issue_rows", []) if i not in issue_rows
    ]
    for i in exp.get("scored_rows", []):
        if _unscored(i, report):
            why = ""
            if report.issues is not None and "row" in report.issues:
                sub = report.issues[report.issues["row"].map(_int) == i]
                why = "; ".join(str(x) for x in sub.get("reason", []))
            failures.append(f"{lab(i)} expected scored, was not ({why})")
    issues = report.issues
    reasons = " | ".join(str(x) for x in issues.get("reason", [])) if issues is not None else ""
    failures += [
        f"no issue reason contains {s!r}; reasons: {reasons!r}"
        for s in exp.get("issue_reason_contains", [])
        if s.lower() not in reasons.lower()
    ]
    summary = json.dumps(report.summary, default=str)
    failures += [
        f"summary does not mention {s!r}: {report.summary}"
        for s in exp.get("summary_mentions", [])
        if s not in summary
    ]
    return [f for f in failures if f]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_domain_case(case: Case, tmp_path: Path) -> None:
    labs = lemlabs.read_labs(_write_csv(tmp_path / "labs.csv", case["labs"], LAB_COLS))
    patients = None
    if case.get("patients"):
        path = _write_csv(tmp_path / "patients.csv", case["patients"], PAT_COLS)
        patients = lemlabs.read_patients(path)
    report = lemlabs.score_frame(labs, patients)
    failures = _failures(case, report)
    assert not failures, (
        f"{case['id']}: {case['clinical_statement']}\n"
        + "".join(f"  - {f}\n" for f in failures)
        + "  findings seen:\n"
        + "".join(f"    {_short_row(row)}\n" for _, row in report.findings.iterrows())
        + f"  issues: {report.issues.to_dict('records')}"
    )
