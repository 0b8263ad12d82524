"""The patient page's now panel: its numbers by hand (PURE now_panel), then against a small
published lake and the app's live window (page, JSON twin, audit), and the alert routes'
authorization (who may list, acknowledge and snooze whose alerts)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pytest

from glucosestream.dashboard.now import ARROWS, now_panel

AT = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class R:
    """A reading as the panel reads it (``live.LiveReading`` has these fields)."""

    device_id: str
    ts: dt.datetime
    glucose_mg_dl: float
    tz: str = "UTC"
    direction: str | None = None
    rate_mg_dl_min: float | None = None


@dataclass(frozen=True)
class Alert:
    """The fields of ``alerts.AlertRow`` the panel shows."""

    alert_id: str
    patient_key: str = "k"
    kind: str = "low"
    state: str = "active"
    level: str | None = None
    fired_at: dt.datetime = AT - 30 * MIN
    reading_ts: dt.datetime | None = None
    glucose_mg_dl: float | None = 65.0
    cleared_at: dt.datetime | None = None
    acked_at: dt.datetime | None = None
    acked_by: str | None = None
    suppressed: bool = False
    snoozed_until: dt.datetime | None = None
    deliveries: dict[str, int] = field(default_factory=dict)


def panel(readings, *, at=AT, alerts=(), unpublished=0):
    return now_panel(
        readings,
        at=at,
        unpublished=unpublished,
        alerts=list(alerts),
        stale_warn_min=20.0,
        stale_urgent_min=40.0,
    )


def test_the_newest_reading_with_the_direction_the_uploader_sent():
    readings = [
        R("d", AT - 15 * MIN, 120.0),
        R("d", AT - 5 * MIN, 101.0, direction="FortyFiveDown"),  # newest, out of order
        R("d", AT - 10 * MIN, 110.0),
    ]
    p = panel(readings, unpublished=1)
    assert (p.glucose_mg_dl, p.reading_at, p.minutes_ago) == (101.0, AT - 5 * MIN, 5.0)
    assert (p.direction, p.arrow) == ("FortyFiveDown", "↘")
    assert p.rate_mg_dl_min == pytest.approx(-1.8)  # computed: 9 mg/dL in 5 min
    assert p.stale is None
    assert p.unpublished == 1


def test_without_a_direction_the_rate_gives_it_computed_or_sent():
    falling = [R("d", AT - 10 * MIN, 140.0), R("d", AT - 5 * MIN, 127.5)]  # -2.5 mg/dL/min
    p = panel(falling)
    assert p.rate_mg_dl_min == pytest.approx(-2.5)
    assert (p.direction, p.arrow) == ("SingleDown", ARROWS["SingleDown"])
    sent = [R("d", AT - 10 * MIN, 140.0), R("d", AT - 5 * MIN, 127.5, rate_mg_dl_min=1.5)]
    assert panel(sent).direction == "FortyFiveUp"  # the uploader's rate wins over the values
    other_device = [R("a", AT - 10 * MIN, 140.0), R("b", AT - 5 * MIN, 127.5)]
    q = panel(other_device)
    assert (q.direction, q.arrow, q.rate_mg_dl_min) == (None, None, None)


@pytest.mark.parametrize(
    ("age_min", "stale"),
    [(0.0, None), (19.9, None), (20.0, "warn"), (39.9, "warn"), (40.0, "urgent"), (300, "urgent")],
)
def test_stale_data_at_the_alert_rules_20_and_40_minutes(age_min, stale):
    p = panel([R("d", AT - dt.timedelta(minutes=age_min), 100.0)])
    assert p.stale == stale
    assert p.minutes_ago == pytest.approx(age_min)


def test_no_reading_at_all_is_urgently_stale_and_shows_no_value():
    p = panel([])
    assert (p.glucose_mg_dl, p.arrow, p.minutes_ago, p.stale) == (None, None, None, "urgent")
    assert p.as_json()["trace"] == {"date": "2026-03-10", "minute": [], "mg_dl": []}


def test_todays_trace_is_the_patients_local_day():
    ny = "America/New_York"  # UTC-4 on 2026-03-10 (summer time from 03-08)
    readings = [
        R("d", dt.datetime(2026, 3, 10, 3, 30, tzinfo=dt.UTC), 90.0, ny),  # 23:30 on the 9th
        R("d", dt.datetime(2026, 3, 10, 4, 30, tzinfo=dt.UTC), 95.04, ny),  # 00:30
        R("d", dt.datetime(2026, 3, 10, 11, 55, tzinfo=dt.UTC), 130.0, ny),  # 07:55
    ]
    trace = panel(readings).trace
    assert trace == {"date": "2026-03-10", "minute": [30.0, 475.0], "mg_dl": [95.0, 130.0]}
    late = panel(readings, at=dt.datetime(2026, 3, 10, 3, 50, tzinfo=dt.UTC))  # 23:50 local
    assert late.trace["date"] == "2026-03-09"


def test_active_alerts_and_dead_letters_as_json():
    alerts = [
        Alert("al_2", kind="urgent_low", glucose_mg_dl=52.0),
        Alert("al_1", state="cleared", cleared_at=AT - 20 * MIN, deliveries={"dead": 2}),
        Alert("al_0", state="cleared", deliveries={"delivered": 1}),
    ]
    out = panel([R("d", AT, 52.0)], alerts=alerts).as_json()
    assert [a["alert_id"] for a in out["alerts"]] == ["al_2"]
    assert out["alerts"][0]["fired_at"] == (AT - 30 * MIN).isoformat()
    assert [(a["alert_id"], a["deliveries"]) for a in out["dead_letters"]] == [
        ("al_1", {"dead": 2})
    ]


# --- the panel in the app: a small published lake, readings posted since, the routes ---------

LAKE_START = dt.datetime(2026, 3, 8, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 3, 10, 0, 12, tzinfo=dt.UTC)  # 17 minutes after the last published


@dataclass(frozen=True)
class Lake:
    settings: object
    keys: dict[str, str]


def _published_readings(patient: str) -> list[dict]:
    return [
        {
            "patient_id": patient,
            "time": (LAKE_START + 5 * i * MIN).isoformat(),
            "glucose_mg_dl": 100.0 + i % 12,
            "tz": "UTC",
        }
        for i in range(2 * 288)
    ]


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Lake:
    from glucosestream.access import hash_token
    from glucosestream.config import IngestSettings, LakeSettings, Settings
    from glucosestream.ingest import ingest_records
    from glucosestream.ingest.identity import patient_key
    from glucosestream.lake import open_access
    from glucosestream.pipeline import run_pipeline

    from .conftest import SECRET

    root = tmp_path_factory.mktemp("now") / "lake"
    settings = Settings(
        lake=LakeSettings(root=str(root)), ingest=IngestSettings(pseudonym_secret=SECRET)
    )
    ingest_records(settings, _published_readings("P1") + _published_readings("P2"))
    assert run_pipeline(settings).status == "published"
    keys = {p: patient_key(SECRET.encode(), p) for p in ("P1", "P2", "P9")}
    store = open_access(settings.lake)
    made = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    for token, role, extra in [
        ("gs_admin", "admin", {}),
        ("gs_up", "uploader", {"patient_keys": [keys["P1"], keys["P9"]]}),
        ("gs_north", "clinician", {"clinic_id": "north"}),
        ("gs_south", "clinician", {"clinic_id": "south"}),
        ("gs_p1", "patient", {"patient_keys": [keys["P1"]]}),
        ("gs_p2", "patient", {"patient_keys": [keys["P2"]]}),
    ]:
        store.tokens.add_token(hash_token(token), role, label=token, created_at=made, **extra)
    store.clinics.add_clinic_patients("north", [keys["P1"]])
    store.clinics.add_clinic_patients("south", [keys["P2"]])
    return Lake(settings, keys)


def _client(lake: Lake):
    from fastapi.testclient import TestClient

    from glucosestream.app import create_app

    return TestClient(create_app(lake.settings, clock=lambda: NOW))


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _post(
    client, patient: str, minutes_before: float, glucose: float, token: str = "gs_up", **extra
) -> None:
    reading = {
        "patient_id": patient,
        "time": (NOW - dt.timedelta(minutes=minutes_before)).isoformat(),
        "glucose_mg_dl": glucose,
        "tz": "UTC",
        **extra,
    }
    response = client.post("/v1/readings", json={"readings": [reading]}, headers=_bearer(token))
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1


def test_the_panel_merges_the_published_readings_with_those_posted_since(lake):
    from glucosestream.dashboard.audit import audit_lines

    key = lake.keys["P1"]
    with _client(lake) as client:
        before = client.get(f"/v1/patients/{key}/now", headers=_bearer("gs_admin")).json()["now"]
        # the last published reading: 2026-03-09 23:55, the 576th (i = 575: 100 + 575 % 12)
        assert (before["glucose_mg_dl"], before["minutes_ago"]) == (111.0, 17.0)
        assert (before["stale"], before["unpublished"]) == (None, 0)
        assert before["trace"] == {"date": "2026-03-10", "minute": [], "mg_dl": []}
        _post(client, "P1", 2, 64.0, direction="Flat")
        after = client.get(f"/v1/patients/{key}/now", headers=_bearer("gs_p1")).json()["now"]
    assert (after["glucose_mg_dl"], after["minutes_ago"], after["arrow"]) == (64.0, 2.0, "→")
    assert after["unpublished"] == 1
    assert after["trace"] == {"date": "2026-03-10", "minute": [10.0], "mg_dl": [64.0]}
    lines = audit_lines(lake.settings, key)
    assert sum("page.patient.now" in line for line in lines) >= 2


def test_the_page_shows_the_panel_with_a_session_and_without_published_metrics(lake):
    from .test_dashboard_lake import login

    with _client(lake) as client:
        login(client, "gs_admin")
        page = client.get(f"/patients/{lake.keys['P1']}")
        assert page.status_code == 200
        assert 'id="now"' in page.text
        assert 'id="chart-mean"' in page.text
        assert '<script src="/static/now.js"></script>' in page.text
        assert client.get(f"/patients/{lake.keys['P9']}").status_code == 404  # nothing at all
        _post(client, "P9", 1, 180.0)  # a new patient: no run has published them yet
        fresh = client.get(f"/patients/{lake.keys['P9']}")
    assert fresh.status_code == 200
    assert 'id="no-metrics"' in fresh.text
    assert "/agp" not in fresh.text  # no report before a run published the patient
    assert 'id="chart-mean"' not in fresh.text
    assert 'id="now-glucose" class="glucose">180<' in fresh.text
    with _client(lake) as client:
        login(client, "gs_admin").cookies.set("gs_unit", "mmol_l")
        mmol = client.get(f"/patients/{lake.keys['P9']}").text
    assert 'id="now-glucose" class="glucose">10.0<' in mmol  # 180 mg/dL in mmol/L
    assert '"unit": "mmol_l"' in mmol  # now.js converts its refreshes too


def test_the_now_json_is_authorized_like_the_other_reads(lake):
    key = lake.keys["P1"]
    with _client(lake) as client:
        assert client.get(f"/v1/patients/{key}/now").status_code == 401
        assert client.get(f"/v1/patients/{key}/now", headers=_bearer("gs_p2")).status_code == 403
        south = client.get(f"/v1/patients/{key}/now", headers=_bearer("gs_south"))
        assert south.status_code == 403
        assert client.get(f"/v1/patients/{key}/now", headers=_bearer("gs_up")).status_code == 403
        assert client.get(f"/v1/patients/{key}/now", headers=_bearer("gs_north")).status_code == 200


# --- the alert routes ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def alerts(lake) -> dict[str, str]:
    """Alerts of P1 and P2 (ids by name); P2's cleared falling_fast has a dead delivery."""
    import sqlalchemy as sa

    from glucosestream.alerts import AlertChange, open_alert_store
    from glucosestream.lake import metadata_engine, webhook_outbox

    made = {
        "p1_low": ("P1", "low", 65.0),
        "p1_ul": ("P1", "urgent_low", 50.0),
        "p2_high": ("P2", "high", 260.0),
        "p2_ff": ("P2", "falling_fast", 120.0),
    }
    ids = {name: f"al_test_{name}" for name in made}
    changes = [
        AlertChange(ids[n], lake.keys[p], kind, "fired", 0, NOW - 10 * MIN, g, None)
        for n, (p, kind, g) in made.items()
    ]
    changes.append(
        AlertChange(
            ids["p2_ff"], lake.keys["P2"], "falling_fast", "cleared", 2, NOW - MIN, 118.0, None
        )
    )
    store = open_alert_store(lake.settings.lake)
    assert len(store.apply(changes, enqueue=lambda con, c: 0)) == 5
    with metadata_engine(lake.settings.lake).begin() as con:
        con.execute(
            sa.insert(webhook_outbox).values(
                delivery_id="msg_test_dead",
                webhook_id="wh_test",
                alert_id=ids["p2_ff"],
                event="fired",
                seq=0,
                body=b"{}",
                created_at=NOW - 10 * MIN,
                state="dead",
                attempts=10,
                next_attempt_at=NOW - 10 * MIN,
            )
        )
    return ids


def test_a_patient_may_ack_their_own_alert_and_not_anothers(lake, alerts):
    from glucosestream.dashboard.audit import audit_lines

    p1_low, p2_high = alerts["p1_low"], alerts["p2_high"]
    with _client(lake) as client:
        assert client.post(f"/v1/alerts/{p1_low}/ack").status_code == 401
        refused = client.post(f"/v1/alerts/{p1_low}/ack", headers=_bearer("gs_p2"))
        assert refused.status_code == 404  # as if there were none: nothing said of P1
        assert refused.json()["errors"] == [f"no alert '{p1_low}' that this token may see"]
        assert (
            client.post(f"/v1/alerts/{p1_low}/ack", headers=_bearer("gs_south")).status_code == 404
        )
        assert client.post(f"/v1/alerts/{p1_low}/ack", headers=_bearer("gs_up")).status_code == 403
        assert client.post("/v1/alerts/al_none/ack", headers=_bearer("gs_admin")).status_code == 404
        own = client.post(f"/v1/alerts/{p1_low}/ack", headers=_bearer("gs_p1"))
        by_clinic = client.post(f"/v1/alerts/{p2_high}/ack", headers=_bearer("gs_south"))
    assert own.status_code == 200, own.text
    assert own.json()["alert"]["acked_at"] == NOW.isoformat()
    assert by_clinic.status_code == 200
    assert any(
        "alert.ack" in line and p1_low in line
        for line in audit_lines(lake.settings, lake.keys["P1"])
    )


def test_snooze_within_the_kinds_limit(lake, alerts):
    with _client(lake) as client:
        url = f"/v1/alerts/{alerts['p2_high']}/snooze"
        snoozed = client.post(url, params={"minutes": 90}, headers=_bearer("gs_p2"))
        too_long = client.post(
            f"/v1/alerts/{alerts['p1_ul']}/snooze", params={"minutes": 60}, headers=_bearer("gs_p1")
        )
        nothing = client.post(url, params={"minutes": 0}, headers=_bearer("gs_p2"))
        other = client.post(url, params={"minutes": 30}, headers=_bearer("gs_p1"))
    assert snoozed.status_code == 200, snoozed.text
    assert snoozed.json()["alert"]["snoozed_until"] == (NOW + 90 * MIN).isoformat()
    assert too_long.status_code == 422  # urgent low: 30 minutes at most
    assert nothing.status_code == 422
    assert other.status_code == 404


def test_the_list_holds_only_the_patients_the_caller_may_read(lake, alerts):
    with _client(lake) as client:
        every = client.get("/v1/alerts", headers=_bearer("gs_admin")).json()["alerts"]
        own = client.get("/v1/alerts", headers=_bearer("gs_p2")).json()["alerts"]
        clinic = client.get("/v1/alerts?active=true", headers=_bearer("gs_north")).json()["alerts"]
        refused = client.get(f"/v1/alerts?patient={lake.keys['P1']}", headers=_bearer("gs_p2"))
        one = client.get(f"/v1/alerts?patient={lake.keys['P1']}", headers=_bearer("gs_admin"))
    assert set(alerts.values()) <= {a["alert_id"] for a in every}
    assert {a["alert_id"] for a in own} == {alerts["p2_high"], alerts["p2_ff"]}
    assert {a["alert_id"] for a in clinic} == {alerts["p1_low"], alerts["p1_ul"]}
    assert refused.status_code == 403
    assert {a["patient_key"] for a in one.json()["alerts"]} == {lake.keys["P1"]}


def test_the_pages_buttons_post_forms_with_the_csrf_token(lake, alerts):
    from .test_dashboard_lake import csrf_of, login

    ul = alerts["p1_ul"]
    with _client(lake) as client:
        login(client, "gs_p1")
        page = client.get(f"/patients/{lake.keys['P1']}").text
        assert f'action="/alerts/{ul}"' in page  # its acknowledge and snooze buttons
        origin = {"Origin": str(client.base_url).rstrip("/")}
        forged = client.post(f"/alerts/{ul}", data={"csrf_token": "x"}, headers=origin)
        no_header = client.post(f"/v1/alerts/{ul}/ack")  # a session without X-CSRF-Token
        done = client.post(
            f"/alerts/{ul}",
            data={"csrf_token": csrf_of(page), "minutes": "30"},
            headers=origin,
            follow_redirects=False,
        )
        after = client.get(f"/v1/patients/{lake.keys['P1']}/now").json()["now"]
    assert forged.status_code == 403
    assert no_header.status_code == 403
    assert done.status_code == 303
    assert done.headers["location"] == f"/patients/{lake.keys['P1']}#now"
    snoozed = {a["alert_id"]: a["snoozed_until"] for a in after["alerts"]}
    assert snoozed[ul] == (NOW + 30 * MIN).isoformat()


def test_triage_and_the_panel_show_active_alerts_and_dead_deliveries(lake, alerts):
    from .test_dashboard_lake import login

    with _client(lake) as client:
        rows = client.get("/v1/triage", headers=_bearer("gs_admin")).json()["patients"]
        panel = client.get(f"/v1/patients/{lake.keys['P2']}/now", headers=_bearer("gs_p2"))
        html = login(client, "gs_admin").get("/").text
    by_key = {r["patient_key"]: r for r in rows}
    p2 = by_key[lake.keys["P2"]]
    assert [a["kind"] for a in p2["alerts"]] == ["high"]
    assert p2["dead_deliveries"] == 1
    assert {a["kind"] for a in by_key[lake.keys["P1"]]["alerts"]} == {"low", "urgent_low"}
    assert by_key[lake.keys["P1"]]["dead_deliveries"] == 0
    assert [a["alert_id"] for a in panel.json()["now"]["dead_letters"]] == [alerts["p2_ff"]]
    assert "1 undelivered" in html
    assert "Urgent low" in html


def test_always_on_a_low_reading_posted_fires_alerts_shown_at_once(settings):
    import time

    from fastapi.testclient import TestClient

    from glucosestream.access import hash_token
    from glucosestream.app import AlwaysOnOptions, create_app
    from glucosestream.lake import open_access

    open_access(settings.lake).tokens.add_token(
        hash_token("gs_admin"), "admin", label="a", created_at=NOW - MIN
    )
    app = create_app(settings, clock=lambda: NOW, always_on=AlwaysOnOptions(pipeline=False))
    url = f"/v1/patients/{_key_of('P8')}/now"
    with TestClient(app) as client:
        _post(client, "P8", 1, 50.0, token="gs_admin")  # the engine evaluates it off the request
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            now = client.get(url, headers=_bearer("gs_admin")).json()["now"]
            if len(now["alerts"]) == 2:
                break
            time.sleep(0.05)
    assert {a["kind"] for a in now["alerts"]} == {"urgent_low", "low"}
    assert (now["glucose_mg_dl"], now["unpublished"]) == (50.0, 1)


def _key_of(patient: str) -> str:
    from glucosestream.ingest.identity import patient_key

    from .conftest import SECRET

    return patient_key(SECRET.encode(), patient)


def test_the_stale_badge_follows_the_patients_stale_data_rule(lake):
    from glucosestream.alerts import open_alert_store
    from glucosestream.alerts.rules import RuleRow

    key = lake.keys["P2"]  # last published reading 17 minutes before NOW
    store = open_alert_store(lake.settings.lake)
    with _client(lake) as client:
        default = client.get(f"/v1/patients/{key}/now", headers=_bearer("gs_admin")).json()
        store.set_rule(RuleRow(key, "stale_data", True, None, 10.0), actor="test", at=NOW)
        try:
            ruled = client.get(f"/v1/patients/{key}/now", headers=_bearer("gs_admin")).json()
        finally:
            store.remove_rule(key, "stale_data")
    assert (default["now"]["stale"], default["now"]["stale_warn_min"]) == (None, 20.0)
    assert (ruled["now"]["stale"], ruled["now"]["stale_warn_min"]) == ("warn", 10.0)
    assert ruled["now"]["stale_urgent_min"] == 40.0
