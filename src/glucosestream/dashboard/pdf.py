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
from typing import Final

from glucosestream.errors import ConfigError

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "copy_assets", "html_to_pdf"]

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
# Letter (8.5 x 11 in) less the 0.25 in margins of app.css, at 96 CSS px per inch.
_PRINT_WIDTH_PX: Final = 768
_PRINT_HEIGHT_PX: Final = 980


def copy_assets(folder: Path) -> None:
    """Put the scripts the pages load (Plotly.js and ours) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    plotly = Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))
    shutil.copyfile(plotly, folder / "plotly.min.js")
    for asset in (Path(__file__).parent / "static").iterdir():
        shutil.copyfile(asset, folder / asset.name)


def html_to_pdf(page: str) -> bytes:
    """Print a page (loading its scripts from ``static/`` beside it) to PDF bytes."""
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
            try:
                tab = browser.new_page(viewport={"width": _PRINT_WIDTH_PX, "height": 1000})
                tab.goto((folder / "report.html").as_uri())
                tab.wait_for_selector("body[data-rendered='1']", timeout=_RENDER_TIMEOUT_MS)
                height = float(tab.evaluate("document.documentElement.scrollHeight"))
                scale = min(1.0, _PRINT_HEIGHT_PX / max(height, 1.0))  # one page, always
                return tab.pdf(
                    format="Letter", print_background=True, prefer_css_page_size=True, scale=scale
                )
            finally:
                browser.close()
