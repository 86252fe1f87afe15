"""The liver pack, one table per rule with a row at every cut-off (admiral's habit): the
aminotransferases × ULN and × an abnormal baseline, Hy's law and its window, alkaline phosphatase
beside the bilirubin, the isolated bilirubin rise; in U/L, IU/L and µkat/L, µmol/L and mg/dL.
Cases written from domain.md ("Liver", "Values") and the FDA DILI guidance (July 2009), before
the rules were read."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lemlabs

HEADER = "patient_id,collected_at,test,value,unit,ref_low,ref_high\n"
PATIENTS = pd.DataFrame([("P1", "F", "2020-01-10")], columns=["patient_id", "sex", "course_dates"])


def score(rows: list[tuple[str, str, str, str, str]]) -> lemlabs.Report:
    """Score one patient's rows (date, test, value, unit, ULN)."""
    text = HEADER + "".join(f"P1,{d},{t},{v},{u},,{uln}\n" for d, t, v, u, uln in rows)
    return lemlabs.score_frame(io.StringIO(text), PATIENTS)


def liver(report: lemlabs.Report) -> set[tuple[str, str]]:
    return {(f.code, str(f.severity)) for f in report.finding_list if f.condition == "liver"}


# --- liver.transaminases: × ULN (baseline normal). ULN 40 U/L = 0.667 µkat/L; "3 × ULN exactly"
# is watch (the rule says > 3 × ULN), "5 × ULN exactly" is action (> 5 × ULN is urgent).
ENZYME_ULN = [
    (40.0, None),
    (40.01, "watch"),
    (120.0, "watch"),
    (120.01, "action"),
    (200.0, "action"),
    (200.01, "urgent"),
]


@pytest.mark.parametrize("test", ["ALT", "AST"])
@pytest.mark.parametrize(("unit", "scale"), [("U/L", 1.0), ("IU/L", 1.0), ("µkat/L", 1 / 60)])
@pytest.mark.parametrize(("value", "severity"), ENZYME_ULN)
def test_transaminases_against_the_uln(
    test: str, unit: str, scale: float, value: float, severity: str | None
) -> None:
    report = score(
        [
            ("2020-01-02", test, repr(30 * scale), unit, repr(40 * scale)),  # normal baseline
            ("2020-03-01", test, repr(value * scale), unit, repr(40 * scale)),
        ]
    )
    expected = {("liver.transaminases", severity)} if severity else set()
    assert liver(report) == expected


# --- × baseline when the baseline was above its own ULN (100 U/L at a ULN of 40): > 1.5×, > 3×,
# > 5× the baseline; Hy's law still reads × ULN.
BASELINE = [
    (150.0, None),
    (150.01, "watch"),
    (300.0, "watch"),
    (300.01, "action"),
    (500.0, "action"),
    (500.01, "urgent"),
]


@pytest.mark.parametrize(("value", "severity"), BASELINE)
def test_transaminases_against_an_abnormal_baseline(value: float, severity: str | None) -> None:
    report = score(
        [("2020-01-02", "ALT", "100", "U/L", "40"), ("2020-03-01", "ALT", repr(value), "U/L", "40")]
    )
    found = [f for f in report.finding_list if f.date.isoformat() == "2020-03-01"]
    assert {(f.code, str(f.severity)) for f in found} == (
        {("liver.transaminases", severity)} if severity else set()
    )
    if severity:
        assert "compared with the baseline" in found[0].message


def test_an_abnormal_baseline_record_is_itself_judged_by_its_uln() -> None:
    """The baseline is not a change from itself: 250 U/L (6.25 × ULN) before treatment."""
    report = score([("2020-01-02", "ALT", "250", "U/L", "40")])
    assert liver(report) == {("liver.transaminases", "urgent")}
    assert report.results.loc[0, "ctcae_grade_high"] == 3


# --- Hy's law: ALT ≥ 3 × ULN ("3-fold or greater"), then total bilirubin > 2 × ULN on the same day
# or within 30 days after; ALP < 2 × ULN (the nearest within 7 days of the bilirubin) or missing.
HYS = "liver.hys_law"
JAUNDICE = "liver.injury_with_jaundice"
ISOLATED = "liver.bilirubin"


@pytest.mark.parametrize(
    ("bilirubin", "unit", "uln", "code"),
    [
        ("42", "µmol/L", "21", None),  # exactly 2 × ULN: not > 2 ×
        ("42.01", "µmol/L", "21", HYS),
        ("2.4", "mg/dL", "1.2", None),
        ("2.41", "mg/dL", "1.2", HYS),
        ("24", "mg/L", "12", None),
        ("24.1", "mg/L", "12", HYS),
    ],
)
def test_hys_law_bilirubin_cut_off(bilirubin: str, unit: str, uln: str, code: str | None) -> None:
    report = score(
        [
            ("2020-03-01", "ALT", "120", "U/L", "40"),  # exactly 3 × ULN: counts for Hy's law
            ("2020-03-05", "Total bilirubin", bilirubin, unit, uln),
            ("2020-03-05", "ALP", "100", "U/L", "130"),
        ]
    )
    codes = {c for c, _ in liver(report)}
    assert (HYS in codes) == (code == HYS)
    assert ISOLATED not in codes and JAUNDICE not in codes
    assert ("liver.transaminases", "watch") in liver(report)  # 3 × ULN: watch, not action


@pytest.mark.parametrize(("enzyme", "code"), [("119.99", ISOLATED), ("120", HYS)])
def test_hys_law_enzyme_cut_off(enzyme: str, code: str) -> None:
    report = score(
        [
            ("2020-03-01", "AST", enzyme, "U/L", "40"),
            ("2020-03-01", "BILI", "50", "umol/L", "21"),
        ]
    )
    assert code in {c for c, _ in liver(report)}


@pytest.mark.parametrize(
    ("bilirubin_day", "code"),
    [
        ("2020-03-01", HYS),  # the same day
        ("2020-03-31", HYS),  # 30 days after
        ("2020-04-01", ISOLATED),  # 31 days after: outside the window
        ("2020-02-29", ISOLATED),  # the day before the enzyme
    ],
)
def test_hys_law_window(bilirubin_day: str, code: str) -> None:
    report = score(
        [
            ("2020-03-01", "ALT", "400", "U/L", "40"),
            (bilirubin_day, "Total bilirubin", "60", "µmol/L", "21"),
        ]
    )
    codes = {c for c, _ in liver(report)}
    assert code in codes and ({HYS, ISOLATED} - {code}).isdisjoint(codes)


@pytest.mark.parametrize(
    ("alp", "alp_day", "code", "note"),
    [
        ("259.99", "2020-03-05", HYS, False),
        ("260", "2020-03-05", JAUNDICE, False),  # exactly 2 × ULN: not Hy's law
        ("260", "2020-03-12", JAUNDICE, False),  # 7 days from the bilirubin: counted
        ("260", "2020-03-13", HYS, True),  # 8 days away: not measured
        (None, None, HYS, True),
        (">300", "2020-03-05", JAUNDICE, False),  # certain ≥ 2 × ULN
        ("<300", "2020-03-05", HYS, False),  # not certain ≥ 2 × ULN
    ],
)
def test_hys_law_or_injury_with_jaundice_by_alkaline_phosphatase(
    alp: str | None, alp_day: str | None, code: str, note: bool
) -> None:
    rows = [
        ("2020-03-01", "ALT", "300", "U/L", "40"),
        ("2020-03-05", "Total bilirubin", "60", "µmol/L", "21"),
    ]
    if alp is not None and alp_day is not None:
        rows.append((alp_day, "Alkaline phosphatase", alp, "U/L", "130"))
    report = score(rows)
    found = [f for f in report.finding_list if f.code in (HYS, JAUNDICE)]
    assert [f.code for f in found] == [code]
    assert [str(f.severity) for f in found] == ["urgent"]
    assert ("cholestasis not excluded" in found[0].message) == note
    analytes = {e.analyte for e in found[0].evidence}
    assert {"alt", "bilirubin"} <= analytes
    assert ("alp" in analytes) == (not note)
    if code == JAUNDICE:
        assert "not Hy's law" in found[0].message


def test_a_direct_bilirubin_never_counts_as_total() -> None:
    report = score(
        [
            ("2020-03-01", "ALT", "400", "U/L", "40"),
            ("2020-03-02", "Direct bilirubin", "60", "µmol/L", "5"),
            ("2020-03-02", "BILDIR", "60", "µmol/L", "5"),
        ]
    )
    assert liver(report) == {("liver.transaminases", "urgent")}
    assert set(report.results.loc[1:, "status"]) == {"not_scored"}


def test_an_isolated_bilirubin_rise_names_gilbert_and_haemolysis() -> None:
    report = score([("2020-03-01", "T-Bil", "2.5", "mg/dL", "1.2")])
    (found,) = report.finding_list
    assert (found.code, str(found.severity)) == (ISOLATED, "watch")
    assert "Gilbert" in found.action and "haptoglobin" in found.action


def test_bilirubin_above_the_uln_but_not_twice_it_is_graded_not_a_finding() -> None:
    report = score([("2020-03-01", "Total bilirubin", "40", "µmol/L", "21")])
    assert liver(report) == set()
    assert report.results.loc[0, "ctcae_grade_high"] == 2  # > 1.5 – 3.0 × ULN


@pytest.mark.parametrize(
    ("value", "severity"), [("<5", None), ("<400", None), (">1000", "urgent"), (">100", "watch")]
)
def test_censored_enzymes_count_where_the_comparison_is_certain(
    value: str, severity: str | None
) -> None:
    report = score([("2020-03-01", "ALT", value, "U/L", "40")])
    assert liver(report) == ({("liver.transaminases", severity)} if severity else set())


@pytest.mark.parametrize("unit", ["%", "% ULN", "mg/dL", "x ULN"])
def test_an_enzyme_in_a_unit_of_another_dimension_is_a_data_issue(unit: str) -> None:
    report = score([("2020-03-01", "ALT", "150", unit, "")])
    assert report.issues["field"].tolist() == ["unit"]
    assert not report.finding_list


def test_an_alt_without_an_interval_uses_the_default_and_says_so() -> None:
    text = HEADER.replace(",ref_low,ref_high", "") + "P1,2020-03-01,ALT,130,U/L\n"
    report = lemlabs.score_frame(io.StringIO(text), PATIENTS)
    assert report.results.loc[0, "ref_high"] == 40.0
    assert report.results.loc[0, "ref_source"] == "default"
    assert liver(report) == {("liver.transaminases", "action")}


def test_the_r_ratio_names_the_pattern() -> None:
    report = score(
        [("2020-03-01", "ALT", "400", "U/L", "40"), ("2020-03-01", "ALP", "150", "U/L", "130")]
    )
    (found,) = [f for f in report.finding_list if f.code == "liver.transaminases"]
    assert "R ratio 8.7" in found.message and "hepatocellular" in found.message


# The R ratio at the peak ALT of the Hy's law window ((ALT/ULN) ÷ (ALP/ULN), the same day's ALP;
# R ≥ 5 hepatocellular, ≤ 2 cholestatic): ALT 400 at ULN 40 is 10 × ULN; ALP at ULN 100.
@pytest.mark.parametrize(
    ("alp", "alp_day", "code", "said"),
    [
        ("150", "2020-03-01", HYS, "R ratio 6.7 at the peak ALT"),  # 10 ÷ 1.5: hepatocellular
        ("200", "2020-03-01", JAUNDICE, "R ratio 5.0 at the peak ALT"),  # exactly 5: hepatocell.
        ("200.01", "2020-03-01", JAUNDICE, "R ratio 5.0 at the peak ALT"),  # just below 5: mixed
        ("499.99", "2020-03-01", JAUNDICE, "R ratio 2.0 at the peak ALT"),  # just above 2: mixed
        ("500", "2020-03-01", JAUNDICE, "R ratio 2.0 at the peak ALT"),  # exactly 2: cholestatic
        ("150", "2020-03-02", HYS, "R ratio not known"),  # not the peak ALT's day
    ],
)
def test_hys_law_findings_carry_the_r_ratio_at_the_peak_alt(
    alp: str, alp_day: str, code: str, said: str
) -> None:
    report = score(
        [
            ("2020-02-20", "ALT", "200", "U/L", "40"),
            ("2020-03-01", "ALT", "400", "U/L", "40"),  # the peak in the 30 days before
            (alp_day, "ALP", alp, "U/L", "100"),
            ("2020-03-05", "Total bilirubin", "60", "µmol/L", "21"),
        ]
    )
    (found,) = [f for f in report.finding_list if f.code in (HYS, JAUNDICE)]
    assert found.code == code
    assert said in found.message
    patterns = {"150": "hepatocellular", "200": "hepatocellular", "200.01": "mixed"}
    pattern = {**patterns, "499.99": "mixed", "500": "cholestatic"}[alp]
    assert f"a {pattern} pattern" in found.message or alp_day != "2020-03-01"


def test_alt_and_ast_of_one_episode_are_one_finding_naming_both() -> None:
    report = score(
        [("2020-03-01", "ALT", "400", "U/L", "40"), ("2020-03-03", "AST", "150", "U/L", "40")]
    )
    (found,) = [f for f in report.finding_list if f.code == "liver.transaminases"]
    assert "(ALT)" in found.message and "(AST)" in found.message
    assert found.results_in_episode == 2


def test_the_schedule_asks_for_liver_tests_monthly() -> None:
    labs = io.StringIO(HEADER + "P1,2020-01-02,PLT,250,10^9/L,,\n")
    table = lemlabs.schedule(labs, PATIENTS, as_of="2020-06-01")
    (row,) = table[table["test_group"] == "liver"].to_dict("records")
    assert row["status"] == "overdue" and row["missed_intervals"] >= 3
    labs = io.StringIO(HEADER + "P1,2020-05-20,AST,25,U/L,,\n")  # an AST satisfies it
    table = lemlabs.schedule(labs, PATIENTS, as_of="2020-06-01")
    (row,) = table[table["test_group"] == "liver"].to_dict("records")
    assert row["status"] == "ok" and row["missed_intervals"] == 0


# --- scaling a patient's enzymes and their ULN together changes no finding (µkat/L is U/L ÷ 60)
panel = st.tuples(
    st.sampled_from(["ALT", "AST", "ALP"]),
    st.floats(1, 3000, allow_nan=False),
    st.floats(20, 150, allow_nan=False),
    st.integers(0, 60),
)


@given(
    enzymes=st.lists(panel, min_size=1, max_size=6),
    bilirubin=st.lists(st.tuples(st.floats(2, 200), st.integers(0, 60)), max_size=3),
    factor=st.sampled_from([1 / 60, 0.5, 3.0]),  # within the plausible bounds
)
def test_scaling_enzymes_with_their_uln_changes_no_finding(
    enzymes: list[tuple[str, float, float, int]],
    bilirubin: list[tuple[float, int]],
    factor: float,
) -> None:
    def rows(scale: float) -> list[tuple[str, str, str, str, str]]:
        date = pd.Timestamp("2020-03-01")
        out = [
            (
                (date + pd.Timedelta(days=d)).date().isoformat(),
                test,
                repr(value * scale),
                "U/L",
                repr(uln * scale),
            )
            for test, value, uln, d in enzymes
        ]
        out += [
            ((date + pd.Timedelta(days=d)).date().isoformat(), "BILI", repr(v), "umol/L", "21")
            for v, d in bilirubin
        ]
        return out

    def essence(report: lemlabs.Report) -> list[tuple[object, ...]]:
        return sorted(
            (f.code, str(f.severity), f.ctcae_grade or 0, f.date, f.results_in_episode)
            for f in report.finding_list
        )

    assert essence(score(rows(1.0))) == essence(score(rows(factor)))
