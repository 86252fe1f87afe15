"""The blood count and clotting patterns that join results within days (domain.md: "Blood
count", "TTP, not ITP", "Acquired haemophilia A", "HLH"): one table per code, a row at every
cut-off and window edge (at, just inside, just outside), near misses silent.

Each row: the results as ``(day, test, value, unit)`` → the expected codes with severities. Days
count from the first course; results lie months after it (no infusion-window note)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pytest
from rules_helpers import findings, labs, patients

import lemlabs

D = 200  # the day of the anchor result, well after the course
Row = tuple[int, str, str, str]


def codes(rows: Iterable[Row], sex: str = "F") -> set[tuple[str, str]]:
    return {(f.code, str(f.severity)) for f in findings(rows, sex)}


def _of(found: set[tuple[str, str]], prefix: str) -> set[tuple[str, str]]:
    return {item for item in found if item[0].startswith(prefix)}


# --- Haemolysis: Hb < LLN, LDH > ULN, haptoglobin < LLN within 7 days, platelets not low ------
HAEMOLYSIS = [
    # (LDH, its day, haptoglobin, its day, platelets) → haemolysis?
    ("251", D, "0.29", D, "250", True),
    ("250", D, "0.29", D, "250", False),  # LDH at its ULN: not above
    ("251", D, "0.3", D, "250", False),  # haptoglobin at its LLN: not below
    ("251", D + 7, "0.29", D - 7, "250", True),  # both markers 7 days away: inside
    ("251", D + 8, "0.29", D, "250", False),  # LDH 8 days away: outside
    ("251", D, "0.29", D - 8, "250", False),  # haptoglobin 8 days away: outside
    ("251", D, "0.29", D, "149", False),  # platelets low: the TTP pattern instead
    ("251", D, "<0.1", D, "250", True),  # "<0.1" is below 0.3 for certain
]


@pytest.mark.parametrize(("ldh", "ldh_day", "hapto", "hapto_day", "plt", "expected"), HAEMOLYSIS)
def test_haemolysis(
    ldh: str, ldh_day: int, hapto: str, hapto_day: int, plt: str, expected: bool
) -> None:
    rows = [
        (D, "HGB", "105", "g/L"),
        (ldh_day, "LDH", ldh, "U/L"),
        (hapto_day, "HAPTOG", hapto, "g/L"),
        (D, "PLAT", plt, "10^9/L"),
    ]
    found = codes(rows)
    assert (("cytopenia.haemolysis", "action") in found) is expected
    assert ("cytopenia.anaemia", "watch") in found  # the low haemoglobin on its own


def test_haemolysis_needs_a_low_haemoglobin_and_reads_haptoglobin_in_mg_dl() -> None:
    markers = [(D, "LDH", "400", "U/L"), (D, "HAPTOG", "29", "mg/dL")]
    assert _of(codes([(D, "HGB", "120", "g/L"), *markers]), "cytopenia.haemolysis") == set()
    low = codes([(D, "HGB", "11.9", "g/dL"), *markers])
    assert ("cytopenia.haemolysis", "action") in low


# --- TTP, not ITP: platelets < LLN, LDH > ULN, haptoglobin or Hb < LLN within 7 days -----------
TTP = [
    # (platelets, LDH, haptoglobin, haemoglobin, marker day) → TTP severity (None: no pattern)
    ("99.9", "300", "0.2", "130", D, "urgent"),
    ("100", "300", "0.2", "130", D, "action"),  # platelets 100: action
    ("149", "300", "0.2", "130", D, "action"),
    ("150", "300", "0.2", "130", D, None),  # platelets at the LLN: not low
    ("40", "250", "0.2", "130", D, None),  # LDH at its ULN
    ("40", "300", "0.3", "120", D, None),  # neither haptoglobin nor haemoglobin below its LLN
    ("40", "300", "0.3", "119", D, "urgent"),  # haemoglobin below its LLN (F: 120)
    ("40", "300", "0.2", "130", D + 7, "urgent"),  # markers 7 days later
    ("40", "300", "0.2", "130", D + 8, None),  # 8 days later
    ("40", "300", "0.2", "130", D - 8, None),  # 8 days before
]


@pytest.mark.parametrize(("plt", "ldh", "hapto", "hb", "marker_day", "expected"), TTP)
def test_ttp_pattern(
    plt: str, ldh: str, hapto: str, hb: str, marker_day: int, expected: str | None
) -> None:
    rows = [
        (D, "PLAT", plt, "10^9/L"),
        (marker_day, "LDH", ldh, "U/L"),
        (marker_day, "HAPTOG", hapto, "g/L"),
        (marker_day, "HGB", hb, "g/L"),
    ]
    found = _of(codes(rows), "ttp.")
    assert found == ({("ttp.pattern", expected)} if expected else set())


def test_ttp_and_itp_side_by_side_the_itp_finding_points_to_the_pattern() -> None:
    """The ITP finding keeps its severity and carries a note pointing to the TTP pattern; a
    platelet count without haemolysis markers has no such note."""
    rows = [(D, "PLAT", "40", "10^9/L"), (D, "LDH", "900", "U/L"), (D + 1, "HAPTOG", "<0.1", "g/L")]
    found = {f.code: f for f in findings(rows)}
    assert str(found["ttp.pattern"].severity) == "urgent"
    itp = found["itp.suspected"]
    assert str(itp.severity) == "urgent" and itp.ctcae_grade == 3
    assert any("TTP pattern" in note for note in itp.notes)
    assert {e.analyte for e in found["ttp.pattern"].evidence} == {"platelets", "ldh", "haptoglobin"}
    alone = {f.code: f for f in findings([(D, "PLAT", "40", "10^9/L")])}
    assert set(alone) == {"itp.suspected"}
    assert not any("TTP" in note for note in alone["itp.suspected"].notes)


def test_the_worklist_leads_with_the_ttp_pattern_above_the_itp_finding_it_explains() -> None:
    """The ITP episode began a month earlier (the earlier onset led the row before the TTP pack);
    both are urgent: the patient's worklist row names the TTP pattern."""
    rows = [
        (D - 30, "PLAT", "45", "10^9/L"),
        (D, "PLAT", "30", "10^9/L"),
        (D, "LDH", "900", "U/L"),
        (D, "HAPTOG", "<0.1", "g/L"),
    ]
    report = lemlabs.score_frame(labs(rows), patients())
    assert {f.code for f in report.finding_list} >= {"itp.suspected", "ttp.pattern"}
    pytest.importorskip("matplotlib")  # the report's extra
    from lemlabs.formats.report import context

    (patient,) = context(report)["patients"]
    assert patient["worst"]["code"] == "ttp.pattern"
    assert [f["code"] for f in patient["findings"]][:2] == ["ttp.pattern", "itp.suspected"]


# --- Acquired haemophilia A: aPTT > ULN with the same day's PT and INR within their intervals ---
APTT = [
    # (aPTT s, PT s, INR, day of PT/INR) → severity (None: no finding)
    ("37", "12", "1.0", D, None),  # at the ULN (37 s)
    ("37.1", "12", "1.0", D, "action"),
    ("55.4", "12", "1.0", D, "action"),  # just below 1.5 × 37 = 55.5
    ("55.5", "12", "1.0", D, "urgent"),  # 1.5 × ULN exactly: urgent (≥)
    ("60", "14.1", "1.0", D, None),  # PT above its interval: not isolated
    ("60", "14", "1.21", D, None),  # INR above its interval: not isolated
    ("60", "14", "1.2", D, "urgent"),  # PT and INR at their ULN: within
    ("60", "15", "1.3", D + 1, "urgent"),  # raised PT/INR the next day: not the same day
]


@pytest.mark.parametrize(("aptt", "pt", "inr", "pt_day", "expected"), APTT)
def test_isolated_aptt(aptt: str, pt: str, inr: str, pt_day: int, expected: str | None) -> None:
    rows = [(D, "APTT", aptt, "s"), (pt_day, "PT", pt, "s"), (pt_day, "INR", inr, "")]
    found = [f for f in findings(rows) if f.code == "haemophilia.isolated_aptt"]
    assert [str(f.severity) for f in found] == ([expected] if expected else [])
    if expected:
        same_day = pt_day == D
        note = "PT not measured: an isolated prolongation is not confirmed"
        assert (note in found[0].notes) is not same_day


def test_isolated_aptt_without_pt_or_inr_says_so_and_the_labs_interval_wins() -> None:
    (alone,) = findings([(D, "APTT", "40", "sec")])
    assert alone.code == "haemophilia.isolated_aptt" and str(alone.severity) == "action"
    assert "PT not measured: an isolated prolongation is not confirmed" in alone.notes
    frame = labs([(D, "APTT", "40", "s")]).assign(ref_low="28", ref_high="42")
    assert not lemlabs.score_frame(frame, patients()).finding_list


def test_an_inr_alone_with_a_pt_of_the_same_day_only_one_sent() -> None:
    """Whichever of PT and INR the lab sent decides: an INR within its interval makes the aPTT
    isolated, a raised one does not."""
    assert ("haemophilia.isolated_aptt", "urgent") in codes(
        [(D, "APTT", "60", "s"), (D, "INR", "1.1", "ratio")]
    )
    assert _of(codes([(D, "APTT", "60", "s"), (D, "INR", "1.4", "")]), "haemophilia") == set()


# --- HLH: ferritin ≥ 500 with two of Hb < 90, platelets < 100, neutrophils < 1.0 within 7 days --
HLH = [
    # (ferritin, Hb g/L, platelets, neutrophils, day of the counts) → hlh.screen?
    ("500", "89.9", "99.9", "2.0", D, True),
    ("499.9", "89.9", "99.9", "2.0", D, False),  # ferritin just below 500
    ("500", "90", "99.9", "2.0", D, False),  # Hb at 90: not below
    ("500", "89.9", "100", "2.0", D, False),  # platelets at 100: not below
    ("500", "130", "99.9", "0.99", D, True),  # platelets and neutrophils
    ("500", "130", "99.9", "1.0", D, False),  # neutrophils at 1.0: not below
    ("500", "89.9", "99.9", "2.0", D + 7, True),  # counts 7 days later
    ("500", "89.9", "99.9", "2.0", D + 8, False),  # 8 days later
    ("500", "89.9", "99.9", "2.0", D - 8, False),  # 8 days before
]


@pytest.mark.parametrize(("ferritin", "hb", "plt", "neut", "count_day", "expected"), HLH)
def test_hlh_screen(
    ferritin: str, hb: str, plt: str, neut: str, count_day: int, expected: bool
) -> None:
    rows = [
        (D, "FERRITIN", ferritin, "ug/L"),
        (count_day, "HGB", hb, "g/L"),
        (count_day, "PLAT", plt, "10^9/L"),
        (count_day, "NEUT", neut, "10^9/L"),
    ]
    found = codes(rows)
    assert (("hlh.screen", "urgent") in found) is expected
    if expected:  # "unless HLH applies": no pancytopenia finding beside it
        assert _of(found, "cytopenia.multilineage") == set()


def test_hlh_names_the_supportive_results_and_ferritin_alone_is_no_finding() -> None:
    rows = [
        (D, "FERRITIN", "12000", "ng/mL"),
        (D, "HGB", "8.5", "g/dL"),
        (D, "PLAT", "60", "10^9/L"),
        (D + 2, "TRIG", "266", "mg/dL"),  # 3.003 mmol/L
        (D + 2, "FIBRINO", "150", "mg/dL"),  # 1.5 g/L
    ]
    (hlh,) = [f for f in findings(rows) if f.code == "hlh.screen"]
    text = " ".join(hlh.notes)
    assert "triglycerides 3.003 mmol/L" in text and "fibrinogen 1.5 g/L" in text
    assert "ferritin 12000 µg/L" in text
    assert findings([(D, "FERRITIN", "25000", "ug/L")]) == []
    lower = [(D, "FERRITIN", "9999", "ug/L"), (D, "HGB", "85", "g/L"), (D, "PLAT", "60", "10^9/L"),
             (D, "TRIG", "2.99", "mmol/L"), (D, "FIBRINO", "1.51", "g/L")]  # fmt: skip
    (quiet,) = [f for f in findings(lower) if f.code == "hlh.screen"]
    assert quiet.notes == ()


# --- Two or three lineages low within 7 days: Hb < 100, neutrophils < 1.0, platelets < 100 -----
MULTILINEAGE = [
    # (Hb g/L, neutrophils, platelets, day of the second and third count) → multilineage?
    ("99.9", "0.99", "200", D, True),
    ("100", "0.99", "200", D, False),  # Hb at 100: not low
    ("99.9", "1.0", "200", D, False),  # neutrophils at 1.0: not low
    ("130", "0.99", "99.9", D, True),
    ("130", "0.99", "100", D, False),  # platelets at 100: not low
    ("99.9", "0.99", "99.9", D + 7, True),  # 7 days apart
    ("99.9", "0.99", "200", D + 8, False),  # 8 days apart
]


@pytest.mark.parametrize(("hb", "neut", "plt", "later", "expected"), MULTILINEAGE)
def test_multilineage(hb: str, neut: str, plt: str, later: int, expected: bool) -> None:
    rows = [(D, "HGB", hb, "g/L"), (later, "NEUT", neut, "10^9/L"), (later, "PLAT", plt, "10^9/L")]
    found = codes(rows, sex="M")
    assert (("cytopenia.multilineage", "action") in found) is expected


def test_three_lineages_say_so() -> None:
    rows = [(D, "HGB", "85", "g/L"), (D, "NEUT", "0.8", "10^9/L"), (D, "PLAT", "60", "10^9/L")]
    (found,) = [f for f in findings(rows) if f.code == "cytopenia.multilineage"]
    assert any("all three lineages" in note for note in found.notes)


# --- Bad input: each a data issue or not scored with its reason, nothing dropped --------------
@pytest.mark.parametrize(
    ("test", "value", "unit", "status", "reason"),
    [
        ("APTT", "1.3", "ratio", "not_scored", "aPTT ratio"),
        ("NEUT", "45", "%", "not_scored", "no white cell count of the same sample"),
        ("LYM", "20", "%", "not_scored", "no white cell count of the same sample"),
        ("HGB", "130", "10^9/L", "issue", "wrong dimension"),
        ("FERRITIN", "0", "ug/L", "issue", "implausible"),
        ("APTT", "40", "", "issue", "unit is empty"),
    ],
)
def test_bad_blood_and_clotting_input(
    test: str, value: str, unit: str, status: str, reason: str
) -> None:
    report = lemlabs.score_frame(labs([(D, test, value, unit)]), patients())
    assert not report.finding_list
    assert report.summary["rows_in"] == 1
    if status == "issue":
        assert len(report.issues) == 1 and reason in report.issues["reason"].iloc[0]
    else:
        assert report.issues.empty
        skipped = report.summary["not_scored_by_test"][test]
        assert skipped["rows"] == 1 and reason in " ".join(skipped["reasons"])


def test_inr_reads_an_empty_unit_and_its_spellings() -> None:
    for unit in ("", "ratio", "INR", "{INR}"):
        report = lemlabs.score_frame(labs([(D, "INR", "1.1", unit)]), patients())
        assert report.issues.empty and report.results["value"].iloc[0] == pytest.approx(1.1)


def test_a_percentage_converts_with_the_same_samples_white_count() -> None:
    """20 % of 4.0 ×10⁹/L white cells is 0.8 ×10⁹/L neutrophils (action); the lab's interval in
    % is not a count's interval (the default applies, and the result says so); a white count
    of another time, or none, leaves the percentage not scored; above 100 % is a data issue."""
    frame = pd.DataFrame(
        [
            ("A", "2021-03-01T08:00", "WBC", "4.0", "10^9/L", "", ""),
            ("A", "2021-03-01T08:00", "NEUT", "20", "%", "40", "75"),
            ("B", "2021-03-01T08:00", "WBC", "4.0", "10^9/L", "", ""),
            ("B", "2021-03-01T09:30", "NEUT", "20", "%", "", ""),
            ("C", "2021-03-01", "WBC", "3.0", "K/uL", "", ""),
            ("C", "2021-03-01", "LYM", "<5", "%", "", ""),
            ("D", "2021-03-01", "WBC", "5", "10^9/L", "", ""),
            ("D", "2021-03-01", "NEUT", "120", "%", "", ""),
        ],
        columns=["patient_id", "collected_at", "test", "value", "unit", "ref_low", "ref_high"],
    )
    report = lemlabs.score_frame(frame)
    results = report.results.set_index(["patient_id", "raw_unit"])
    a = results.loc[("A", "%")]
    assert a["status"] == "scored" and a["value"] == pytest.approx(0.8) and a["ref_low"] == 1.8
    assert "percentage" in a["ref_note"]
    assert results.loc[("B", "%"), "status"] == "not_scored"
    c = results.loc[("C", "%")]
    assert c["censor"] == "<" and c["value"] == pytest.approx(0.15)
    assert list(report.issues["patient_id"]) == ["D"]
    assert "above 100" in report.issues["reason"].iloc[0]
    found = {(f.patient_id, f.code, str(f.severity)) for f in report.finding_list}
    assert found == {("A", "cytopenia.neutropenia", "action")}  # lymphocytes: never a finding


def test_the_exports_carry_the_new_conditions(tmp_path: Path) -> None:
    """A TTP pattern, an isolated aPTT and an HLH screen reach the Excel workbook, the FHIR
    bundle and the ADLB (INR without a unit), as every other condition does."""
    pytest.importorskip("openpyxl")
    pytest.importorskip("fhir.resources")
    from lemlabs.formats.fhir import findings_bundle

    rows = [
        (D, "PLAT", "40", "10^9/L"), (D, "LDH", "900", "U/L"), (D, "HAPTOG", "<0.1", "g/L"),
        (D + 30, "APTT", "70", "s"), (D + 30, "INR", "1.0", ""),
        (D + 60, "FERRITIN", "3000", "ug/L"), (D + 60, "HGB", "85", "g/L"),
        (D + 60, "NEUT", "0.4", "10^9/L"),
    ]  # fmt: skip
    report = lemlabs.score_frame(labs(rows), patients())
    codes = {"ttp.pattern", "haemophilia.isolated_aptt", "hlh.screen"}
    assert codes <= {f.code for f in report.finding_list}
    path = tmp_path / "findings.xlsx"
    report.to_excel(path)
    sheet = pd.read_excel(path, sheet_name="Findings")
    assert codes <= set(sheet["code"])
    bundle = findings_bundle(report.finding_list, report.packs).model_dump_json()
    assert all(code in bundle for code in codes)
    adlb = report.to_adlb().set_index("PARAMCD")
    assert adlb.loc["INR", "PARAM"] == "INR" and adlb.loc["INR", "AVALU"] == ""
    assert adlb.loc["APTT", "ATOXGRH"] == "2"  # 70 s > 1.5 × 37 s
