"""One table per term, a row at every cut-off (just below, at, just above), in two unit systems.

Each row: the result(s) → the expected ``(code, severity, CTCAE grade)`` findings.
"""

from __future__ import annotations

import datetime as dt
import io
import math

import pandas as pd
import pytest
from rules_helpers import START, findings, summary

import lemlabs
from lemlabs.models import Finding

NONE: set[tuple[str, str, int | None]] = set()

# --- Platelet count (×10⁹/L; default interval 150–400), CTCAE v5 Platelet count decreased ---
PLATELETS = [
    (151, NONE),
    (150, NONE),
    (149.9, {("itp.thrombocytopenia", "watch", 1)}),
    (100, {("itp.thrombocytopenia", "watch", 1)}),
    (99.9, {("itp.suspected", "action", 1)}),
    (75, {("itp.suspected", "action", 1)}),
    (74.9, {("itp.suspected", "action", 2)}),
    (50, {("itp.suspected", "action", 2)}),
    (49.9, {("itp.suspected", "urgent", 3)}),
    (25, {("itp.suspected", "urgent", 3)}),
    (24.9, {("itp.suspected", "urgent", 4)}),
]


@pytest.mark.parametrize(("count", "expected"), PLATELETS)
@pytest.mark.parametrize(("unit", "scale"), [("10^9/L", 1.0), ("/µL", 1000.0), ("K/uL", 1.0)])
def test_platelet_count(count: float, expected: set[object], unit: str, scale: float) -> None:
    value = f"{count * scale:g}"
    assert summary(findings([(200, "PLT", value, unit)])) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (">100", NONE),  # not certainly low
        ("<200", NONE),
        ("<100", {("itp.suspected", "action", 1)}),  # certainly below 100
        ("<50", {("itp.suspected", "urgent", 3)}),
    ],
)
def test_censored_platelet_counts_count_only_when_certain(raw: str, expected: set[object]) -> None:
    assert summary(findings([(200, "PLT", raw, "10^9/L")])) == expected


@pytest.mark.parametrize(
    ("later", "expected"),
    [
        (151, NONE),  # 49.7 % fall
        (150, {("itp.platelet_fall", "watch", None)}),  # exactly 50 %, still ≥ LLN
        (149, {("itp.thrombocytopenia", "watch", 1)}),  # below LLN: thrombocytopenia instead
    ],
)
def test_platelet_fall_from_baseline(later: float, expected: set[object]) -> None:
    rows = [(-10, "PLT", "300", "10^9/L"), (200, "PLT", f"{later:g}", "10^9/L")]
    assert summary(findings(rows)) == expected


def test_a_result_before_the_baseline_is_no_change_from_it() -> None:
    # baseline: the last count on or before the first course day (day 0), 400; the count two
    # months before it is not a fall from a baseline that did not exist yet
    rows = [
        (-61, "PLT", "180", "10^9/L"),
        (0, "PLT", "400", "10^9/L"),
        (150, "PLT", "390", "10^9/L"),
    ]
    assert findings(rows) == []
    creatinine = [(-31, "Creat", "100", "umol/L"), (0, "Creat", "60", "umol/L")]
    assert findings(creatinine, sex="M") == []


def test_infusion_note_in_the_first_61_days_keeps_the_severity() -> None:
    (early,) = findings([(60, "PLT", "90", "10^9/L")])
    assert str(early.severity) == "action"
    assert "infusion-associated" in early.message
    (later,) = findings([(61, "PLT", "90", "10^9/L")])
    assert "infusion-associated" not in later.message
    (second_course,) = findings([(365 + 10, "PLT", "90", "10^9/L")])
    assert "infusion-associated" in second_course.message


# --- TSH (0.4–4.0 mIU/L) with free T4 (12–22 pmol/L) within 7 days ---
SUB_HYPER_W = {("thyroid.subclinical_hyperthyroidism", "watch", None)}
SUB_HYPER_A = {("thyroid.subclinical_hyperthyroidism", "action", None)}
SUB_HYPO_W = {("thyroid.subclinical_hypothyroidism", "watch", None)}
SUB_HYPO_A = {("thyroid.subclinical_hypothyroidism", "action", None)}
DISCORDANT = {("thyroid.discordant", "watch", None)}
THYROID = [
    # TSH, free T4 (pmol/L) or None
    ("0.4", None, NONE),
    ("0.39", None, SUB_HYPER_W),
    ("0.1", None, SUB_HYPER_W),
    ("0.099", None, SUB_HYPER_A),
    ("<0.1", None, SUB_HYPER_A),  # certainly below 0.1
    ("<0.5", None, NONE),  # not certainly below 0.4
    ("<0.01", "22.1", {("thyroid.overt_hyperthyroidism", "action", None)}),
    ("0.39", "22", SUB_HYPER_W),
    ("0.39", "22.1", {("thyroid.overt_hyperthyroidism", "action", None)}),
    ("4.0", None, NONE),
    ("4.01", None, SUB_HYPO_W),
    ("9.99", None, SUB_HYPO_W),
    ("10", None, SUB_HYPO_A),
    (">10", None, SUB_HYPO_A),
    ("4.01", "12", SUB_HYPO_W),
    ("4.01", "11.9", {("thyroid.overt_hypothyroidism", "action", None)}),
    ("0.3", "11", DISCORDANT),
    ("5", "25", DISCORDANT),
    ("2", "25", DISCORDANT),  # normal TSH, abnormal free T4
    ("2", "15", NONE),
]


def _ng_dl(pmol_l: float) -> str:
    """pmol/L in ng/dL to 6 decimals, rounded inward at the interval's own edges (12 and 22)."""
    exact = pmol_l / 12.872166514346029
    rounding = {12.0: math.ceil, 22.0: math.floor}.get(pmol_l, round)
    return f"{rounding(exact * 1e6) / 1e6:.6f}"


@pytest.mark.parametrize(("tsh", "ft4", "expected"), THYROID)
@pytest.mark.parametrize("units", ["SI", "conventional"])
def test_tsh_with_free_t4(tsh: str, ft4: str | None, expected: set[object], units: str) -> None:
    rows = [(100, "TSH", tsh, "mIU/L" if units == "SI" else "µIU/mL")]
    if ft4 is not None:
        value = ft4 if units == "SI" else _ng_dl(float(ft4))
        rows.append((103, "Free T4", value, "pmol/L" if units == "SI" else "ng/dL"))
    assert summary(findings(rows)) == expected


@pytest.mark.parametrize(("gap", "paired"), [(7, True), (-7, True), (8, False)])
def test_free_t4_pairs_within_7_days(gap: int, paired: bool) -> None:
    found = findings([(100, "TSH", "0.2", "mIU/L"), (100 + gap, "Free T4", "30", "pmol/L")])
    codes = {f.code for f in found}
    assert ("thyroid.overt_hyperthyroidism" in codes) is paired
    overt = [f for f in found if f.code == "thyroid.overt_hyperthyroidism"]
    if overt:  # dated at the later of the two, with both results as evidence
        assert (
            overt[0].date.isoformat()
            == max(overt[0].evidence, key=lambda e: e.collected_at).collected_at.date().isoformat()
        )
        assert {e.analyte for e in overt[0].evidence} == {"tsh", "free_t4"}


@pytest.mark.parametrize(("gap", "swing"), [(183, True), (184, False)])
def test_tsh_swing_within_6_months(gap: int, swing: bool) -> None:
    found = findings([(100, "TSH", "0.05", "mIU/L"), (100 + gap, "TSH", "8", "mIU/L")])
    assert ("thyroid.fluctuation" in {f.code for f in found}) is swing


def _on(date: str) -> int:
    return (dt.date.fromisoformat(date) - START).days


@pytest.mark.parametrize(
    ("first", "second", "swing"),
    [
        ("2020-03-01", "2020-09-01", True),  # 6 calendar months, inclusive: 184 days
        ("2020-03-01", "2020-09-02", False),
        ("2020-08-31", "2021-02-28", True),  # 6 months from 31 August end on 28 February
        ("2020-08-31", "2021-03-01", False),
    ],
)
def test_tsh_swing_counts_calendar_months(first: str, second: str, swing: bool) -> None:
    found = findings([(_on(first), "TSH", "0.05", "mIU/L"), (_on(second), "TSH", "8", "mIU/L")])
    assert ("thyroid.fluctuation" in {f.code for f in found}) is swing


def test_tsh_swing_back_from_raised_to_suppressed() -> None:
    found = findings([(100, "TSH", "8", "mIU/L"), (160, "TSH", "0.05", "mIU/L")])
    (swing,) = [f for f in found if f.code == "thyroid.fluctuation"]
    assert str(swing.severity) == "action" and swing.rule_id.endswith("high_to_low")


# --- Creatinine (µmol/L; woman: 45–90), KDIGO rise and CTCAE v5 Creatinine increased ---
def _creatinine(
    baseline: float | None, value: str, unit: str = "umol/L"
) -> set[tuple[str, str, int | None]]:
    rows = [] if baseline is None else [(-5, "Creat", f"{baseline:g}", "umol/L")]
    return summary(findings([*rows, (200, "Creat", value, unit)]))


RISE_A = "anti_gbm.creatinine_rise", "action"
RISE_U = "anti_gbm.creatinine_rise", "urgent"
HIGH_W = "anti_gbm.creatinine_high", "watch"
CREATININE = [
    # baseline (None: the value is its own baseline), value; woman, interval 45–90 µmol/L.
    # Severity cut-offs (≥ 1.5 and ≥ 3 × baseline) apply as written; CTCAE grades use >.
    (60, "89.9", NONE),
    (60, "90", {(*RISE_A, None)}),  # exactly 1.5 × baseline: action; CTCAE needs > 1.5
    (60, "90.1", {(*RISE_A, 2)}),
    (60, "179.9", {(*RISE_A, 2)}),
    (60, "180", {(*RISE_U, 2)}),  # exactly 3 × baseline: urgent; CTCAE grade 3 needs > 3
    (60, "180.1", {(*RISE_U, 3)}),
    # ≥ 3 × a low baseline is urgent only above the ULN (domain.md: 30 → 90 stays action)
    (30, "89", {(*RISE_A, 2)}),
    (30, "90", {(*RISE_A, 2)}),  # 3 × baseline, at the ULN: action; CTCAE G3 needs > 3
    (30, "90.1", {(*RISE_U, 3)}),  # above the ULN
    (None, "90", NONE),  # at ULN
    (None, "90.1", {(*HIGH_W, 1)}),
    (None, "135", {(*HIGH_W, 1)}),  # 1.5 × ULN exactly: still grade 1
    (None, "135.1", {(*HIGH_W, 2)}),
    (None, "270", {(*HIGH_W, 2)}),  # 3 × ULN exactly
    (None, "270.1", {(*HIGH_W, 3)}),
    (None, "353.5", {(*HIGH_W, 3)}),
    (None, "353.6", {(*RISE_U, 3)}),  # ≥ 4.0 mg/dL whatever the baseline
    (None, "540", {(*RISE_U, 3)}),  # 6 × ULN exactly
    (None, "540.1", {(*RISE_U, 4)}),
]


@pytest.mark.parametrize(("baseline", "value", "expected"), CREATININE)
def test_creatinine(baseline: float | None, value: str, expected: set[object]) -> None:
    assert _creatinine(baseline, value) == expected


@pytest.mark.parametrize(
    ("value_mg_dl", "expected"),
    [("1.0179", NONE), ("1.0181", {(*RISE_A, 2)})],  # 89.98 and 90.00 µmol/L vs baseline 60
)
def test_creatinine_ratio_across_unit_systems(value_mg_dl: str, expected: set[object]) -> None:
    assert _creatinine(60, value_mg_dl, "mg/dL") == expected


@pytest.mark.parametrize(
    ("days_later", "value", "expected"),
    [
        (2, "126.5", {(*RISE_A, 1)}),  # +26.5 µmol/L within 48 h (man, interval 60–110)
        (2, "126.4", {(*HIGH_W, 1)}),
        (3, "126.5", {(*HIGH_W, 1)}),  # outside 48 h
    ],
)
def test_creatinine_48_hour_rise(days_later: int, value: str, expected: set[object]) -> None:
    rows = [
        (-5, "Creat", "100", "umol/L"),
        (200, "Creat", "100", "umol/L"),
        (200 + days_later, "Creat", value, "umol/L"),
    ]
    assert summary(findings(rows, sex="M")) == expected


def _rise(rows: list[tuple[int, str, str, str]]) -> Finding:
    (rise,) = [f for f in findings(rows) if f.code == "anti_gbm.creatinine_rise"]
    return rise


def test_a_rise_against_an_old_baseline_is_sustained_not_acute_kidney_injury() -> None:
    rise = _rise([(-5, "Creat", "50", "umol/L"), (400, "Creat", "80", "umol/L")])
    assert str(rise.severity) == "action"
    assert "sustained rise" in rise.message
    assert "acute kidney injury" not in rise.message.replace("not acute kidney injury", "")


@pytest.mark.parametrize(
    "rows",
    [
        # baseline 6 days before the rise
        [(-5, "Creat", "50", "umol/L"), (1, "Creat", "80", "umol/L")],
        # an old baseline, but up by 27 µmol/L within 48 h
        [
            (-5, "Creat", "70", "umol/L"),
            (200, "Creat", "70", "umol/L"),
            (201, "Creat", "97", "umol/L"),
        ],
    ],
    ids=["baseline-within-7-days", "48-hour-rise"],
)
def test_an_acute_rise_is_called_acute_kidney_injury(rows: list[tuple[int, str, str, str]]) -> None:
    rise = _rise(rows)
    assert "consistent with acute kidney injury (KDIGO)" in rise.message
    assert "sustained" not in rise.message


def test_three_times_a_low_baseline_within_the_interval_says_why_it_is_not_urgent() -> None:
    rise = _rise([(-5, "Creat", "30", "umol/L"), (200, "Creat", "90", "umol/L")])
    assert str(rise.severity) == "action"
    assert "within the reference interval" in rise.message


# --- Haematuria (no CTCAE grade) ---
HAEM = {("anti_gbm.haematuria", "watch", None)}
HAEMATURIA = [
    ("U-Blood", "neg", "", NONE),
    ("U-Blood", "trace", "", NONE),
    ("U-Blood", "1+", "", HAEM),
    ("U-Blood", "small", "", HAEM),
    ("Urine RBC", "2", "/HPF", NONE),
    ("Urine RBC", "3", "/HPF", HAEM),
    ("Urine RBC", "2-4", "/HPF", NONE),  # a range counts by its lower bound
    ("Urine RBC", "3-5", "/HPF", HAEM),
    ("Urine RBC", ">2", "/HPF", NONE),  # not certainly ≥ 3
    ("Urine RBC", "TNTC", "", HAEM),
]


@pytest.mark.parametrize(("test", "value", "unit", "expected"), HAEMATURIA)
def test_haematuria(test: str, value: str, unit: str, expected: set[object]) -> None:
    assert summary(findings([(200, test, value, unit)], sex="M")) == expected


def test_haematuria_in_a_woman_carries_the_menstruation_caveat() -> None:
    (woman,) = findings([(200, "U-Blood", "2+", "")], sex="F")
    (man,) = findings([(200, "U-Blood", "2+", "")], sex="M")
    assert "menstruation" in woman.message and str(woman.severity) == "watch"
    assert "menstruation" not in man.message


@pytest.mark.parametrize(("gap", "persistent"), [(6, False), (7, True), (90, True), (91, False)])
def test_haematuria_on_two_samples(gap: int, persistent: bool) -> None:
    rows = [(200, "U-Blood", "1+", ""), (200 + gap, "Urine RBC", "5-10", "/HPF")]
    found = findings(rows, sex="M")
    hits = [f for f in found if f.code == "anti_gbm.haematuria_persistent"]
    assert bool(hits) is persistent
    if hits:
        assert str(hits[0].severity) == "action" and hits[0].ctcae_grade is None


NEGATIVE_MICROSCOPY = "microscopy negative on the same day"


@pytest.mark.parametrize(
    ("microscopy", "counts"),
    [
        ("1", False),  # < 3 RBC/HPF for certain: does not count toward persistence
        ("0-2", False),
        ("<3", False),
        ("<5", True),  # not certainly below 3
        ("4", True),  # microscopy positive itself
    ],
)
def test_a_dipstick_with_negative_same_day_microscopy(microscopy: str, counts: bool) -> None:
    rows = [
        (200, "U-Blood", "2+", ""),
        (200, "Urine RBC", microscopy, "/HPF"),
        (214, "U-Blood", "1+", ""),
        (214, "Urine RBC", microscopy, "/HPF"),
    ]
    found = findings(rows, sex="M")
    assert ("anti_gbm.haematuria_persistent" in {f.code for f in found}) is counts
    haematuria = [f for f in found if f.code == "anti_gbm.haematuria"]
    assert haematuria and all(str(f.severity) == "watch" for f in haematuria)
    assert any(NEGATIVE_MICROSCOPY in f.message for f in haematuria) is not counts


def test_a_dipstick_with_negative_microscopy_still_counts_toward_the_anti_gbm_pattern() -> None:
    rows = [
        (-5, "Creat", "60", "umol/L"),
        (200, "U-Blood", "2+", ""),
        (200, "Urine RBC", "1", "/HPF"),
        (210, "Creat", "100", "umol/L"),
    ]
    found = findings(rows, sex="M")
    assert "anti_gbm.pattern" in {f.code for f in found}


# --- Proteinuria (dipstick, mg/dL, UPCR) and albuminuria (UACR) ---
PROT = "anti_gbm.proteinuria"
PROTEINURIA = [
    ("Urine protein", "trace", "", NONE),
    ("Urine protein", "1+", "", {(PROT, "watch", 1)}),
    ("Urine protein", "2+", "", {(PROT, "action", 2)}),
    ("Urine protein", "3+", "", {(PROT, "action", 2)}),
    ("Urine protein", "4+", "", {(PROT, "action", 3)}),
    ("Urine protein", "29", "mg/dL", NONE),
    ("Urine protein", "30", "mg/dL", {(PROT, "watch", 1)}),
    ("Urine protein", "100", "mg/dL", {(PROT, "action", 2)}),
    ("Urine protein", "0.3", "g/L", {(PROT, "watch", 1)}),
    ("UPCR", "15", "mg/mmol", NONE),
    ("UPCR", "15.1", "mg/mmol", {(PROT, "watch", None)}),
    ("UPCR", "49.9", "mg/mmol", {(PROT, "watch", None)}),
    ("UPCR", "50", "mg/mmol", {(PROT, "action", None)}),
    ("UPCR", "441", "mg/g", {(PROT, "watch", None)}),
    ("UPCR", "443", "mg/g", {(PROT, "action", None)}),
    ("UACR", "3", "mg/mmol", NONE),
    ("UACR", "3.1", "mg/mmol", {("anti_gbm.albuminuria", "watch", None)}),
    ("UACR", "29.9", "mg/mmol", {("anti_gbm.albuminuria", "watch", None)}),
    ("UACR", "30", "mg/mmol", {("anti_gbm.albuminuria", "action", None)}),
    ("UACR", "266", "mg/g", {("anti_gbm.albuminuria", "action", None)}),
]


@pytest.mark.parametrize(("test", "value", "unit", "expected"), PROTEINURIA)
def test_proteinuria(test: str, value: str, unit: str, expected: set[object]) -> None:
    assert summary(findings([(200, test, value, unit)])) == expected


def test_results_after_the_monitoring_window_are_scored_with_a_note() -> None:
    # last infusion: day 365 + 2 (3-day second course); window ends 48 months later
    (late,) = findings([(365 + 2 + 48 * 31, "PLT", "90", "10^9/L")])
    assert str(late.severity) == "action"
    assert "monitoring window ended" in late.message
    (inside,) = findings([(365 + 2 + 47 * 30, "PLT", "90", "10^9/L")])
    assert "monitoring window" not in inside.message


def test_normal_results_give_no_findings() -> None:
    rows = [
        (d, t, v, u)
        for d in (-5, 30, 60, 90)
        for t, v, u in [
            ("PLT", "250", "10^9/L"),
            ("Creat", "70", "umol/L"),
            ("TSH", "1.5", "mIU/L"),
            ("Free T4", "15", "pmol/L"),
            ("U-Blood", "neg", ""),
            ("Urine protein", "trace", ""),
            ("UPCR", "10", "mg/mmol"),
        ]
    ]
    assert findings(rows) == []


def test_episodes_join_repeated_hits_and_split_on_a_normal_result_or_a_long_gap() -> None:
    low = [(200 + 30 * i, "PLT", "120", "10^9/L") for i in range(12)]
    (one,) = findings(low)
    assert one.results_in_episode == 12 and "12 results, from" in one.message
    with_normal = [*low[:3], (290, "PLT", "250", "10^9/L"), *low[4:]]
    assert len(findings(with_normal)) == 2
    gap = [(200, "PLT", "120", "10^9/L"), (200 + 93, "PLT", "120", "10^9/L")]
    assert len(findings(gap)) == 2
    assert len(findings([(200, "PLT", "120", "10^9/L"), (292, "PLT", "120", "10^9/L")])) == 1


# A rule with alternatives names the one its worst result met, and against what (domain.md,
# "Messages match their evidence"): × the baseline (with its value and date), + µmol/L within
# 48 h (from → to), or the absolute cut-off.
@pytest.mark.parametrize(
    ("rows", "said", "not_said"),
    [
        (
            [("2020-05-28", "160"), ("2021-01-10", "360")],
            ["2.2 × the baseline of 160 µmol/L (2020-05-28): 360 µmol/L on 2021-01-10",
             "360 µmol/L on 2021-01-10, at least 353.6 µmol/L"],
            ["within 48 h ("],
        ),
        (
            [("2020-05-28", "80"), ("2021-01-10T08:00", "84"), ("2021-01-12T00:00", "111")],
            ["+27 µmol/L within 48 h (84 → 111 µmol/L on 2021-01-12)"],
            ["× the baseline of", "at least 353.6 µmol/L"],
        ),
        (
            [("2020-05-28", "80"), ("2021-01-10", "120")],
            ["1.5 × the baseline of 80 µmol/L (2020-05-28): 120 µmol/L on 2021-01-10"],
            ["within 48 h (", "at least 353.6 µmol/L"],
        ),
    ],
)  # fmt: skip
def test_a_creatinine_rise_names_the_alternative_its_worst_result_met(
    rows: list[tuple[str, str]], said: list[str], not_said: list[str]
) -> None:
    text = "patient_id,collected_at,test,value,unit\n" + "".join(
        f"P1,{when},Creatinine,{value},umol/L\n" for when, value in rows
    )
    people = pd.DataFrame(
        [("P1", "F", "2020-06-01")], columns=["patient_id", "sex", "course_dates"]
    )
    report = lemlabs.score_frame(io.StringIO(text), people)
    (rise,) = [f for f in report.finding_list if f.code == "anti_gbm.creatinine_rise"]
    for words in said:
        assert words in rise.message
    for words in not_said:
        assert words not in rise.message


def test_a_platelet_fall_names_its_share_and_the_baseline() -> None:
    text = (
        "patient_id,collected_at,test,value,unit,ref_low,ref_high\n"
        "P1,2020-05-28,PLT,310,10^9/L,150,400\nP1,2021-01-10,PLT,130,10^9/L,120,400\n"
    )
    people = pd.DataFrame(
        [("P1", "F", "2020-06-01")], columns=["patient_id", "sex", "course_dates"]
    )
    (fall,) = lemlabs.score_frame(io.StringIO(text), people).finding_list
    assert fall.code == "itp.platelet_fall"
    assert "a fall of 58 % from the baseline of 310 ×10⁹/L: 130 ×10⁹/L on 2021-01-10" in (
        fall.message
    )
