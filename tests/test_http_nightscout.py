"""Nightscout-compatible entries API: an uploader app posts, the pipeline runs, the app reads."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from fastapi.testclient import TestClient

from glucosestream.access import create_token
from glucosestream.app import create_app
from glucosestream.ingest.identity import patient_key
from glucosestream.pipeline import run_pipeline

from .conftest import SECRET
from .test_http_ingest import assert_error_shape

START_MS = 1_775_421_029_000  # 2026-04-05T20:30:29Z


def key(external_id: str) -> str:
    return patient_key(SECRET.encode(), external_id)


def sha1(token: str) -> str:
    return hashlib.sha1(token.encode()).hexdigest()


def entries(n: int, step_mg_dl: int = 10) -> list[dict]:
    """As xDrip+ posts them: one sgv every 5 minutes, rising by ``step_mg_dl`` each."""
    out = []
    for i in range(n):
        date = START_MS + i * 300_000
        out.append(
            {
                "type": "sgv",
                "sgv": 100 + step_mg_dl * i,
                "date": date,
                "dateString": dt.datetime.fromtimestamp(date / 1000, dt.UTC).isoformat(),
                "device": "xDrip-DexcomG6",
                "direction": "FortyFiveUp",
            }
        )
    return out


@pytest.fixture
def tokens(settings):
    now = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    return {
        "up": create_token(settings.lake, "uploader", label="u", now=now, patient_keys=[key("N1")]),
        "two": create_token(
            settings.lake, "uploader", label="2", now=now, patient_keys=[key("N1"), key("N2")]
        ),
        "admin": create_token(settings.lake, "admin", label="a", now=now),
        "other": create_token(
            settings.lake, "patient", label="p", now=now, patient_keys=[key("N2")]
        ),
    }


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings)) as c:
        yield c


def test_uploader_posts_with_api_secret_then_reads_back_newest_first(client, tokens, settings):
    posted = entries(6)
    posted.append({"type": "mbg", "mbg": 120, "date": START_MS})  # a meter reading: skipped
    posted.append({"type": "sgv", "sgv": 5, "date": START_MS + 9_000_000})  # an error code
    response = client.post(
        "/api/v1/entries", json=posted, headers={"api-secret": sha1(tokens["up"])}
    )
    assert response.status_code == 200, response.text
    assert response.json() == posted  # Nightscout answers with the posted documents
    assert response.headers["x-ingest-received"] == "7"
    assert response.headers["x-ingest-accepted"] == "6"
    assert response.headers["x-ingest-quarantined"] == "1"
    assert run_pipeline(settings).status == "published"
    got = client.get(
        "/api/v1/entries.json", params={"count": 4}, headers={"api-secret": sha1(tokens["up"])}
    )
    assert got.status_code == 200, got.text
    body = got.json()
    assert [e["sgv"] for e in body] == [150, 140, 130, 120]
    assert [e["date"] for e in body] == [START_MS + i * 300_000 for i in (5, 4, 3, 2)]
    assert body[0]["dateString"].endswith("Z")
    assert body[0]["direction"] == "FortyFiveUp"  # 10 mg/dL in 5 min: 2 mg/dL/min, 45° arrow
    assert body[-1]["direction"] == "FortyFiveUp"
    since = client.get(
        "/api/v1/entries",
        params={"token": tokens["up"], "find[date][$gte]": START_MS + 600_000, "count": 100},
    )
    assert [e["sgv"] for e in since.json()] == [150, 140, 130, 120]


def test_reposted_entries_change_nothing(client, tokens):
    headers = {"api-secret": sha1(tokens["up"])}
    first = client.post("/api/v1/entries", json=entries(3), headers=headers)
    again = client.post("/api/v1/entries", json=entries(3), headers=headers)
    assert again.headers["x-ingest-accepted"] == "0"
    assert again.headers["x-ingest-duplicates"] == "3"
    assert again.headers["x-ingest-batch"] == first.headers["x-ingest-batch"]


def test_nightscout_auth_and_patient_rules(client, tokens):
    body = entries(2)
    assert_error_shape(client.post("/api/v1/entries", json=body), 401)
    assert_error_shape(
        client.post("/api/v1/entries", json=body, headers={"api-secret": sha1("gs_wrong")}), 401
    )
    assert_error_shape(client.post("/api/v1/entries?token=gs_wrong", json=body), 401)
    many = client.post("/api/v1/entries", json=body, headers={"api-secret": sha1(tokens["two"])})
    assert "exactly one" in assert_error_shape(many, 403)["error"]  # the token's bindings
    admin = client.post("/api/v1/entries", json=body, headers={"api-secret": sha1(tokens["admin"])})
    assert_error_shape(admin, 403)
    patient = client.post("/api/v1/entries", json=body, params={"token": tokens["other"]})
    assert_error_shape(patient, 403)
    junk = client.post("/api/v1/entries", content=b"[{", headers={"api-secret": sha1(tokens["up"])})
    assert_error_shape(junk, 422)
    # reading another patient's entries
    other = client.get(
        "/api/v1/entries",
        params={"patient": key("N1")},
        headers={"api-secret": sha1(tokens["other"])},
    )
    assert_error_shape(other, 403)
    bad_find = client.get(
        "/api/v1/entries", params={"token": tokens["up"], "find[date][$gte]": "soon"}
    )
    assert_error_shape(bad_find, 422)


def test_admin_reads_a_patient_by_key_and_before_publish_gets_nothing(client, tokens):
    client.post("/api/v1/entries", json=entries(2), headers={"api-secret": sha1(tokens["up"])})
    got = client.get(
        "/api/v1/entries",
        params={"patient": key("N1")},
        headers={"api-secret": sha1(tokens["admin"])},
    )
    assert got.status_code == 200
    assert got.json() == []  # posted but not yet published by a pipeline run


def test_a_published_reading_keeps_the_uploaders_direction(client, tokens, settings):
    from glucosestream.published import PublishedLake

    posted = entries(3)
    posted[0]["direction"] = "SingleDown"  # not what the values say: the uploader's is kept
    posted[1].pop("direction")
    posted[1]["trend"] = 1  # DoubleUp
    posted[2]["direction"] = "Sideways"  # unknown: dropped, the reading kept
    response = client.post(
        "/api/v1/entries", json=posted, headers={"api-secret": sha1(tokens["up"])}
    )
    assert response.headers["x-ingest-accepted"] == "3"
    assert run_pipeline(settings).status == "published"
    rows = PublishedLake(settings).current().readings([key("N1")]).sort_by("ts").to_pylist()
    assert [r["direction"] for r in rows] == ["SingleDown", "DoubleUp", None]
    assert [r["rate_mg_dl_min"] for r in rows] == [None, None, None]
