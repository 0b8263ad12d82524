"""The period comparison (this fortnight against the one before) and the daily overlay, on the
clinic's hand-made lake (tests/test_triage_clinic.py): windows, metrics, changes against the
targets, both AGP curves, the days drawn, units, authorisation and the audit trail."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from glucosestream.app import create_app
from glucosestream.lake import open_access

from .test_dashboard_lake import login
from .test_triage_clinic import clinic  # noqa: F401

BANDS = ("pct_below_54", "pct_54_69", "pct_70_180", "pct_181_250", "pct_above_250")


def _get(client, path, token="t_admin"):
    return client.get(path, headers={"Authorization": f"Bearer {token}"})


def test_comparison_sets_this_fortnight_against_the_one_before(clinic):  # noqa: F811
    settings, keys = clinic
    with TestClient(create_app(settings)) as client:
        response = _get(client, f"/v1/patients/{keys['DROP']}/compare")
    assert response.status_code == 200, response.text
    body = response.json()
    current, previous = body["current"], body["previous"]
    assert (current["start"], current["end"]) == ("2026-01-21", "2026-02-03")
    assert (previous["start"], previous["end"]) == ("2026-01-07", "2026-01-20")
    assert body["partial_day"] is None
    rows = {r["metric"]: r for r in body["metrics"]}
    tir = rows["pct_70_180"]
    assert tir["previous"] == pytest.approx(100.0)
    assert tir["current"] == pytest.approx(100.0 * 53 / 96, abs=0.2)
    assert tir["change"] == pytest.approx(tir["current"] - tir["previous"])
    assert (tir["improved"], tir["meets_current"], tir["meets_previous"]) == (False, False, True)
    assert tir["target_min"] == 70.0
    mean = rows["mean_mg_dl"]
    assert mean["change"] > 0
    assert mean["improved"] is None  # a mean has no better way by itself
    assert rows["pct_below_54"]["target_max"] == 1.0
    assert rows["pct_below_54"]["meets_current"] is True
    assert rows["pct_below_54"]["improved"] is None  # 0 % both times: no change to judge
    for window in (current, previous):
        assert sum(window["metrics"][b] for b in BANDS) == pytest.approx(100.0, abs=0.01)
        assert sum(r["pct"] for r in window["ranges"]) == pytest.approx(100.0, abs=0.01)
        agp = window["agp"]
        assert len(agp["minute_of_day"]) == 96  # one per 15-minute slot of the day
        assert all(lo <= hi for lo, hi in zip(agp["p25_mg_dl"], agp["p75_mg_dl"], strict=True))
    # The two fortnights' medians differ where DROP's current days run high (00:00-10:45).
    assert max(current["agp"]["p50_mg_dl"]) > max(previous["agp"]["p50_mg_dl"]) + 50


def test_comparison_leaves_the_partial_day_out(clinic):  # noqa: F811
    settings, keys = clinic
    with TestClient(create_app(settings)) as client:
        body = _get(client, f"/v1/patients/{keys['PART']}/compare").json()
    assert body["partial_day"] == "2026-02-04"
    assert body["current"]["end"] == "2026-02-03"
    assert body["current"]["metrics"]["mean_mg_dl"] == pytest.approx(140.0)


def test_comparison_page_in_mmol_with_targets_and_both_bars(clinic):  # noqa: F811
    settings, keys = clinic
    with TestClient(create_app(settings)) as client:
        login(client, "t_north")
        client.cookies.set("gs_unit", "mmol_l")
        html = client.get(f"/patients/{keys['DROP']}/compare").text
    main = html.split("<main>")[1]
    assert "This fortnight against the one before" in main
    assert "ID DROP" in main  # the patient by the id as ingested
    assert "Time in range (3.9\N{EN DASH}10.0 mmol/L)" in main
    assert "mg/dL" not in main
    assert main.count('class="tir-hbar"') == 2
    assert "(worse)" in main
    assert "✗ off target" in main
    assert 'id="chart-compare-agp"' in main


def test_overlay_draws_each_day_of_the_window_and_marks_the_partial_one(clinic):  # noqa: F811
    settings, keys = clinic
    with TestClient(create_app(settings)) as client:
        drop = _get(client, f"/v1/patients/{keys['DROP']}/overlay").json()
        part = _get(client, f"/v1/patients/{keys['PART']}/overlay").json()
        earlier = _get(client, f"/v1/patients/{keys['DROP']}/overlay?end=2026-01-25").json()
        gap = _get(client, f"/v1/patients/{keys['GAP']}/overlay").json()
    dates = [d["date"] for d in drop["days"]]
    assert (drop["start"], drop["end"]) == ("2026-01-21", "2026-02-03")
    assert dates == sorted(dates)
    assert (len(dates), dates[0], dates[-1]) == (14, "2026-01-21", "2026-02-03")
    for day in drop["days"]:
        assert len(day["minute"]) == 96
        assert day["minute"][0] >= 0
        assert day["minute"][-1] < 1440
        assert not day["partial"]
    assert drop["thresholds_mg_dl"] == [54.0, 70.0, 180.0, 250.0]
    assert [d["date"] for d in part["days"]][-1] == "2026-02-04"
    assert part["days"][-1]["partial"] is True
    assert len(part["days"][-1]["minute"]) == 41
    assert sum(d["partial"] for d in part["days"]) == 1
    assert (earlier["start"], earlier["end"], earlier["partial_day"]) == (
        "2026-01-12",
        "2026-01-25",
        None,
    )
    assert len(gap["days"]) == 4


def test_overlay_page_in_the_viewers_unit(clinic):  # noqa: F811
    settings, keys = clinic
    with TestClient(create_app(settings)) as client:
        login(client, "t_admin")
        mg = client.get(f"/patients/{keys['PART']}/overlay").text
        client.cookies.set("gs_unit", "mmol_l")
        mmol = client.get(f"/patients/{keys['PART']}/overlay").text
    assert "Target range 70\N{EN DASH}180 mg/dL" in mg
    assert "2026-02-04 is still being recorded" in mg
    assert "Target range 3.9\N{EN DASH}10.0 mmol/L" in mmol
    assert '"unit": "mmol_l"' in mmol


def test_clinic_pages_are_authorised_and_audited(clinic):  # noqa: F811
    settings, keys = clinic
    south_patient = keys["GOOD"]
    with TestClient(create_app(settings)) as client:
        refused = [
            _get(client, f"/v1/patients/{south_patient}/{page}", "t_north")
            for page in ("compare", "overlay")
        ]
        missing = _get(client, "/v1/patients/" + "0" * 32 + "/compare")
        anonymous = client.get(f"/v1/patients/{south_patient}/compare")
        page = client.get(f"/patients/{south_patient}/overlay", follow_redirects=False)
        _get(client, f"/v1/patients/{keys['LOW']}/compare", "t_north")
    assert [r.status_code for r in refused] == [403, 403]
    assert all(r.json()["ok"] is False for r in refused)
    assert missing.status_code == 404
    assert anonymous.status_code == 401
    assert page.status_code in (302, 303)  # to /login
    actions = [e.action for e in open_access(settings.lake).audit.access_entries(keys["LOW"])]
    assert "api.compare" in actions
