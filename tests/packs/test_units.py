"""Every accepted unit spelling converts a known value to the expected canonical value."""

from __future__ import annotations

import pytest

from lemlabs.packs import builtin_packs
from lemlabs.packs.units import conversion as by_analyte


def conversion(analyte: str, unit: str):  # type: ignore[no-untyped-def]
    return by_analyte(builtin_packs().catalogue[analyte], unit)


# analyte, raw unit, raw value, expected canonical value
CONVERSIONS = [
    ("tsh", "mIU/L", 2.5, 2.5),
    ("tsh", "mU/L", 2.5, 2.5),
    ("tsh", "µIU/mL", 2.5, 2.5),
    ("tsh", "uIU/mL", 2.5, 2.5),
    ("tsh", "μIU/mL", 2.5, 2.5),
    ("tsh", "m[IU]/L", 2.5, 2.5),
    ("tsh", "u[IU]/mL", 2.5, 2.5),
    ("free_t4", "pmol/L", 15.0, 15.0),
    ("free_t4", "ng/dL", 1.0, 12.872),
    ("free_t4", "ng/L", 10.0, 12.872),
    ("free_t4", "pg/mL", 10.0, 12.872),
    ("platelets", "10^9/L", 150.0, 150.0),
    ("platelets", "10*9/L", 150.0, 150.0),
    ("platelets", "x10E9/L", 150.0, 150.0),
    ("platelets", "x10^9/L", 150.0, 150.0),
    ("platelets", "G/L", 150.0, 150.0),
    ("platelets", "GI/L", 150.0, 150.0),  # CDISC's standard unit (the pilot's LBSTRESU)
    ("platelets", "K/µL", 150.0, 150.0),
    ("platelets", "K/uL", 150.0, 150.0),
    ("platelets", "10^3/µL", 150.0, 150.0),
    ("platelets", "10*3/uL", 150.0, 150.0),
    ("platelets", "thou/mm3", 150.0, 150.0),
    ("platelets", "/nL", 150.0, 150.0),
    ("platelets", "/µL", 150000.0, 150.0),
    ("creatinine", "µmol/L", 88.4, 88.4),
    ("creatinine", "umol/L", 88.4, 88.4),
    ("creatinine", "mg/dL", 1.0, 88.40),
    ("creatinine", "mg/L", 10.0, 88.40),
    ("creatinine", "mmol/L", 0.0884, 88.4),
    ("urine_rbc", "/HPF", 5.0, 5.0),
    ("urine_rbc", "/hpf", 5.0, 5.0),
    ("urine_rbc", "RBC/HPF", 5.0, 5.0),
    ("urine_rbc", "/[HPF]", 5.0, 5.0),
    ("upcr", "mg/mmol", 50.0, 50.0),
    ("upcr", "mg/g", 442.0, 50.0),
    ("upcr", "g/g", 0.442, 50.0),
    ("upcr", "mg/mg", 0.442, 50.0),
    ("uacr", "mg/mmol", 3.0, 3.0),
    ("uacr", "mg/g", 26.52, 3.0),
]


@pytest.mark.parametrize(("analyte", "unit", "raw", "expected"), CONVERSIONS)
def test_each_spelling_converts_to_the_canonical_unit(
    analyte: str, unit: str, raw: float, expected: float
) -> None:
    result = conversion(analyte, unit)
    assert result.problem is None
    assert result.factor is not None
    assert raw * result.factor == pytest.approx(expected, rel=2e-3)


def test_creatinine_uses_its_own_molar_mass() -> None:
    factor = conversion("creatinine", "mg/dL").factor
    assert factor == pytest.approx(10_000 / 113.12, rel=1e-9)  # 88.40 µmol/L per mg/dL


@pytest.mark.parametrize(
    ("analyte", "unit", "problem"),
    [
        ("platelets", "mg/dL", "wrong dimension"),
        ("tsh", "ng/dL", "wrong dimension"),  # international units never convert to mass
        ("tsh", "IU", "wrong dimension"),
        ("free_t4", "mIU/L", "wrong dimension"),
        ("creatinine", "furlongs", "wrong dimension"),
        ("creatinine", "blorbs/L", "unknown unit"),
        ("creatinine", "", "empty"),
        ("platelets", "%%%", "wrong dimension"),
    ],
)
def test_wrong_or_unknown_units_are_problems(analyte: str, unit: str, problem: str) -> None:
    result = conversion(analyte, unit)
    assert result.factor is None
    assert result.problem is not None and problem in result.problem


# Legacy all-caps systems and ratio units with a trailing "Cr" (domain.md, "Values"): matched
# without regard to case where every accepted spelling they match means the same.
CASE_AND_SUFFIX = [
    ("tsh", "MIU/L", 2.5, 2.5),  # not mega-units: no lab reports them
    ("tsh", "MU/L", 2.5, 2.5),
    ("tsh", "UIU/ML", 2.5, 2.5),
    ("free_t4", "PMOL/L", 15.0, 15.0),
    ("free_t4", "NG/DL", 1.0, 12.872),
    ("creatinine", "MG/DL", 1.0, 88.40),
    ("creatinine", "UMOL/L", 88.4, 88.4),
    ("creatinine", "µMOL/L", 88.4, 88.4),
    ("platelets", "K/UL", 150.0, 150.0),
    ("platelets", "g/l", 150.0, 150.0),
    ("urine_rbc", "RBC/hpf", 5.0, 5.0),
    ("upcr", "mg/mmol Cr", 50.0, 50.0),
    ("upcr", "MG/MMOL CREAT", 50.0, 50.0),
    ("upcr", "mg/g creatinine", 442.0, 50.0),
    ("uacr", "mg/mmol cr.", 3.0, 3.0),
]


@pytest.mark.parametrize(("analyte", "unit", "raw", "expected"), CASE_AND_SUFFIX)
def test_a_spelling_in_another_case_or_with_cr_converts_as_the_accepted_one(
    analyte: str, unit: str, raw: float, expected: float
) -> None:
    result = conversion(analyte, unit)
    assert result.problem is None and result.factor is not None
    assert raw * result.factor == pytest.approx(expected, rel=2e-3)


@pytest.mark.parametrize(
    ("analyte", "unit"),
    [
        ("creatinine", "mg/mmol Cr"),  # "Cr" only after a ratio's unit
        ("tsh", "mIU/L Cr"),
        ("tsh", "MMIU/L"),
    ],
)
def test_case_and_suffix_matching_reads_nothing_else(analyte: str, unit: str) -> None:
    assert conversion(analyte, unit).factor is None


def test_a_tsh_in_legacy_capitals_is_scored_not_rejected_as_implausible() -> None:
    import pandas as pd

    import lemlabs

    labs = pd.DataFrame(
        {
            "patient_id": ["P1"],
            "collected_at": ["2021-01-04"],
            "test": ["TSH"],
            "value": ["2.5"],
            "unit": ["MIU/L"],
        }
    )
    results, issues = lemlabs.normalise(labs)
    assert issues.empty, issues.to_dict("records")
    assert results.loc[0, "value"] == 2.5 and results.loc[0, "flag"] == "N"
