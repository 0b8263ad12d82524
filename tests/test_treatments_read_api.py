"""``GET /api/v1/treatments``: a patient's published events as Nightscout treatments.

The mapping (``published.treatment_documents``) is tested on EVENT_SCHEMA tables; the route
through the app on a run whose events are given, for Nightscout's query parameters and the
auth and patient rules of the entries GET; and the round trip: POST treatments, run, GET."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from fastapi.testclient import TestClient

from glucosestream.access import create_token
from glucosestream.app import create_app
from glucosestream.ingest.identity import patient_key
from glucosestream.pipeline import run_pipeline
from glucosestream.published import PublishedRun
from glucosestream.published.treatment_documents import treatments_from_events

from .conftest import SECRET
from .test_http_ingest import assert_error_shape
from .test_published_events import event, event_table

T0 = dt.datetime(2026, 4, 5, 7, 30, tzinfo=dt.UTC)
T0_MS = 1_775_374_200_000


def _at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def _one(*rows, **kwargs) -> list[dict]:
    return treatments_from_events(event_table(rows), count=100, **kwargs)


def test_a_bolus_and_carbs_at_one_instant_are_one_meal_bolus():
    got = _one(
        event("carbs", T0, subtype="meal", carbs_g=60.0, tz="Europe/Berlin"),
        event("bolus", T0, subtype="normal", units=4.5, tz="Europe/Berlin"),
    )
    assert len(got) == 1
    doc = got[0]
    assert doc["eventType"] == "Meal Bolus"
    assert (doc["insulin"], doc["carbs"]) == (4.5, 60.0)
    assert doc["created_at"] == "2026-04-05T07:30:00.000Z"
    assert doc["enteredBy"] == "dev-1"
    assert doc["utcOffset"] == 120  # Berlin in April: UTC+2
    assert len(doc["_id"]) == 24
    assert int(doc["_id"], 16) >= 0
    assert "duration" not in doc
    assert "notes" not in doc


def test_amounts_of_other_devices_or_instants_stay_apart():
    got = _one(
        event("bolus", T0, subtype="normal", units=2.0),
        event("carbs", T0, device="dev-2", subtype="meal", carbs_g=30.0),
        event("carbs", _at(1), subtype="correction", carbs_g=15.0),
    )
    assert [(d["eventType"], d["insulin"], d["carbs"]) for d in got] == [
        ("Carb Correction", None, 15.0),
        ("Correction Bolus", 2.0, None),
        ("Meal Bolus", None, 30.0),
    ]


def test_a_normal_and_an_extended_bolus_are_one_combo_bolus():
    got = _one(
        event("bolus", T0, subtype="normal", units=3.0),
        event("bolus", T0, subtype="extended", units=2.0, duration_min=120.0),
        event("carbs", T0, subtype="meal", carbs_g=80.0),
    )
    assert len(got) == 1
    doc = got[0]
    assert doc["eventType"] == "Combo Bolus"
    assert (doc["insulin"], doc["carbs"], doc["enteredinsulin"]) == (3.0, 80.0, 5.0)
    assert (doc["splitNow"], doc["splitExt"], doc["duration"]) == (60, 40, 120.0)
    assert doc["relative"] == 1.0  # 2 U over 2 h


def test_each_kind_has_its_nightscout_event_type():
    rows = [
        event("bolus", _at(0), subtype="automatic", units=0.4),
        event("bolus", _at(1), subtype="extended", units=1.5, duration_min=30.0),
        event("basal", _at(2), subtype="temporary", rate_u_h=0.8, duration_min=30.0),
        event("basal", _at(3), subtype="automated", rate_u_h=1.2, duration_min=5.0),
        event("basal", _at(4), subtype="suspended", duration_min=60.0),
        event("basal", _at(5), subtype="scheduled", rate_u_h=0.9),
        event("basal", _at(6), subtype="injection", units=20.0),
        event("exercise", _at(7), duration_min=45.0, intensity="high"),
        event("device", _at(8), subtype="sensor_start"),
        event("device", _at(9), subtype="pump_suspend", duration_min=20.0),
        event("device", _at(10), subtype="cartridge_change"),
        event("smbg", _at(11), glucose_mg_dl=100.9, original_value=5.6, original_unit="mmol/L"),
        event("smbg", _at(12), glucose_mg_dl=142.0, original_value=142.0, original_unit="mg/dL"),
        event("ketone", _at(13), subtype="blood", ketone_mmol_l=1.2),
        event("note", _at(14), subtype="illness"),
        event("note", _at(15), note="pizza"),
    ]
    got = list(reversed(_one(*rows)))  # oldest first, as the rows
    assert [d["eventType"] for d in got] == [
        "Correction Bolus",
        "Combo Bolus",
        "Temp Basal",
        "Temp Basal",
        "Temp Basal",
        "Temp Basal",
        "Note",
        "Exercise",
        "Sensor Start",
        "Suspend Pump",
        "Insulin Change",
        "BG Check",
        "BG Check",
        "Note",
        "Note",
        "Note",
    ]
    smb, extended, temp, automated, suspended, scheduled, lantus = got[:7]
    assert (smb["insulin"], smb["isSMB"]) == (0.4, True)
    assert (extended["insulin"], extended["enteredinsulin"], extended["splitExt"]) == (0, 1.5, 100)
    assert (temp["absolute"], temp["rate"], temp["duration"]) == (0.8, 0.8, 30.0)
    assert automated["automatic"] is True
    assert "automatic" not in temp
    assert (suspended["absolute"], suspended["duration"]) == (0.0, 60.0)
    assert scheduled["absolute"] == 0.9
    assert "duration" not in scheduled
    assert lantus["insulin"] is None  # long-acting insulin never counts as insulin on board
    assert lantus["notes"] == "Long-acting insulin 20 U"
    assert got[7]["duration"] == 45.0
    assert got[9]["duration"] == 20.0
    mmol, mg = got[11], got[12]
    assert (mmol["glucose"], mmol["units"], mmol["glucoseType"]) == (5.6, "mmol", "Finger")
    assert (mg["glucose"], mg["units"]) == (142, "mg/dl")
    assert got[13]["notes"] == "Blood ketones 1.2 mmol/L"
    assert [got[14]["notes"], got[15]["notes"]] == ["illness", "pizza"]
    assert all("insulin" in d and "carbs" in d for d in got)  # as Nightscout's GET: always


def test_newest_first_count_bounds_and_type_narrow_them():
    rows = [event("bolus", _at(10 * i), subtype="normal", units=1.0 + i) for i in range(6)]
    table = event_table(rows)
    newest = treatments_from_events(table, count=2)
    assert [d["insulin"] for d in newest] == [6.0, 5.0]
    ms = T0_MS + 10 * 60_000
    between = treatments_from_events(table, count=10, since_ms=ms, until_ms=ms * 1 + 20 * 60_000)
    assert [d["insulin"] for d in between] == [4.0, 3.0, 2.0]
    assert treatments_from_events(table, count=10, event_type="Meal Bolus") == []
    assert len(treatments_from_events(table, count=10, event_type="Correction Bolus")) == 6


def test_the_newest_count_are_those_of_the_whole_history():
    kinds = [
        {"kind": "bolus", "subtype": "normal", "units": 2.0},
        {"kind": "carbs", "subtype": "meal", "carbs_g": 40.0},
        {"kind": "basal", "subtype": "temporary", "rate_u_h": 0.7},
    ]
    rows = [
        event(at=_at(5 * (i // 3)), device=f"dev-{i % 2}", **kinds[i % 3]) for i in range(60)
    ]  # instants shared by devices and kinds: Meal Boluses and lone amounts
    table = event_table(rows)
    whole = treatments_from_events(table, count=1000)
    until = T0_MS + 50 * 60_000
    whole_until = treatments_from_events(table, count=1000, until_ms=until)
    for k in range(1, 45):
        assert treatments_from_events(table, count=k) == whole[:k]
        assert treatments_from_events(table, count=k, until_ms=until) == whole_until[:k]


def test_ids_are_stable_and_distinct():
    rows = [
        event("bolus", T0, subtype="normal", units=1.0),
        event("bolus", T0, subtype="normal", units=2.0),  # the same instant, another amount
    ]
    first, again = _one(*rows), _one(*reversed(rows))
    assert first == again
    assert len({d["_id"] for d in first}) == 2


# The route ---------------------------------------------------------------------------------


def key(external_id: str) -> str:
    return patient_key(SECRET.encode(), external_id)


def sha1(token: str) -> str:
    return hashlib.sha1(token.encode()).hexdigest()


@pytest.fixture
def tokens(settings):
    now = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    return {
        "up": create_token(settings.lake, "uploader", label="u", now=now, patient_keys=[key("N1")]),
        "admin": create_token(settings.lake, "admin", label="a", now=now),
        "other": create_token(
            settings.lake, "patient", label="p", now=now, patient_keys=[key("N2")]
        ),
    }


@pytest.fixture
def client(settings, monkeypatch):
    """The app, its runs holding N1's events (a meal bolus, a temp basal, a BG check)."""
    rows = [
        event("bolus", T0, patient=key("N1"), subtype="normal", units=4.5),
        event("carbs", T0, patient=key("N1"), subtype="meal", carbs_g=60.0),
        event("basal", _at(60), patient=key("N1"), subtype="temporary", rate_u_h=0.5,
              duration_min=30.0),
        event("smbg", _at(120), patient=key("N1"), glucose_mg_dl=150.0, original_value=150.0,
              original_unit="mg/dL"),
    ]  # fmt: skip
    table = event_table(rows)

    def events(self, patient, start=None, end=None):
        got = table.filter([k == patient for k in table["patient_key"].to_pylist()])
        return got if start is None else got.filter([t >= start for t in got["ts"].to_pylist()])

    monkeypatch.setattr(PublishedRun, "events", events)
    with TestClient(create_app(settings)) as c:
        yield c


def test_the_uploader_reads_its_patients_treatments_newest_first(client, tokens, settings):
    got = client.get("/api/v1/treatments", headers={"api-secret": sha1(tokens["up"])})
    assert got.status_code == 200, got.text
    assert [d["eventType"] for d in got.json()] == ["BG Check", "Temp Basal", "Meal Bolus"]
    same = client.get("/api/v1/treatments.json", params={"token": tokens["up"]})
    assert same.json() == got.json()
    entries = client.app.state.access.audit.access_entries(key("N1"))
    assert "api/v1/treatments" in [e.resource for e in entries]


def test_nightscouts_query_parameters(client, tokens):
    auth = {"api-secret": sha1(tokens["up"])}

    def ask(**params) -> list[str]:
        response = client.get("/api/v1/treatments", params=params, headers=auth)
        assert response.status_code == 200, response.text
        return [d["eventType"] for d in response.json()]

    assert ask(count=1) == ["BG Check"]
    assert ask(**{"find[created_at][$gte]": "2026-04-05T08:30:00Z"}) == ["BG Check", "Temp Basal"]
    assert ask(**{"find[created_at][$gt]": "2026-04-05T08:30:00Z"}) == ["BG Check"]
    unescaped = "2026-04-05T09:30:00 01:00"  # a "+" sent unescaped arrives as a space
    assert ask(**{"find[created_at][$gte]": unescaped}) == ["BG Check", "Temp Basal"]
    assert ask(**{"find[created_at][$lt]": "2026-04-05T08:30:00.000+00:00"}) == ["Meal Bolus"]
    assert ask(**{"find[created_at][$lte]": str(T0_MS)}) == ["Meal Bolus"]  # a number: ms
    assert ask(**{"find[mills][$gte]": str(T0_MS + 1)}) == ["BG Check", "Temp Basal"]
    assert ask(**{"find[eventType]": "Temp Basal"}) == ["Temp Basal"]
    for bad in (
        {"find[created_at][$gte]": "soon"},
        {"find[mills][$lt]": "inf"},
        {"find[eventType]": "/Bolus/"},
        {"count": "0"},
    ):
        assert_error_shape(client.get("/api/v1/treatments", params=bad, headers=auth), 422)


def test_the_entries_rules_of_auth_and_patient(client, tokens):
    assert_error_shape(client.get("/api/v1/treatments"), 401)
    wrong = client.get("/api/v1/treatments", headers={"api-secret": sha1("gs_wrong")})
    assert_error_shape(wrong, 401)
    # a bad bound from an unknown caller is 401, not 422: bounds are read after authentication
    assert_error_shape(client.get("/api/v1/treatments?find[mills][$gt]=x&token=gs_no"), 401)
    other = client.get(
        "/api/v1/treatments", params={"patient": key("N1"), "token": tokens["other"]}
    )
    assert_error_shape(other, 403)
    own = client.get("/api/v1/treatments", params={"token": tokens["other"]})
    assert own.status_code == 200
    assert own.json() == []
    admin = client.get(
        "/api/v1/treatments",
        params={"patient": key("N1")},
        headers={"api-secret": sha1(tokens["admin"])},
    )
    assert admin.status_code == 200
    assert len(admin.json()) == 3


def test_posted_treatments_come_back_after_a_run(settings, tokens):
    posted = [
        {"eventType": "Meal Bolus", "created_at": "2026-04-05T07:30:00.000Z", "insulin": 4.5,
         "carbs": 60, "enteredBy": "loop"},
        {"eventType": "Temp Basal", "created_at": "2026-04-05T08:00:00.000Z", "absolute": 0.5,
         "rate": 0.5, "duration": 30, "enteredBy": "loop"},
        {"eventType": "Correction Bolus", "created_at": "2026-04-05T09:00:00.000Z",
         "insulin": 1.5, "enteredBy": "loop"},
    ]  # fmt: skip
    auth = {"api-secret": sha1(tokens["up"])}
    with TestClient(create_app(settings)) as client:
        response = client.post("/api/v1/treatments", json=posted, headers=auth)
        assert response.status_code == 200, response.text
        assert run_pipeline(settings).status == "published"
        got = client.get("/api/v1/treatments", headers=auth).json()
    assert [(d["eventType"], d["insulin"], d["carbs"]) for d in got] == [
        ("Correction Bolus", 1.5, None),
        ("Temp Basal", None, None),
        ("Meal Bolus", 4.5, 60.0),
    ]
    assert got[1]["absolute"] == 0.5
    assert got[1]["duration"] == 30.0
    assert [d["created_at"] for d in got] == [p["created_at"] for p in reversed(posted)]
