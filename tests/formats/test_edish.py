"""The eDISH view: per-patient peaks × ULN, their quadrant, and the plot drawn from them."""

from __future__ import annotations

import io

import pandas as pd
import pytest

import lemlabs

HEADER = "patient_id,collected_at,test,value,unit,ref_low,ref_high\n"
LABS = HEADER + "".join(
    f"{p},{d},{t},{v},{u},,{uln}\n"
    for p, d, t, v, u, uln in [
        ("HY", "2020-03-01", "ALT", "400", "U/L", "40"),  # 10 × ULN
        ("HY", "2020-03-05", "BILI", "63", "umol/L", "21"),  # 3 × ULN
        ("HY", "2020-03-05", "ALP", "100", "U/L", "130"),
        ("TEMPLE", "2020-03-01", "ALT", "6", "ukat/L", "0.6"),  # 360 U/L, ULN 36: 10 ×
        ("TEMPLE", "2020-03-01", "BILI", "0.8", "mg/dL", "1.2"),
        ("BILI", "2020-03-01", "ALT", "30", "U/L", "40"),
        ("BILI", "2020-03-01", "BILI", "50", "umol/L", "21"),
        ("EDGE", "2020-03-01", "ALT", "120", "U/L", "40"),  # exactly 3 × ULN: ≥ 3
        ("EDGE", "2020-03-01", "BILI", "42", "umol/L", "21"),  # exactly 2 × ULN: not > 2
        ("ONLY_ALT", "2020-03-01", "ALT", "30", "U/L", "40"),
    ]
)


@pytest.fixture(scope="module")
def report() -> lemlabs.Report:
    return lemlabs.score_frame(io.StringIO(LABS))


def test_peaks_and_quadrants(report: lemlabs.Report) -> None:
    peaks = lemlabs.liver_peaks(report).set_index("patient_id")
    assert peaks.loc["HY", "enzyme_x_uln"] == pytest.approx(10)
    assert peaks.loc["HY", "bilirubin_x_uln"] == pytest.approx(3)
    assert peaks["quadrant"].to_dict() == {
        "HY": "potential Hy's law",
        "TEMPLE": "Temple's corollary",
        "BILI": "hyperbilirubinaemia",
        "EDGE": "Temple's corollary",
        "ONLY_ALT": "",
    }
    assert peaks.loc["HY", "liver_code"] == "liver.hys_law"
    assert peaks.loc["HY", "liver_severity"] == "urgent"
    assert peaks.loc["ONLY_ALT", "liver_code"] == ""
    assert peaks.index[:2].tolist() == ["HY", "TEMPLE"]  # highest first; equal: by id
    assert peaks.loc["HY", "enzyme_date"] == pd.Timestamp("2020-03-01")


def test_an_unknown_enzyme_is_a_clear_error(report: lemlabs.Report) -> None:
    with pytest.raises(lemlabs.LemlabsError, match="ALT or AST"):
        lemlabs.liver_peaks(report, "GGT")


def test_the_edish_plot_draws_the_cut_offs_on_log_axes(report: lemlabs.Report) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.colors import to_hex

    from lemlabs.formats.plot import SEVERITY_COLOURS, plot_edish

    figure = plot_edish(report, "ALT")
    ax = figure.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    lines = {(tuple(line.get_xdata()), tuple(line.get_ydata())) for line in ax.get_lines()}
    assert ((3.0, 3.0), (0, 1)) in lines and ((0, 1), (2.0, 2.0)) in lines
    texts = {text.get_text() for text in ax.texts}
    assert "potential Hy's law" in texts
    (points,) = ax.collections
    assert len(points.get_offsets()) == 4  # ONLY_ALT has no bilirubin: not drawn
    colours = {to_hex(c) for c in points.get_facecolors()}
    assert SEVERITY_COLOURS["urgent"] in colours


def test_the_report_has_a_liver_section_only_with_liver_results(report: lemlabs.Report) -> None:
    pytest.importorskip("jinja2")
    pytest.importorskip("matplotlib")
    from lemlabs.formats.report import render_html

    html = render_html(report)
    section = html[html.index('id="liver"') :]
    assert "eDISH" in section[:200] and "<svg" in section[: section.index('id="patients"')]
    plain = lemlabs.score_frame(io.StringIO(HEADER + "P1,2020-03-01,PLT,250,10^9/L,,\n"))
    assert 'id="liver"' not in render_html(plain)
