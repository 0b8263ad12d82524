"""The AGP report's and the patient page's window (issue 18): the last complete local day ends
it, a partial newest day is shown and marked but never counted; the percentile curves are
smoothed; every label is in the viewer's unit; the header names the patient."""

from __future__ import annotations

import datetime as dt
import json
import math
import re

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from glucosestream.app import create_app
from glucosestream.dashboard.pages import _range
from glucosestream.dashboard.patientdata import smooth_agp, window_of
from glucosestream.dashboard.range_labels import range_labels
from glucosestream.dashboard.report import render_agp_html
from glucosestream.ingest import ingest_records
from glucosestream.ingest.identity import patient_key
from glucosestream.metrics import ReportWindow, agp_profile
from glucosestream.pipeline import run_pipeline
from glucosestream.published import DailyIndex

from .conftest import SECRET
from .test_dashboard_lake import login

D = "\N{EN DASH}"  # between a range's bounds, as the pages print them

START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
FULL_DAYS = 20  # 2026-01-05 .. 2026-01-24, then a partial day
PARTIAL = dt.date(2026, 1, 25)
PARTIAL_UNTIL = dt.time(9, 0)  # the partial day's last reading
PARTIAL_MG_DL = 60.0  # every reading of the partial day: counted, it would show as lows
NOW = dt.datetime(2026, 1, 25, 9, 30, tzinfo=dt.UTC)


def _reading(patient: str, at: dt.datetime, glucose: float) -> dict:
    return {"patient_id": patient, "time": at.isoformat(), "glucose_mg_dl": glucose, "tz": "UTC"}


def _records() -> list[dict]:
    """P1: 20 full days of a daily sine 110-170 mg/dL (never below 70) every 5 minutes, then
    the partial day at 60 mg/dL until 09:00."""
    out = []
    for i in range(FULL_DAYS * 288):
        glucose = 140 + 30 * math.sin(i / 288 * 2 * math.pi)
        out.append(_reading("P1", START + dt.timedelta(minutes=5 * i), round(glucose, 1)))
    partial_start = dt.datetime.combine(PARTIAL, dt.time(), dt.UTC)
    for i in range(PARTIAL_UNTIL.hour * 12 + 1):
        out.append(_reading("P1", partial_start + dt.timedelta(minutes=5 * i), PARTIAL_MG_DL))
    return out


@pytest.fixture(scope="module")
def partial_lake(tmp_path_factory):
    from glucosestream.access import hash_token
    from glucosestream.config import IngestSettings, LakeSettings, Settings
    from glucosestream.lake import open_access

    root = tmp_path_factory.mktemp("agp-window") / "lake"
    settings = Settings(
        lake=LakeSettings(root=str(root)), ingest=IngestSettings(pseudonym_secret=SECRET)
    )
    ingest_records(settings, _records())
    assert run_pipeline(settings).status == "published"
    store = open_access(settings.lake)
    store.tokens.add_token(hash_token("gs_admin"), "admin", label="a", created_at=NOW)
    return settings, patient_key(SECRET.encode(), "P1")


def _page_data(html: str) -> dict:
    found = re.search(r'<script id="page-data" type="application/json">(.*?)</script>', html, re.S)
    assert found is not None
    return json.loads(found.group(1))


def _readings(times: list[str], zone: str) -> pa.Table:
    ts = pa.array([dt.datetime.fromisoformat(t) for t in times], pa.timestamp("us", "UTC"))
    return pa.table({"ts": ts, "tz": pa.array([zone] * len(times))})


# The window rule on readings -------------------------------------------------------------


def test_the_window_ends_on_the_last_complete_local_day():
    # Newest at 23:50 UTC: the day is complete and ends the window.
    complete = window_of(_readings(["2026-01-24T12:00+00:00", "2026-01-24T23:50+00:00"], "UTC"),
                         dt.date(2026, 1, 24))  # fmt: skip
    assert complete == ReportWindow(dt.date(2026, 1, 11), dt.date(2026, 1, 24), None)
    # Newest at 09:00: that day is partial, the window ends the day before.
    partial = window_of(_readings(["2026-01-25T09:00+00:00"], "UTC"), dt.date(2026, 1, 25))
    assert partial == ReportWindow(dt.date(2026, 1, 11), dt.date(2026, 1, 24), PARTIAL)
    assert partial.days == 14


def test_the_window_reads_the_newest_reading_on_the_patients_own_clock():
    # 04:50 UTC on the 20th is 23:50 on the 19th in New York (EST, UTC-5): complete.
    ny = window_of(_readings(["2026-01-20T04:50+00:00"], "America/New_York"), dt.date(2026, 1, 19))
    assert (ny.end, ny.partial_day) == (dt.date(2026, 1, 19), None)
    # 04:50 UTC is 13:50 in Tokyo: the 20th is partial.
    tokyo = window_of(_readings(["2026-01-20T04:50+00:00"], "Asia/Tokyo"), dt.date(2026, 1, 20))
    assert (tokyo.end, tokyo.partial_day) == (dt.date(2026, 1, 19), dt.date(2026, 1, 20))


def test_without_readings_the_window_ends_on_the_last_daily_row():
    empty = _readings([], "UTC")
    assert window_of(empty, dt.date(2026, 1, 24)).end == dt.date(2026, 1, 24)


def test_the_page_range_never_reaches_past_the_last_complete_day():
    table = pa.table({"date": [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(25)]})
    daily = DailyIndex(table, {"k": (0, 25)})
    window = ReportWindow(dt.date(2026, 1, 11), dt.date(2026, 1, 24), PARTIAL)
    assert _range(daily, "k", (None, None), window) == (dt.date(2026, 1, 1), window.end)
    assert _range(daily, "k", (None, PARTIAL), window)[1] == window.end
    # Only the partial day asked for: the last complete day instead, never the partial one.
    assert _range(daily, "k", (PARTIAL, PARTIAL), window) == (window.end, window.end)
    # Dates in the wrong order are swapped, as before.
    assert _range(daily, "k", (dt.date(2026, 1, 9), dt.date(2026, 1, 3)), window) == (
        dt.date(2026, 1, 3),
        dt.date(2026, 1, 9),
    )


# The AGP report ------------------------------------------------------------------------


def test_the_agp_counts_14_complete_days_and_names_the_partial_one(partial_lake):
    settings, key = partial_lake
    html = render_agp_html(settings, key, now=NOW)
    data = _page_data(html)
    assert (data["start"], data["end"]) == ("2026-01-11", "2026-01-24")
    assert data["days"] == 14
    assert [t["date"] for t in data["traces"]] == [
        (dt.date(2026, 1, 11) + dt.timedelta(days=i)).isoformat() for i in range(14)
    ]
    assert data["partial"]["date"] == PARTIAL.isoformat()
    assert data["partial"]["until"] == "09:00"
    assert 'id="partial-day"' in html
    assert "2026-01-25 is partial (readings until 09:00): not counted" in html
    assert "(14 days)" in html
    # Counted, the partial day's 60 mg/dL would be lows and pull the 5th percentile down.
    assert "Less than 14 days" not in html
    assert re.search(r"Low <small>[^<]*</small></td>\s*<td class=\"pct\">0%", html)
    assert min(v for v in data["agp"]["p05_mg_dl"] if v is not None) > 100


def test_an_end_on_the_partial_day_is_the_last_complete_day(partial_lake):
    settings, key = partial_lake
    data = _page_data(render_agp_html(settings, key, end=PARTIAL, now=NOW))
    assert data["end"] == "2026-01-24"
    earlier = _page_data(render_agp_html(settings, key, end=dt.date(2026, 1, 20), now=NOW))
    assert (earlier["start"], earlier["end"]) == ("2026-01-07", "2026-01-20")
    assert earlier["partial"] is None  # the report does not reach the newest days


def test_the_patient_page_shows_the_partial_day_apart(partial_lake):
    settings, key = partial_lake
    with TestClient(create_app(settings, clock=lambda: NOW)) as client:
        html = login(client, "gs_admin").get(f"/patients/{key}").text
    data = _page_data(html)
    dates = [t["date"] for t in data["traces"]]
    assert len(dates) == 14
    assert dates[-1] == "2026-01-24"
    assert PARTIAL.isoformat() not in [d["date"] for d in data["days"]]
    assert [d["date"] for d in data["partial_days"]] == [PARTIAL.isoformat()]
    assert data["partial"]["trace"]["date"] == PARTIAL.isoformat()
    assert set(data["partial"]["trace"]["mg_dl"]) == {PARTIAL_MG_DL}
    assert "Daily glucose, 14 days: 2026-01-11 to 2026-01-24" in html
    assert "2026-01-25 is partial" in html
    # The page's figures are those of the 14 complete days: no lows.
    assert data["days"][-1]["date"] == "2026-01-24"


# Units -----------------------------------------------------------------------------------


def _without_unit_picker(html: str) -> str:
    """The page less the unit picker (whose options name both units) and the page data
    (column names such as ``mean_mg_dl``)."""
    html = re.sub(r'<select name="unit" id="unit-select">.*?</select>', "", html, flags=re.S)
    return re.sub(r'<script id="page-data".*?</script>', "", html, flags=re.S)


def test_the_range_labels_follow_the_unit():
    mg, mmol = range_labels("mg_dl"), range_labels("mmol_l")
    assert (mg.very_low, mg.low, mg.target, mg.high, mg.very_high) == (
        "<54", f"54{D}69", f"70{D}180", f"181{D}250", ">250",
    )  # fmt: skip
    assert (mmol.very_low, mmol.low, mmol.target, mmol.high, mmol.very_high) == (
        "<3.0", f"3.0{D}3.8", f"3.9{D}10.0", f"10.1{D}13.9", ">13.9",
    )  # fmt: skip
    assert (mmol.t54, mmol.t70, mmol.t180, mmol.t250) == ("3.0", "3.9", "10.0", "13.9")


def test_in_mmol_the_agp_report_says_no_mg_dl(partial_lake):
    settings, key = partial_lake
    mmol = render_agp_html(settings, key, unit="mmol_l", now=NOW)
    mg = render_agp_html(settings, key, unit="mg_dl", now=NOW)
    assert "mg/dL" not in _without_unit_picker(mmol)
    assert f"3.9{D}10.0 mmol/L" in mmol
    assert f"10.1{D}13.9 mmol/L" in mmol
    assert "below 3.0 under 1%" in mmol
    assert f"70{D}180 mg/dL" in mg
    assert "mmol/L" not in _without_unit_picker(mg)
    data = _page_data(mmol)
    assert data["unit"] == "mmol_l"
    assert data["thresholds_mg_dl"] == [54.0, 70.0, 180.0, 250.0]
    assert data["ranges"]["target"] == f"3.9{D}10.0"


def test_in_mmol_the_patient_page_says_no_mg_dl(partial_lake):
    settings, key = partial_lake
    with TestClient(create_app(settings, clock=lambda: NOW)) as client:
        login(client, "gs_admin")
        client.cookies.set("gs_unit", "mmol_l")
        mmol = client.get(f"/patients/{key}").text
        client.cookies.set("gs_unit", "mg_dl")
        mg = client.get(f"/patients/{key}").text
    assert _page_data(mmol)["unit"] == "mmol_l"
    assert "mg/dL" not in _without_unit_picker(mmol)
    assert "between 3.9 and 10.0 mmol/L" in mmol
    assert "between 70 and 180 mg/dL" in mg
    assert "mmol/L" not in _without_unit_picker(mg)


# Smoothing -------------------------------------------------------------------------------


def _agp_table(minutes: np.ndarray, curves: dict[str, np.ndarray]) -> pa.Table:
    return pa.table({"minute_of_day": pa.array(minutes, pa.int16()), **curves})


def test_smoothing_keeps_a_curve_that_is_already_smooth():
    minutes = np.arange(5, 1441, 5)
    quadratic = 100 + 0.05 * minutes - 0.00003 * minutes.astype(float) ** 2
    names = ["p05_mg_dl", "p25_mg_dl", "p50_mg_dl", "p75_mg_dl", "p95_mg_dl"]
    out = smooth_agp(_agp_table(minutes, {n: quadratic + k for k, n in enumerate(names)}))
    for k, name in enumerate(names):  # loess of degree 2 reproduces a quadratic exactly
        assert out[name] == pytest.approx(np.round(quadratic + k, 1).tolist(), abs=0.051)
    assert out["minute_of_day"] == minutes.tolist()


def test_percentiles_per_time_of_day_by_hand_then_smoothed():
    """Five days, each a constant 100, 110, 120, 130, 140 mg/dL: at every time of day the
    linear (type 7) percentiles are 5 %: 100 + 0.2 x 10 = 102, 25 %: 110, 50 %: 120,
    75 %: 130, 95 %: 138. The grid's last time of day, 24:00, is the next midnight: four days
    have one (110 .. 140), so there the 5th percentile is 110 + 0.15 x 10 = 111.5. Smoothing
    keeps each curve at its constant farther from 24:00 than the span reaches."""
    start = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    ts, glucose = [], []
    for day in range(5):
        for i in range(288):
            ts.append(start + dt.timedelta(days=day, minutes=5 * i))
            glucose.append(100.0 + 10 * day)
    readings = pa.table(
        {
            "patient_key": ["k"] * len(ts),
            "ts": pa.array(ts, pa.timestamp("us", "UTC")),
            "tz": ["UTC"] * len(ts),
            "glucose_mg_dl": glucose,
        }
    )
    window = pa.table(
        {"patient_key": ["k"], "period_start": [dt.date(2026, 3, 2)],
         "period_end": [dt.date(2026, 3, 6)]}
    )  # fmt: skip
    raw = agp_profile(readings, window, run_id="t", computed_at=NOW)
    minutes = raw["minute_of_day"].to_pylist()
    assert minutes == list(range(5, 1441, 5))
    expected = {"p05_mg_dl": 102.0, "p25_mg_dl": 110.0, "p50_mg_dl": 120.0,
                "p75_mg_dl": 130.0, "p95_mg_dl": 138.0}  # fmt: skip
    assert raw["p05_mg_dl"].to_pylist()[-1] == pytest.approx(111.5)
    curves = smooth_agp(raw)
    far = [i for i, m in enumerate(minutes) if 1440 - m > 0.3 * 1440]
    for name, value in expected.items():
        assert raw[name].to_pylist()[:-1] == pytest.approx([value] * 287), name
        assert [curves[name][i] for i in far] == pytest.approx([value] * len(far)), name
        # a local quadratic may dip a tenth below the constant beside the step at 24:00
        assert all(value - 0.2 <= v <= raw[name][-1].as_py() for v in curves[name]), name


def test_smoothing_flattens_a_spike_and_leaves_empty_bins_empty():
    minutes = np.arange(15, 1441, 15)
    flat = np.full(minutes.size, 120.0)
    spiky = flat.copy()
    spiky[40] = 220.0  # one time-of-day bin far above its neighbours
    spiky[10] = np.nan  # a time of day no day has a value at
    cols = {n: spiky for n in ("p05_mg_dl", "p25_mg_dl", "p50_mg_dl", "p75_mg_dl", "p95_mg_dl")}
    out = smooth_agp(_agp_table(minutes, cols))["p50_mg_dl"]
    assert out[10] is None
    assert 120.0 < out[40] < 150.0  # the spike spread over the span, not drawn as measured
    roughness = np.abs(np.diff([v for v in out if v is not None], 2)).sum()
    assert roughness < np.abs(np.diff(spiky[~np.isnan(spiky)], 2)).sum() / 5


def test_the_page_draws_the_smoothed_curves(partial_lake):
    settings, key = partial_lake
    data = _page_data(render_agp_html(settings, key, now=NOW))
    p50 = [v for v in data["agp"]["p50_mg_dl"] if v is not None]
    # The sine's median is itself smooth: the drawn curve stays within 1 mg/dL of it.
    minutes = np.asarray(data["agp"]["minute_of_day"], float)
    sine = 140 + 30 * np.sin(minutes / 1440 * 2 * np.pi)
    assert np.max(np.abs(np.asarray(p50) - sine)) < 1.0


# Who the report is for -------------------------------------------------------------------


def test_the_report_names_the_patient_by_their_id(partial_lake):
    settings, key = partial_lake
    html = render_agp_html(settings, key, now=NOW)
    head = html[html.index('id="agp-patient"') : html.index('id="agp-period"')]
    assert "ID P1" in head
    assert "Name:" not in head
    with TestClient(create_app(settings, clock=lambda: NOW)) as client:
        page = login(client, "gs_admin").get(f"/patients/{key}").text
    assert "ID P1" in page[page.index('id="patient-head"') :][:600]


def test_without_an_id_the_report_leaves_name_and_dob_lines(partial_lake, monkeypatch):
    from glucosestream.dashboard import report
    from glucosestream.dashboard.patient_names import PatientName

    settings, key = partial_lake
    monkeypatch.setattr(report, "patient_name_for", lambda _s, k: PatientName(k, None, None))
    html = render_agp_html(settings, key, now=NOW)
    head = html[html.index('id="agp-patient"') : html.index('id="agp-period"')]
    assert "Name:" in head
    assert "DOB:" in head
    assert "P1" not in head


def test_the_report_routes_take_a4_or_letter_only(partial_lake):
    settings, key = partial_lake
    with TestClient(create_app(settings, clock=lambda: NOW)) as client:
        login(client, "gs_admin")
        letter = client.get(f"/patients/{key}/agp?paper=letter")
        a4 = client.get(f"/patients/{key}/agp")
        wrong = client.get(f"/patients/{key}/agp.pdf?paper=a5")
    assert "@page { size: Letter; margin: 0.25in; }" in letter.text
    assert "agp.pdf?paper=letter" in letter.text
    assert "@page { size: A4; margin: 0.25in; }" in a4.text
    assert wrong.status_code == 422
    body = wrong.json()
    assert body["ok"] is False
    assert body["status"] == 422
