"""HTTP ingest: authorisation, per-row errors, idempotency, group commit, durability."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import httpx
import pytest
from fastapi.testclient import TestClient

from glucosestream.access import create_token
from glucosestream.app import create_app
from glucosestream.ingest.identity import patient_key
from glucosestream.lake import RawZone, open_metadata, open_storage

from .conftest import SECRET

NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def key(external_id: str) -> str:
    return patient_key(SECRET.encode(), external_id)


@pytest.fixture
def tokens(settings):
    return {
        "admin": create_token(settings.lake, "admin", label="a", now=NOW),
        "p1": create_token(settings.lake, "uploader", label="u", now=NOW, patient_keys=[key("P1")]),
        "clin": create_token(settings.lake, "clinician", label="c", now=NOW, clinic_id="north"),
    }


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings)) as c:
        yield c


def readings(patient: str, n: int, start_minute: int = 0, device: str = "d1") -> list[dict]:
    return [
        {
            "patient_id": patient,
            "device_id": device,
            "time": (NOW + dt.timedelta(minutes=5 * (start_minute + i))).isoformat(),
            "glucose_mg_dl": 100 + i % 50,
        }
        for i in range(n)
    ]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error_shape(response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["ok"] is False
    assert body["status"] == status
    assert body["errors"]
    assert body["error"] == "; ".join(body["errors"])
    return body


def test_uploader_may_post_only_for_its_bound_patients(client, tokens, settings):
    ok = client.post(
        "/v1/readings", json={"readings": readings("P1", 3)}, headers=bearer(tokens["p1"])
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["accepted"] == 3
    mixed = {"readings": [*readings("P1", 2, 100), *readings("P2", 2)]}
    refused = client.post("/v1/readings", json=mixed, headers=bearer(tokens["p1"]))
    body = assert_error_shape(refused, 403)
    assert "index 2, 3" in body["error"]
    assert "P2" not in body["error"]
    # nothing of the refused request was written: still one batch
    assert len(RawZone(open_storage(settings.lake)).list_batches()) == 1
    admin = client.post("/v1/readings", json=mixed, headers=bearer(tokens["admin"]))
    assert admin.json()["accepted"] == 4
    clinician = client.post(
        "/v1/readings", json={"readings": readings("P1", 1)}, headers=bearer(tokens["clin"])
    )
    assert_error_shape(clinician, 403)


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer gs_wrong"}, 401), ({"Authorization": "Basic x"}, 401)],
)
def test_missing_or_unknown_tokens_are_401(client, tokens, headers, status):
    response = client.post("/v1/readings", json={"readings": readings("P1", 1)}, headers=headers)
    assert_error_shape(response, status)
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"nope": []}', "expected a JSON object"),
        (b'{"readings": []}', "no readings"),
        (b'{"readings": [1, 2]}', "readings[0] is not a JSON object"),
        (b'{"readings": [{"patient_id": "P1"}]}', "no time column"),
        (json.dumps({"readings": [{"patient_id": "P1"}] * 10_001}).encode(), "at most 10,000"),
    ],
)
def test_bodies_that_cannot_be_taken_are_422(client, tokens, body, fragment):
    response = client.post("/v1/readings", content=body, headers=bearer(tokens["admin"]))
    assert fragment in assert_error_shape(response, 422)["error"]


def test_partly_bad_input_lists_each_bad_row(client, tokens):
    rows = readings("P1", 4)
    rows[1]["time"] = "yesterday"
    rows[3]["glucose_mg_dl"] = "high-ish"
    response = client.post("/v1/readings", json={"readings": rows}, headers=bearer(tokens["p1"]))
    assert response.status_code == 200
    body = response.json()
    assert (body["received"], body["accepted"], body["quarantined"]) == (4, 2, 2)
    assert body["row_errors"] == [
        {"index": 1, "reason": "unparsable time"},
        {"index": 3, "reason": "glucose is not a number"},
    ]


def test_reposting_the_same_body_changes_nothing(client, tokens, settings):
    body = json.dumps({"readings": readings("P1", 5)}).encode()
    first = client.post("/v1/readings", content=body, headers=bearer(tokens["p1"])).json()
    again = client.post("/v1/readings", content=body, headers=bearer(tokens["p1"])).json()
    assert again["already_ingested_as"] == first["batch_id"]
    assert (again["received"], again["accepted"], again["duplicates"]) == (5, 0, 5)
    assert len(RawZone(open_storage(settings.lake)).list_batches()) == 1


def test_acknowledged_readings_are_in_a_committed_raw_batch(client, tokens, settings):
    response = client.post(
        "/v1/readings", json={"readings": readings("P1", 7)}, headers=bearer(tokens["p1"])
    ).json()
    batches = {b.batch_id: b for b in RawZone(open_storage(settings.lake)).list_batches()}
    batch = batches[response["batch_id"]]
    assert batch.readings().num_rows == 7
    assert batch.manifest()["accepted"] == 7
    assert open_metadata(settings.lake).batch_records([batch.batch_id])


def test_concurrent_requests_share_flushes_and_lose_nothing(settings, tokens):
    app = create_app(settings)
    n_clients = 24
    bodies = []
    for i in range(n_clients):
        rows = readings("P1", 50, start_minute=40 * i, device=f"d{i % 3}")
        rows[i % 50]["glucose_mg_dl"] = "??"  # one bad row each
        bodies.append(json.dumps({"readings": rows}).encode())
    bodies.append(bodies[0])  # an identical re-post, concurrently

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await asyncio.gather(
                *(c.post("/v1/readings", content=b, headers=bearer(tokens["p1"])) for b in bodies)
            )

    responses = asyncio.run(run())
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    reports = [r.json() for r in responses]
    for report in reports:
        assert (
            report["received"] == report["accepted"] + report["duplicates"] + report["quarantined"]
        )
        assert report["received"] == 50
    batches = RawZone(open_storage(settings.lake)).list_batches()
    assert len(batches) < n_clients  # shared flushes
    new = [r for r in reports if r["already_ingested_as"] is None]
    assert len(new) == n_clients
    assert sum(b.readings().num_rows for b in batches) == sum(r["accepted"] for r in new)
    assert sum(r["quarantined"] for r in new) == n_clients
    assert reports[-1]["accepted"] == 0
    assert reports[-1]["already_ingested_as"] == reports[0]["batch_id"]
    for batch in batches:  # each batch's manifest accounts for its parts
        m = batch.manifest()
        assert m["received"] == m["accepted"] + m["duplicates"] + m["quarantined"]
        assert batch.readings().num_rows == m["accepted"]


def test_openapi_shows_models_and_error_responses(client):
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/v1/readings"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["properties"]["readings"]
    for status in ("401", "403", "413", "422"):
        ref = post["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorResponse")
    schemas = spec["components"]["schemas"]
    assert "row_errors" in schemas["IngestResponse"]["properties"]
    assert {"ok", "error", "errors", "status"} <= set(schemas["ErrorResponse"]["properties"])
    assert "/api/v1/entries" in spec["paths"]
