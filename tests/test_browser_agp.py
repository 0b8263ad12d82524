"""The AGP report in a real headless Chromium (slow tier): in mmol/L its axis, legends and
labels are in mmol/L and it names the partial day; its PDF is one page of A4 or of Letter.

Needs Debian's ``chromium`` (/usr/bin/chromium), Python ``playwright`` and poppler-utils."""

from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from glucosestream.dashboard.pdf import CHROMIUM

from .browser_harness import browser, logged_in, served  # noqa: F401
from .test_agp_window import NOW, PARTIAL, partial_lake  # noqa: F401

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    ),
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
# PDF points (1/72 in): A4 is 210 x 297 mm, Letter 8.5 x 11 in.
PAGE_POINTS = {"a4": (595.28, 841.89), "letter": (612.0, 792.0)}


@pytest.fixture(scope="module")
def server(partial_lake):  # noqa: F811
    from glucosestream.app import create_app

    settings, _ = partial_lake
    with served(create_app(settings, clock=lambda: NOW)) as base:
        yield base


def test_the_agp_in_mmol_shows_mmol_axes_legends_and_the_partial_day(
    server,
    browser,  # noqa: F811
    partial_lake,  # noqa: F811
):
    _, key = partial_lake
    page, errors = logged_in(browser, server, "gs_admin", width=1000, height=1300)
    page.goto(f"{server}/patients/{key}")
    page.select_option("#unit-select", "mmol_l")
    page.click("form[action='/preferences'] button")
    page.wait_for_selector("body[data-rendered='1']")
    assert page.locator("#partial-day").is_visible()
    assert "partial" in page.locator("#chart-traces .annotation-text").first.text_content()
    page.goto(f"{server}/patients/{key}/agp")
    page.wait_for_selector("body[data-rendered='1']")
    agp = page.locator("#chart-agp")
    ticks = agp.locator(".ytick text").all_text_contents()  # SVG text: no inner text
    assert ticks == ["3.0", "3.9", "10.0", "13.9", "19.4"]  # 54/70/180/250 and 350 mg/dL
    assert "mmol/L" in agp.locator(".g-ytitle").text_content()
    assert "Target 3.9\N{EN DASH}10.0 mmol/L" in agp.locator(".legend").text_content()
    # The daily tiles: 14 of them, the first of each row labelled at the target range.
    assert page.locator("#chart-daily .annotation-text").count() == 14
    body = page.locator("body").inner_text()
    assert "mg/dL" not in body
    assert f"{PARTIAL.isoformat()} is partial" in page.locator("#partial-day").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "agp-mmol.png"), full_page=True)
    assert errors == []


def _page_points(pdf: Path) -> tuple[float, float]:
    """The one page's MediaBox width and height, in points."""
    raw = pdf.read_bytes()
    boxes = re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", raw)
    assert len(boxes) == 1, boxes
    return float(boxes[0][0]), float(boxes[0][1])


@pytest.mark.skipif(shutil.which("pdfinfo") is None, reason="poppler-utils not installed")
@pytest.mark.parametrize("paper", ["a4", "letter"])
def test_the_pdf_is_one_page_of_a4_or_letter(partial_lake, tmp_path, paper):  # noqa: F811
    from glucosestream.dashboard.report import render_agp_pdf

    settings, key = partial_lake
    out = tmp_path / f"agp-{paper}.pdf"
    # Its own thread: the module's browser fixture may hold Playwright's loop in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(render_agp_pdf, settings, key, out, unit="mmol_l", paper=paper).result()
    width, height = _page_points(out)
    assert (width, height) == pytest.approx(PAGE_POINTS[paper], abs=1.0)
    info = subprocess.run(["pdfinfo", str(out)], capture_output=True, text=True).stdout
    assert re.search(r"^Pages:\s+1$", info, re.MULTILINE), info
    text = subprocess.run(  # reading order, one block after another
        ["pdftotext", str(out), "-"], capture_output=True, text=True, check=True
    ).stdout
    text = re.sub(r"\s+", " ", text)
    assert "mmol/L" in text
    assert "mg/dL" not in text
    assert "ID P1" in text
    assert f"{PARTIAL.isoformat()} is partial" in text
    assert "daily glucose profiles" in text.lower()  # the last section made it onto the page
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(out, ARTIFACTS / out.name)
