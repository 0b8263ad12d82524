"""Insulin and carbs on the pages: the bolus and carb markers of the patient page's daily traces,
the patient page's insulin and carbs summary (and its JSON twin), in mg/dL and mmol/L; the AGP
report stays glucose-only.

The page tests publish readings, then give the run events (``PublishedRun.events``) and the
daily metrics' event columns (``PublishedRun.daily``) as the pipeline does, so each figure is
known; the end-to-end test ingests treatments, runs the pipeline and reads the page."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from fastapi.testclient import TestClient

from glucosestream.app import create_app
from glucosestream.dashboard.insulin_carbs import insulin_carbs
from glucosestream.dashboard.patientdata import local_readings
from glucosestream.dashboard.pdf import CHROMIUM
from glucosestream.dashboard.report import render_agp_html
from glucosestream.dashboard.trace_markers import trace_markers
from glucosestream.ingest import ingest_records
from glucosestream.ingest.identity import patient_key
from glucosestream.pipeline import run_pipeline
from glucosestream.published import PublishedRun

from .browser_harness import chromium, logged_in, served
from .conftest import SECRET
from .test_dashboard_lake import login
from .test_published_events import event, event_table

ZONE = "Europe/Berlin"  # UTC+1 in January: a dose at 06:30 UTC is at 07:30 on the trace
START = dt.datetime(2026, 1, 4, 23, 0, tzinfo=dt.UTC)  # 2026-01-05 00:00 in Berlin
DAYS = 16  # 2026-01-05 .. 2026-01-20 complete; the page's 14 days: 01-07 .. 01-20
FIRST_SHOWN = dt.date(2026, 1, 7)
LAST = dt.date(2026, 1, 20)
NOW = dt.datetime(2026, 1, 21, 12, 0, tzinfo=dt.UTC)
INSULIN_WORDS = re.compile(r"insulin|bolus|basal|carb|\bU\b|grams?\b", re.I)


def _glucose(i: int) -> float:
    return round(140 + 30 * math.sin(i / 288 * 2 * math.pi), 1)


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    from glucosestream.access import hash_token
    from glucosestream.config import IngestSettings, LakeSettings, Settings
    from glucosestream.lake import open_access

    root = tmp_path_factory.mktemp("pages-events") / "lake"
    settings = Settings(
        lake=LakeSettings(root=str(root)), ingest=IngestSettings(pseudonym_secret=SECRET)
    )
    records = [
        {
            "patient_id": "P1",
            "time": (START + dt.timedelta(minutes=5 * i)).isoformat(),
            "glucose_mg_dl": _glucose(i),
            "tz": ZONE,
        }
        for i in range(DAYS * 288)
    ]
    ingest_records(settings, records)
    assert run_pipeline(settings).status == "published"
    open_access(settings.lake).tokens.add_token(
        hash_token("gs_admin"), "admin", label="a", created_at=NOW
    )
    return settings, patient_key(SECRET.encode(), "P1")


def _events(key: str) -> pa.Table:
    """Each shown day: a 4.5 U meal bolus and 60 g at 07:30 local; on 01-20 also an automatic
    bolus, a 15 g rescue carb at 03:00 local and a basal segment (never a marker)."""
    rows = []
    for n in range(DAYS):
        breakfast = dt.datetime(2026, 1, 5 + n, 6, 30, tzinfo=dt.UTC)
        rows.append(event("bolus", breakfast, patient=key, tz=ZONE, subtype="normal", units=4.5))
        rows.append(event("carbs", breakfast, patient=key, tz=ZONE, subtype="meal", carbs_g=60.0))
    last = dt.datetime(2026, 1, 20, 2, 0, tzinfo=dt.UTC)
    rows += [
        event("bolus", last, patient=key, tz=ZONE, subtype="automatic", units=0.3),
        event("carbs", last, patient=key, tz=ZONE, subtype="correction", carbs_g=15.0),
        event("basal", last, patient=key, tz=ZONE, subtype="temporary", rate_u_h=0.5,
              duration_min=60.0),
    ]  # fmt: skip
    return event_table(rows)


def _with_event_columns(daily: pa.Table) -> pa.Table:
    """The daily rows with the event columns the pipeline fills: bolus 18 and 22 U on
    alternate days (mean 20), carbs 150 g on even days only, 4 boluses a day; basal, total
    and automated time not known (NULL)."""
    odd = [d.day % 2 == 1 for d in daily["date"].to_pylist()]
    columns = {
        "bolus_u": pa.array([18.0 if o else 22.0 for o in odd]),
        "carbs_g": pa.array([None if o else 150.0 for o in odd], pa.float64()),
        "boluses": pa.array([4] * len(odd), pa.int32()),
    }
    for name, values in columns.items():
        daily = daily.set_column(daily.schema.get_field_index(name), name, values)
    return daily


@pytest.fixture
def with_events(monkeypatch):
    """The runs of the test hold P1's events and the daily event columns."""
    daily = PublishedRun.daily

    def events(self, patient, start=None, end=None):
        table = _events(patient)
        if start is not None:
            table = table.filter(pc.greater_equal(table["ts"], pa.scalar(start, table["ts"].type)))
        if end is not None:
            table = table.filter(pc.less(table["ts"], pa.scalar(end, table["ts"].type)))
        return table

    monkeypatch.setattr(PublishedRun, "events", events)
    monkeypatch.setattr(
        PublishedRun, "daily", lambda self, *a: _with_event_columns(daily(self, *a))
    )


def _page(settings, key: str, unit: str = "mg_dl") -> str:
    with TestClient(create_app(settings, clock=lambda: NOW)) as client:
        login(client, "gs_admin")
        client.cookies.set("gs_unit", unit)
        response = client.get(f"/patients/{key}")
    assert response.status_code == 200, response.text
    return response.text


def _page_data(html: str) -> dict:
    found = re.search(r'<script id="page-data" type="application/json">(.*?)</script>', html, re.S)
    assert found is not None
    return json.loads(found.group(1))


def _section(html: str, element_id: str) -> str:
    found = re.search(rf'<(\w+) id="{element_id}".*?</\1>', html, re.S)
    assert found is not None, element_id
    return found.group(0)


def _figures(html: str) -> dict[str, str]:
    cells = re.findall(
        r'<td data-figure="(\w+)"[^>]*>([^<]*)</td>', _section(html, "insulin-carbs")
    )
    return dict(cells)


# The summary ---------------------------------------------------------------------------------


def _daily(**columns) -> pa.Table:
    dates = [dt.date(2026, 3, 1) + dt.timedelta(days=i) for i in range(4)]
    return pa.table({"date": dates, **{k: pa.array(v, pa.float64()) for k, v in columns.items()}})


def test_each_figure_is_the_mean_of_the_days_that_recorded_it():
    days = _daily(
        bolus_u=[10.0, None, 20.0, 99.0],
        basal_u=[None, None, None, None],
        carbs_g=[100.0, float("nan"), None, None],
    )
    got = insulin_carbs(days, dt.date(2026, 3, 1), dt.date(2026, 3, 3))  # the 4th not in it
    figures = {f.column: f for f in got.figures}
    assert (figures["bolus_u"].mean, figures["bolus_u"].days) == (15.0, 2)
    assert figures["bolus_u"].shown == "15.0 U"
    assert (figures["basal_u"].mean, figures["basal_u"].days) == (None, 0)
    assert figures["basal_u"].shown == "not recorded"
    assert (figures["carbs_g"].mean, figures["carbs_g"].shown) == (100.0, "100 g")  # NaN: not known
    assert figures["boluses"].shown == "not recorded"  # a lake before the column: not 0
    assert (got.days, got.days_with_data) == (3, 2)
    assert got.as_json()["figures"]["bolus_u"] == {"mean_per_day": 15.0, "days": 2, "unit": "U"}


def test_without_any_event_column_nothing_is_recorded():
    got = insulin_carbs(_daily(), dt.date(2026, 3, 1), dt.date(2026, 3, 4))
    assert {f.shown for f in got.figures} == {"not recorded"}
    assert (got.days, got.days_with_data) == (4, 0)


# The markers ---------------------------------------------------------------------------------


def _utc(day: int, hour: int, minute: int) -> dt.datetime:
    return dt.datetime(2026, 1, day, hour, minute, tzinfo=dt.UTC)


def test_markers_sit_at_the_local_time_on_the_glucose_of_that_moment():
    readings = pa.table(
        {
            "ts": pa.array(
                [
                    dt.datetime(2026, 1, 10, 6, 25, tzinfo=dt.UTC),
                    dt.datetime(2026, 1, 10, 6, 35, tzinfo=dt.UTC),
                ],
                pa.timestamp("us", tz="UTC"),
            ),
            "tz": [ZONE, ZONE],
            "glucose_mg_dl": [100.0, 130.0],
        }
    )
    rows = [
        event("bolus", _utc(10, 6, 34), tz=ZONE, subtype="normal", units=4.5),
        event("carbs", _utc(10, 12, 0), tz=ZONE, subtype="meal", carbs_g=45.0),
        event("basal", _utc(10, 7, 0), tz=ZONE, subtype="temporary", rate_u_h=1.0),
        event("bolus", _utc(10, 23, 30), tz=ZONE, subtype="normal", units=2.0),
        event("bolus", _utc(9, 22, 30), tz=ZONE, subtype="normal", units=1.0),
    ]  # fmt: skip
    got = trace_markers(
        event_table(rows), local_readings(readings), (dt.date(2026, 1, 10), dt.date(2026, 1, 10))
    )
    assert [(m["date"], m["time"], m["kind"], m["amount"], m["mg_dl"]) for m in got] == [
        ("2026-01-10", "07:34", "bolus", 4.5, 130.0),  # the reading a minute after
        ("2026-01-10", "13:00", "carbs", 45.0, None),  # no reading within 10 minutes
    ]  # the basal is no marker; 23:30 UTC on the 10th is the 11th in Berlin, 22:30 on the 9th
    # the 9th's 23:30: both off the day
    assert got[0]["minute"] == 7 * 60 + 34


# The page ------------------------------------------------------------------------------------


def test_the_page_summarises_insulin_and_carbs_of_the_days_shown(lake, with_events):
    settings, key = lake
    html = _page(settings, key)
    section = _section(html, "insulin-carbs")
    assert f"Insulin and carbs, {FIRST_SHOWN.isoformat()} to {LAST.isoformat()}" in section
    assert _figures(html) == {
        "bolus_u": "20.0 U",
        "basal_u": "not recorded",
        "insulin_total_u": "not recorded",
        "carbs_g": "150 g",
        "boluses": "4.0",
        "automated_pct": "not recorded",
    }
    assert "14 of 14 days have insulin or carbs recorded" in section
    assert "7 days" in section  # carbs: the days that recorded them


def test_the_traces_carry_bolus_and_carb_markers_with_text(lake, with_events):
    settings, key = lake
    html = _page(settings, key)
    markers = _page_data(html)["markers"]
    shown_days = {m["date"] for m in markers}
    assert min(shown_days) == FIRST_SHOWN.isoformat()
    assert max(shown_days) == LAST.isoformat()
    breakfast = [m for m in markers if m["date"] == "2026-01-12"]
    assert [(m["time"], m["kind"], m["amount"]) for m in breakfast] == [
        ("07:30", "bolus", 4.5),
        ("07:30", "carbs", 60.0),
    ]
    assert breakfast[0]["mg_dl"] is not None  # on the trace
    kinds = [(m["kind"], m["subtype"]) for m in markers if m["date"] == LAST.isoformat()]
    assert sorted(kinds) == [
        ("bolus", "automatic"),
        ("bolus", "normal"),
        ("carbs", "correction"),
        ("carbs", "meal"),
    ]
    table = _section(html, "trace-events")
    assert table.count('data-kind="bolus"') == 15  # 14 meal boluses and the automatic one
    assert table.count('data-kind="carbs"') == 15
    assert "Automatic bolus" in table
    assert "Rescue carbs" in table
    label = re.search(r'id="chart-traces"[^>]*aria-label="([^"]*)"', html)
    assert label is not None
    assert "15 boluses (63.3 U) and 15 carbohydrate entries (855 g)" in label.group(1)
    assert "blue triangle marks each bolus" in html  # the legend in words


def test_both_units_render_and_mmol_says_no_mg_dl(lake, with_events):
    settings, key = lake
    mg, mmol = _page(settings, key, "mg_dl"), _page(settings, key, "mmol_l")
    assert "Glucose then (mg/dL)" in _section(mg, "trace-events")
    assert "Glucose then (mmol/L)" in _section(mmol, "trace-events")
    glucose = _page_data(mg)["markers"][0]["mg_dl"]
    first_row = re.search(r'<tr data-kind="bolus">(.*?)</tr>', _section(mmol, "trace-events"), re.S)
    assert first_row is not None
    assert f"<td>{glucose / 18.0156:.1f}</td>" in first_row.group(1)
    page = re.sub(r'<select name="unit" id="unit-select">.*?</select>', "", mmol, flags=re.S)
    page = re.sub(r'<script id="page-data".*?</script>', "", page, flags=re.S)
    assert "mg/dL" not in page
    assert _figures(mmol) == _figures(mg)  # insulin and carbs have no glucose unit


def test_the_summary_json_twin_has_the_same_figures(lake, with_events):
    settings, key = lake
    with TestClient(create_app(settings, clock=lambda: NOW)) as client:
        body = login(client, "gs_admin").get(
            f"/v1/patients/{key}/summary",
            params={"from": FIRST_SHOWN.isoformat(), "to": LAST.isoformat()},
        )
    assert body.status_code == 200, body.text
    twin = body.json()["insulin_carbs"]
    assert (twin["start"], twin["end"], twin["days"]) == ("2026-01-07", "2026-01-20", 14)
    assert twin["figures"]["bolus_u"] == {"mean_per_day": 20.0, "days": 14, "unit": "U"}
    assert twin["figures"]["carbs_g"] == {"mean_per_day": 150.0, "days": 7, "unit": "g"}
    assert twin["figures"]["basal_u"] == {"mean_per_day": None, "days": 0, "unit": "U"}


def test_without_events_nothing_is_marked_and_nothing_is_zero(lake):
    settings, key = lake
    html = _page(settings, key)
    assert set(_figures(html).values()) == {"not recorded"}
    assert _page_data(html)["markers"] == []
    assert 'id="no-trace-events"' in html
    assert "0.0 U" not in html
    assert "0 g" not in _section(html, "insulin-carbs")


def test_the_agp_report_stays_glucose_only(lake, with_events):
    settings, key = lake
    for unit in ("mg_dl", "mmol_l"):
        html = render_agp_html(settings, key, unit=unit, now=NOW)
        visible = re.sub(r"<script.*?</script>|<style.*?</style>|<[^>]+>", " ", html, flags=re.S)
        assert INSULIN_WORDS.search(visible) is None, INSULIN_WORDS.search(visible)
        data = _page_data(html)
        assert "markers" not in data
        assert not any(INSULIN_WORDS.search(k) for k in data)
    # the events were there to be shown: the page of the same run shows them
    assert _page_data(_page(settings, key))["markers"]


def test_ingested_treatments_reach_the_page(tmp_path, settings):
    from glucosestream.access import hash_token
    from glucosestream.ingest import ingest_path
    from glucosestream.lake import open_access

    records = [
        {"patient_id": "P1", "time": (START + dt.timedelta(minutes=5 * i)).isoformat(),
         "glucose_mg_dl": _glucose(i), "tz": ZONE}
        for i in range(3 * 288)
    ]  # fmt: skip
    ingest_records(settings, records)
    treatments = [
        {"eventType": "Meal Bolus", "created_at": f"2026-01-0{5 + n}T06:30:00.000Z",
         "insulin": 4.5, "carbs": 60, "enteredBy": "pump"}
        for n in range(3)
    ]  # fmt: skip
    source = tmp_path / "treatments.json"
    source.write_text(json.dumps(treatments), encoding="utf-8")
    ingest_path(settings, source, patient_id="P1", tz=ZONE)
    pump = tmp_path / "pump.json"  # a pump's data, no sensor's (other bytes: another file)
    pump.write_text(json.dumps(treatments, indent=1), encoding="utf-8")
    ingest_path(settings, pump, patient_id="P2", tz=ZONE)
    assert run_pipeline(settings).status == "published"
    open_access(settings.lake).tokens.add_token(
        hash_token("gs_admin"), "admin", label="a", created_at=NOW
    )
    key, pump_only = (patient_key(SECRET.encode(), p) for p in ("P1", "P2"))
    with TestClient(create_app(settings, clock=lambda: NOW)) as client:
        login(client, "gs_admin")
        html = client.get(f"/patients/{key}").text
        pump_page = client.get(f"/patients/{pump_only}")
        pump_json = client.get(f"/v1/patients/{pump_only}/summary")
    assert pump_page.status_code == 200, pump_page.text
    assert _figures(pump_page.text)["bolus_u"] == "4.5 U"
    # no readings: no AGP, comparison or overlay to link to (each would answer 404)
    assert f"/patients/{pump_only}/compare" not in pump_page.text
    assert f"/patients/{pump_only}/agp" not in pump_page.text
    assert f"/patients/{key}/compare" in html
    assert pump_json.status_code == 200, pump_json.text  # days without readings: no traceback
    assert pump_json.json()["insulin_carbs"]["figures"]["carbs_g"]["mean_per_day"] == 60.0
    assert pump_json.json()["summary"]["metrics"]["mean_mg_dl"] is None
    assert _figures(html)["bolus_u"] == "4.5 U"
    assert _figures(html)["carbs_g"] == "60 g"
    assert {(m["time"], m["kind"]) for m in _page_data(html)["markers"]} == {
        ("07:30", "bolus"),
        ("07:30", "carbs"),
    }


# In a browser (slow tier) --------------------------------------------------------------------

SHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "issue19"


@pytest.mark.parametrize("unit", ["mg_dl", "mmol_l"])
@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}")
def test_the_browser_draws_the_markers_and_their_legend(lake, with_events, unit):
    settings, key = lake
    with served(create_app(settings, clock=lambda: NOW)) as base, chromium() as browser:
        page, errors = logged_in(browser, base, "gs_admin", width=1200, height=1400)
        page.context.add_cookies([{"name": "gs_unit", "value": unit, "url": base}])
        page.goto(f"{base}/patients/{key}")
        page.wait_for_selector("body[data-rendered='1']")
        chart = page.locator("#chart-traces")
        legend = chart.locator(".legend").text_content() or ""
        for name in ("Glucose", "Bolus (U)", "Automatic bolus (U)", "Carbs (g)"):
            assert name in legend, legend
        labels = chart.locator(".textpoint text").all_text_contents()
        assert labels.count("4.5 U") == 14  # the meal boluses; the automatic one unlabelled
        assert labels.count("60 g") == 14
        assert labels.count("15 g") == 1
        ticks = chart.locator(".ytick text").all_text_contents()
        assert ticks[:4] == (["54", "70", "180", "250"] if unit == "mg_dl" else
                             ["3.0", "3.9", "10.0", "13.9"])  # fmt: skip
        assert "15 boluses" in (chart.get_attribute("aria-label") or "")
        summary = page.locator("#insulin-carbs").inner_text()
        assert "20.0 U" in summary
        assert "not recorded" in summary
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.locator("#insulin-carbs").scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"patient-page-{unit}.png"), full_page=True)
        chart.screenshot(path=str(SHOTS / f"daily-traces-markers-{unit}.png"))
        assert errors == []


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}")
@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
def test_the_agp_pdf_stays_glucose_only(lake, with_events, tmp_path):
    from glucosestream.dashboard.report import render_agp_pdf

    settings, key = lake
    out = tmp_path / "agp.pdf"
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API wants a thread of its own
        pool.submit(render_agp_pdf, settings, key, out, unit="mmol_l").result()
    text = subprocess.run(
        ["pdftotext", str(out), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "daily glucose profiles" in text.lower()  # the report is all there
    assert INSULIN_WORDS.search(text) is None, INSULIN_WORDS.search(text)
