"""HTML → PDF with headless Chromium (Debian's ``chromium``, driven by Playwright).

The page is written to a private temporary folder beside copies of its scripts and opened from
``file://``: nothing is served and nothing leaves the machine. Printing waits until the page's
script has drawn every chart (it sets ``data-rendered`` on ``<body>``).
"""

from __future__ import annotations

import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Final, Literal

from glucosestream.errors import ConfigError

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "PAPER_SIZES", "Paper", "copy_assets", "html_to_pdf"]

Paper = Literal["a4", "letter"]

CHROMIUM: Final = Path("/usr/bin/chromium")
CHROMIUM_ARGS: Final = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)
_RENDER_TIMEOUT_MS: Final = 30_000
# Width and height in inches: A4 is 210 x 297 mm (ISO 216), Letter 8.5 x 11 in.
PAPER_SIZES: Final[dict[Paper, tuple[float, float]]] = {
    "a4": (210 / 25.4, 297 / 25.4),
    "letter": (8.5, 11.0),
}
_PDF_FORMAT: Final[dict[Paper, str]] = {"a4": "A4", "letter": "Letter"}
_MARGIN_IN: Final = 0.25  # each side, as the page's @page rule sets it
_PX_PER_IN: Final = 96  # CSS pixels
_SLACK_PX: Final = 28  # kept free below the page so rounding never spills onto a second


def _printable_px(paper: Paper) -> tuple[int, int]:
    """The paper's printable width and height in CSS pixels, inside the margins."""
    width_in, height_in = PAPER_SIZES[paper]
    width = int((width_in - 2 * _MARGIN_IN) * _PX_PER_IN)
    return width, int((height_in - 2 * _MARGIN_IN) * _PX_PER_IN) - _SLACK_PX


def copy_assets(folder: Path) -> None:
    """Put the scripts the pages load (Plotly.js and ours) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    plotly = Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))
    shutil.copyfile(plotly, folder / "plotly.min.js")
    for asset in (Path(__file__).parent / "static").iterdir():
        shutil.copyfile(asset, folder / asset.name)


def html_to_pdf(page: str, paper: Paper = "a4") -> bytes:
    """Print a page (loading its scripts from ``static/`` beside it) to one page of PDF on
    ``paper``: laid out at the paper's printable width, scaled down to fit its height."""
    if not CHROMIUM.exists():
        raise ConfigError(
            f"no Chromium at {CHROMIUM}; install it (apt-get install chromium) to make PDFs, "
            "or write the report as .html"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        raise ConfigError("PDF needs Playwright: pip install playwright") from err
    with tempfile.TemporaryDirectory(prefix="glucosestream-pdf-") as tmp:
        folder = Path(tmp)
        copy_assets(folder / "static")
        (folder / "report.html").write_text(page, encoding="utf-8")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
            width, height_px = _printable_px(paper)
            try:
                tab = browser.new_page(viewport={"width": width, "height": 1000})
                tab.goto((folder / "report.html").as_uri())
                tab.wait_for_selector("body[data-rendered='1']", timeout=_RENDER_TIMEOUT_MS)
                height = float(tab.evaluate("document.documentElement.scrollHeight"))
                scale = min(1.0, height_px / max(height, 1.0))  # one page, always
                return tab.pdf(
                    format=_PDF_FORMAT[paper],
                    print_background=True,
                    prefer_css_page_size=True,
                    scale=scale,
                )
            finally:
                browser.close()
