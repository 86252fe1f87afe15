"""Trial data (issue 13): SDTM LB/DM/EX in, CTCAE v4/v5/v6 grades per result, ADLB and shift
tables out, delimiter sniffing, unscored tests named.

The grade tables follow admiral's test tables (pharmaverse/admiral,
tests/testthat/test-derive_var_atoxgr.R, commit 6eb5125: "exp_creatn", "exp_plate_si",
Tests 25, 26a, 26b, 45a-c, 46a-f), an independent reference: a row at every cut-off, in SI and
US units. Where lemlabs differs from admiral, the row says why (README, "Trial data").
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lemlabs
from lemlabs.ctcae import criteria, version_of
from lemlabs.formats.adlb import (
    ADLB_COLUMNS,
    ADLB_LABEL,
    ADLB_SPEC,
    signed_grade,
    significant_digits,
    write_adlb,
)
from lemlabs.formats.files import read_text_table

DATA = Path(__file__).parents[1] / "data" / "sdtm"
MG_DL = 88.4  # µmol/L per mg/dL of creatinine (113.12 g/mol), as lemlabs converts


def _grade(version: str, analyte: str, rows: list[tuple[float, str, float, float]]) -> int | None:
    """The grade of the last of ``rows`` (value, unit, ref_low, ref_high) of one patient, the
    first row being the baseline (first on record)."""
    test = {"platelets": "PLT", "creatinine": "Creatinine"}[analyte]
    labs = pd.DataFrame(
        [
            {
                "patient_id": "P1",
                "collected_at": f"2021-{i + 1:02d}-01",
                "test": test,
                "value": repr(value),
                "unit": unit,
                "ref_low": repr(low),
                "ref_high": repr(high),
            }
            for i, (value, unit, low, high) in enumerate(rows)
        ]
    )
    results = lemlabs.score_frame(labs, ctcae=version).results
    assert (results["status"] == "scored").all(), results["status_reason"].tolist()
    column = "ctcae_grade_low" if analyte == "platelets" else "ctcae_grade_high"
    grade = results[column].iloc[-1]
    return None if pd.isna(grade) else int(grade)


# admiral exp_plate_si (ANRLO 100) with lemlabs' grades; v6 moves grade 4 to < 10
PLATELETS = [(24, 4), (25, 3), (49, 3), (50, 2), (74, 2), (75, 1), (99, 1), (100, 0)]
PLATELETS_V6 = [(9, 4), (10, 3), (24, 3), (49, 3), (50, 2), (74, 2), (75, 1), (99, 1), (100, 0)]


@pytest.mark.parametrize("version", ["v4", "v5"])
@pytest.mark.parametrize(("count", "expected"), PLATELETS)
@pytest.mark.parametrize(("unit", "factor"), [("10^9/L", 1.0), ("/uL", 1000.0), ("K/uL", 1.0)])
def test_platelet_grades_v4_v5(
    version: str, count: float, expected: int, unit: str, factor: float
) -> None:
    assert _grade(version, "platelets", [(count * factor, unit, 100 * factor, 400 * factor)]) == (
        expected
    )


@pytest.mark.parametrize(("count", "expected"), PLATELETS_V6)
@pytest.mark.parametrize(("unit", "factor"), [("10^9/L", 1.0), ("/uL", 1000.0)])
def test_thrombocytopenia_grades_v6(count: float, expected: int, unit: str, factor: float) -> None:
    assert _grade("v6", "platelets", [(count * factor, unit, 100 * factor, 400 * factor)]) == (
        expected
    )


# admiral exp_creatn: (AVAL, BASE, ANRHI, v4 grade, v5 grade), µmol/L; ANRLO 10 (not used by
# v4/v5). Rows 15-17 are v4's grade 1 baseline arm (admiral: V5 = "N").
CREATININE = [
    (241, 241, 40, 4, 4),
    (240, 230, 40, 3, 3),
    (121, 120, 40, 3, 3),
    (120, 119, 40, 2, 2),
    (61, 60, 40, 2, 2),
    (60, 60, 40, 1, 1),
    (41, 41, 40, 1, 1),
    (40, 40, 40, 0, 0),
    (42, 6, 40, 3, 3),
    (42, 13.9, 40, 3, 3),
    (42, 14, 40, 2, 2),
    (42.1, 28, 40, 2, 2),
    (42, 28, 42, 1, 0),
    (42, 41, 42, 1, 0),
    (42, 42, 42, 0, 0),
]


@pytest.mark.parametrize(("value", "base", "uln", "v4", "v5"), CREATININE)
@pytest.mark.parametrize(("unit", "factor"), [("umol/L", 1.0), ("mg/dL", 1 / MG_DL)])
def test_creatinine_grades_v4_v5(
    value: float, base: float, uln: float, v4: int, v5: int, unit: str, factor: float
) -> None:
    rows = [
        (base * factor, unit, 5 * factor, uln * factor),
        (value * factor, unit, 5 * factor, uln * factor),
    ]
    assert _grade("v4", "creatinine", rows) == v4
    assert _grade("v5", "creatinine", rows) == v5


# v6: the baseline arms of grades 2 and 3 only when the baseline is below the LLN. admiral's
# Test 26b rows 3-10 (BNRIND NORMAL) and 11-14 (LOW); "below the LLN" is the baseline record's
# own flag (L, as BNRIND = LOW), so the LOW rows give the baseline record LLN 45 > 40.
# (value, baseline, LLN, ULN, v5, v6)
CREATININE_V6 = [
    (241, 40, 10, 40, 4, 4),
    (240, 40, 10, 40, 3, 3),
    (121, 40, 10, 40, 3, 3),
    (120, 40, 10, 40, 2, 2),
    (61, 40, 10, 40, 2, 2),
    (60, 40, 10, 40, 1, 1),
    (61, 40, 10, 50, 2, 1),  # v5: 61 > 1.5 x baseline 40; v6: baseline not below the LLN
    (41, 40, 10, 40, 1, 1),
    (40, 40, 10, 40, 0, 0),
    (121, 40, 45, 100, 3, 3),  # baseline below the LLN: > 3.0 x baseline
    (120, 40, 45, 100, 2, 2),
    (61, 40, 45, 100, 2, 2),
    (60, 40, 45, 100, 0, 0),
    (160, 50, 45, 100, 3, 2),  # baseline normal: v6 grades by the ULN only
]


@pytest.mark.parametrize(("value", "base", "lln", "uln", "v5", "v6"), CREATININE_V6)
@pytest.mark.parametrize(("unit", "factor"), [("umol/L", 1.0), ("mg/dL", 1 / MG_DL)])
def test_creatinine_grades_v6_baseline_below_lln(
    value: float, base: float, lln: float, uln: float, v5: int, v6: int, unit: str, factor: float
) -> None:
    rows = [(base * factor, unit, lln * factor, uln * factor)]
    rows.append((value * factor, unit, lln * factor, uln * factor))
    assert _grade("v5", "creatinine", rows) == v5
    assert _grade("v6", "creatinine", rows) == v6


@pytest.mark.parametrize(
    ("base_lln", "value_lln", "v6"),
    [
        (45, 10, 2),  # the baseline record below its own LLN: the baseline arm (61 > 1.5 × 40)
        (10, 45, 1),  # below the later result's LLN only: not the baseline arm (61 ≤ 1.5 × ULN)
    ],
)
def test_v6_creatinine_reads_the_baseline_records_own_lln(
    base_lln: float, value_lln: float, v6: int
) -> None:
    rows = [(40.0, "umol/L", float(base_lln), 50.0), (61.0, "umol/L", float(value_lln), 50.0)]
    assert _grade("v6", "creatinine", rows) == v6


def test_lab_units_avoid_the_rounding_of_standardised_limits() -> None:
    """1.6 mg/dL at ULN 1.6 is not above the ULN. admiral, given SDTM's standardised result
    141.44 µmol/L against a limit standardised and rounded to 141, grades it 1."""
    rows = [(1.6, "mg/dL", 0.5, 1.6), (1.6, "mg/dL", 0.5, 1.6)]
    assert _grade("v5", "creatinine", rows) == 0


@pytest.mark.parametrize(
    ("version", "expected"),
    [("v4", [1, 2, 2, 2]), ("v5", [1, 2, 2, 3]), ("v6", [None, None, None, None])],
)
def test_dipstick_proteinuria_grades_by_version(version: str, expected: list[int | None]) -> None:
    """v4.03 has no dipstick arm at grade 3 (3+ and 4+ take grade 2); v5.0 grades 4+ as 3;
    v6.0 is not graded until its text is checked (domain.md, "CTCAE versions")."""
    labs = pd.DataFrame(
        [("P1", f"2021-0{i + 1}-01", "Urine protein", grade, "") for i, grade in
         enumerate(["1+", "2+", "3+", "4+"])],
        columns=["patient_id", "collected_at", "test", "value", "unit"],
    )  # fmt: skip
    grades = lemlabs.score_frame(labs, ctcae=version).results["ctcae_grade_high"]
    assert [None if pd.isna(g) else int(g) for g in grades] == expected


def test_criteria_tables_hold_the_ctcae_text_beside_the_machine_form() -> None:
    for version in ("v4", "v5", "v6"):
        table = criteria(version).table()
        assert "Creatinine increased" in set(table["term"])
        assert ("Proteinuria" in set(table["term"])) == (version != "v6")  # v6 text not checked
        assert table["criterion"].str.len().min() > 0
        assert table["when"].str.len().min() > 0
    assert "Thrombocytopenia" in set(criteria("v6").table()["term"])
    assert version_of("v4") == "4.03" and version_of("6") == "6.0"
    with pytest.raises(lemlabs.LemlabsError, match="unknown CTCAE version"):
        lemlabs.score_frame(pd.DataFrame(columns=["patient_id"]), ctcae="v3")


def test_findings_take_the_grade_of_the_chosen_version() -> None:
    labs = pd.DataFrame(
        {
            "patient_id": ["P1"],
            "collected_at": ["2021-01-01"],
            "test": ["PLT"],
            "value": ["20"],
            "unit": ["10^9/L"],
        }
    )
    for version, grade in (("v4", 4), ("v5", 4), ("v6", 3)):
        report = lemlabs.score_frame(labs, ctcae=version)
        assert report.findings["ctcae_grade"].tolist() == [grade]
        assert report.results["ctcae_grade_low"].tolist() == [grade]
        assert version_of(version) in report.findings["source"].iloc[0]


# --- SDTM in ------------------------------------------------------------------------------


def _sdtm() -> tuple[pd.DataFrame, pd.DataFrame]:
    return lemlabs.read_sdtm(DATA / "lb.csv", DATA / "dm.csv", DATA / "ex.csv")


def test_sdtm_codes_and_specimens() -> None:
    labs, patients = _sdtm()
    results = lemlabs.score_frame(labs, patients).results
    got = {
        (test, spec): analyte or status
        for test, spec, analyte, status in zip(
            results["test"], results["specimen"], results["analyte"], results["status"], strict=True
        )
    }
    assert got == {
        ("PLAT", "BLOOD"): "platelets",
        ("CREAT", "SERUM"): "creatinine",
        ("CREAT", "URINE"): "not_scored",  # urine creatinine is never serum creatinine
        ("TSH", "SERUM"): "tsh",
        ("T4FR", "SERUM"): "free_t4",
        ("OCCBLD", "URINE"): "urine_blood",
        ("RBC", "URINE"): "urine_rbc",
        ("RBC", "BLOOD"): "not_scored",  # the red cell count, not urinalysis
        ("PROT", "URINE"): "urine_protein",
        ("PROT", "SERUM"): "not_scored",  # total protein, not urinalysis
        ("PROT", ""): "not_scored",  # no specimen: cannot tell
        ("PROTCRT", "URINE"): "upcr",
        ("ALBCREAT", "URINE"): "uacr",
        ("PLAT1", "BLOOD"): "not_scored",
        ("SODIUM", "SERUM"): "not_scored",
    }
    people = patients.set_index("patient_id")
    assert people.loc["LEM-301-001", "sex"] == "F"
    assert [d.date().isoformat() for d in people.loc["LEM-301-001", "courses"]] == [
        "2020-01-06",
        "2021-01-11",
    ]  # five and three infusion days, methylprednisolone not a course
    assert people.loc["LEM-301-002", "birth_date"] == pd.Timestamp("1979-11-30")


def test_sdtm_platelets_are_scored_not_skipped() -> None:
    report = lemlabs.score_frame(*_sdtm())
    itp = report.findings[report.findings["code"] == "itp.suspected"]
    assert itp["patient_id"].tolist() == ["LEM-301-001"]  # 92 x10^9/L with LLN 130


def test_read_labs_recognises_an_sdtm_table_by_its_columns() -> None:
    labs = lemlabs.read_labs(DATA / "lb.csv")
    assert labs["test"].iloc[0] == "PLAT" and labs["patient_id"].iloc[0] == "LEM-301-001"


def test_sdtm_round_trip_through_xpt(tmp_path: Path) -> None:
    pyreadstat = pytest.importorskip("pyreadstat")
    paths = {}
    for name in ("lb", "dm", "ex"):
        frame = pd.read_csv(DATA / f"{name}.csv", dtype=str, keep_default_na=False)
        paths[name] = tmp_path / f"{name}.xpt"
        pyreadstat.write_xport(
            frame, str(paths[name]), table_name=name.upper(), file_format_version=5
        )
    from_xpt = lemlabs.score_frame(*lemlabs.read_sdtm(paths["lb"], paths["dm"], paths["ex"]))
    from_csv = lemlabs.score_frame(*_sdtm())
    columns = ["patient_id", "code", "severity", "ctcae_grade", "date"]
    pd.testing.assert_frame_equal(from_xpt.findings[columns], from_csv.findings[columns])
    assert from_xpt.summary["not_scored_by_test"] == from_csv.summary["not_scored_by_test"]


def test_unscored_tests_are_named_and_near_misses_come_first() -> None:
    counted = lemlabs.score_frame(*_sdtm()).summary["not_scored_by_test"]
    names = list(counted)
    assert names[-1] == "SODIUM" and counted["SODIUM"]["looks_like"] == ""
    assert counted["PLAT1"]["looks_like"] == "platelet count"
    assert counted["CREAT"]["looks_like"] == "serum creatinine"
    assert counted["PROT"]["rows"] == 2 and counted["PROT"]["names"] == ["Protein"]
    assert set(names[:-1]) == {"PROT", "CREAT", "PLAT1", "RBC"}


# --- ADLB out -----------------------------------------------------------------------------


def test_the_adlb_specification_is_complete_and_fits_sas_transport() -> None:
    names = [variable.name for variable in ADLB_SPEC]
    assert len(set(names)) == len(names) == len(ADLB_COLUMNS)
    for variable in ADLB_SPEC:
        assert variable.name.isupper() and len(variable.name) <= 8, variable
        assert 0 < len(variable.label) <= 40, variable
        assert variable.type in {"text", "integer", "number", "date"}, variable
        assert variable.derivation.strip(), variable


def test_adlb_columns_and_types() -> None:
    adlb = lemlabs.score_frame(*_sdtm()).to_adlb()
    assert list(adlb.columns) == [variable.name for variable in ADLB_SPEC]
    assert {c: str(t) for c, t in adlb.dtypes.items()} == ADLB_COLUMNS
    plat = adlb[adlb["PARAMCD"] == "PLAT"].reset_index(drop=True)
    assert plat["ABLFL"].tolist() == ["Y", ""]
    assert plat["ATOXGRL"].tolist() == ["0", "1"] and plat["BTOXGRL"].tolist() == ["0", "0"]
    assert plat["ATOXDSCL"].iloc[1] == "Platelet count decreased"
    assert plat["SHIFT1"].tolist() == ["", "NORMAL to LOW"]
    assert plat["CHG"].iloc[1] == -158 and plat["ADY"].tolist() == [-4, 254]


def test_adlb_carries_the_study_the_lb_sequence_and_the_visit_and_numbers_records() -> None:
    lb = pd.read_csv(DATA / "lb.csv", dtype=str)
    lb["VISIT"] = np.where(lb["LBDTC"] < "2020-02-01", "BASELINE", "MONTH 8")
    lb["VISITNUM"] = np.where(lb["VISIT"] == "BASELINE", "1", "9")
    labs, patients = lemlabs.read_sdtm(lb, DATA / "dm.csv", DATA / "ex.csv")
    adlb = lemlabs.score_frame(labs, patients).to_adlb()
    source = lb.assign(LBSEQ=lb["LBSEQ"].astype(int)).set_index(["USUBJID", "LBSEQ"])
    assert (adlb["STUDYID"] == "LEM-301").all() and (adlb["SRCDOM"] == "LB").all()
    assert adlb["LBSEQ"].equals(adlb["SRCSEQ"])
    for row in adlb.itertuples():
        lb_row = source.loc[(row.USUBJID, row.SRCSEQ)]
        assert (lb_row["VISIT"], float(lb_row["VISITNUM"])) == (row.AVISIT, row.AVISITN)
        assert pd.Timestamp(lb_row["LBDTC"][:10]) == row.ADT
    for _, records in adlb.groupby("USUBJID"):
        assert records["ASEQ"].tolist() == list(range(1, len(records) + 1))
    numbers = adlb.drop_duplicates("PARAMCD").set_index("PARAMCD")["PARAMN"]
    assert numbers.is_unique and adlb.groupby("PARAMCD")["PARAMN"].nunique().eq(1).all()


STANDARD_LB = [  # USUBJID, LBSEQ, LBTESTCD, LBORRES, LBORRESU, LBORNRLO, LBORNRHI,
    # LBSTRESC, LBSTRESN, LBSTRESU, LBSTNRLO, LBSTNRHI, LBDTC (the CDISC pilot's shape)
    (
        "S1",
        1,
        "CREAT",
        "0.9",
        "mg/dL",
        "0.6",
        "1.2",
        "79.56",
        "79.56",
        "umol/L",
        "53",
        "106",
        "2020-01-02",
    ),
    (
        "S1",
        2,
        "CREAT",
        "1.9",
        "mg/dL",
        "0.6",
        "1.2",
        "167.96",
        "167.96",
        "umol/L",
        "53",
        "106",
        "2020-09-15",
    ),
    (
        "S1",
        3,
        "BILI",
        "<0.2",
        "mg/dL",
        "0.2",
        "1.2",
        "<3.42",
        "",
        "umol/L",
        "3",
        "21",
        "2020-09-15",
    ),
    (
        "S1",
        4,
        "PLAT",
        "250",
        "THOU/uL",
        "130",
        "400",
        "250",
        "250",
        "GI/L",
        "130",
        "400",
        "2020-01-02",
    ),
    (
        "S2",
        1,
        "PLAT",
        "140",
        "THOU/uL",
        "130",
        "400",
        "140",
        "140",
        "GI/L",
        "130",
        "400",
        "2020-03-01",
    ),
    (
        "S2",
        2,
        "PLAT",
        "90",
        "THOU/uL",
        "130",
        "400",
        "90",
        "90",
        "GI/L",
        "130",
        "400",
        "2020-04-01",
    ),
]


def test_adlb_takes_the_standard_result_and_has_no_baseline_after_the_first_course() -> None:
    names = "USUBJID LBSEQ LBTESTCD LBORRES LBORRESU LBORNRLO LBORNRHI LBSTRESC LBSTRESN"
    names += " LBSTRESU LBSTNRLO LBSTNRHI LBDTC"
    lb = pd.DataFrame(STANDARD_LB, columns=names.split()).astype(str)
    ex = pd.DataFrame(
        {"USUBJID": ["S1", "S2"], "EXTRT": ["ALEMTUZUMAB"] * 2, "EXSTDTC": ["2020-01-06"] * 2}
    )
    labs, patients = lemlabs.read_sdtm(lb, None, ex)
    adlb = (
        lemlabs.score_frame(labs, patients, ctcae="v4").to_adlb().set_index(["USUBJID", "SRCSEQ"])
    )
    creat = adlb.loc[[("S1", 1), ("S1", 2)]]
    assert creat["AVAL"].tolist() == [79.56, 167.96]  # LBSTRESN, not lemlabs' 79.5615...
    assert set(creat["AVALU"]) == {"umol/L"} and set(creat["PARAM"]) == {
        "serum creatinine (umol/L)"
    }
    assert creat["ANRLO"].tolist() == [53, 53] and creat["ANRHI"].tolist() == [106, 106]
    assert creat["BASE"].tolist() == [79.56, 79.56] and creat["ABLFL"].tolist() == ["Y", ""]
    assert creat["CHG"].iloc[1] == pytest.approx(88.4)
    assert creat["ATOXGRH"].tolist() == ["0", "2"]  # graded in mg/dL: 1.9 > 1.5 x ULN 1.2
    bili = adlb.loc[("S1", 3)]
    assert np.isnan(bili["AVAL"]) and bili["AVALC"] == "<3.42" and bili["AVALU"] == "umol/L"
    assert adlb.loc[("S1", 4), "AVALU"] == "GI/L" and adlb.loc[("S1", 4), "AVAL"] == 250
    s2 = adlb.loc["S2"]  # every result after the first course: no baseline record
    assert s2["ABLFL"].tolist() == ["", ""] and s2["BASE"].isna().all() and s2["CHG"].isna().all()
    assert s2["BNRIND"].tolist() == ["", ""] and s2["SHIFT1"].tolist() == ["", ""]
    assert s2["ADY"].tolist() == [56, 87]


def test_adlb_flags_on_treatment_records_the_last_per_visit_and_the_worst_grades() -> None:
    # one course from 2020-01-06 (5 infusions): the label's window ends 48 months after
    # 2020-01-10; platelets (lab interval 150-400) before, during and after it
    visits = [
        ("2020-01-02", "SCREEN", "250"),  # baseline
        ("2020-02-05", "M1", "120"),  # grade 1
        ("2020-02-20", "M1", "140"),  # grade 1, later in the same visit
        ("2020-03-05", "M2", "60"),  # grade 2
        ("2020-04-05", "M3", "70"),  # grade 2 again, latest of the worst
        ("2024-01-10", "M48", "200"),  # the window's last day
        ("2024-02-10", "FU", "40"),  # after the window: not on treatment
    ]
    lb = pd.DataFrame(
        {
            "USUBJID": "S1",
            "LBSEQ": [str(n) for n in range(1, len(visits) + 1)],
            "LBTESTCD": "PLAT",
            "LBORRES": [value for _, _, value in visits],
            "LBORRESU": "10^9/L",
            "LBORNRLO": "150",
            "LBORNRHI": "400",
            "LBDTC": [day for day, _, _ in visits],
            "VISIT": [visit for _, visit, _ in visits],
        }
    )
    ex = pd.DataFrame({"USUBJID": ["S1"], "EXTRT": ["ALEMTUZUMAB"], "EXSTDTC": ["2020-01-06"]})
    adlb = lemlabs.score_frame(*lemlabs.read_sdtm(lb, None, ex), ctcae="v5").to_adlb()
    assert adlb["ATOXGRL"].tolist() == ["0", "1", "1", "2", "2", "0", "3"]
    assert adlb["BASETYPE"].eq("LAST").all()
    assert adlb["ONTRTFL"].tolist() == ["", "Y", "Y", "Y", "Y", "Y", ""]
    assert adlb["ANL01FL"].tolist() == ["", "", "Y", "Y", "Y", "Y", ""]
    assert adlb["LVOTFL"].tolist() == ["", "", "", "", "", "Y", ""]
    assert adlb["WGRLOFL"].tolist() == ["", "", "", "", "Y", "", ""]  # grade 3 is after it
    assert adlb["WGRHIFL"].eq("").all()  # platelets have no high-direction term


@pytest.mark.parametrize(
    ("text", "digits"),
    [("0.90", 2), ("250", 3), ("1,9", 2), ("<0.2", 1), ("2.5e2", 2), ("0.020", 2), ("7", 1)],
)
def test_significant_digits_as_the_lab_wrote_them(text: str, digits: int) -> None:
    assert significant_digits(text) == digits


def test_a_converted_aval_keeps_the_significant_digits_of_the_source() -> None:
    rows = [
        ("P1", "2021-01-01", "Creatinine", "1.9", "mg/dL"),  # 167.96 umol/L
        ("P1", "2021-02-01", "Creatinine", "1.25", "mg/dL"),  # 110.50 umol/L
        ("P1", "2021-03-01", "Creatinine", "112", "umol/L"),  # no conversion
        ("P1", "2021-04-01", "Bilirubin", "<0.2", "mg/dL"),  # censored: no AVAL
    ]
    labs = pd.DataFrame(rows, columns=["patient_id", "collected_at", "test", "value", "unit"])
    adlb = lemlabs.score_frame(labs).to_adlb()
    creat = adlb[adlb["PARAMCD"] == "CREAT"]
    assert creat["AVAL"].tolist() == [170.0, 111.0, 112.0]
    bili = adlb[adlb["PARAMCD"] == "BILI"].iloc[0]
    assert np.isnan(bili["AVAL"]) and bili["AVALC"] == "<3" and bili["AVALU"] == "umol/L"


def test_ady_has_no_day_zero_around_the_first_course_day() -> None:
    days = ["2020-01-04", "2020-01-05", "2020-01-06", "2020-01-07", "2021-01-05"]
    rows = [("P1", day, "PLT", "200", "10^9/L") for day in days]
    labs = pd.DataFrame(rows, columns=["patient_id", "collected_at", "test", "value", "unit"])
    patients = pd.DataFrame({"patient_id": ["P1"], "course_dates": ["2020-01-06"]})
    adlb = lemlabs.score_frame(labs, patients).to_adlb()
    assert adlb["ADY"].tolist() == [-2, -1, 1, 2, 366]
    untreated = lemlabs.score_frame(labs).to_adlb()  # no course: no study day
    assert untreated["ADY"].isna().all()


def test_adlb_without_sdtm_columns_leaves_study_source_and_visit_empty() -> None:
    rows = [
        ("P1", "2021-01-01", "PLT", "250", "10^9/L"),
        ("P1", "2021-02-01", "PLT", "90", "10^9/L"),
    ]
    labs = pd.DataFrame(rows, columns=["patient_id", "collected_at", "test", "value", "unit"])
    adlb = lemlabs.score_frame(labs).to_adlb()
    assert adlb[["STUDYID", "SRCDOM", "AVISIT"]].eq("").all().all()
    assert adlb[["LBSEQ", "SRCSEQ", "AVISITN"]].isna().all().all()
    assert adlb["ASEQ"].tolist() == [1, 2] and adlb["ATOXGR"].tolist() == ["0", "-1"]


# admiral's own cases for the signed grade (tests/testthat/test-derive_var_atoxgr.R, Tests 1-4
# of derive_var_atoxgr): low term, high term, ATOXGRL, ATOXGRH -> ATOXGR; "" is R's NA
ADMIRAL_ATOXGR = [
    ("", "", "", "", ""),
    ("Hypophosphatemia", "", "", "", ""),
    ("", "Hyperglycemia", "", "", ""),
    ("Hypoglycemia", "Hyperglycemia", "", "", ""),
    ("Hypoglycemia", "Hyperglycemia", "", "0", ""),  # low ungradable: not normal
    ("Hypoglycemia", "Hyperglycemia", "0", "", ""),  # high ungradable: not normal
    ("Hypoglycemia", "Hyperglycemia", "0", "0", "0"),
    ("", "INR Increased", "", "0", "0"),
    ("Hypophosphatemia", "", "0", "", "0"),
    ("Hypoglycemia", "Hyperglycemia", "", "1", "1"),
    ("Hypoglycemia", "Hyperglycemia", "0", "4", "4"),
    ("", "INR Increased", "", "2", "2"),
    ("Hypoglycemia", "Hyperglycemia", "3", "", "-3"),
    ("Hypoglycemia", "Hyperglycemia", "1", "0", "-1"),
    ("Hypophosphatemia", "", "4", "", "-4"),
]


@pytest.mark.parametrize(("low_term", "high_term", "low", "high", "expected"), ADMIRAL_ATOXGR)
def test_the_signed_grade_follows_admirals_cases(
    low_term: str, high_term: str, low: str, high: str, expected: str
) -> None:
    def one(text: str) -> pd.Series:
        return pd.Series([text], dtype=object)

    signed = signed_grade(one(low), one(high), one(low_term), one(high_term))
    assert signed.tolist() == [expected]


def test_the_adlb_transport_file_reads_back_with_its_labels(tmp_path: Path) -> None:
    import pyreadstat  # the xpt extra, part of the test extra

    adlb = lemlabs.score_frame(*_sdtm()).to_adlb()
    write_adlb(adlb, tmp_path / "adlb.xpt")
    back, meta = pyreadstat.read_xport(str(tmp_path / "adlb.xpt"))
    assert meta.table_name == "ADLB" and meta.file_label == ADLB_LABEL
    assert meta.column_names_to_labels == {v.name: v.label for v in ADLB_SPEC}
    assert list(back.columns) == list(adlb.columns) and len(back) == len(adlb)
    assert back["AVAL"].tolist() == adlb["AVAL"].tolist()
    assert back["ASEQ"].tolist() == adlb["ASEQ"].astype(float).tolist()
    assert back["ATOXGR"].tolist() == adlb["ATOXGR"].tolist()


def test_shift_table_on_a_planted_cohort() -> None:
    planted = {"A": (200, 60), "B": (200, 20), "C": (120, 40), "D": (250, 260), "E": (300, 140)}
    rows = [
        {
            "patient_id": pid,
            "collected_at": day,
            "test": "PLT",
            "value": str(value),
            "unit": "10^9/L",
        }
        for pid, values in planted.items()
        for day, value in zip(("2021-01-01", "2021-03-01"), values, strict=True)
    ]
    table = lemlabs.score_frame(pd.DataFrame(rows)).shift_table("platelets")
    expected = pd.DataFrame(0, index=[*range(5), "Missing"], columns=range(5))
    expected.loc[0, 2] = 1  # A: 200 -> 60
    expected.loc[0, 4] = 1  # B: 200 -> 20
    expected.loc[1, 3] = 1  # C: 120 (below LLN 150) -> 40
    expected.loc[0, 0] = 1  # D
    expected.loc[0, 1] = 1  # E: 300 -> 140
    assert list(table.index) == [0, 1, 2, 3, 4, "Missing"]
    assert (table.to_numpy() == expected.to_numpy()).all()
    v6 = lemlabs.score_frame(pd.DataFrame(rows), ctcae="v6").shift_table("Thrombocytopenia")
    assert v6.loc[0, 3] == 1 and v6.loc[0, 4] == 0  # 20 is grade 3 in v6


def _planted_arms() -> lemlabs.Report:
    """Platelets at baseline and 2 months later; arms X (A, B, C), Y (D), none (E)."""
    planted = {"A": (200, 60), "B": (200, 20), "C": (120, 40), "D": (250, 260), "E": (300, 140)}
    rows = [
        (pid, day, "PLT", str(value), "10^9/L")
        for pid, values in planted.items()
        for day, value in zip(("2021-01-01", "2021-03-01"), values, strict=True)
    ]
    labs = pd.DataFrame(rows, columns=["patient_id", "collected_at", "test", "value", "unit"])
    arms = {"A": "X", "B": "X", "C": "X", "D": "Y", "E": ""}
    patients = pd.DataFrame({"patient_id": list(arms), "arm": list(arms.values())})
    return lemlabs.score_frame(labs, patients)


def test_shift_table_by_arm_counts_each_arm_apart() -> None:
    table = _planted_arms().shift_table("PLAT", by="arm")
    assert list(table.columns.get_level_values(0).unique()) == ["Missing", "X", "Y"]
    assert table[("X", 2)][0] == 1 and table[("X", 4)][0] == 1 and table[("X", 3)][1] == 1
    assert table[("Y", 0)][0] == 1 and table[("Missing", 1)][0] == 1
    assert int(table.to_numpy().sum()) == 5


def test_shift_table_long_form_has_percentages_of_the_arm_and_totals() -> None:
    long = _planted_arms().shift_table("PLAT", by="arm", form="long")
    assert list(long.columns) == ["arm", "baseline", "worst", "n", "N", "percent"]
    x = long[long["arm"] == "X"].set_index(["baseline", "worst"])
    assert (x["N"] == 3).all()
    assert x.loc[(0, 2), "n"] == 1 and x.loc[(0, 2), "percent"] == pytest.approx(100 / 3)
    assert x.loc[(0, "Total"), "n"] == 2 and x.loc[(0, "Total"), "percent"] == pytest.approx(
        200 / 3
    )
    assert x.loc[(1, 3), "n"] == 1
    assert x.loc[("Total", "Total"), "n"] == 3 and x.loc[("Total", "Total"), "percent"] == 100
    assert x.loc[("Missing", "Total"), "n"] == 0
    # every group: 7 baseline levels (0-4, Missing, Total) x 6 worst levels (0-4, Total)
    assert long.groupby("arm").size().eq(42).all()
    unsplit = _planted_arms().shift_table("PLAT", form="long").set_index(["baseline", "worst"])
    assert unsplit.loc[("Total", "Total"), "n"] == 5 and "arm" not in unsplit.columns


def test_shift_table_refuses_an_unknown_column_form_or_direction_by_name() -> None:
    report = _planted_arms()
    with pytest.raises(lemlabs.LemlabsError, match=r"no column 'ARM' \(it has: patient_id, arm"):
        report.shift_table("PLAT", by="ARM")
    with pytest.raises(lemlabs.LemlabsError, match="form must be 'wide' or 'long'"):
        report.shift_table("PLAT", form="tall")
    with pytest.raises(lemlabs.LemlabsError, match="no term 'PLAT' in the high direction"):
        report.shift_table("PLAT", direction="high")
    assert report.shift_table("PLAT", direction="low").equals(report.shift_table("PLAT"))


def test_dm_arms_reach_the_patients_and_the_adlb() -> None:
    dm = pd.read_csv(DATA / "dm.csv", dtype=str).assign(ACTARM=["ALEMTUZUMAB 12 MG", None])
    labs, patients = lemlabs.read_sdtm(DATA / "lb.csv", dm, DATA / "ex.csv")
    assert patients.set_index("patient_id")["ACTARM"].to_dict() == {
        "LEM-301-001": "ALEMTUZUMAB 12 MG",
        "LEM-301-002": "",
    }
    adlb = lemlabs.score_frame(labs, patients).to_adlb()
    arms = adlb.drop_duplicates("USUBJID").set_index("USUBJID")
    assert set(arms["ARM"]) == {"ALEMTUZUMAB 12 MG"}
    assert arms["ACTARM"].to_dict() == {"LEM-301-001": "ALEMTUZUMAB 12 MG", "LEM-301-002": ""}


def test_shift_table_names_terms_by_paramcd_any_case_and_lists_the_names_it_accepts() -> None:
    rows = [
        ("P1", "2021-01-01", "Creatinine", "80", "umol/L"),
        ("P1", "2021-03-01", "Creatinine", "300", "umol/L"),
    ]
    labs = pd.DataFrame(rows, columns=["patient_id", "collected_at", "test", "value", "unit"])
    report = lemlabs.score_frame(labs, ctcae="v4")
    by_code = report.shift_table("creat")  # the PARAMCD, any case
    assert by_code.equals(report.shift_table("Creatinine increased"))
    assert by_code.loc[0, 3] == 1 and int(by_code.to_numpy().sum()) == 1
    with pytest.raises(lemlabs.LemlabsError, match=r"no term 'PLATELET'; name one by .*PLAT"):
        report.shift_table("PLATELET")


def test_cli_writes_adlb(tmp_path: Path) -> None:
    from lemlabs.cli import main

    out = tmp_path / "adlb.csv"
    code = main(
        [
            "score",
            str(DATA / "lb.csv"),
            "--dm",
            str(DATA / "dm.csv"),
            "--ex",
            str(DATA / "ex.csv"),
            "--ctcae",
            "v4",
            "-o",
            str(out),
            "--adlb",
            "-q",
        ]
    )
    assert code == 0
    table = pd.read_csv(out)
    assert list(table.columns) == list(ADLB_COLUMNS)
    assert main(["score", str(DATA / "lb.csv"), "-o", str(tmp_path / "a.json"), "--adlb"]) == 2


# --- real exports -------------------------------------------------------------------------

SEMICOLON = (
    "MRN;collected_at;test;value;unit\n"
    "P1;2021-01-01;PLT;42;10^9/L\n"
    "P1;2021-02-01;CREA;148,0;umol/L\n"
)


def test_a_semicolon_file_reads_on_first_try(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(SEMICOLON, "utf-8")
    labs = lemlabs.read_labs(path, columns={"MRN": "patient_id"})
    assert labs["value"].tolist() == ["42", "148,0"]
    report = lemlabs.score_frame(labs)
    assert report.results["value"].tolist() == [42.0, 148.0]
    tabbed = lemlabs.read_labs(io.StringIO(SEMICOLON.replace(";", "\t")), {"MRN": "patient_id"})
    assert len(tabbed) == 2


def test_an_undecidable_delimiter_is_one_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_text("a;b,c\n1;2,3\n", "utf-8")
    with pytest.raises(lemlabs.LabInputError, match=r"cannot tell the delimiter.*--sep"):
        lemlabs.read_labs(path)
    assert list(read_text_table(path, sep=";").columns) == ["a", "b,c"]


# EX rows become courses of the treatment the user names (issue 26): the default is alemtuzumab
# by name; a blinded or other-drug trial names its EXTRT values; nothing vanishes in silence.
EX_HEADER = "STUDYID,USUBJID,EXSEQ,EXTRT,EXSTDTC\n"


def _ex(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    text = EX_HEADER + "".join(
        f"S1,{patient},{n},{treatment},{day}\n" for n, (patient, treatment, day) in enumerate(rows)
    )
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)


LB_ONE = pd.DataFrame(
    [("S1", "P1", "PLAT", "250", "10^9/L", "2020-03-01")],
    columns=["STUDYID", "USUBJID", "LBTESTCD", "LBORRES", "LBORRESU", "LBDTC"],
)


@pytest.mark.parametrize(
    ("rows", "treatment", "courses", "issue"),
    [
        ([("P1", "ALEMTUZUMAB", "2020-01-06")], None, ["2020-01-06"], None),
        ([("P1", "Lemtrada 12 mg", "2020-01-06")], None, ["2020-01-06"], None),
        (  # another drug: no course, one issue for the study naming what EX holds
            [("P1", "XANOMELINE", "2020-01-06"), ("P1", "PLACEBO", "2020-01-07")],
            None,
            [],
            "no EX row of study S1 names the treatment (alemtuzumab (by name)): EXTRT holds "
            "PLACEBO, XANOMELINE; name it with --treatment NAME",
        ),
        ([("P1", "XANOMELINE", "2020-01-06")], ["xanomeline"], ["2020-01-06"], None),
        ([("P1", "IMP", "2020-01-06")], ["IMP", "STUDY DRUG"], ["2020-01-06"], None),  # blinded
        ([("P1", "IMP ", "2020-01-06")], ["imp"], ["2020-01-06"], None),  # any case, spaces
        ([("P1", "IMPX", "2020-01-06")], ["IMP"], [], "names the treatment (IMP)"),  # exact
        ([("P1", "ALEMTUZUMAB", "2020-01-06T09")], None, ["2020-01-06"], None),  # hours only
        (  # an ISO date that is no day: named as such (it was called "not an ISO date")
            [("P1", "ALEMTUZUMAB", "2020-02-30"), ("P1", "ALEMTUZUMAB", "2021-01-11")],
            None,
            ["2021-01-11"],
            "EX row not counted as a course day, EXSTDTC not a valid date: '2020-02-30'",
        ),
        (  # a partial date is a data issue naming the patient, not a silent drop
            [("P1", "ALEMTUZUMAB", "2020-01"), ("P1", "ALEMTUZUMAB", "2021-01-11")],
            None,
            ["2021-01-11"],
            "EX row not counted as a course day, EXSTDTC a partial date (not a whole calendar "
            "day): '2020-01'",
        ),
    ],
)
def test_ex_rows_become_courses_of_the_named_treatment(
    rows: list[tuple[str, str, str]],
    treatment: list[str] | None,
    courses: list[str],
    issue: str | None,
) -> None:
    labs, people = lemlabs.read_sdtm(LB_ONE, ex=_ex(rows), treatment=treatment)
    assert [d.date().isoformat() for d in people.set_index("patient_id").loc["P1", "courses"]] == (
        courses
    )
    issues = lemlabs.score_frame(labs, people).issues
    ex_issues = issues[issues["source"] == "EX"]
    if issue is None:
        assert ex_issues.empty
    else:
        (reason,) = ex_issues["reason"]
        assert issue in reason
        assert ex_issues["patient_id"].iloc[0] in ("", "P1")


def test_without_ex_the_first_exposure_of_dm_is_the_course() -> None:
    dm = pd.DataFrame(
        [("S1", "P1", "F", "1980-01-01", "2020-01-06T10:00")],
        columns=["STUDYID", "USUBJID", "SEX", "BRTHDTC", "RFXSTDTC"],
    )
    _, people = lemlabs.read_sdtm(LB_ONE, dm=dm)
    (course,) = people.set_index("patient_id").loc["P1", "courses"]
    assert course.date().isoformat() == "2020-01-06"


def test_the_command_line_names_the_treatment(tmp_path: Path) -> None:
    from lemlabs.cli import main

    lb, ex = tmp_path / "lb.csv", tmp_path / "ex.csv"
    LB_ONE.to_csv(lb, index=False)
    _ex([("P1", "IMP", "2020-01-06")]).to_csv(ex, index=False)
    out = tmp_path / "issues.csv"
    args = ["score", str(lb), "--ex", str(ex), "-o", str(tmp_path / "f.csv"), "-q"]
    assert main([*args, "--issues", str(out)]) == 0
    assert "name it with --treatment NAME" in out.read_text()
    assert main([*args, "--treatment", "IMP", "--issues", str(out)]) == 0
    assert "EXTRT" not in out.read_text()
    assert main(["score", str(lb), "--treatment", "IMP", "-q"]) == 2  # needs --ex


def test_report_and_schedule_take_the_input_options_of_score(tmp_path: Path) -> None:
    """lemlabs report and lemlabs schedule read SDTM with --dm/--ex/--treatment, grade with
    --ctcae, and read exports with --sep/--columns/--date-format, as lemlabs score does."""
    pytest.importorskip("jinja2")
    from lemlabs.cli import main

    sdtm = ["--dm", str(DATA / "dm.csv"), "--ex", str(DATA / "ex.csv")]
    html = tmp_path / "r.html"
    assert (
        main(["report", str(DATA / "lb.csv"), *sdtm, "--ctcae", "v4", "-o", str(html), "-q"]) == 0
    )
    page = html.read_text("utf-8")
    assert "CTCAE version</dt><dd>4.03" in page and "ex.csv" in page
    plan = tmp_path / "plan.csv"
    args = ["schedule", str(DATA / "lb.csv"), *sdtm, "--as-of", "2021-06-01", "-o", str(plan)]
    assert main(args) == 0
    table = pd.read_csv(plan)
    assert set(table["patient_id"]) >= {"LEM-301-001"} and (table["status"] != "no_courses").any()
    export = tmp_path / "export.csv"
    export.write_text("MRN;Date;Analyse;Result;Units\nP1;05/03/2021;PLT;15;10^9/L\n")
    mapping = "MRN=patient_id,Date=collected_at,Analyse=test,Result=value,Units=unit"
    options = ["--sep", ";", "--columns", mapping, "--date-format", "DMY", "-q"]
    assert main(["report", str(export), *options, "-o", str(html)]) == 0
    assert "Suspected immune thrombocytopenia (ITP)" in html.read_text("utf-8")  # 15 on 5 March
    assert main(["schedule", str(DATA / "lb.csv")]) == 2  # no courses given at all
