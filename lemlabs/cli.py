"""The lemlabs command: score lab files, plan monitoring, list the rules, or run the demo.

Exit status: 0 when scoring ran, 2 for unusable input (one line on stderr, never a traceback),
3 with --fail-on SEVERITY when a finding reaches that severity.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

import lemlabs
from lemlabs import examples
from lemlabs.errors import LabInputError, LemlabsError, require_extra
from lemlabs.formats.export import (
    FORMATS,
    RESULT_DATES,
    FindingsFile,
    write_csv,
    write_findings,
    write_findings_table,
    write_issues,
)
from lemlabs.formats.worklist import sort_findings
from lemlabs.models import Severity
from lemlabs.packs import Packs, Threshold, load_packs
from lemlabs.packs.listing import rules_text
from lemlabs.packs.thresholds import site_template
from lemlabs.pipeline import Report
from lemlabs.stages.ingest import DATE_FORMATS, check_as_of
from lemlabs.streaming import BATCH_ROWS, score_file
from lemlabs.vocabulary import printable

EXIT_OK, EXIT_INPUT, EXIT_FAIL_ON = 0, 2, 3
DASK_WORKERS = 2
JOBS = min(2, os.cpu_count() or 1)
"""Processes that score batches side by side unless --jobs says (more than one batch)."""


class _Printable:
    """An output stream that escapes control characters in everything written but the line
    breaks lemlabs writes itself (fields are escaped whole, newlines included, before that)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write("\n".join(printable(line) for line in text.split("\n")))

    def flush(self) -> None:
        self.stream.flush()


def _printable_table(table: pd.DataFrame) -> pd.DataFrame:
    """A table whose text cells and labels are printable (for ``to_string``)."""
    out = table.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column].dtype):
            out[column] = out[column].map(lambda v: printable(v) if isinstance(v, str) else v)
    out.columns = [printable(c) if isinstance(c, str) else c for c in out.columns]
    return out


class _Progress:
    """Stage-by-stage progress on stderr, shown only on a terminal and without ``--quiet``."""

    def __init__(self, enabled: bool, stream: TextIO = sys.stderr) -> None:
        self.enabled = enabled and stream.isatty()
        self.stream = stream

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        width = 30
        filled = width * done // max(total, 1)
        bar = "#" * filled + "-" * (width - filled)
        end = "\n" if done >= total and stage in ("findings", "batch") else ""
        self.stream.write(f"\r{stage:<15} [{bar}] {done}/{total}{end}")
        self.stream.flush()


EXIT_CODES = """exit status:
  0  the command ran (score and demo: whatever was found)
  2  unusable input: missing or empty file, missing column, bad threshold table, unknown
     output format, --workers or --scheduler without --dask, a missing extra, no row that
     could be used (the outputs and --issues are written first); one line on stderr names
     the problem and, for an extra, the install command
  3  with --fail-on SEVERITY: a finding reached that severity"""

EXAMPLES = {
    "main": """examples:
  lemlabs demo
  lemlabs score labs.csv --patients patients.csv -o findings.csv --issues issues.csv
  lemlabs schedule labs.csv --patients patients.csv --as-of 2021-06-01
  lemlabs report labs.csv --patients patients.csv -o report.html
  lemlabs rules --thresholds site.toml""",
    "score": """examples:
  lemlabs score labs.csv --patients patients.csv -o findings.csv --issues issues.csv
  lemlabs score labs.csv --patients patients.csv --as-of 2021-06-01 --fail-on urgent
  lemlabs score observations.ndjson -o findings.fhir.json          # extra fhir
  lemlabs score 'labs/*.parquet' --dask --workers 2 -o findings.parquet   # extra dask
  lemlabs score lb.xpt --dm dm.xpt --ex ex.xpt --ctcae v4 -o adlb.csv --adlb
  lemlabs score export.csv --sep ';' --columns MRN=patient_id,Analyse=test""",
    "report": """examples:
  lemlabs report labs.csv --patients patients.csv -o report.html
  lemlabs report labs.csv --patients patients.csv --as-of 2021-06-01 -o report.html""",
    "demo": """examples:
  lemlabs demo
  lemlabs demo --fail-on urgent -q""",
    "schedule": """examples:
  lemlabs schedule labs.csv --patients patients.csv --as-of 2021-06-01
  lemlabs schedule labs.csv --patients patients.csv -o plan.csv""",
    "rules": """examples:
  lemlabs rules
  lemlabs rules --thresholds site.toml --markdown -o rules.md""",
    "thresholds": """examples:
  lemlabs thresholds
  lemlabs thresholds --dump -o site.toml      # a site-file template to edit
  lemlabs thresholds --thresholds site.toml   # the effective table with a site file""",
}


def _epilog(command: str) -> str:
    return f"{EXAMPLES[command]}\n\n{EXIT_CODES}"


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written; "-o, --output FILE" on every Python (3.13's form, not 3.11's
    "-o FILE, --output FILE"), so the help reads the same everywhere."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30)
        # room for the longest command name ("    thresholds") beside its help: Python 3.13
        # counts the command names when it aligns the help, 3.11 and 3.12 do not
        self._action_max_length = len("    thresholds")

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.option_strings or action.nargs == 0:
            return super()._format_action_invocation(action)
        metavar = self._format_args(action, self._get_default_metavar_for_optional(action))
        return f"{', '.join(action.option_strings)} {metavar}"


def _input_options(parser: argparse.ArgumentParser, ctcae: bool = True) -> None:
    """How the input is read: the options ``score``, ``report`` and ``schedule`` share."""
    if ctcae:
        parser.add_argument(
            "--ctcae",
            choices=("v4", "v5", "v6"),
            metavar="VERSION",
            help="CTCAE version of the grades: v4 (4.03), v5 (default) or v6",
        )
    parser.add_argument("--sep", metavar="CHAR", help="CSV delimiter (default: sniffed ; tab , |)")
    parser.add_argument(
        "--columns",
        type=_column_map,
        metavar="MAP",
        help="column names to map, e.g. MRN=patient_id,Analyse=test",
    )
    parser.add_argument(
        "--date-format",
        type=str.upper,
        choices=DATE_FORMATS,
        default=None,
        metavar="ORDER",
        help="dates besides ISO 8601: DMY (05/03/2021 is 5 March) or MDY (US: 03/05/2021)",
    )
    parser.add_argument("--dm", type=Path, metavar="FILE", help="SDTM DM (sex, birth date)")
    parser.add_argument(
        "--ex",
        type=Path,
        metavar="FILE",
        help="SDTM EX: the courses of the treatment (alemtuzumab by name, unless --treatment)",
    )
    parser.add_argument(
        "--treatment",
        action="append",
        metavar="NAME",
        help="an EXTRT value that is the treatment, any case (repeatable; e.g. IMP, STUDY DRUG)",
    )


def _parser() -> argparse.ArgumentParser:
    formatter = _HelpFormatter
    parser = argparse.ArgumentParser(
        prog="lemlabs",
        description=__doc__.splitlines()[0],
        epilog=_epilog("main"),
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"lemlabs {lemlabs.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    score = commands.add_parser(
        "score",
        help="score lab results and write or print the findings",
        description="Score lab results (CSV, Parquet or FHIR) and write or print the findings.",
        epilog=_epilog("score"),
        formatter_class=formatter,
    )
    score.add_argument(
        "labs",
        type=Path,
        metavar="LABS",
        help="lab results: CSV, Parquet (extra parquet), FHIR .json/.ndjson (extra fhir)",
    )
    score.add_argument(
        "--patients", type=Path, metavar="CSV", help="patients CSV (sex, course_dates)"
    )
    score.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help=f"findings file, format by suffix: {', '.join(FORMATS)} (.parquet needs the extra "
        "parquet, .fhir.json the extra fhir, .xlsx the extra excel); default: print a summary",
    )
    score.add_argument("--issues", type=Path, metavar="CSV", help="write data issues to this CSV")
    score.add_argument(
        "--results",
        type=Path,
        metavar="CSV",
        help="write the normalised, graded results to this CSV (one row per accepted row)",
    )
    score.add_argument(
        "--batch-rows",
        type=_positive,
        default=BATCH_ROWS,
        metavar="N",
        help=f"score about N rows of whole patients at a time (default {BATCH_ROWS}); "
        "less memory with fewer (-o .csv, .json or .jsonl; other outputs score in one pass)",
    )
    score.add_argument(
        "--jobs",
        type=_positive,
        default=JOBS,
        metavar="N",
        help="score N batches side by side, a process each (default 2; 1 on a one-core "
        "machine); memory grows with N",
    )
    score.add_argument("--thresholds", type=Path, metavar="FILE", help="a site table (.toml/.json)")
    score.add_argument(
        "--as-of", type=_date, metavar="DATE", help="also report tests overdue on this date (ISO)"
    )
    score.add_argument(
        "--dask",
        action="store_true",
        help="score with Dask (extra dask): LABS may be a glob of CSV or Parquet files",
    )
    where = score.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler", metavar="ADDRESS", help="address of a running Dask scheduler (needs --dask)"
    )
    where.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help=f"local Dask workers (needs --dask; default {DASK_WORKERS})",
    )
    _input_options(score)
    score.add_argument(
        "--adlb",
        action="store_true",
        help="-o writes the ADLB-style table (.csv, .parquet, .xpt: extra xpt), not findings",
    )
    html = commands.add_parser(
        "report",
        help="one self-contained HTML report: worklist, patients, schedule, issues",
        description="Score lab results and write one self-contained HTML report (extra report):\n"
        "a worklist by severity, a section per patient with timelines and evidence, schedule\n"
        "adherence as of a date, data issues with file lines. Opens offline in any browser.",
        epilog=_epilog("report"),
        formatter_class=formatter,
    )
    html.add_argument("labs", type=Path, metavar="LABS", help="lab results, long format (CSV)")
    html.add_argument(
        "--patients", type=Path, metavar="CSV", help="patients CSV (sex, course_dates)"
    )
    html.add_argument(
        "-o", "--output", type=Path, required=True, metavar="HTML", help="the report file (.html)"
    )
    html.add_argument("--thresholds", type=Path, metavar="FILE", help="a site table (.toml/.json)")
    html.add_argument(
        "--as-of",
        type=_date,
        metavar="DATE",
        help="judge the schedule on this date (default: the latest result's date)",
    )
    html.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no 'wrote' line")
    _input_options(html)
    demo = commands.add_parser(
        "demo",
        help="score the bundled synthetic example cohort",
        description="Score the bundled synthetic cohort (200 patients) and print a summary.",
        epilog=_epilog("demo"),
        formatter_class=formatter,
    )
    plan = commands.add_parser(
        "schedule",
        help="tests due or overdue under the label's schedule",
        description="Tests due or overdue per patient under the label's monitoring schedule.",
        epilog=_epilog("schedule"),
        formatter_class=formatter,
    )
    plan.add_argument(
        "labs", type=Path, metavar="LABS", help="lab results, long format (see README)"
    )
    plan.add_argument(
        "--patients", type=Path, metavar="CSV", help="patients CSV with course_dates (or --dm/--ex)"
    )
    plan.add_argument(
        "--as-of", type=_date, metavar="DATE", help="the date to judge by (default: today)"
    )
    plan.add_argument(
        "-o", "--output", type=Path, metavar="CSV", help="write the table to this CSV"
    )
    plan.add_argument("--thresholds", type=Path, metavar="FILE", help="a site threshold table")
    _input_options(plan, ctcae=False)
    listing = commands.add_parser(
        "rules",
        help="every rule in words, with the effective thresholds and sources",
        description="List every rule: id, finding, severity, its condition in words with the\n"
        "effective thresholds (a site table applied), its message and its sources.",
        epilog=_epilog("rules"),
        formatter_class=formatter,
    )
    listing.add_argument("--markdown", action="store_true", help="a Markdown table")
    table = commands.add_parser(
        "thresholds",
        help="the effective threshold table, or a site-file template",
        description="Show the effective threshold table (the defaults, a site table layered on\n"
        "them), or write it as a site-file template with --dump.",
        epilog=_epilog("thresholds"),
        formatter_class=formatter,
    )
    table.add_argument(
        "--dump", action="store_true", help="the whole table as TOML, a site file to edit"
    )
    for sub in (listing, table):
        sub.add_argument(
            "--thresholds", type=Path, metavar="FILE", help="a site table (.toml/.json)"
        )
        sub.add_argument("-o", "--output", type=Path, metavar="FILE", help="write to this file")
    for sub in (score, html, plan, listing, table):
        sub.add_argument(
            "--pack",
            type=Path,
            action="append",
            default=[],
            dest="packs",
            metavar="DIR",
            help="a site's own pack folder, beside the built-in packs (repeatable)",
        )
    for sub in (score, demo):
        sub.add_argument(
            "--fail-on",
            type=Severity.parse,
            metavar="SEVERITY",
            help="exit 3 when a finding reaches this severity (info/watch/action/urgent)",
        )
        quiet = "no progress bar, no 'wrote' line" if sub is score else "no progress bar"
        sub.add_argument("-q", "--quiet", action="store_true", help=quiet)
    return parser


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def _date(text: str) -> dt.date:
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date: {printable(text)!r}") from None
    try:
        return check_as_of(day)
    except LabInputError as error:
        raise argparse.ArgumentTypeError(printable(str(error).removeprefix("as_of: "))) from None


def _summary_table(report: Report) -> str:
    findings = report.findings
    if findings.empty:
        return "no findings"
    table = pd.crosstab(
        findings["condition"], findings["severity"], margins=True, margins_name="total"
    )
    return table.to_string()  # condition and severity names are lemlabs' own


def _print_report(report: Report, out: TextIO, top: int = 10) -> None:
    s = report.summary
    out.write(
        f"rows in {s['rows_in']}: normalised {s['rows_normalised']} "
        f"({s['rows_not_scored']} not scored), rejected {s['rows_rejected']}; "
        f"patients {s['patients']}; findings {s['findings']}\n\n"
    )
    skipped = s.get("not_scored_by_test", {})
    if skipped:
        names = ", ".join(
            f"{printable(name)} ({entry['rows']}"
            + (f"; looks like {entry['looks_like']}?" if entry.get("looks_like") else "")
            + ")"
            for name, entry in list(skipped.items())[:5]
        )
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        out.write(f"not scored: {names}{more}\n\n")
    out.write("findings by condition and severity\n" + _summary_table(report) + "\n")
    worst = sort_findings(report.finding_list)
    if worst:
        out.write(
            f"\nmost severe findings (top {min(top, len(worst))}, the most recent evidence first;"
            " onset, latest evidence, days from course)\n"
        )
        for finding in worst[:top]:
            since = "" if finding.days_from_course is None else f"day {finding.days_from_course}"
            out.write(
                f"  {finding.severity!s:<7} {finding.onset} {finding.date} {since:<9} "
                f"{printable(finding.patient_id):<10} {finding.code}\n"
            )
    if not report.issues.empty:
        issues = report.issues
        kinds = issues["field"].astype(str) + ": " + issues["reason"].astype(str).map(_kind)
        counts = kinds.value_counts(sort=True)  # commonest first; ties in order of appearance
        shown = min(5, len(counts))
        out.write(
            f"\ndata issues: {len(issues)} rows, {len(counts)} kinds (the {shown} commonest; "
            "lemlabs score --issues FILE lists every row)\n"
        )
        for kind, count in counts.head(5).items():
            first = issues.loc[kinds == kind].iloc[0]
            raw = f", {printable(repr(first['raw_value']))}" if first["raw_value"] else ""
            out.write(f"  {count:>6}  {printable(kind)} (e.g. row {first['row']}{raw})\n")


def _kind(reason: str) -> str:
    """A data issue's reason without the quoted text it names ('1,200' → '…'): its kind."""
    return re.sub(r"'[^']*'", "'…'", reason)


def _packs(args: argparse.Namespace) -> Packs:
    """The built-in packs and those of ``--pack``, loaded before any scoring starts."""
    return load_packs(getattr(args, "packs", []))


def _schedule(args: argparse.Namespace, out: TextIO) -> int:
    _check_inputs(args)
    if args.patients is None and args.dm is None and args.ex is None:
        raise LemlabsError("the schedule needs the courses: --patients CSV, or --ex (and --dm)")
    labs, patients = _inputs(args)
    table = lemlabs.schedule(labs, patients, args.as_of, args.thresholds, _packs(args))
    if args.output is not None:
        write_csv(table, args.output)
        _wrote(args, out, args.output, len(table), "schedule row")
    else:
        counts = table["status"].value_counts().to_dict()
        out.write(
            ", ".join(f"{printable(status)} {count}" for status, count in counts.items()) + "\n"
        )
        late = table[table["status"] == "overdue"].sort_values("days_overdue", ascending=False)
        if not late.empty:
            out.write(_printable_table(late).to_string(index=False) + "\n")
    return EXIT_OK


FHIR_SUFFIXES = (".json", ".ndjson")


def _fhir_inputs(labs: Path, patients: Path | None) -> tuple[Any, Any]:
    """FHIR files (.json Bundle or .ndjson) in place of CSVs; patients from the same file if
    it holds Patient or alemtuzumab resources and no --patients was given."""
    if labs.suffix.lower() not in FHIR_SUFFIXES:
        return labs, patients
    from lemlabs.formats import fhir

    table = fhir.read_observations(labs)
    source = patients if patients is not None else labs
    if source.suffix.lower() in FHIR_SUFFIXES:
        people = fhir.read_patients(source)
        return table, people if not people.empty else None
    return table, patients


def _output_format(path: Path) -> str:
    name = path.name.lower()
    return ".fhir.json" if name.endswith(".fhir.json") else path.suffix.lower()


def _column_map(text: str) -> dict[str, str]:
    """``MRN=patient_id,Analyse=test`` → ``{"MRN": "patient_id", "Analyse": "test"}``."""
    pairs = [part for part in text.split(",") if part.strip()]
    out = {}
    for pair in pairs:
        name, sep, target = pair.partition("=")
        if not sep or not name.strip() or not target.strip():
            raise argparse.ArgumentTypeError(f"{pair!r} is not NAME=column")
        out[name.strip()] = target.strip()
    return out


_ADLB_SUFFIXES = (".csv", ".parquet", ".xpt")


def _check_trial_args(args: argparse.Namespace) -> None:
    """--adlb, --dm/--ex, --sep/--columns: usable together, extras present."""
    if args.adlb:
        suffix = args.output.suffix.lower() if args.output is not None else ""
        if suffix not in _ADLB_SUFFIXES:
            raise LemlabsError("--adlb writes -o NAME.csv, NAME.parquet or NAME.xpt")
        if args.dask:
            raise LemlabsError("--adlb cannot be used with --dask")
        if suffix == ".xpt":
            require_extra("xpt", "writing SAS transport (-o *.xpt --adlb)")
    _check_inputs(args)
    trial = (args.sep, args.columns, args.dm, args.ex, args.ctcae, args.date_format)
    if args.dask and any(trial):
        raise LemlabsError(
            "--sep, --columns, --date-format, --dm, --ex and --ctcae cannot be used with --dask"
        )


def _check_inputs(args: argparse.Namespace) -> None:
    """The input options (score, report, schedule): usable together, extras present."""
    if args.patients is not None and (args.dm is not None or args.ex is not None):
        raise LemlabsError("give --patients or --dm/--ex, not both")
    if args.treatment and args.ex is None:
        raise LemlabsError("--treatment names EXTRT values of --ex: give --ex FILE")
    suffix = args.labs.suffix.lower()
    if suffix in FHIR_SUFFIXES:
        require_extra("fhir", f"reading FHIR input ({suffix})")
        if any((args.sep, args.columns, args.date_format, args.dm, args.ex)):
            raise LemlabsError("--sep, --columns, --date-format, --dm and --ex read CSV/SDTM")
    if suffix == ".parquet":
        require_extra("parquet", "reading Parquet input")


def _inputs(args: argparse.Namespace) -> tuple[Any, Any]:
    """The labs and patients as the input options say (FHIR, SDTM or a lab table)."""
    labs, patients = _fhir_inputs(args.labs, args.patients)
    if isinstance(labs, Path) and args.labs.suffix.lower() not in FHIR_SUFFIXES:
        labs, patients = _trial_inputs(args)
    return labs, patients


def _trial_inputs(args: argparse.Namespace) -> tuple[Any, Any]:
    """The lab table read with --sep/--columns (SDTM LB recognised by its columns), and the
    patients from --dm/--ex when given."""
    date_format = args.date_format
    labs = lemlabs.read_labs(
        args.labs, columns=args.columns, sep=args.sep, packs=_packs(args), date_format=date_format
    )
    if args.dm is None and args.ex is None:
        if date_format is None or args.patients is None:
            return labs, args.patients
        return labs, lemlabs.read_patients(args.patients, date_format=date_format)
    from lemlabs.formats.files import read_dataset
    from lemlabs.formats.sdtm import patients_from
    from lemlabs.stages.ingest import prepare_patients

    dm = read_dataset(args.dm, "SDTM DM") if args.dm is not None else None
    ex = read_dataset(args.ex, "SDTM EX") if args.ex is not None else None
    people = patients_from(dm, ex, sorted(set(labs["patient_id"])), treatment=args.treatment)
    return labs, prepare_patients(people)


def _check_score_args(args: argparse.Namespace) -> None:
    """Refuse unusable options and missing extras before any scoring work starts."""
    _check_trial_args(args)
    if not args.dask and (args.workers is not None or args.scheduler is not None):
        option = "--workers" if args.workers is not None else "--scheduler"
        raise LemlabsError(f"{option} needs --dask")
    if args.dask:
        require_extra("dask", "--dask")
    if args.output is not None and not args.adlb:
        suffix = _output_format(args.output)
        if suffix not in FORMATS:
            raise LemlabsError(
                f"{args.output}: unknown output format {suffix or args.output.name!r} "
                f"(use {', '.join(FORMATS)})"
            )
        if suffix == ".fhir.json":
            if args.dask:
                raise LemlabsError("--dask writes CSV, Parquet, JSON or JSON Lines, not FHIR")
            require_extra("fhir", "writing FHIR (-o *.fhir.json)")
        if suffix == ".parquet":
            require_extra("parquet", "writing Parquet (-o *.parquet)")
        if suffix == ".xlsx":
            if args.dask:
                raise LemlabsError("--dask writes CSV, Parquet, JSON or JSON Lines, not Excel")
            require_extra("excel", "writing Excel (-o *.xlsx)")


def _score_dask(args: argparse.Namespace, out: TextIO) -> int:
    """lemlabs score --dask: a local cluster (or --scheduler), findings and issues written."""
    from lemlabs.dask import score_on_cluster

    workers = args.workers if args.workers is not None else DASK_WORKERS
    findings, issues, summary = score_on_cluster(
        str(args.labs), args.patients, args.thresholds, args.scheduler, workers, args.packs
    )
    if args.output is not None:
        write_findings_table(findings, args.output)
        _wrote(args, out, args.output, len(findings), "finding")
    if args.issues is not None:
        write_issues(issues, args.issues)
        _wrote(args, out, args.issues, len(issues), "data issue")
    out.write(json.dumps(summary, indent=1) + "\n")
    return _exit_for(findings["severity"].unique(), args.fail_on)


def _exit_for(severities: Iterable[Any], fail_on: Severity | None) -> int:
    """:data:`EXIT_FAIL_ON` when one of the findings' severities (names) reaches ``fail_on``."""
    if fail_on is None:
        return EXIT_OK
    reached = any(Severity.parse(str(severity)) >= fail_on for severity in severities)
    return EXIT_FAIL_ON if reached else EXIT_OK


def _threshold_line(entry: Threshold) -> str:
    """``itp.urgent_below = 50.0 10^9/L (range 10–100)``."""
    line = f"{entry.key} = {entry.value!r} {entry.unit}".rstrip()
    if entry.range is not None:
        line += f" (range {entry.range[0]:g}–{entry.range[1]:g})"
    return line


def _rules(args: argparse.Namespace, out: TextIO) -> int:
    """``lemlabs rules`` and ``lemlabs thresholds``: the rule book and the table, as text."""
    packs = _packs(args)
    table = packs.thresholds(args.thresholds)
    if args.command == "rules":
        text = rules_text(table, markdown=args.markdown, packs=packs)
    elif args.dump:
        text = site_template(table)
    else:
        text = "".join(_threshold_line(table.entry(key)) + "\n" for key in table)
    if args.output is not None:
        args.output.write_text(text, "utf-8")
    else:
        out.write(text)
    return EXIT_OK


def _report(args: argparse.Namespace, out: TextIO) -> int:
    """``lemlabs report``: score, then write the HTML report."""
    if args.output.suffix.lower() not in (".html", ".htm"):
        raise LemlabsError(f"{args.output}: the report is HTML (use -o NAME.html)")
    require_extra("report", "lemlabs report")
    _check_inputs(args)
    from lemlabs.formats.report import inputs_of, write_html

    packs = _packs(args)
    labs, patients = _inputs(args)
    report = lemlabs.score_frame(
        labs,
        patients,
        args.thresholds,
        progress=_Progress(not args.quiet),
        ctcae=args.ctcae,
        packs=packs,
    )
    inputs = inputs_of(args.labs, args.patients or args.ex or args.dm, report)
    seconds = write_html(
        report, args.output, as_of=args.as_of, thresholds=args.thresholds, inputs=inputs
    )
    if not args.quiet:
        size = args.output.stat().st_size / 1024
        out.write(f"wrote {args.output} ({size:.0f} KB, {seconds:.1f} s)\n")
    _check_some_row_used(report.summary, report.issues)
    return EXIT_OK


def _run(args: argparse.Namespace, out: TextIO) -> int:
    if args.command == "report":
        return _report(args, out)
    if args.command in ("rules", "thresholds"):
        return _rules(args, out)
    if args.command == "schedule":
        return _schedule(args, out)
    if args.command == "score":
        _check_score_args(args)
        if args.dask:
            return _score_dask(args, out)
    packs = _packs(args)
    progress = _Progress(not args.quiet)
    if args.command == "score" and _streams(args):
        return _score_batches(args, out, packs, progress)
    if args.command == "demo":
        labs, patients, thresholds = examples.path("labs"), examples.path("patients"), None
        as_of = None
    else:
        thresholds, as_of = args.thresholds, args.as_of
        labs, patients = _inputs(args)
    ctcae = getattr(args, "ctcae", None)
    report = lemlabs.score_frame(
        labs, patients, thresholds, progress=progress, as_of=as_of, ctcae=ctcae, packs=packs
    )
    if args.command == "score" and args.output is not None and args.adlb:
        from lemlabs.formats.adlb import write_adlb

        adlb = report.to_adlb()
        write_adlb(adlb, args.output)
        _wrote(args, out, args.output, len(adlb), "ADLB record")
    elif args.command == "score" and args.output is not None:
        if _output_format(args.output) == ".xlsx":
            report.to_excel(args.output, thresholds)
        else:
            write_findings(report.findings, args.output, packs)
        _wrote(args, out, args.output, len(report.findings), "finding")
    if args.command == "score" and args.issues is not None:
        write_issues(report.issues, args.issues)
        _wrote(args, out, args.issues, len(report.issues), "data issue")
    if args.command == "score" and args.results is not None:
        write_csv(report.results, args.results, dates=RESULT_DATES)
        _wrote(args, out, args.results, len(report.results), "result")
    if args.command == "demo" or args.output is None:
        _print_report(report, out)
    _check_some_row_used(report.summary, report.issues)
    return _exit_for(report.findings["severity"].unique(), args.fail_on)


def _streams(args: argparse.Namespace) -> bool:
    """Whether ``lemlabs score`` scores in batches of patients: findings to a file written a
    batch at a time, from a lab table (not FHIR, nor SDTM with --dm/--ex: those read whole)."""
    return (
        args.output is not None
        and not args.adlb
        and _output_format(args.output) in FindingsFile.FORMATS
        and args.labs.suffix.lower() not in FHIR_SUFFIXES
        and (args.patients is None or args.patients.suffix.lower() not in FHIR_SUFFIXES)
        and args.dm is None
        and args.ex is None
    )


def _score_batches(args: argparse.Namespace, out: TextIO, packs: Packs, progress: _Progress) -> int:
    """``lemlabs score`` in batches of patients (:func:`lemlabs.score_file`)."""
    scored = score_file(
        args.labs,
        args.patients,
        args.thresholds,
        findings=args.output,
        issues=args.issues,
        results=args.results,
        batch_rows=args.batch_rows,
        progress=progress,
        as_of=args.as_of,
        ctcae=args.ctcae,
        packs=packs,
        columns=args.columns,
        sep=args.sep,
        date_format=args.date_format,
        jobs=args.jobs,
    )
    summary = scored.summary
    _wrote(args, out, args.output, summary["findings"], "finding")
    if args.issues is not None:
        _wrote(args, out, args.issues, len(scored.issues), "data issue")
    if args.results is not None:
        _wrote(args, out, args.results, summary["rows_normalised"], "result")
    _check_some_row_used(summary, scored.issues)
    return _exit_for(summary["findings_by_severity"], args.fail_on)


def _wrote(args: argparse.Namespace, out: TextIO, path: Path, count: int, what: str) -> None:
    """One line saying what a command wrote (unless ``--quiet``), as ``lemlabs report`` does."""
    if not getattr(args, "quiet", False):
        size = path.stat().st_size / 1024 if path.is_file() else 0.0
        out.write(
            f"wrote {printable(path)} ({count} {what}{'' if count == 1 else 's'}, {size:.0f} KB)\n"
        )


def _check_some_row_used(summary: dict[str, Any], issues: pd.DataFrame) -> None:
    """A run where every row was rejected is an input error, not "nothing found": one line
    with the commonest reason (the outputs, issues included, are written first)."""
    rows = int(summary["rows_in"])
    if rows == 0 or int(summary["rows_rejected"]) < rows:
        return
    reasons = issues["reason"].astype(str).str.split(":", n=1).str[0]
    pairs = list(zip(issues["field"].astype(str), reasons, strict=True))
    (field, why), count = Counter(pairs).most_common(1)[0]  # the first seen on a tie
    example = str(issues["raw_value"].iloc[pairs.index((field, why))])
    raise LabInputError(
        f"no row could be used: all {rows} {'row was' if rows == 1 else 'rows were'} rejected, "
        f"most often {why!r} in {field} ({count} {'row' if count == 1 else 'rows'}, e.g. "
        f"{printable(example)[:40]!r}){HINTS.get(field, '')}"
    )


HINTS = {
    "collected_at": "; dates must be ISO 8601 (2021-03-05 or 2021-03-05T08:30), or name the "
    "order with --date-format DMY (05/03/2021) or MDY (03/05/2021)",
    "value": "; values are numbers (a decimal comma is read), censored (<0.01) or grades (1+)",
}


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """A warning (matplotlib's "Glyph missing" quotes a patient id) on one line of stderr, its
    control characters escaped."""
    text = f"lemlabs: warning: {category.__name__}: {printable(message)}"
    (file or sys.stderr).write(text + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lemlabs`` console script."""
    args = _parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning  # a library's warning may quote input text
            code = _run(args, _Printable(sys.stdout))  # type: ignore[arg-type]
        sys.stdout.flush()
        return code
    except BrokenPipeError:  # the reader stopped reading (| head): end quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush goes nowhere
        return EXIT_OK
    except MemoryError:  # outside scoring (reading, writing): no patient to name
        sys.stderr.write("lemlabs: error: out of memory; use a machine with more memory\n")
        return EXIT_INPUT
    except (LemlabsError, OSError) as error:
        lines = str(error).splitlines()
        message = lines[0] if lines and lines[0].strip() else type(error).__name__
        sys.stderr.write(f"lemlabs: error: {printable(message)}\n")
        return EXIT_INPUT


if __name__ == "__main__":
    sys.exit(main())
