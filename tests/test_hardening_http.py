"""Issue 13 over HTTP: requests flushed together never share a fate (2), every body has a limit
enforced before it is read (5), hostile values are 4xx, never 500 (6), a deleted token is
refused at once (8), and the OpenAPI document tells the truth."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from glucosestream.access import authenticate, create_token, hash_token
from glucosestream.app import create_app
from glucosestream.errors import EngineOverloaded, InvalidInput, LakeError
from glucosestream.ingest import batch as batch_module
from glucosestream.ingest.lambda_handler import handle_event
from glucosestream.ingest.ledger import RequestLedger, open_ledger
from glucosestream.ingest.limits import (
    MAX_ID_CHARS,
    MAX_INGEST_BODY_BYTES,
    MAX_JSON_DEPTH,
    MAX_OTHER_BODY_BYTES,
    MAX_READINGS_PER_REQUEST,
)
from glucosestream.ingest.request_parts import RequestParser
from glucosestream.ingest.service import IngestService
from glucosestream.lake import RawZone, open_access, open_storage
from glucosestream.lake.database import metadata_engine
from glucosestream.lake.metadata_schema import METADATA
from glucosestream.lake.zones import RawZone as RawZoneClass
from glucosestream.pipeline import run_pipeline

from .test_http_ingest import NOW, assert_error_shape, bearer, key, readings

POISON = "poison-2026-03-01T00:00:00Z"  # a time the injected failure recognises


@pytest.fixture
def tokens(settings):
    return {
        "admin": create_token(settings.lake, "admin", label="a", now=NOW),
        "p1": create_token(settings.lake, "uploader", label="u", now=NOW, patient_keys=[key("P1")]),
        "ns": create_token(settings.lake, "uploader", label="n", now=NOW, patient_keys=[key("N1")]),
    }


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings)) as c:
        yield c


def sha1(token: str) -> str:
    return hashlib.sha1(token.encode()).hexdigest()


def entries(n: int, start_ms: int = 1_775_421_029_000) -> list[dict]:
    return [
        {"type": "sgv", "sgv": 100 + i, "date": start_ms + i * 300_000, "device": "xDrip"}
        for i in range(n)
    ]


def raw_readings(settings):
    batches = RawZone(open_storage(settings.lake)).list_batches()
    return batches, [b.readings() for b in batches]


def keys_once(tables) -> bool:
    """No (patient, device, time) is in the raw zone twice."""
    seen = Counter()
    for t in tables:
        for row in zip(
            *(t[c].to_pylist() for c in ("patient_key", "device_id", "ts")), strict=True
        ):
            seen[row] += 1
    return all(n == 1 for n in seen.values())


@pytest.fixture
def poisoned(monkeypatch):
    """Checking fails for any group of requests holding a reading timed ``POISON`` (a failure
    injected where ingest checks rows, so the test does not depend on which values ingest
    quarantines)."""
    original = batch_module.normalise

    def normalise(engine, settings, incoming, *args, **kwargs):
        if POISON in incoming["time"].to_pylist():
            raise RuntimeError("injected failure")
        return original(engine, settings, incoming, *args, **kwargs)

    monkeypatch.setattr(batch_module, "normalise", normalise)


# --- finding 2: one request's failure is its own ---------------------------------------------
def test_finding2_a_failing_request_is_answered_alone_and_the_rest_commit_once(
    settings, tokens, poisoned
):
    service, parser = IngestService(settings), RequestParser(settings)
    principal = authenticate(open_access(settings.lake), tokens["admin"])
    bodies, bad = [], set()
    for i in range(12):
        rows = readings("P1", 5, start_minute=10 * i, device=f"d{i}")
        if i in (3, 8):
            rows[2]["time"] = POISON
            bad.add(i)
        bodies.append(json.dumps({"readings": rows}).encode())
    parts = [parser.readings_part(principal, b) for b in bodies]
    futures = [service.committer.enqueue(p)[0] for p in parts]  # all queued: one flush
    service.committer.drain()
    for i, future in enumerate(futures):
        if i in bad:
            error = future.exception()
            assert isinstance(error, InvalidInput)
            assert error.status == 422
            assert "injected failure" in str(error)
            assert "not affected" in str(error)
        else:
            outcome = future.result()
            assert (outcome.report.accepted, outcome.report.quarantined) == (5, 0)
    batches, tables = raw_readings(settings)
    assert len(batches) == 1  # the good requests still share one batch
    assert sum(t.num_rows for t in tables) == 10 * 5
    assert keys_once(tables)
    recorded = open_ledger(settings.lake).find([p.sha256 for p in parts])
    assert set(recorded) == {p.sha256 for i, p in enumerate(parts) if i not in bad}


def test_finding2_a_busy_store_while_checking_is_retryable_not_the_request_s_fault(
    settings, tokens, monkeypatch
):
    """A failure while checking that says trying again may help (LakeError) is answered as it
    is (500, retryable), not as the request's own 422; the other requests still commit."""
    original = batch_module.normalise

    def normalise(engine, settings, incoming, *args, **kwargs):
        if POISON in incoming["time"].to_pylist():
            raise LakeError("injected: the metadata store is busy; try again")
        return original(engine, settings, incoming, *args, **kwargs)

    monkeypatch.setattr(batch_module, "normalise", normalise)
    service, parser = IngestService(settings), RequestParser(settings)
    principal = authenticate(open_access(settings.lake), tokens["admin"])
    poisoned_rows = readings("P1", 2, device="bad")
    poisoned_rows[0]["time"] = POISON
    bodies = [readings("P1", 3, device="good"), poisoned_rows]
    parts = [parser.readings_part(principal, json.dumps({"readings": b}).encode()) for b in bodies]
    futures = [service.committer.enqueue(p)[0] for p in parts]
    service.committer.drain()
    assert futures[0].result().report.accepted == 3
    error = futures[1].exception()
    assert isinstance(error, LakeError)
    assert error.retryable


def test_finding2_concurrent_good_requests_are_unaffected_by_bad_ones(settings, tokens):
    """The issue's case: 3 requests with ``"time": "inf"`` among 30 good ones, concurrently."""
    app = create_app(settings)
    n_good, n_bad, n_rows = 30, 3, 5
    bodies = []
    for i in range(n_good + n_bad):
        rows = readings("P1", n_rows, start_minute=10 * i, device=f"d{i}")
        if i >= n_good:
            rows[1]["time"] = "inf"
        bodies.append(json.dumps({"readings": rows}).encode())
    order = [b for pair in zip(bodies[:n_bad], bodies[n_good:], strict=True) for b in pair]
    order += bodies[n_bad:n_good]  # the bad ones first, among the good ones

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await asyncio.gather(
                *(c.post("/v1/readings", content=b, headers=bearer(tokens["p1"])) for b in order)
            )

    responses = dict(zip(order, asyncio.run(run()), strict=True))
    for body in bodies[:n_good]:
        response = responses[body]
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == n_rows
    bad_accepted = 0
    for body in bodies[n_good:]:  # the bad reading quarantined, or the request refused alone
        response = responses[body]
        if response.status_code == 200:
            assert [e["index"] for e in response.json()["row_errors"]] == [1]
            bad_accepted += response.json()["accepted"]
        else:
            assert_error_shape(response, 422)
    batches, tables = raw_readings(settings)
    assert sum(t.num_rows for t in tables) == n_good * n_rows + bad_accepted
    assert keys_once(tables)
    landed = {responses[b].json()["batch_id"] for b in bodies[:n_good]}
    assert landed <= {b.batch_id for b in batches}


def test_finding2_a_failed_write_leaves_nothing_and_a_retry_lands_once(
    settings, tokens, client, monkeypatch
):
    body = json.dumps({"readings": readings("P1", 4)}).encode()

    def fail(self, batch_id, manifest):
        raise LakeError("injected: the disk is full")

    monkeypatch.setattr(RawZoneClass, "commit_batch", fail)
    failed = client.post("/v1/readings", content=body, headers=bearer(tokens["p1"]))
    assert "disk is full" in assert_error_shape(failed, 500)["error"]
    assert raw_readings(settings)[0] == []
    folder = Path(RawZone(open_storage(settings.lake)).batches_path)
    assert not folder.exists() or not list(folder.iterdir())  # nothing half-written
    monkeypatch.undo()
    again = client.post("/v1/readings", content=body, headers=bearer(tokens["p1"]))
    assert again.status_code == 200, again.text
    assert again.json()["accepted"] == 4
    batches, tables = raw_readings(settings)
    assert len(batches) == 1
    assert tables[0].num_rows == 4


def test_finding2_a_batch_committed_but_not_recorded_is_published_once(
    settings, tokens, client, monkeypatch
):
    """The one window left: the batch is committed in the raw zone, then recording it fails.
    The request is answered 500 (retryable) and is not in the ledger; the retry lands in a new
    batch; the run registers the first from its manifest and merges each reading once."""
    posted = entries(4)
    headers = {"api-secret": sha1(tokens["ns"])}

    def fail(self, batch, records, **kwargs):
        raise LakeError("injected: the metadata store went away")

    monkeypatch.setattr(RequestLedger, "record_batch", fail)
    failed = client.post("/api/v1/entries", json=posted, headers=headers)
    assert assert_error_shape(failed, 500)["status"] == 500
    monkeypatch.undo()
    again = client.post("/api/v1/entries", json=posted, headers=headers)
    assert again.status_code == 200, again.text
    assert again.headers["x-ingest-accepted"] == "4"
    assert len(raw_readings(settings)[0]) == 2  # the readings are in the raw zone twice
    assert run_pipeline(settings).status == "published"
    published = client.get("/api/v1/entries", params={"count": 100}, headers=headers)
    assert sorted(e["date"] for e in published.json()) == [e["date"] for e in posted]


def test_a_batch_a_run_registered_first_is_still_recorded_with_its_requests(
    settings, tokens, monkeypatch
):
    """Review: a run's discover may register a committed batch from its manifest before its
    writer records it; the writer's insert then failed on the primary key, every request of the
    batch was answered an error, and none reached the ledger. The second insert is a no-op."""
    from glucosestream.lake import open_metadata

    original = RequestLedger.record_batch

    def discover_first(self, batch, records, **kwargs):
        open_metadata(settings.lake).add_batch(batch)  # as discover would, in between
        return original(self, batch, records, **kwargs)

    monkeypatch.setattr(RequestLedger, "record_batch", discover_first)
    service, parser = IngestService(settings), RequestParser(settings)
    principal = authenticate(open_access(settings.lake), tokens["admin"])
    part = parser.readings_part(principal, json.dumps({"readings": readings("P1", 3)}).encode())
    outcome = service.ingest(part)
    assert outcome.report.accepted == 3
    assert set(open_ledger(settings.lake).find([part.sha256])) == {part.sha256}


# --- finding 5: limits, enforced before a body is read -----------------------------------------
def call_asgi(app, method: str, path: str, headers: dict[str, str], chunks):
    """Send a request to the ASGI app with the body in ``chunks``; returns (status, body,
    chunks the app read)."""
    read = 0
    sent: list[dict] = []
    chunks = iter(chunks)

    async def receive():
        nonlocal read
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        read += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1234),
        "server": ("t", 80),
    }
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), read


def chunks_past(limit: int, size: int):
    """Chunks of ``size`` bytes, a few more than it takes to pass ``limit``."""
    for _ in range(limit // size + 4):
        yield b"x" * size


@pytest.mark.parametrize(
    ("method", "path", "limit"),
    [
        ("POST", "/v1/readings", MAX_INGEST_BODY_BYTES),
        ("POST", "/api/v1/entries", MAX_INGEST_BODY_BYTES),
        ("POST", "/login", MAX_OTHER_BODY_BYTES),
        ("POST", "/v1/cohort/releases", MAX_OTHER_BODY_BYTES),
    ],
)
def test_finding5_a_declared_length_over_the_limit_is_413_unread(
    settings, tokens, method, path, limit
):
    app = create_app(settings)
    headers = {
        "content-length": str(80 * 1024 * 1024 if path == "/login" else limit + 1),
        "content-type": "application/json",
        **bearer(tokens["admin"]),
    }
    status, body, read = call_asgi(app, method, path, headers, chunks_past(limit, 1 << 20))
    assert (status, body["status"], body["ok"], read) == (413, 413, False, 0)
    assert f"{limit:,} bytes" in body["error"]


@pytest.mark.parametrize(
    ("path", "content_type", "chunk", "limit"),
    [
        ("/v1/readings", "application/json", 1 << 20, MAX_INGEST_BODY_BYTES),
        ("/api/v1/entries", "application/json", 1 << 20, MAX_INGEST_BODY_BYTES),
        ("/login", "application/x-www-form-urlencoded", 4096, MAX_OTHER_BODY_BYTES),
        # a route that parses its body with pydantic answered 400 (review)
        ("/v1/cohort/releases", "application/json", 4096, MAX_OTHER_BODY_BYTES),
    ],
)
def test_finding5_a_chunked_body_is_refused_once_past_the_limit(
    settings, tokens, path, content_type, chunk, limit
):
    app = create_app(settings)
    headers = {"content-type": content_type, "host": "t", "origin": "http://t"}
    headers.update(bearer(tokens["admin"]))
    if path == "/api/v1/entries":
        headers["api-secret"] = sha1(tokens["ns"])
    status, body, read = call_asgi(app, "POST", path, headers, chunks_past(limit, chunk))
    assert (status, body["status"]) == (413, 413), body
    assert read == limit // chunk + 1  # not one chunk more than it takes to pass the limit


def test_finding5_a_chunked_body_within_its_limit_is_ingested_whole(settings, tokens):
    body = json.dumps({"readings": readings("P1", 50)}).encode()
    pieces = [body[i : i + 1000] for i in range(0, len(body), 1000)]
    headers = {"content-type": "application/json", **bearer(tokens["admin"])}
    status, answer, read = call_asgi(create_app(settings), "POST", "/v1/readings", headers, pieces)
    assert (status, answer["accepted"], read) == (200, 50, len(pieces))


def test_finding5_the_ingest_limit_holds_the_largest_request_with_room(settings):
    longest = "x" * MAX_ID_CHARS
    fields = ("patient_id", "device_id", "time", "tz", "unit")
    reading = {**dict.fromkeys(fields, longest), "glucose_mg_dl": 123.4, "glucose_mmol_l": 6.85}
    body = json.dumps({"readings": [reading] * MAX_READINGS_PER_REQUEST}).encode()
    assert len(body) < MAX_INGEST_BODY_BYTES * 0.9
    assert MAX_OTHER_BODY_BYTES == 16 * 1024


def test_finding5_an_over_long_id_is_its_reading_s_fault_and_is_not_stored(
    client, tokens, settings
):
    rows = readings("P1", 3)
    rows[1]["device_id"] = "d" * (1024 * 1024)  # 1 MB: within the body limit, not an id
    answer = client.post("/v1/readings", json={"readings": rows}, headers=bearer(tokens["admin"]))
    assert answer.status_code == 200, answer.text
    assert (answer.json()["accepted"], answer.json()["quarantined"]) == (2, 1)
    assert [e["index"] for e in answer.json()["row_errors"]] == [1]
    batches = RawZone(open_storage(settings.lake)).list_batches()
    assert max(len(d) for d in batches[0].readings()["device_id"].to_pylist()) <= MAX_ID_CHARS


def test_finding5_lambda_refuses_a_body_over_the_limit(settings, tokens):
    event = {
        "rawPath": "/v1/readings",
        "requestContext": {"http": {"method": "POST"}},
        "headers": bearer(tokens["admin"]),
        "body": " " * (MAX_INGEST_BODY_BYTES + 1),
    }
    response = handle_event(settings, event)
    assert response["statusCode"] == 413
    assert json.loads(response["body"])["status"] == 413


# --- finding 6: hostile values are 4xx in the one shape ----------------------------------------
NOT_NUMBERS = ["inf", "-inf", "nan", "1e400", "9" * 400, "", "1e3x"]
FAR_NUMBERS = ["-1", "1e30", "-1e30", "10" + "0" * 30, "0"]  # held within years 1 to 9999


@pytest.mark.parametrize("value", NOT_NUMBERS + FAR_NUMBERS)
@pytest.mark.parametrize("field", ["date", "dateString"])
@pytest.mark.parametrize("op", ["$gte", "$gt", "$lte", "$lt"])
def test_finding6_hostile_find_values_are_422_after_authentication(
    client, tokens, field, value, op
):
    params = {f"find[{field}][{op}]": value}
    assert_error_shape(client.get("/api/v1/entries", params=params), 401)
    answer = client.get(
        "/api/v1/entries", params=params, headers={"api-secret": sha1(tokens["ns"])}
    )
    if field == "date" and value in FAR_NUMBERS:
        assert answer.status_code == 200, answer.text
        assert answer.json() == []
    else:
        body = assert_error_shape(answer, 422)
        assert f"find[{field}]" in body["error"]


@pytest.mark.parametrize(
    "value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00", "2016-12-31T23:59:60Z"]
)
def test_finding6_far_iso_times_are_held_within_range(client, tokens, value):
    for op in ("$gte", "$gt", "$lte", "$lt"):
        answer = client.get(
            "/api/v1/entries",
            params={f"find[dateString][{op}]": value},
            headers={"api-secret": sha1(tokens["ns"])},
        )
        assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("count", ["-1", "0", str(10**30), "nan", "1e3", "10001"])
def test_finding6_hostile_counts_are_422(client, tokens, count):
    answer = client.get(
        "/api/v1/entries", params={"count": count}, headers={"api-secret": sha1(tokens["ns"])}
    )
    assert_error_shape(answer, 422)


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100, 100_000])
def test_finding6_json_nested_too_deep_is_422(client, tokens, depth):
    reading = json.dumps(readings("P1", 1)[0]).encode()
    deep_readings = b'{"readings": [' + reading[:-1] + b', "extra": ' + nested(depth) + b"}]}"
    answer = client.post("/v1/readings", content=deep_readings, headers=bearer(tokens["p1"]))
    assert "nested deeper than" in assert_error_shape(answer, 422)["error"]
    entry = json.dumps(entries(1)[0]).encode()
    deep_entries = b"[" + entry[:-1] + b', "extra": ' + nested(depth) + b"}]"
    answer = client.post(
        "/api/v1/entries", content=deep_entries, headers={"api-secret": sha1(tokens["ns"])}
    )
    assert "nested deeper than" in assert_error_shape(answer, 422)["error"]


def test_finding6_a_field_nested_within_the_limit_is_taken(client, tokens):
    rows = readings("P1", 2)
    rows[0]["extra"] = {"a": [1, {"b": [2, 3]}]}
    answer = client.post("/v1/readings", json={"readings": rows}, headers=bearer(tokens["p1"]))
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 2


def test_finding6_text_that_is_not_utf8_is_422(client, tokens):
    text = b'"P\xff1"'
    reading = b'{"patient_id": "P1", "device_id": ' + text + b', "time": "2026-03-01T00:00:00Z"'
    body = b'{"readings": [' + reading + b', "glucose_mg_dl": 100}]}'
    answer = client.post("/v1/readings", content=body, headers=bearer(tokens["admin"]))
    assert "not valid JSON" in assert_error_shape(answer, 422)["error"]
    entry = b'[{"type": "sgv", "sgv": 100, "date": 1775421029000, "device": ' + text + b"}]"
    answer = client.post(
        "/api/v1/entries", content=entry, headers={"api-secret": sha1(tokens["ns"])}
    )
    assert "not valid JSON" in assert_error_shape(answer, 422)["error"]


@pytest.mark.parametrize("text", [b'"\\ud800"', b'"\\udc00x"'], ids=["high", "low"])
def test_finding6_a_lone_surrogate_never_500(client, tokens, text):
    """A lone surrogate escape is valid JSON but not Unicode: that reading is quarantined."""
    good = b'{"patient_id": "P1", "time": "2026-03-01T00:05:00Z", "glucose_mg_dl": 101}'
    bad = b'{"patient_id": "P1", "device_id": ' + text + b', "time": "2026-03-01T00:00:00Z"'
    body = b'{"readings": [' + bad + b', "glucose_mg_dl": 100}, ' + good + b"]}"
    answer = client.post("/v1/readings", content=body, headers=bearer(tokens["admin"]))
    assert answer.status_code == 200, answer.text
    assert (answer.json()["accepted"], answer.json()["quarantined"]) == (1, 1)
    entry = b'[{"type": "sgv", "sgv": 100, "date": 1775421029000, "device": ' + text + b"}]"
    answer = client.post(
        "/api/v1/entries", content=entry, headers={"api-secret": sha1(tokens["ns"])}
    )
    assert answer.status_code in (200, 422), answer.text
    if answer.status_code == 200:
        assert answer.json()[0]["sgv"] == 100  # echoed as JSON text, the surrogate escaped


@pytest.mark.parametrize("value", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
@pytest.mark.parametrize("field", [b"sgv", b"date", b"utcOffset", b"device"])
def test_finding6_nightscout_non_finite_numbers_never_500(client, tokens, field, value):
    good = b'{"type": "sgv", "sgv": 110, "date": 1775421329000, "device": "xDrip"}'
    bad = b'{"type": "sgv", "sgv": 100, "date": 1775421029000, "device": "xDrip"}'
    bad = bad[:-1] + b", " + b'"' + field + b'": ' + value + b"}"  # the last key wins
    body = b"[" + bad + b", " + good + b"]"
    headers = {"api-secret": sha1(tokens["ns"])}
    first = client.post("/api/v1/entries", content=body, headers=headers)
    assert first.status_code == 200, first.text
    echoed = first.json()
    assert echoed[0][field.decode()] is None  # not finite: answered as null
    assert echoed[1]["sgv"] == 110
    received = int(first.headers["x-ingest-received"])
    assert (
        int(first.headers["x-ingest-accepted"])
        + int(first.headers["x-ingest-quarantined"])
        + int(first.headers["x-ingest-duplicates"])
        == received
    )
    again = client.post("/api/v1/entries", content=body, headers=headers)
    assert again.status_code == 200, again.text  # a retry is answered too, never 500
    assert again.headers["x-ingest-accepted"] == "0"


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400", "Infinity"])
def test_finding6_hostile_times_are_a_row_error_or_422_never_500(client, tokens, value):
    rows = readings("P1", 2)
    rows[1]["time"] = value
    answer = client.post("/v1/readings", json={"readings": rows}, headers=bearer(tokens["p1"]))
    if answer.status_code == 200:
        assert [e["index"] for e in answer.json()["row_errors"]] == [1]
    else:
        assert_error_shape(answer, 422)


@pytest.mark.parametrize("value", [b"NaN", b"Infinity", b"1e400", b"1" + b"0" * 400])
def test_finding6_readings_with_lenient_numbers_never_500(client, tokens, value):
    body = (
        b'{"readings": [{"patient_id": "P1", "time": "2026-03-01T00:00:00Z", "glucose_mg_dl": '
        + value
        + b"}]}"
    )
    answer = client.post("/v1/readings", content=body, headers=bearer(tokens["p1"]))
    if answer.status_code == 200:
        assert answer.json()["quarantined"] == 1
    else:
        assert_error_shape(answer, 422)


# --- finding 8: a deleted token is refused on the very next request --------------------------
def delete_token(settings, token: str) -> None:
    """Delete a token from every table that names it (whatever the schema holds today)."""
    token_sha256 = hash_token(token)
    with metadata_engine(settings.lake).begin() as con:
        for table in reversed(METADATA.sorted_tables):
            if "token_sha256" in table.c:
                con.execute(sa.delete(table).where(table.c.token_sha256 == token_sha256))


def test_finding8_token_cache_a_deleted_token_is_refused_at_once(client, tokens, settings):
    body = {"readings": readings("P1", 2)}
    assert client.post("/v1/readings", json=body, headers=bearer(tokens["p1"])).status_code == 200
    ns_ways = [
        {"headers": {"api-secret": sha1(tokens["ns"])}},
        {"params": {"token": tokens["ns"]}},
        {"headers": bearer(tokens["ns"])},
    ]
    for way in ns_ways:
        assert client.get("/api/v1/entries", **way).status_code == 200
        posted = client.post("/api/v1/entries", json=entries(1), **way)
        assert posted.status_code == 200, posted.text
    delete_token(settings, tokens["p1"])
    delete_token(settings, tokens["ns"])
    again = {"readings": readings("P1", 2, start_minute=50)}
    assert_error_shape(client.post("/v1/readings", json=again, headers=bearer(tokens["p1"])), 401)
    for way in ns_ways:
        assert_error_shape(client.get("/api/v1/entries", **way), 401)
        assert_error_shape(client.post("/api/v1/entries", json=entries(1, 1), **way), 401)


# --- OpenAPI: what is documented is what is answered -------------------------------------------
def test_openapi_documents_every_ingest_status_and_body(client):
    spec = client.get("/openapi.json").json()
    for path, method in (("/v1/readings", "post"), ("/api/v1/entries", "post")):
        operation = spec["paths"][path][method]
        assert operation["requestBody"]["content"]["application/json"]["schema"]
        for status in ("401", "403", "413", "422"):
            ref = operation["responses"][status]["content"]["application/json"]["schema"]
            assert ref["$ref"].endswith("/ErrorResponse")
    echo = spec["paths"]["/api/v1/entries"]["post"]["responses"]["200"]
    assert echo["content"]["application/json"]["schema"]["type"] == "array"
    assert "X-Ingest-Accepted" in echo["headers"]
    names = {p["name"] for p in spec["paths"]["/api/v1/entries"]["get"]["parameters"]}
    assert {"count", "find[date][$gte]", "find[dateString][$lt]"} <= names


def test_a_method_not_allowed_says_which_are(client):
    answer = client.request("TRACE", "/v1/readings")
    assert_error_shape(answer, 405)
    assert answer.headers["allow"] == "POST"
    answer = client.request("PUT", "/api/v1/entries")  # a GET route and a POST route
    assert_error_shape(answer, 405)
    assert answer.headers["allow"] == "GET, POST"


def test_finding6_no_reading_of_a_refused_request_reaches_the_raw_zone(client, tokens, settings):
    rows = readings("P1", 3)
    rows[2]["extra"] = json.loads(nested(MAX_JSON_DEPTH + 5))
    answer = client.post("/v1/readings", json={"readings": rows}, headers=bearer(tokens["p1"]))
    assert_error_shape(answer, 422)
    assert raw_readings(settings)[0] == []


def test_running_out_of_memory_while_checking_is_503_retryable_not_the_request_s_fault(
    settings, tokens, monkeypatch
):
    """Review: a failure that is the server's state (memory, disk) failed each request alone
    too, and was answered 422 "correct or remove the reading": an uploader does not retry a 4xx,
    so those readings were never sent again. It is 503, retryable, for every request it hit."""
    original = batch_module.normalise
    calls = []

    def normalise(engine, settings, incoming, *args, **kwargs):
        calls.append(incoming.num_rows)
        if len(calls) > 1 or incoming.num_rows > 0:
            raise MemoryError
        return original(engine, settings, incoming, *args, **kwargs)

    monkeypatch.setattr(batch_module, "normalise", normalise)
    service, parser = IngestService(settings), RequestParser(settings)
    principal = authenticate(open_access(settings.lake), tokens["admin"])
    bodies = [readings("P1", 3, device=f"d{i}") for i in range(3)]
    parts = [parser.readings_part(principal, json.dumps({"readings": b}).encode()) for b in bodies]
    futures = [service.committer.enqueue(p)[0] for p in parts]
    service.committer.drain()
    for future in futures:
        error = future.exception()
        assert isinstance(error, EngineOverloaded), error
        assert (error.status, error.retryable) == (503, True)
    assert raw_readings(settings)[0] == []  # nothing written


def test_duckdb_out_of_memory_is_engine_overloaded(settings):
    """The engine says which of its failures are the machine's state, so callers can answer
    503 (retry later) rather than blame the input."""
    from glucosestream.config import EngineSettings
    from glucosestream.engines import DuckDBEngine

    engine = DuckDBEngine(EngineSettings(memory_limit_mb=2))
    try:
        with pytest.raises(EngineOverloaded, match="out of memory or disk space"):
            engine.query("SELECT list(range) FROM range(10000000) GROUP BY range % 1000000", {})
    finally:
        engine.close()
