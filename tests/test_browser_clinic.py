"""The clinic's pages in a real headless Chromium, on the hand-made clinic lake
(tests/test_triage_clinic.py): triage shows a bar and the flags in words per patient and
filters by flag; the period comparison draws both fortnights' AGP curves; the daily overlay one
line per day; no console errors. Screenshots go to test-artifacts/.

Needs Debian's ``chromium`` (/usr/bin/chromium) and Python ``playwright``."""

from __future__ import annotations

from pathlib import Path

import pytest

from glucosestream.app import create_app
from glucosestream.dashboard.pdf import CHROMIUM

from .browser_harness import browser, logged_in, served  # noqa: F401
from .test_triage_clinic import clinic  # noqa: F401

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    ),
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="module")
def server(clinic):  # noqa: F811
    settings, _ = clinic
    with served(create_app(settings)) as base:
        yield base


def _drawn(page, chart_id, name_part):
    """The drawn line (its SVG path) of each trace of a Plotly chart whose name holds
    ``name_part`` and that draws a line (not a band's edge of width 0)."""
    return page.evaluate(
        """([id, part]) => {
          const traces = document.querySelectorAll('#' + id + ' .scatterlayer .trace');
          const data = document.getElementById(id).data;
          return Array.from(traces).filter((t, i) => data[i].name && data[i].name.includes(part)
              && !(data[i].line && data[i].line.width === 0))
            .map((t) => (t.querySelector('path.js-line') || {}).getAttribute?.('d') || '')
            .filter((d) => d.length > 0);
        }""",
        [chart_id, name_part],
    )


def test_triage_and_the_clinic_pages_in_a_browser(server, browser, clinic):  # noqa: F811
    _, keys = clinic
    ARTIFACTS.mkdir(exist_ok=True)
    page, errors = logged_in(browser, server, "t_admin", width=1280)
    assert "Clinic triage" in page.content()
    rows = page.locator("#triage tbody tr")
    assert rows.count() == len(keys)
    drop = page.locator(f"#triage tbody tr[data-patient-key='{keys['DROP']}']")
    assert "Time in range down more than 15 points" in drop.locator(".flags").inner_text()
    widths = drop.locator(".tir-hbar .seg").evaluate_all(
        "segs => segs.map(s => s.getBoundingClientRect().width)"
    )
    bar = drop.locator(".tir-hbar").evaluate("b => b.clientWidth")
    assert len(widths) == 5
    assert sum(widths) == pytest.approx(bar, abs=2)  # the segments fill the bar
    page.screenshot(path=str(ARTIFACTS / "triage.png"), full_page=True)
    page.select_option("select[name=flag]", "tir_drop")
    page.click("#triage-filters button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.locator("#triage tbody tr").count() == 1
    page.click(f"a[href='/patients/{keys['DROP']}/compare']")
    page.wait_for_selector("body[data-rendered='1']")
    medians = _drawn(page, "chart-compare-agp", "median")
    assert len(medians) == 2  # both fortnights'
    assert medians[0] != medians[1]  # DROP's fortnights differ
    assert page.locator("#compare-metrics tbody tr").count() >= 10
    assert page.locator("#compare-tir .tir-hbar").count() == 2
    page.screenshot(path=str(ARTIFACTS / "comparison.png"), full_page=True)
    page.goto(f"{server}/patients/{keys['PART']}/overlay")
    page.wait_for_selector("body[data-rendered='1']")
    days = _drawn(page, "chart-overlay", "")
    assert len(days) == 15  # 14 days and the partial one
    legend = page.evaluate("() => document.querySelector('#chart-overlay g.legend').textContent")
    assert "2026-02-04 (partial)" in legend
    page.screenshot(path=str(ARTIFACTS / "overlay.png"), full_page=True)
    page.select_option("#unit-select", "mmol_l")  # every chart and label in mmol/L
    page.click("form[action='/preferences'] button")
    page.wait_for_selector("body[data-rendered='1']")
    assert _ticks(page, "chart-overlay") >= {"3.0", "3.9", "10.0", "13.9"}
    page.goto(f"{server}/patients/{keys['DROP']}/compare")
    page.wait_for_selector("body[data-rendered='1']")
    assert _ticks(page, "chart-compare-agp") >= {"3.0", "3.9", "10.0", "13.9"}
    assert "mg/dL" not in page.locator("main").inner_text()
    assert "High (10.1\N{EN DASH}13.9)" in page.locator("#tir-legend").inner_text()
    page.screenshot(path=str(ARTIFACTS / "comparison-mmol.png"), full_page=True)
    assert errors == []


def _ticks(page, chart_id):
    """The glucose axis's tick labels of a Plotly chart."""
    return set(
        page.evaluate(
            "(id) => Array.from(document.querySelectorAll('#' + id + ' .ytick text'))"
            ".map(t => t.textContent)",
            chart_id,
        )
    )
