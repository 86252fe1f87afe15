"""Normalising: every lab row becomes a result in canonical units or a data issue, never neither.

The work is done per unique raw value and per unique (analyte, unit) pair, then spread over the
rows with numpy, so a million rows cost a few thousand parses and pint look-ups.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from lemlabs.engine.language import TOLERANCE
from lemlabs.packs import Packs
from lemlabs.packs.analytes import Catalogue
from lemlabs.packs.thresholds import Thresholds
from lemlabs.packs.units import Conversion, conversion
from lemlabs.stages.ingest import date_problem
from lemlabs.stages.reference import reference_intervals
from lemlabs.stages.values import parse_number, parse_value

NORMALISED_COLUMNS = (
    "row",
    "analyte",
    "status",
    "status_reason",
    "kind",
    "raw_value",
    "raw_unit",
    "value",
    "value_high",
    "censor",
    "lower",
    "upper",
    "unit",
    "ref_low",
    "ref_high",
    "ref_source",
    "ref_note",
    "flag",
    "interpretation",
    "sex",
)
"""The columns normalising writes into the lab table (``row`` first: the input position)."""
ISSUE_COLUMNS = ["row", "line", "patient_id", "field", "raw_value", "reason", "source"]
"""``row`` is the 0-based position in the input table; ``line`` the 1-based line of the file with
the header counted (``row + 2``: a CSV with one header line and no line breaks inside quoted
fields; for a DataFrame, the line the row has in ``to_csv(index=False)``)."""
HEADER_LINES = 1


def line_of(rows: np.ndarray) -> np.ndarray:
    """The file lines of 0-based input rows (see :data:`ISSUE_COLUMNS`)."""
    return rows + HEADER_LINES + 1


MAX_RAW_IN_ISSUE = 200
#: the longest text lemlabs reads in a lab field (ids, test names, codes, bounds); a longer one
#: makes the row a data issue before any parsing or caching (``value`` and ``unit`` have their
#: own, shorter limits in :mod:`lemlabs.stages.values` and :mod:`lemlabs.packs.units`)
MAX_FIELD_LENGTH = 256
BOUND_FIELDS = ("ref_low", "ref_high")
BOUNDED_FIELDS = (
    "patient_id",
    "test",
    "loinc",
    "specimen",
    "ref_low",
    "ref_high",
    "ref_unit",
    "source_id",
)
#: the ``source`` of an issue about the lab's own reference bound: the row is kept (with the
#: default interval), so it is neither rejected nor counted in ``rows_rejected``
REFERENCE_SOURCE = "reference"
#: the ``source`` of the issues about a lab row (the others are about the patients table)
LAB_ISSUE_SOURCES = ("labs", REFERENCE_SOURCE)


def _bound_number(text: Any) -> float:
    """A lab's reference bound as a number (NaN where empty or unreadable)."""
    number = parse_number(str(text).strip())
    return np.nan if number is None else number


def _clip(text: str) -> str:
    if len(text) <= MAX_RAW_IN_ISSUE:
        return text
    return f"{text[:MAX_RAW_IN_ISSUE]}… ({len(text)} characters)"


class _Problems:
    """The first problem found for each row (field and reason); later checks skip flagged rows."""

    def __init__(self, size: int) -> None:
        self.field = np.full(size, "", dtype=object)
        self.reason = np.full(size, "", dtype=object)

    @property
    def ok(self) -> np.ndarray:
        return np.asarray(self.reason == "", dtype=bool)

    def add(self, mask: np.ndarray, field: str, reason: str | Callable[[int], str]) -> None:
        """Flag rows in ``mask`` not flagged yet; ``reason`` may be a function of the row."""
        new = np.flatnonzero(mask & self.ok)
        self.field[new] = field
        self.reason[new] = reason if isinstance(reason, str) else [reason(int(i)) for i in new]


def _labels(codes: np.ndarray, names: list[str]) -> np.ndarray:
    """``names[code]`` per row, as an object column whose rows share each name's one string
    (numpy's fixed-width text would cost a new Python string per row in pandas)."""
    return np.array(names, dtype=object)[codes.astype(np.intp)]


Coded = tuple[np.ndarray, np.ndarray]
"""A column as ``(codes, uniques)``: row ``i`` holds ``uniques[codes[i]]`` (``pd.factorize``)."""


def _coded(values: np.ndarray) -> Coded:
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    return codes, np.asarray(uniques, dtype=object)


def _per_unique_rows(
    columns: list[Coded], func: Callable[..., Any], *attributes: str
) -> list[np.ndarray]:
    """``func(*row)`` once per unique combination of the coded ``columns``; each named
    attribute of its results spread over the rows."""
    size = len(columns[0][0])
    codes, count = np.zeros(size, dtype="int64"), 1
    for column_codes, uniques in columns:  # a code per combination so far (< rows: no overflow)
        codes, combinations = pd.factorize(
            codes * max(len(uniques), 1) + column_codes, use_na_sentinel=False
        )
        count = len(combinations)
    first = np.zeros(count, dtype="int64")  # a row that has each combination
    first[codes[::-1]] = np.arange(size)[::-1]
    found = [func(*(uniques[column[row]] for column, uniques in columns)) for row in first]
    return [
        np.array([getattr(item, name) for item in found], dtype=object)[codes]
        for name in attributes
    ]


def _identified(rows: _Rows, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the analyte key ('' when not scored), why it is not scored, and a data issue
    when its name and LOINC contradict each other (:meth:`Catalogue.identify
    <lemlabs.packs.analytes.Catalogue.identify>`).
    Rows already flagged (a field too long) are identified as empty text: never cached."""
    columns = []
    for name in ("test", "loinc", "specimen", "unit"):
        codes, uniques = rows.coded(name)
        columns.append((np.where(usable, codes, len(uniques)), np.append(uniques, "")))
    analyte, reason, issue = _per_unique_rows(
        columns, lambda *row: rows.book.identify(*map(str, row)), "analyte", "reason", "issue"
    )
    return analyte, reason, issue


def _grade_from_mass(mg_dl: np.ndarray, cutoffs: tuple[tuple[float, float], ...]) -> np.ndarray:
    grade = np.zeros(len(mg_dl))
    for cutoff, value in cutoffs:
        grade = np.where(mg_dl >= cutoff, value, grade)
    return grade


def _bounds(value: np.ndarray, censor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bound of the true value: what a threshold may rely on. ``<50`` is below
    50 by more than the rule language's tolerance (twice it), so that it is below 50 for
    certain, ``>1000`` above 1000 likewise (``<=``, ``>=``: at most, at least the number)."""
    step = 2 * TOLERANCE * np.abs(value)
    below = np.where(step > 0, value - step, np.nextafter(value, -np.inf))
    above = np.where(step > 0, value + step, np.nextafter(value, np.inf))
    lower = np.where(np.isin(censor, ["<", "<="]), -np.inf, value)
    lower = np.where(censor == ">", above, lower)
    upper = np.where(np.isin(censor, [">", ">="]), np.inf, value)
    upper = np.where(censor == "<", below, upper)
    return lower, upper


def _expected(what: str, labels: np.ndarray, raws: np.ndarray) -> Callable[[int], str]:
    return lambda i: f"expected {what} for {labels[i]}, got {_clip(str(raws[i]))!r}"


class _Rows:
    """The columns of one lab table as normalising builds them, step by step."""

    def __init__(self, frame: pd.DataFrame, book: Catalogue) -> None:
        self.frame = frame
        self.problems = _Problems(len(frame))
        self.book = book
        self._columns: dict[str, Coded] = {}
        self.patient_ids = frame["patient_id"].to_numpy(dtype=object)
        self.raw_values = frame["value"].to_numpy(dtype=object)
        self.unit_text = self.per_unique("unit", lambda u: str(u).strip())
        _check_lengths(self)
        self.analyte, self.reason, self.conflict = _identified(self, self.problems.ok)
        self.codes, self.analytes = pd.factorize(self.analyte, use_na_sentinel=False)
        self.scored = self.analyte != ""
        self.kind = self.attribute("kind", "")
        self.labels = self.attribute("label", "")
        self.quantitative = self.kind == "quantitative"
        self.counts = self.kind == "count_per_hpf"
        self.ordinal = self.kind == "ordinal"
        # a percentage of another analyte (a neutrophil % of the white cells: ``percent_of``)
        self.percent_of = self.attribute("percent_of", "")
        self.percent = np.asarray((self.percent_of != "") & (self.unit_text == "%"), dtype=bool)

    def coded(self, name: str) -> Coded:
        """A column of the lab table, factorized once (all ``""`` where the table has none)."""
        if name not in self._columns:
            if name in self.frame.columns:
                self._columns[name] = _coded(self.frame[name].to_numpy(dtype=object))
            else:
                empty = np.array([""], dtype=object)
                self._columns[name] = np.zeros(len(self.frame), dtype=np.intp), empty
        return self._columns[name]

    def per_unique(self, name: str, func: Callable[[Any], Any], dtype: Any = object) -> np.ndarray:
        """``func`` once per distinct value of column ``name``, per row."""
        codes, uniques = self.coded(name)
        return np.asarray([func(value) for value in uniques], dtype=dtype)[codes]

    def attribute(self, name: str, default: Any = None, dtype: Any = object) -> np.ndarray:
        """A catalogue attribute per row (``default`` where unset or not scored)."""
        return self.per_analyte(lambda entry: getattr(entry, name), default, dtype)

    def per_analyte(
        self, func: Callable[[Any], Any], default: Any = None, dtype: Any = object
    ) -> np.ndarray:
        """``func(catalogue entry)`` once per analyte, per row (``default`` where it gives
        ``None`` or the row is not scored)."""
        table = [func(self.book[key]) if key else None for key in self.analytes]
        return np.asarray([default if v is None else v for v in table], dtype=dtype)[self.codes]

    def bounds(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        table = [getattr(self.book[key], name) if key else None for key in self.analytes]
        pairs = np.array([v or (-np.inf, np.inf) for v in table], dtype=float).reshape(-1, 2)
        return pairs[self.codes, 0], pairs[self.codes, 1]


def _check_lengths(rows: _Rows) -> None:
    """A text field longer than :data:`MAX_FIELD_LENGTH` makes its row a data issue, before
    any parsing: no field can cost more than its length to read."""
    for name in BOUNDED_FIELDS:
        if name in rows.frame.columns:
            _check_length(rows, name)


def _check_length(rows: _Rows, name: str) -> None:
    lengths = rows.per_unique(name, lambda text: len(str(text)), int)
    rows.problems.add(
        lengths > MAX_FIELD_LENGTH,
        name,
        lambda i: f"{name} is too long ({lengths[i]} characters; at most {MAX_FIELD_LENGTH})",
    )


def _check_rows(rows: _Rows) -> None:
    """What a reader already found, an empty patient id, a date that is not ISO, a name and a
    LOINC code that disagree."""
    frame, problems = rows.frame, rows.problems
    if "problem" in frame.columns:  # a reader (FHIR) already found the row unusable
        reported = frame["problem"].to_numpy(dtype=object)
        problems.add(
            rows.per_unique("problem", lambda p: bool(str(p).strip()), bool),
            "source",
            lambda i: str(reported[i]),
        )
    problems.add(
        rows.per_unique("patient_id", lambda p: not str(p).strip(), bool),
        "patient_id",
        "patient_id is empty",
    )
    raw_dates = frame["collected_at_raw"].to_numpy(dtype=object)
    problems.add(
        frame["collected_at"].isna().to_numpy(),
        "collected_at",
        lambda i: date_problem(str(raw_dates[i])),
    )
    conflict = rows.conflict
    problems.add(conflict != "", "loinc", lambda i: str(conflict[i]))


def _parse_values(rows: _Rows) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(shape, value, high, censor)`` per row, parsed once per unique raw value; a value of the
    wrong shape for its analyte is a data issue."""
    value_codes, unique_values = pd.factorize(rows.raw_values, use_na_sentinel=False)
    parsed = [parse_value(str(raw)) for raw in unique_values]

    def field(name: str, dtype: Any = object) -> np.ndarray:
        return np.asarray([getattr(p, name) for p in parsed], dtype=dtype)[value_codes]

    shape, value, high, censor = (
        field("shape"),
        field("value", float),
        field("high", float),
        field("censor"),
    )
    problems, labels, raw = rows.problems, rows.labels, rows.raw_values
    problems.add(
        rows.scored & (shape == "invalid"), "value", lambda i: str(parsed[value_codes[i]].problem)
    )
    problems.add(
        rows.quantitative & (shape != "number"), "value", _expected("a number", labels, raw)
    )
    grade_zero = (shape == "grade") & (value == 0)
    problems.add(
        rows.counts & ~np.isin(shape, ["number", "range", "tntc"]) & ~grade_zero,
        "value",
        _expected("a count per HPF", labels, raw),
    )
    problems.add(
        rows.ordinal & (shape != "grade") & ~_mass_protein(rows, shape),
        "value",
        _expected("a dipstick grade", labels, raw),
    )
    return shape, value, high, censor


def _mass_protein(rows: _Rows, shape: np.ndarray) -> np.ndarray:
    """Urine protein reported in mg/dL (or g/L) instead of a dipstick grade."""
    return np.asarray(rows.ordinal & (shape == "number") & (rows.unit_text != ""), dtype=bool)


def _convert(rows: _Rows, shape: np.ndarray) -> np.ndarray:
    """The factor to the canonical unit (or to mg/dL for protein by mass), once per unique
    (analyte, unit, target); a unit that cannot be converted is a data issue."""
    mass_protein = _mass_protein(rows, shape)
    needs_unit = rows.quantitative | mass_protein | (rows.counts & (rows.unit_text != ""))
    needs_unit &= ~rows.percent  # converted with the same sample's base (_percentages)
    none = len(rows.analytes)  # the code of "" appended to the analytes and their mass units
    mass_units = [rows.book[key].mass_unit or "" if key else "" for key in rows.analytes]
    analyte = np.where(needs_unit, rows.codes, none), np.append(rows.analytes, "")
    target = np.where(mass_protein, rows.codes, none), np.array([*mass_units, ""], dtype=object)
    unit_codes, units = rows.coded("unit")

    def convert(key: str, unit: str, goal: str) -> Conversion:
        """A factor for every row (1 where the unit is unusable: that row is an issue)."""
        found = conversion(rows.book[key], unit, goal or None) if key else Conversion(1.0)
        return Conversion(found.factor or 1.0, found.problem or "")

    unit = unit_codes, np.array([str(u).strip() for u in units], dtype=object)
    factor, problem = _per_unique_rows([analyte, unit, target], convert, "factor", "problem")
    rows.problems.add(needs_unit & (problem != ""), "unit", lambda i: str(problem[i]))
    return factor.astype(float)


def _percentages(
    rows: _Rows, shape: np.ndarray, value: np.ndarray, censor: np.ndarray, factor: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The factor of each percentage row (a neutrophil % of the white cells, domain.md): the
    same sample's result of its base analyte (same patient, same collection time; a usable,
    uncensored number) in the canonical unit ÷ 100; and the percentage rows without one (not
    scored, with the reason). A percentage above 100 is a data issue."""
    percent = rows.percent
    without = np.zeros(len(percent), dtype=bool)
    if not percent.any():
        return factor, without
    rows.problems.add(
        percent & (shape == "number") & (value > 100),
        "value",
        lambda i: f"a percentage above 100 ({_clip(str(rows.raw_values[i]))})",
    )
    base = rows.percent_of
    low, high = rows.bounds("plausible")
    canonical = value * factor
    usable = rows.problems.ok & (shape == "number") & (censor == "") & rows.quantitative
    usable &= ~percent & (canonical >= low) & (canonical <= high)
    when = rows.frame["collected_at"].to_numpy()
    known: dict[tuple[str, str, Any], float] = {}
    for i in np.flatnonzero(usable & np.isin(rows.analyte, list(set(base[percent])))):
        known.setdefault((str(rows.analyte[i]), str(rows.patient_ids[i]), when[i]), canonical[i])
    out = factor.copy()
    for i in np.flatnonzero(percent & rows.problems.ok):
        found = known.get((str(base[i]), str(rows.patient_ids[i]), when[i]))
        if found is None:
            without[i] = True
        else:
            out[i] = found / 100
    return out, without


def _check_plausible(rows: _Rows, value: np.ndarray, shape: np.ndarray, high: np.ndarray) -> None:
    """A converted value outside what a living patient can have, or a grade above the scale."""
    mass_protein = _mass_protein(rows, shape)
    low_ok, high_ok = rows.bounds("plausible")
    low_mass, high_mass = rows.bounds("plausible_mg_dl")
    low_ok = np.where(mass_protein, low_mass, low_ok)
    high_ok = np.where(mass_protein, high_mass, high_ok)
    measured = rows.quantitative | rows.counts | mass_protein
    numeric = np.isin(shape, ["number", "range"])
    rows.problems.add(
        measured & numeric & ~(np.isfinite(value) & ~np.isinf(high)),
        "value",
        lambda i: f"value {_clip(str(rows.raw_values[i]))!r} is out of range once converted",
    )
    implausible = measured & np.isfinite(value)
    implausible &= (value < low_ok) | (value > high_ok)
    shown_unit = np.where(mass_protein, rows.attribute("mass_unit", ""), rows.attribute("unit", ""))
    labels = rows.labels
    rows.problems.add(
        implausible,
        "value",
        lambda i: (
            f"implausible value {value[i]:g} {shown_unit[i]} "
            f"for {labels[i]} (plausible {low_ok[i]:g}–{high_ok[i]:g})"
        ),
    )
    rows.problems.add(
        rows.ordinal & (shape == "grade") & (value > rows.attribute("max_grade", np.inf, float)),
        "value",
        "grade above the dipstick scale",
    )


def _as_grades(rows: _Rows, value: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Urine protein by mass read as the dipstick grade it stands for (30 mg/dL → 1+, ...)."""
    mass_protein = _mass_protein(rows, shape)
    for key in rows.analytes:
        if key and rows.book[key].grade_cutoffs_mg_dl:
            mine = mass_protein & (rows.analyte == key)
            value = np.where(
                mine, _grade_from_mass(value, rows.book[key].grade_cutoffs_mg_dl), value
            )
    return value


def _interpretation(
    rows: _Rows, flag: np.ndarray, lower: np.ndarray, upper: np.ndarray, table: Thresholds
) -> np.ndarray:
    """HL7 v3 ObservationInterpretation codes: LL/HH at the critical thresholds, A for an
    abnormal dipstick, else the flag."""

    def critical(side: str, default: float) -> np.ndarray:
        """The analyte's critical threshold on ``side`` (a threshold key), per row."""
        return rows.per_analyte(
            lambda entry: table[key] if (key := getattr(entry, side)) else None, default, float
        )

    critical_low, critical_high = (
        critical("critical_low", -np.inf),
        critical("critical_high", np.inf),
    )
    chosen = np.select(
        [upper < critical_low, lower >= critical_high, rows.ordinal & (flag != "N")], [1, 2, 3], 0
    )
    return np.where(chosen == 0, flag, _labels(chosen, ["", "LL", "HH", "A"]))


def normalise_prepared(
    frame: pd.DataFrame, people: pd.DataFrame | None, thresholds: Thresholds, packs: Packs
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Normalise a lab table that went through :func:`lemlabs.stages.ingest.prepare_labs` (and
    its patients through ``prepare_patients``): ``(results, issues)``, see
    :func:`lemlabs.normalise`."""
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is a data issue, below
        return _normalise_rows(frame, people, thresholds, packs.catalogue)


def _normalise_rows(
    frame: pd.DataFrame, people: pd.DataFrame | None, table: Thresholds, book: Catalogue
) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = _Rows(frame, book)
    _check_rows(rows)
    shape, value, high, censor = _parse_values(rows)
    factor = _convert(rows, shape)
    factor, without_base = _percentages(rows, shape, value, censor, factor)
    value = np.where(shape == "tntc", rows.attribute("tntc", np.nan, float), value) * factor
    high = high * factor
    _check_plausible(rows, value, shape, high)
    value = _as_grades(rows, value, shape)
    censor = np.where(rows.ordinal, "", censor)
    lower, upper = _bounds(value, censor)

    sex_of = {} if people is None else dict(zip(people["patient_id"], people["sex"], strict=True))
    sex = rows.per_unique("patient_id", lambda p: sex_of.get(str(p).strip(), ""))
    ref_factor, ref_note = _reference_units(rows, factor)
    lab_low, lab_high, bound_issues = _lab_bounds(rows, ref_factor, ref_note)
    ref_low, ref_high, ref_source = reference_intervals(
        [book[key] if key else None for key in rows.analytes],
        rows.codes,
        sex,
        ref_factor,
        lab_low,
        lab_high,
    )
    flag = _labels(np.select([upper < ref_low, lower > ref_high], [1, 2], 0), ["N", "L", "H"])
    scored = rows.scored & ~without_base
    no_base = rows.per_analyte(
        lambda entry: (
            entry.percent_of
            and f"a percentage, with no {book.label(entry.percent_of)} of the same sample to "
            "convert it with"
        ),
        "",
    )
    some = without_base.any()  # (np.where makes a new text column pandas reads again)
    columns = {
        "analyte": np.where(without_base, "", rows.analyte) if some else rows.analyte,
        "status": _labels(scored, ["not_scored", "scored"]),
        "status_reason": np.where(without_base, no_base, rows.reason) if some else rows.reason,
        "kind": rows.kind,
        "raw_value": rows.raw_values,
        "raw_unit": frame["unit"].to_numpy(dtype=object),
        "value": np.where(scored, value, np.nan),
        "value_high": np.where(scored, high, np.nan),
        "censor": np.where(scored, censor, ""),
        "lower": np.where(scored, lower, np.nan),
        "upper": np.where(scored, upper, np.nan),
        "unit": np.where(scored, rows.attribute("unit", ""), frame["unit"].to_numpy(dtype=object)),
        "ref_low": np.where(scored, ref_low, np.nan),
        "ref_high": np.where(scored, ref_high, np.nan),
        "ref_source": np.where(scored, ref_source, ""),
        "ref_note": np.where(scored, ref_note, ""),
        "flag": np.where(scored, flag, ""),
        "interpretation": np.where(scored, _interpretation(rows, flag, lower, upper, table), ""),
        "sex": sex,
    }
    assert tuple(columns) == NORMALISED_COLUMNS[1:]  # one list of what normalising writes
    return _tables(frame, rows, columns, people, bound_issues)


def _lab_bounds(
    rows: _Rows, ref_factor: np.ndarray, ref_note: np.ndarray
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """The lab's own bounds, checked: a bound that is unreadable, not finite, negative (a high
    bound of zero or less), outside the analyte's plausible range, or a low bound not below the
    high one is not used. The row is kept with the default interval, ``ref_note`` says why
    (``ref_note`` is updated in place), and an issue with source ``reference`` names the bound.

    Returns the bounds to use, as numbers in the row's unit (NaN where empty, unreadable or
    refused), and those issues.
    """
    frame = rows.frame
    texts = _bound_texts(rows)
    numbers = [rows.per_unique(name, _bound_number, float) for name in BOUND_FIELDS]
    given = [text != "" for text in texts]
    checked = rows.quantitative & rows.problems.ok & (given[0] | given[1]) & ~np.isnan(ref_factor)
    if not checked.any():
        return numbers[0], numbers[1], pd.DataFrame(columns=ISSUE_COLUMNS)
    low, high = (
        np.where(checked, number, np.nan) * np.where(checked, ref_factor, np.nan)
        for number in numbers
    )
    plausible_low, plausible_high = rows.bounds("plausible")
    unit = rows.attribute("unit", "")
    field = np.full(len(frame), "", dtype=object)
    reason = np.full(len(frame), "", dtype=object)

    def refuse(mask: np.ndarray, name: str, why: Callable[[int], str]) -> None:
        new = np.flatnonzero(mask & checked & (reason == ""))
        field[new] = name
        reason[new] = [why(int(i)) for i in new]

    def check_side(
        name: str, bound: np.ndarray, text: np.ndarray, number: np.ndarray, mine: np.ndarray
    ) -> None:
        refuse(
            mine & np.isnan(number),
            name,
            lambda i: f"unreadable reference bound {_clip(str(text[i]))!r}",
        )
        out_of_range = ~np.isfinite(bound) | (bound < 0) | (bound > plausible_high)
        if name == "ref_high":
            out_of_range |= (bound <= 0) | (bound < plausible_low)
        refuse(
            mine & out_of_range,
            name,
            lambda i: (
                f"implausible {name} {bound[i]:g} {unit[i]} for {rows.labels[i]} "
                f"(plausible {plausible_low[i]:g}–{plausible_high[i]:g})"
            ),
        )

    check_side("ref_low", low, texts[0], numbers[0], given[0])
    check_side("ref_high", high, texts[1], numbers[1], given[1])
    refuse(
        given[0] & given[1] & (low >= high),
        "ref_low",
        lambda i: f"reference range inverted: ref_low {low[i]:g} is not below ref_high {high[i]:g}",
    )
    refused = np.flatnonzero(reason != "")
    for i in refused:
        ref_note[i] = (
            f"the lab's reference range cannot be used ({reason[i]}): the default interval applies"
        )
    numbers = [np.where(reason != "", np.nan, number) for number in numbers]
    issues = pd.DataFrame(
        {
            "row": refused,
            "line": line_of(refused),
            "patient_id": rows.patient_ids[refused],
            "field": field[refused],
            "raw_value": [_clip(str(frame.at[i, str(field[i])])) for i in refused],
            "reason": reason[refused],
            "source": REFERENCE_SOURCE,
        },
        columns=ISSUE_COLUMNS,
    )
    return numbers[0], numbers[1], issues


def _tables(
    frame: pd.DataFrame,
    rows: _Rows,
    columns: dict[str, np.ndarray],
    people: pd.DataFrame | None,
    bound_issues: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The accepted rows with their new columns, and one issue per rejected row."""
    accepted = rows.problems.ok
    kept = np.flatnonzero(accepted)
    results = frame.take(kept)
    results.index = pd.RangeIndex(len(kept))  # in place: no copy of the taken rows
    results.insert(0, "row", kept)
    for name, column in columns.items():
        results[name] = pd.Series(column[kept], index=results.index, dtype=column.dtype)
    issues = pd.DataFrame(
        {
            "row": np.arange(len(frame))[~accepted],
            "line": line_of(np.arange(len(frame))[~accepted]),
            "patient_id": rows.patient_ids[~accepted],
            "field": rows.problems.field[~accepted],
            "raw_value": _raw_for(frame, rows.problems, ~accepted),
            "reason": rows.problems.reason[~accepted],
            "source": "labs",
        },
        columns=ISSUE_COLUMNS,
    )
    if len(bound_issues):
        issues = pd.concat([issues, bound_issues], ignore_index=True)
        issues = issues.sort_values("row", kind="mergesort", ignore_index=True)
    if people is not None:
        issues = pd.concat([issues, patient_issues(people)], ignore_index=True)
    issues = issues.astype({"row": "int64", "line": "int64"})
    return results, issues


def _bound_texts(rows: _Rows) -> list[np.ndarray]:
    """The lab's own bounds (``ref_low``, ``ref_high``) as stripped text, ``""`` where none."""
    return [rows.per_unique(name, lambda text: str(text).strip()) for name in BOUND_FIELDS]


def _reference_units(rows: _Rows, factor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The factor that brings a row's own reference bounds to the canonical unit, and a note
    where they cannot be used (then the default interval applies, and the result says so).

    Bounds are in the row's unit unless ``ref_unit`` names another one (a FHIR referenceRange
    may say ``mIU/L`` where the value says ``m[IU]/L``): that unit is converted with pint. A
    percentage's bounds are a share's, not a count's: never used.
    """
    analyte, unit_text, quantitative = rows.analyte, rows.unit_text, rows.quantitative
    ref_factor = np.where(quantitative & ~rows.percent, factor, np.nan)
    note = rows.per_unique("ref_note", lambda text: str(text).strip())
    if rows.percent.any():
        given = np.logical_or.reduce([text != "" for text in _bound_texts(rows)])
        shares = rows.per_analyte(
            lambda entry: (
                entry.percent_of
                and f"the lab's interval is a percentage of the {rows.book.label(entry.percent_of)}"
                ": the default interval applies"
            ),
            "",
        )
        note = np.where(rows.percent & given, shares, note)
    if "ref_unit" not in rows.frame.columns:
        return ref_factor, note
    ref_unit = rows.per_unique("ref_unit", lambda text: str(text).strip())
    own = np.flatnonzero(quantitative & ~rows.percent & (ref_unit != "") & (ref_unit != unit_text))
    if not len(own):
        return ref_factor, note
    keys = pd.Series(analyte[own], dtype=object) + "\x1f" + pd.Series(ref_unit[own], dtype=object)
    codes, uniques = pd.factorize(keys.to_numpy(dtype=object), use_na_sentinel=False)
    found = [
        conversion(rows.book[analyte], unit)
        for analyte, unit in (str(key).split("\x1f", 1) for key in uniques)
    ]
    ref_factor[own] = np.array([c.factor or np.nan for c in found], dtype=float)[codes]
    problems = np.array([c.problem or "" for c in found], dtype=object)[codes]
    failed = own[problems != ""]
    note[failed] = [
        f"the lab's reference range in {ref_unit[i]!r} cannot be used ({problem}): "
        "the default interval applies"
        for i, problem in zip(failed, problems[problems != ""], strict=True)
    ]
    return ref_factor, note


def _raw_for(frame: pd.DataFrame, problems: _Problems, mask: np.ndarray) -> list[str]:
    column_of = {
        "source": "source_id",
        "patient_id": "patient_id",
        "loinc": "loinc",
        "collected_at": "collected_at_raw",
        "value": "value",
        "unit": "unit",
    }
    return [
        _clip(str(frame.at[index, column_of.get(field, field)]))
        if column_of.get(field, field) in frame.columns
        else ""
        for index, field in zip(np.flatnonzero(mask), problems.field[mask], strict=True)
    ]


def patient_issues(people: pd.DataFrame) -> pd.DataFrame:
    """The patients table's issues: unreadable course dates, a reader's per-patient problems
    (``ex_problem``: SDTM EX rows not counted) and its table-level ones (``attrs["issues"]``:
    a study whose EX names no row of the treatment; row -1, line 0: no row of the table)."""
    bad = people[people["problem"] != ""]
    raw = bad.get("course_dates", pd.Series("", index=bad.index)).map(_clip)
    parts = [_issue_rows(bad, "course_dates", raw.to_numpy(), bad["problem"], "patients")]
    if "ex_problem" in people.columns:
        ex = people[people["ex_problem"].astype(str) != ""]
        parts.append(_issue_rows(ex, "EXSTDTC", "", ex["ex_problem"], "EX"))
    studies = people.attrs.get("issues", [])
    if studies:
        table = pd.DataFrame({"patient_id": ""}, index=pd.Index([-1] * len(studies)))
        raw_values = [_clip(study["raw_value"]) for study in studies]
        reasons = pd.Series([study["reason"] for study in studies], index=table.index)
        parts.append(_issue_rows(table, "EXTRT", raw_values, reasons, "EX", line=0))
    found = [part for part in parts if len(part)]
    return pd.concat(found, ignore_index=True) if found else parts[0]


def _issue_rows(
    rows: pd.DataFrame,
    field: str,
    raw: Any,
    reasons: pd.Series,
    source: str,
    line: int | None = None,
) -> pd.DataFrame:
    """Issue records for ``rows`` of a table (their index is the row; ``line`` overrides the
    file line, as for a table-level issue)."""
    return pd.DataFrame(
        {
            "row": rows.index.to_numpy(),
            "line": line_of(rows.index.to_numpy()) if line is None else line,
            "patient_id": rows["patient_id"].to_numpy(),
            "field": field,
            "raw_value": raw,
            "reason": reasons.to_numpy(),
            "source": source,
        },
        columns=ISSUE_COLUMNS,
    )
