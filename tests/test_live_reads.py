"""Readings visible at once (issue 17): GET /api/v1/entries, /current and status.json over the
published run merged with the live window (``published.live_merge``). A posted reading is
there as soon as its POST is answered, with the uploader's direction; after the run that
publishes it, it is there exactly once; a reading the run did not publish stops showing only
from that run on."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from glucosestream.access import create_token
from glucosestream.app import create_app
from glucosestream.clock import utc_now
from glucosestream.ingest.identity import patient_key
from glucosestream.ingest.service import IngestService
from glucosestream.lake import open_metadata
from glucosestream.live import LiveReading, LiveWindow, live_state
from glucosestream.pipeline import run_pipeline
from glucosestream.published import PublishedLake, PublishedRun
from glucosestream.published.live_merge import TAIL, merged_readings, published_tail, warm_tails

from .conftest import SECRET

KEY = patient_key(SECRET.encode(), "N1")


def sha1(token: str) -> str:
    return hashlib.sha1(token.encode()).hexdigest()


def epoch_ms(at: dt.datetime) -> int:
    return int(at.timestamp() * 1000)


@pytest.fixture
def app(settings):
    """The app with a live window fed by its ingest service (as create_app will make it)."""
    app = create_app(settings)
    live, _ = live_state(settings)
    app.state.live = live
    app.state.ingest_service = IngestService(settings, on_committed=[live.add])
    return app


@pytest.fixture
def uploader(settings) -> dict[str, str]:
    token = create_token(settings.lake, "uploader", label="u", now=utc_now(), patient_keys=[KEY])
    return {"api-secret": sha1(token)}


def _settle(app, settings, run_id: str) -> None:
    """What the app's on_published hook does after a published run."""
    app.state.live.settle(open_metadata(settings.lake).run_batch_ids(run_id), run_id=run_id)


def test_a_posted_entry_is_read_at_once_and_once_after_the_run(app, settings, uploader):
    now = utc_now().replace(microsecond=0)
    times = [now - dt.timedelta(minutes=m) for m in (10, 5, 0)]
    posted = [
        {"type": "sgv", "sgv": 100, "date": epoch_ms(times[0]), "device": "xDrip"},
        {"type": "sgv", "sgv": 104, "date": epoch_ms(times[1]), "device": "xDrip", "trend": 6},
        {"type": "sgv", "sgv": 120, "date": epoch_ms(times[2]), "device": "xDrip",
         "direction": "SingleUp"},
    ]  # fmt: skip
    with TestClient(app) as client:
        response = client.post("/api/v1/entries", json=posted, headers=uploader)
        assert response.status_code == 200, response.text
        expected = [
            (120, "SingleUp", 2, 16.0),  # the uploader's arrow, not the computed DoubleUp
            (104, "SingleDown", 6, 4.0),  # trend 6 sent without a direction
            (100, "NONE", 0, None),  # no previous reading: nothing to compute from
        ]

        def read(path: str, **params) -> list[tuple]:
            got = client.get(path, params=params, headers=uploader)
            assert got.status_code == 200, got.text
            return [(e["sgv"], e["direction"], e["trend"], e.get("delta")) for e in got.json()]

        assert read("/api/v1/entries.json") == expected
        assert read("/api/v1/entries/current.json") == expected[:1]
        assert read("/api/v1/entries/current") == expected[:1]
        report = run_pipeline(settings)
        assert report.status == "published"
        assert read("/api/v1/entries.json") == expected  # published and live: once each
        _settle(app, settings, report.run_id)
        assert read("/api/v1/entries") == expected  # now from the published run alone
        assert read("/api/v1/entries/current") == expected[:1]
        assert read("/api/v1/entries", count=2) == expected[:2]
        since = {"find[date][$gte]": epoch_ms(times[1])}
        assert read("/api/v1/entries", **since) == expected[:2]


def test_v1_readings_are_read_at_once_with_the_direction_of_their_rate(app, settings):
    admin = create_token(settings.lake, "admin", label="a", now=utc_now())
    now = utc_now().replace(microsecond=0)
    body = {
        "readings": [
            {"patient_id": "N1", "time": (now - dt.timedelta(minutes=5)).isoformat(),
             "glucose_mg_dl": 150, "device_id": "pump"},
            {"patient_id": "N1", "time": now.isoformat(), "glucose_mg_dl": 151,
             "device_id": "pump", "rate_mg_dl_min": -2.5},
        ]
    }  # fmt: skip
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {admin}"}
        assert client.post("/v1/readings", json=body, headers=headers).status_code == 200
        got = client.get("/api/v1/entries", params={"patient": KEY}, headers=headers)
        assert got.status_code == 200, got.text
        assert [(e["sgv"], e["direction"]) for e in got.json()] == [
            (151, "SingleDown"),  # from the sent rate, not the +0.2 mg/dL/min computed
            (150, "NONE"),
        ]
    store = sa.create_engine(settings.lake.resolved_metadata_url())
    with store.connect() as con:  # recorded with the batch, in live_readings
        rows = con.execute(sa.text("SELECT glucose_mg_dl, rate_mg_dl_min FROM live_readings"))
        assert sorted(rows.all()) == [(150.0, None), (151.0, -2.5)]
    store.dispose()


def test_status_json_answers_as_nightscout_does_without_a_token(app):
    with TestClient(app) as client:
        for path in ("/api/v1/status.json", "/api/v1/status"):
            got = client.get(path)
            assert got.status_code == 200, got.text
            body = got.json()
            assert body["status"] == "ok"
            assert body["apiEnabled"] is True
            assert body["careportalEnabled"] is False
            assert body["settings"]["units"] == "mg/dl"
            assert body["settings"]["thresholds"] == {
                "bgHigh": 250.0,
                "bgTargetTop": 180.0,
                "bgTargetBottom": 70.0,
                "bgLow": 55.0,
            }
            assert body["settings"]["alarmTimeagoWarnMins"] == 20.0
            assert body["settings"]["alarmTimeagoUrgentMins"] == 40.0
            assert body["version"].split(".")[0].isdigit()
            assert body["authorized"] is None
            server_time = dt.datetime.fromisoformat(body["serverTime"])
            assert abs(epoch_ms(server_time) - body["serverTimeEpoch"]) < 1


# The merge itself, over a stand-in for a published run --------------------------------------
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


@dataclasses.dataclass
class Run:
    """What ``merged_readings`` uses of a ``PublishedRun``; counts the lake reads."""

    run_id: str | None
    rows: list[LiveReading]
    reads: int = 0

    @property
    def is_published(self) -> bool:
        return self.run_id is not None

    def cached(self, name, make):
        return PublishedRun.cached(self, name, make)  # type: ignore[arg-type]

    def readings(self, keys, since=None):
        import pyarrow as pa

        from glucosestream.readings import READING_SCHEMA

        self.reads += 1
        rows = [r for r in self.rows if since is None or r.ts >= since]
        return pa.Table.from_pylist(
            [
                {**{f: getattr(r, f) for f in ("patient_key", "device_id", "ts",
                    "glucose_mg_dl", "flags", "tz", "direction", "rate_mg_dl_min", "batch_id")},
                 "source": "test", "original_value": r.glucose_mg_dl, "original_unit": "mg/dL",
                 "ingested_at": r.ts}
                for r in rows
            ],
            schema=READING_SCHEMA,
        )  # fmt: skip

    def __post_init__(self):
        import threading

        self._cache_lock = threading.RLock()
        self._cache = {}


def reading(minutes_ago: float, batch_id: str = "b1", **kw) -> LiveReading:
    fields = dict(
        patient_key="k", device_id="d", ts=NOW - dt.timedelta(minutes=minutes_ago),
        glucose_mg_dl=100.0 + minutes_ago, flags=0, tz="UTC", direction=None,
        rate_mg_dl_min=None, batch_id=batch_id, settled=False,
    )  # fmt: skip
    return LiveReading(**{**fields, **kw})


def window_with(*readings: LiveReading) -> LiveWindow:
    window = LiveWindow(24, clock=lambda: NOW)
    window.seed(readings)
    return window


def minutes(readings: list[LiveReading]) -> list[float]:
    return [(NOW - r.ts) / dt.timedelta(minutes=1) for r in readings]


@pytest.mark.fast
def test_a_settled_reading_shows_until_the_request_reads_the_run_that_settled_it():
    window = window_with(reading(10, "b1"), reading(5, "b2"), reading(0, "b3"))
    window.settle(["b1", "b2"], run_id="run-2")  # run-2 published b1 and set b2's reading aside
    published = [reading(20, "b0"), reading(10, "b1")]
    older = Run("run-1", [reading(20, "b0")])  # a request that pinned run-1 before the publish
    assert minutes(merged_readings(older, window, "k", now=NOW)) == [0, 5, 10, 20]
    newer = Run("run-2", published)
    assert minutes(merged_readings(newer, window, "k", now=NOW)) == [0, 10, 20]  # 5: set aside
    none_yet = Run(None, [])
    assert minutes(merged_readings(none_yet, window, "k", now=NOW)) == [0, 5, 10]


@pytest.mark.fast
def test_readings_settled_by_an_unknown_run_come_from_the_published_run_only():
    window = window_with(reading(5, "b1", settled=True), reading(0, "b2"))
    run = Run("run-1", [])
    assert minutes(merged_readings(run, window, "k", now=NOW)) == [0]


@pytest.mark.fast
def test_one_reading_per_key_the_published_copy_first_newest_first():
    window = window_with(
        reading(5, "b2", direction="Flat"), reading(5, "b2", device_id="d2"), reading(0, "b3")
    )
    run = Run("run-1", [reading(5, "b1", direction="SingleUp"), reading(15, "b0")])
    got = merged_readings(run, window, "k", now=NOW, until=NOW - dt.timedelta(minutes=1))
    assert [(r.device_id, r.batch_id, r.direction) for r in got] == [
        ("d2", "b2", None),  # newest first; at one instant, by device id (descending)
        ("d", "b1", "SingleUp"),  # the published copy of (d, 5 min ago)
        ("d", "b0", None),
    ]  # b3's reading is after ``until``


@pytest.mark.fast
def test_the_published_tail_is_read_once_per_run_and_older_readings_only_when_needed():
    old = reading(TAIL / dt.timedelta(minutes=1) + 60, "b0")
    run = Run("run-1", [old, reading(10, "b1"), reading(5, "b1")])
    window = window_with(reading(0, "b2"))
    for _ in range(3):
        got = merged_readings(run, window, "k", now=NOW, at_least=2)
        assert minutes(got) == [0, 5, 10]
    assert run.reads == 1  # the cached tail: one read for three requests
    since = NOW - dt.timedelta(minutes=7)
    assert minutes(merged_readings(run, window, "k", now=NOW, since=since, at_least=10)) == [0, 5]
    assert run.reads == 1  # within the tail: no read, however many were asked
    assert len(merged_readings(run, window, "k", now=NOW, at_least=10)) == 4  # reaches back
    assert run.reads == 2
    assert merged_readings(run, None, "k", now=NOW, at_least=1)[0].batch_id == "b1"


@pytest.mark.fast
def test_a_maintenance_publish_after_the_settling_run_keeps_a_set_aside_reading_hidden():
    """Run ids of both kinds order by the start time they carry (``maint-`` sorts before
    ``run-`` as text): a later maintenance publish still stands for the run that settled."""
    window = window_with(reading(5, "b2"), reading(0, "b3"))
    window.settle(["b2"], run_id="run-20261206T010000000000Z-aaaaaa")  # b2's reading set aside
    later = Run("maint-20261206T020000000000Z-bbbbbb", [])
    assert minutes(merged_readings(later, window, "k", now=NOW)) == [0]
    earlier = Run("maint-20261206T000000000000Z-cccccc", [])
    assert minutes(merged_readings(earlier, window, "k", now=NOW)) == [0, 5]


def test_after_a_publish_requests_keep_the_old_run_until_the_followed_tails_are_read(
    app, settings, uploader
):
    """serve's on_published hook (PublishedLake.adopt_newest + warm_tails): the patients whose
    tails were cached are read in one scan before any request gets the new run, and what is
    cached equals what a request would have read itself."""
    now = utc_now().replace(microsecond=0)
    with TestClient(app) as client:

        def post(minutes_ago: int, sgv: int) -> None:
            at = epoch_ms(now - dt.timedelta(minutes=minutes_ago))
            entry = {"type": "sgv", "sgv": sgv, "date": at, "device": "xDrip"}
            assert client.post("/api/v1/entries", json=[entry], headers=uploader).status_code == 200

        post(10, 100)
        first = run_pipeline(settings).run_id
        lake = app.state.published
        assert lake.current().run_id == first
        assert client.get("/api/v1/entries", headers=uploader).status_code == 200  # tail cached
        post(5, 110)
        second = run_pipeline(settings).run_id
        seen_during: list[str | None] = []

        def warm(previous, run):
            seen_during.append(lake.current().run_id)  # a request meanwhile: the old run
            return warm_tails(previous, run, now=utc_now())

        lake.adopt_newest(warm)
        assert seen_during == [first]
        run = lake.current()
        assert run.run_id == second
        assert run.cached_names("tail:") == [f"tail:{KEY}"]
        warmed = run.cached(f"tail:{KEY}", list)
        cold = PublishedLake(settings).current()  # a reader of its own: nothing cached
        assert warmed == published_tail(cold, KEY, now - TAIL)
        assert [r.glucose_mg_dl for r in warmed] == [100.0, 110.0]
