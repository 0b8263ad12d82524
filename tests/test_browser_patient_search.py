"""Finding a patient in a real headless Chromium: the id as ingested typed into the search box
of the triage page lands on the patient's page, which shows the id, the clinic's label and the
summary of the last 14 complete days (the rolling summary the run wrote); a hostile label in a
list of matches is shown as text, never run.

Needs Debian's ``chromium`` (/usr/bin/chromium) and Python ``playwright`` (slow tier)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from glucosestream.dashboard.pdf import CHROMIUM
from glucosestream.lake import open_patient_directory
from glucosestream.published import PublishedLake

from .browser_harness import chromium, logged_in, served
from .test_dashboard_lake import HOSTILE, demo_lake  # noqa: F401

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    ),
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
AT = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def server(demo_lake):  # noqa: F811
    from glucosestream.app import create_app

    with served(create_app(demo_lake.settings)) as base:
        yield base


@pytest.fixture
def page(server, demo_lake):  # noqa: F811
    with chromium() as browser:
        tab, _ = logged_in(browser, server, demo_lake.tokens["clinician"])
        yield tab


@pytest.fixture
def labelled(demo_lake):  # noqa: F811
    directory = open_patient_directory(demo_lake.settings.lake)
    directory.set_label(demo_lake.keys["P1"], "Ward 7 Ada Lovelace", at=AT, by="test")
    directory.set_label(demo_lake.keys["P2"], "Ward 7 " + HOSTILE, at=AT, by="test")
    yield
    for key in demo_lake.keys.values():
        directory.set_label(key, None, at=AT, by="test")


def test_typing_an_id_into_the_search_box_opens_the_patients_page(
    page,
    server,
    demo_lake,  # noqa: F811
    labelled,
):
    key = demo_lake.keys["P1"]
    assert page.url == f"{server}/"  # the triage page, with the search box in its header
    page.fill("#patient-search-id", "P1")
    page.press("#patient-search-id", "Enter")
    page.wait_for_url(f"{server}/patients/{key}")
    head = page.locator("#patient-head").inner_text()
    assert "Ward 7 Ada Lovelace" in head
    assert "P1" in head
    assert page.title().startswith("Ward 7 Ada Lovelace")
    # the summary on the page is the rolling summary the run wrote for this patient
    rows = PublishedLake(demo_lake.settings).current().summaries([key]).to_pylist()
    current = next(row for row in rows if row["window"] == "current")
    summary = page.locator("#window-summary")
    assert current["period_start"].isoformat() in summary.locator("h2").inner_text()
    for metric in ("pct_70_180", "pct_below_54", "gmi_pct", "cv_pct"):
        shown = summary.locator(f'[data-metric="{metric}"]').inner_text()
        assert shown == f"{current[metric]:.1f}%", (metric, shown, current[metric])
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "patient-found-by-id.png"), full_page=True)


def test_a_hostile_label_in_the_matches_is_text_and_never_runs(page, server, labelled):
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.fill("#patient-search-id", "ward 7")
    page.click("#patient-search button[type=submit]")
    page.wait_for_selector("#search-results")
    assert page.locator("#search-results tbody tr").count() == 2
    assert HOSTILE in page.locator("#search-results").inner_text()
    assert dialogs == []
    page.fill("#patient-search-id", "P3")  # another clinic's patient
    page.press("#patient-search-id", "Enter")
    page.wait_for_selector("#nothing-found")
    assert page.url.startswith(f"{server}/patients?id=P3")
