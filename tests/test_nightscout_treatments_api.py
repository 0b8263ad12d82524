"""Nightscout treatments and devicestatus uploads: POST /api/v1/treatments lands events in the
raw zone for the token's patient, POST /api/v1/devicestatus keeps documents raw; both
authenticated, limited and idempotent as POST /api/v1/entries."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from glucosestream.access import create_token
from glucosestream.app import create_app
from glucosestream.ingest.identity import patient_key
from glucosestream.ingest.lambda_handler import handle_event
from glucosestream.ingest.limits import MAX_OTHER_BODY_BYTES, MAX_READINGS_PER_REQUEST
from glucosestream.lake import RawZone

from .conftest import SECRET
from .test_http_ingest import assert_error_shape

AT = "2026-04-05T20:30:29.000Z"


def key(external_id: str) -> str:
    return patient_key(SECRET.encode(), external_id)


def sha1(token: str) -> str:
    return hashlib.sha1(token.encode()).hexdigest()


TREATMENTS = [
    {
        "eventType": "Meal Bolus",
        "created_at": AT,
        "insulin": 4.5,
        "carbs": 45,
        "enteredBy": "AndroidAPS",
    },
    {
        "eventType": "Temp Basal",
        "created_at": "2026-04-05T21:00:00.000Z",
        "absolute": 0.6,
        "duration": 30,
        "enteredBy": "AndroidAPS",
    },
    {"eventType": "Temporary Target", "created_at": AT, "targetTop": 140, "duration": 60},
    {"eventType": "Correction Bolus", "created_at": "2026-04-05T22:00:00Z", "insulin": -2},
    {"eventType": "Note", "created_at": AT, "notes": "dinner at Casey's"},
    ["not", "an", "object"],
]
STATUS = [
    {
        "device": "openaps://phone",
        "created_at": AT,
        "pump": {"reservoir": 112.5, "battery": {"percent": 80}},
        "openaps": {"iob": {"iob": 1.2}},
    },
    {"device": "xDrip-LibreReceiver", "created_at": AT, "uploaderBattery": 51},
]


@pytest.fixture
def tokens(settings):
    now = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    return {
        "up": create_token(settings.lake, "uploader", label="u", now=now, patient_keys=[key("N1")]),
        "two": create_token(
            settings.lake, "uploader", label="2", now=now, patient_keys=[key("N1"), key("N2")]
        ),
        "patient": create_token(
            settings.lake, "patient", label="p", now=now, patient_keys=[key("N1")]
        ),
    }


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings)) as c:
        yield c


def batches(settings):
    return RawZone(Path(settings.lake.root)).list_batches()


def test_posted_treatments_land_as_events_of_the_tokens_patient(client, tokens, settings):
    secret = {"api-secret": sha1(tokens["up"])}
    response = client.post("/api/v1/treatments", json=TREATMENTS, headers=secret)
    assert response.status_code == 200, response.text
    assert response.json() == TREATMENTS  # Nightscout answers with the posted documents
    h = response.headers
    # events: bolus + carbs of the meal, the temp basal, the bad correction, the note, the
    # non-object; the temporary target is skipped
    assert h["x-ingest-received"] == "6"
    assert (h["x-ingest-accepted"], h["x-ingest-quarantined"]) == ("3", "2")
    assert (h["x-ingest-duplicates"], h["x-ingest-notes-dropped"]) == ("0", "1")
    assert h["x-ingest-skipped"] == "1"
    [batch] = batches(settings)
    assert h["x-ingest-batch"] == batch.batch_id
    events = batch.events().to_pylist()
    assert [(e["kind"], e["subtype"]) for e in events] == [
        ("bolus", "normal"),
        ("carbs", "meal"),
        ("basal", "automated"),  # AndroidAPS, a closed loop, entered it
    ]
    assert {e["patient_key"] for e in events} == {key("N1")}
    assert events[2]["rate_u_h"] == 0.6
    assert events[2]["duration_min"] == 30.0
    assert all(e["note"] is None for e in events)
    reasons = sorted(batch.event_quarantine()["reason"].to_pylist())
    assert reasons[0] == "a treatment must be a JSON object, not an array"
    assert reasons[1] == "units is negative"
    assert batch.manifest()["events"]["received"] == 6
    assert b"Casey" not in b"".join(p.read_bytes() for p in Path(batch.path).iterdir())


def test_entries_and_treatments_of_one_uploader_share_the_patient_key(client, tokens, settings):
    secret = {"api-secret": sha1(tokens["up"])}
    entry = {"type": "sgv", "sgv": 120, "dateString": AT, "date": 1_775_421_029_000}
    assert client.post("/api/v1/entries", json=[entry], headers=secret).status_code == 200
    response = client.post("/api/v1/treatments.json", json=TREATMENTS[0], headers=secret)
    assert response.status_code == 200, response.text
    assert response.json() == [TREATMENTS[0]]  # one object: answered as an array
    readings, events = (b for b in batches(settings))
    assert set(readings.readings()["patient_key"].to_pylist()) == {key("N1")}
    assert set(events.events()["patient_key"].to_pylist()) == {key("N1")}


def test_posting_the_same_treatments_again_changes_nothing(client, tokens, settings):
    secret = {"api-secret": sha1(tokens["up"])}
    first = client.post("/api/v1/treatments", json=TREATMENTS, headers=secret)
    again = client.post("/api/v1/treatments", json=TREATMENTS, headers=secret)
    assert again.status_code == 200
    assert again.headers["x-ingest-batch"] == first.headers["x-ingest-batch"]
    assert (again.headers["x-ingest-received"], again.headers["x-ingest-duplicates"]) == (
        "6",
        "6",
    )
    assert again.headers["x-ingest-accepted"] == "0"
    assert len(batches(settings)) == 1


def test_the_same_treatment_in_a_new_body_is_a_duplicate_only_for_the_pipeline(
    client, tokens, settings
):
    secret = {"api-secret": sha1(tokens["up"])}
    client.post("/api/v1/treatments", json=TREATMENTS[:1], headers=secret)
    other = client.post("/api/v1/treatments", json=TREATMENTS[:1] * 2, headers=secret)
    assert other.headers["x-ingest-received"] == "4"
    assert other.headers["x-ingest-duplicates"] == "2"  # within the request
    assert len(batches(settings)) == 2  # across requests: first arrival wins in the run


@pytest.mark.parametrize("path", ["/api/v1/treatments", "/api/v1/devicestatus"])
def test_authentication_and_patient_rules_are_those_of_entries(client, tokens, path):
    body = TREATMENTS[:1] if "treatments" in path else STATUS
    assert_error_shape(client.post(path, json=body), 401)
    assert_error_shape(client.post(path, json=body, headers={"api-secret": "0" * 40}), 401)
    assert_error_shape(
        client.post(path, json=body, headers={"api-secret": sha1(tokens["two"])}), 403
    )
    assert_error_shape(client.post(f"{path}?token={tokens['patient']}", json=body), 403)
    ok = client.post(f"{path}?token={tokens['up']}", json=body)
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("path", ["/api/v1/treatments", "/api/v1/devicestatus"])
def test_bodies_are_limited_as_entries_are(client, tokens, settings, path):
    secret = {"api-secret": sha1(tokens["up"])}
    assert_error_shape(client.post(path, content=b"{nope", headers=secret), 422)
    assert_error_shape(client.post(path, json=[], headers=secret), 422)
    assert_error_shape(client.post(path, content=b"-4.7e25", headers=secret), 422)
    assert_error_shape(client.post(path, content=b'"a note"', headers=secret), 422)
    too_many = [{"eventType": "Note", "created_at": AT}] * (MAX_READINGS_PER_REQUEST + 1)
    assert_error_shape(client.post(path, json=too_many, headers=secret), 422)
    deep = json.dumps([{"a": json.loads("[" * 70 + "]" * 70)}])
    assert_error_shape(client.post(path, content=deep.encode(), headers=secret), 422)
    big = [{"eventType": "Note", "created_at": AT, "padding": "x" * (MAX_OTHER_BODY_BYTES + 1)}]
    assert client.post(path, json=big, headers=secret).status_code == 200  # an ingest body
    huge = b"[" + b" " * (16 * 1024 * 1024) + b"]"
    assert_error_shape(client.post(path, content=huge, headers=secret), 413)
    assert len(batches(settings)) == 1


def test_devicestatus_is_kept_raw_for_the_patient_and_idempotent(client, tokens, settings):
    secret = {"api-secret": sha1(tokens["up"])}
    response = client.post("/api/v1/devicestatus", json=STATUS, headers=secret)
    assert response.status_code == 200, response.text
    assert response.json() == STATUS
    assert (response.headers["x-ingest-received"], response.headers["x-ingest-duplicates"]) == (
        "2",
        "0",
    )
    [batch] = batches(settings)
    kept = batch.devicestatus().to_pylist()
    assert [json.loads(d["document"]) for d in kept] == STATUS
    assert {d["patient_key"] for d in kept} == {key("N1")}
    assert batch.readings().num_rows == 0
    assert batch.events().num_rows == 0
    assert batch.manifest()["devicestatus"] == 2
    again = client.post("/api/v1/devicestatus.json", json=STATUS, headers=secret)
    assert again.headers["x-ingest-duplicates"] == "2"
    assert again.headers["x-ingest-batch"] == batch.batch_id
    assert len(batches(settings)) == 1
    refused = client.post("/api/v1/devicestatus", json=[1, 2], headers=secret)
    assert_error_shape(refused, 422)


def test_the_lambda_handler_takes_treatments_and_devicestatus(settings, tokens):
    def event(path: str, documents: list) -> dict:
        return {
            "version": "2.0",
            "rawPath": path,
            "headers": {"api-secret": sha1(tokens["up"])},
            "requestContext": {"http": {"method": "POST", "path": path}, "stage": "$default"},
            "body": json.dumps(documents),
            "isBase64Encoded": False,
        }

    treated = handle_event(settings, event("/api/v1/treatments", TREATMENTS))
    assert treated["statusCode"] == 200, treated["body"]
    assert json.loads(treated["body"]) == TREATMENTS
    assert treated["headers"]["x-ingest-accepted"] == "3"
    assert treated["headers"]["x-ingest-skipped"] == "1"
    status = handle_event(settings, event("/api/v1/devicestatus.json", STATUS))
    assert status["statusCode"] == 200, status["body"]
    assert status["headers"]["x-ingest-received"] == "2"
    kept = sum(b.devicestatus().num_rows for b in batches(settings))
    assert kept == 2
