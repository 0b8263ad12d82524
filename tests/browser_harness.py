"""What the browser tests share: an app served on a free local port from a thread, Debian's
Chromium driven by Playwright, and a page logged in with a token that gathers the console's and
the page's errors.

Not a test module: the browser tests import it (``from .browser_harness import ...``) and keep
their own fixtures, scopes, settings and viewports."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

from glucosestream.dashboard.pdf import CHROMIUM, CHROMIUM_ARGS

if TYPE_CHECKING:
    from fastapi import FastAPI
    from playwright.sync_api import Browser, Page

START_TIMEOUT_S = 20  # how long the server may take to start before the tests go on anyway
STOP_TIMEOUT_S = 10


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """The base URL (``http://127.0.0.1:<port>``) while uvicorn serves ``app`` in a daemon
    thread; the server stops when the block ends."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(STOP_TIMEOUT_S)


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium (``CHROMIUM`` with ``CHROMIUM_ARGS``) launched through Playwright;
    skips the test when Python ``playwright`` is not installed."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for all the tests of a module that imports this fixture (one launch a module)."""
    with chromium() as launched:
        yield launched


def logged_in(
    browser: Browser, base: str, token: str, *, width: int = 1200, height: int = 900
) -> tuple[Page, list[str]]:
    """A new page of ``width`` x ``height`` logged in at ``base``/login with ``token`` (the
    network idle after), and the list that gathers its console errors and page errors from the
    start."""
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/login")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    return page, errors
