"""The ingest path as a Lambda function, with synthetic API Gateway events (v1 and v2)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json

import pytest

from glucosestream.access import create_token
from glucosestream.ingest.identity import patient_key
from glucosestream.ingest.lambda_handler import handle_event, handler
from glucosestream.lake import RawZone, open_storage

from .conftest import SECRET

NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


@pytest.fixture
def token(settings):
    return create_token(
        settings.lake,
        "uploader",
        label="u",
        now=NOW,
        patient_keys=[patient_key(SECRET.encode(), "L1")],
    )


def body(n: int = 3, patient: str = "L1") -> str:
    rows = [
        {"patient_id": patient, "time": f"2026-03-01T0{i}:00:00Z", "glucose_mg_dl": 90 + i}
        for i in range(n)
    ]
    return json.dumps({"readings": rows})


def v2(path: str, text: str, headers: dict, *, b64: bool = False) -> dict:
    return {
        "version": "2.0",
        "rawPath": path,
        "headers": headers,
        "requestContext": {"http": {"method": "POST", "path": path}, "stage": "$default"},
        "body": base64.b64encode(text.encode()).decode() if b64 else text,
        "isBase64Encoded": b64,
    }


def v1(path: str, text: str, headers: dict, query: dict | None = None) -> dict:
    return {
        "resource": path,
        "path": f"/prod{path}",
        "httpMethod": "POST",
        "headers": headers,
        "queryStringParameters": query,
        "requestContext": {"stage": "prod"},
        "body": text,
        "isBase64Encoded": False,
    }


def assert_error(response: dict, status: int) -> dict:
    assert response["statusCode"] == status
    payload = json.loads(response["body"])
    assert payload["ok"] is False
    assert payload["status"] == status
    assert payload["error"] == "; ".join(payload["errors"])
    return payload


def test_v2_event_with_plain_and_base64_bodies(settings, token):
    auth = {"Authorization": f"Bearer {token}"}
    plain = handle_event(settings, v2("/v1/readings", body(3), auth))
    assert plain["statusCode"] == 200, plain["body"]
    assert json.loads(plain["body"])["accepted"] == 3
    encoded = handle_event(settings, v2("/v1/readings", body(4), auth, b64=True))
    assert json.loads(encoded["body"])["accepted"] == 4
    again = json.loads(handle_event(settings, v2("/v1/readings", body(4), auth))["body"])
    assert again["already_ingested_as"] == json.loads(encoded["body"])["batch_id"]
    assert len(RawZone(open_storage(settings.lake)).list_batches()) == 2


def test_v1_event_nightscout_post_with_a_stage_prefix(settings, token):
    entries = [{"type": "sgv", "sgv": 120, "date": 1_775_421_029_000, "device": "x"}]
    secret = hashlib.sha1(token.encode()).hexdigest()
    response = handle_event(
        settings, v1("/api/v1/entries", json.dumps(entries), {"api-secret": secret})
    )
    assert response["statusCode"] == 200, response["body"]
    assert json.loads(response["body"]) == entries
    assert response["headers"]["x-ingest-accepted"] == "1"
    by_query = handle_event(
        settings, v1("/api/v1/entries", json.dumps(entries), {}, {"token": token})
    )
    assert by_query["headers"]["x-ingest-duplicates"] == "1"


def test_lambda_errors_use_the_one_shape(settings, token):
    auth = {"authorization": f"Bearer {token}"}
    assert_error(handle_event(settings, v2("/v1/readings", body(), {})), 401)
    assert_error(
        handle_event(settings, v2("/v1/readings", body(), {"authorization": "Bearer x"})), 401
    )
    assert_error(handle_event(settings, v2("/v1/readings", "{oops", auth)), 422)
    bad_b64 = v2("/v1/readings", body(), auth)
    bad_b64.update(body="***", isBase64Encoded=True)
    assert_error(handle_event(settings, bad_b64), 422)
    assert_error(handle_event(settings, v2("/v1/readings", body(patient="L2"), auth)), 403)
    assert_error(handle_event(settings, v2("/v1/nothing", body(), auth)), 404)
    assert_error(handle_event(settings, {"body": "{}"}), 422)


def test_handler_reads_settings_from_the_environment(settings, token, monkeypatch):
    monkeypatch.setenv("GLUCOSESTREAM_LAKE__ROOT", settings.lake.root)
    monkeypatch.setenv("GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET", SECRET)
    response = handler(v2("/v1/readings", body(2), {"authorization": f"Bearer {token}"}), None)
    assert response["statusCode"] == 200, response["body"]
    assert json.loads(response["body"])["accepted"] == 2
