"""The read API over the published lake (``glucosestream.published``): a request's reads are
pinned to the run published when it started, and what a run yields is cached until the next
run is published, noticed with one metadata query per request."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient

from glucosestream.access import create_token
from glucosestream.app import create_app
from glucosestream.ingest import ingest_records
from glucosestream.ingest.identity import patient_key
from glucosestream.lake import Lakehouse
from glucosestream.pipeline import run_pipeline
from glucosestream.published import PublishedLake

from .conftest import SECRET

START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
PER_DAY = 288  # 5-minute readings


def _readings(patient: str, first_day: int, days: int) -> list[dict]:
    return [
        {
            "patient_id": patient,
            "time": (START + dt.timedelta(days=first_day, minutes=5 * i)).isoformat(),
            "glucose_mg_dl": 120.0 + (i % 60),
            "tz": "UTC",
        }
        for i in range(days * PER_DAY)
    ]


def _publish(settings, records: list[dict]) -> str:
    ingest_records(settings, records)
    report = run_pipeline(settings)
    assert report.status == "published"
    return report.run_id


def _count_calls(monkeypatch, owner: object, name: str) -> list[int]:
    calls = [0]
    method = getattr(owner, name)

    def counted(*args, **kwargs):
        calls[0] += 1
        return method(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def test_a_request_keeps_its_run_while_a_later_run_publishes(settings):
    first_run = _publish(settings, _readings("P1", 0, 3))
    key = patient_key(SECRET.encode(), "P1")
    published = PublishedLake(settings)
    request = published.current()  # a request starts on the first run
    assert request.run_id == first_run
    assert request.readings([key]).num_rows == 3 * PER_DAY
    assert request.daily(key).num_rows == 3

    second_run = _publish(settings, _readings("P1", 3, 2))  # published during the request

    # The request still reads the run it started with, table by table.
    assert request.readings([key]).num_rows == 3 * PER_DAY
    assert request.daily(key).num_rows == 3
    assert request.daily_index().patient_days(key).num_rows == 3
    # The next request sees the new run.
    later = published.current()
    assert later.run_id == second_run != first_run
    assert later.readings([key]).num_rows == 5 * PER_DAY
    assert later.daily_index().patient_days(key).num_rows == 5


def test_before_the_first_run_the_read_side_is_empty(settings):
    run = PublishedLake(settings).current()
    assert not run.is_published
    assert run.readings(["k"]).num_rows == 0
    assert run.daily().num_rows == 0
    assert run.results("periods").num_rows == 0
    assert run.daily_index().rows == {}


def test_one_metadata_query_per_request_and_one_read_per_run(settings, monkeypatch):
    _publish(settings, _readings("P1", 0, 2))
    published = PublishedLake(settings)
    queries = _count_calls(monkeypatch, published.metadata, "published")
    daily_reads = _count_calls(monkeypatch, Lakehouse, "read_daily")

    runs = [published.current() for _ in range(3)]
    for run in runs:
        run.daily_index()
    assert queries[0] == 3  # one per request
    assert daily_reads[0] == 1  # the run's daily metrics read once, then cached on it
    assert runs[0] is runs[1] is runs[2]

    _publish(settings, _readings("P1", 2, 1))
    newer = published.current()
    newer.daily_index()
    assert newer is not runs[0]
    assert (queries[0], daily_reads[0]) == (4, 2)  # the new run noticed and read once


def test_each_http_request_asks_the_metadata_store_once(settings, monkeypatch):
    _publish(settings, _readings("P1", 0, 2))
    admin = create_token(settings.lake, "admin", label="a", now=dt.datetime.now(dt.UTC))
    headers = {"Authorization": f"Bearer {admin}"}
    key = patient_key(SECRET.encode(), "P1")
    with TestClient(create_app(settings)) as client:
        published = client.app.state.published
        queries = _count_calls(monkeypatch, published.metadata, "published")
        daily_reads = _count_calls(monkeypatch, Lakehouse, "read_daily")
        for path in ("/v1/triage", f"/v1/patients/{key}/daily-metrics", "/v1/triage"):
            assert client.get(path, headers=headers).status_code == 200
        entries = client.get(f"/api/v1/entries?patient={key}&count=3", headers=headers)
        assert entries.status_code == 200
        assert len(entries.json()) == 3
    assert queries[0] == 4
    assert daily_reads[0] == 1


def test_a_followers_gets_read_the_published_readings_once_per_run(settings, monkeypatch):
    """GET /api/v1/entries takes the last 24 h of a patient's published readings from the run's
    cache (``live_merge``): a follower polling it scans Iceberg once per published run."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    recent = [
        {"patient_id": "P1", "time": (now - dt.timedelta(minutes=5 * i)).isoformat(),
         "glucose_mg_dl": 120.0 + i, "tz": "UTC"}
        for i in range(1, 25)
    ]  # fmt: skip
    _publish(settings, recent[12:])
    admin = create_token(settings.lake, "admin", label="a", now=now)
    headers = {"Authorization": f"Bearer {admin}"}
    key = patient_key(SECRET.encode(), "P1")
    with TestClient(create_app(settings)) as client:
        reads = _count_calls(monkeypatch, Lakehouse, "read_readings")
        for _ in range(3):
            got = client.get(f"/api/v1/entries?patient={key}&count=5", headers=headers)
            assert [e["sgv"] for e in got.json()] == [133, 134, 135, 136, 137]
        assert reads[0] == 1
        _publish(settings, recent[:12])  # the run reads curated readings itself
        reads[0] = 0
        for _ in range(2):
            got = client.get(f"/api/v1/entries?patient={key}&count=5", headers=headers)
            assert [e["sgv"] for e in got.json()] == [121, 122, 123, 124, 125]
        assert reads[0] == 1  # the new run's tail, read once
