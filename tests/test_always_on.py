"""Always on, the runs part: the publish settles the live readings, and the run scheduler
inside `serve` starts runs by itself (debounced, on a schedule, one at a time)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from glucosestream.config import Settings, child_environment
from glucosestream.errors import RunInProgress
from glucosestream.ingest import ingest_records
from glucosestream.lake import (
    QUARANTINE_SCHEMA,
    BatchRecord,
    RawBatch,
    RawZone,
    live_readings,
    metadata_engine,
    open_metadata,
    open_storage,
    run_lock,
)
from glucosestream.live import CommittedBatch
from glucosestream.pipeline import run_pipeline
from glucosestream.pipeline.always_on import RunScheduler
from glucosestream.pipeline.steps import discover
from glucosestream.readings import READING_SCHEMA

T0 = dt.datetime(2026, 2, 1, 12, 0, tzinfo=dt.UTC)


def _batch(meta, batch_id: str) -> None:
    meta.add_batch(BatchRecord(batch_id, "http", "0" * 64, "nightscout", 1, 1, 0, 0, T0))


def _live_row(batch_id: str, ts: dt.datetime, device: str = "d1") -> dict[str, object]:
    return {
        "patient_key": "k1",
        "device_id": device,
        "ts": ts,
        "glucose_mg_dl": 100.0,
        "flags": 0,
        "tz": "UTC",
        "direction": None,
        "rate_mg_dl_min": None,
        "batch_id": batch_id,
        "ingested_at": ts,
        "settled_run_id": None,
    }


def _live(settings) -> dict[str, str | None]:
    with metadata_engine(settings.lake).begin() as con:
        rows = con.execute(sa.select(live_readings.c.batch_id, live_readings.c.settled_run_id))
        return {b: r for b, r in rows}


def test_a_publish_settles_the_live_readings_of_its_batches(settings):
    meta = open_metadata(settings.lake)
    for batch_id in ("b-loaded", "b-rejected", "b-pending", "b-old"):
        _batch(meta, batch_id)
    with metadata_engine(settings.lake).begin() as con:
        con.execute(
            live_readings.insert(),
            [
                _live_row("b-loaded", T0 - dt.timedelta(minutes=10)),
                _live_row("b-rejected", T0 - dt.timedelta(minutes=5)),
                _live_row("b-pending", T0),
                _live_row("b-old", T0 - dt.timedelta(hours=24, seconds=1), device="d2"),
            ],
        )
    meta.start_run("run-1", T0)
    meta.reject_batches(["b-rejected"], "run-1", "reconciliation: not what it accepted")
    meta.finish_run(
        "run-1",
        status="published",
        finished_at=T0,
        report={},
        loaded_batch_ids=["b-loaded", "b-old"],
    )
    # loaded: settled by the run; rejected: gone; pending: untouched; older than 24 h: gone
    assert _live(settings) == {"b-loaded": "run-1", "b-pending": None}
    assert meta.run_batch_ids("run-1") == ["b-loaded", "b-old", "b-rejected"]


def test_a_run_that_did_not_publish_settles_nothing(settings):
    meta = open_metadata(settings.lake)
    _batch(meta, "b1")
    with metadata_engine(settings.lake).begin() as con:
        con.execute(live_readings.insert(), [_live_row("b1", T0)])
    meta.start_run("run-1", T0)
    meta.finish_run("run-1", status="failed", finished_at=T0, report={})
    assert _live(settings) == {"b1": None}
    assert meta.run_batch_ids("run-1") == []


# ---- Settings reach the run's child through its environment ---------------------------------


def test_settings_survive_the_round_trip_through_the_environment(settings):
    odd = (
        settings.override("lake", root='"quoted"', metadata_url="123")
        .override("ingest", default_device_id="null")
        .override("pipeline", sweep_raw_zone=False, min_interval=2.5, readings_per_task=7)
    )
    for s in (Settings(), settings, odd):
        assert Settings.from_env(s.to_env()) == s


def test_the_child_environment_replaces_the_settings_variables(settings, monkeypatch):
    monkeypatch.setenv("GLUCOSESTREAM_LAKE", "/somewhere/else")
    monkeypatch.setenv("GLUCOSESTREAM_QUALITY__MAX_MG_DL", "400")
    monkeypatch.setenv("KEPT_FOR_THE_CHILD", "yes")
    env = child_environment(settings)
    assert "GLUCOSESTREAM_LAKE" not in env
    assert env["KEPT_FOR_THE_CHILD"] == "yes"
    assert Settings.from_env(env) == settings


# ---- the run scheduler, with a fake clock and fake children ---------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


class FakeChild:
    def __init__(self, code: int | None, stdout: str = "", stderr: str = "") -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr
        self.terminated = threading.Event()

    def wait(self, timeout=None):
        if self.code is None:  # runs until terminated
            self.terminated.wait()
            return -15
        return self.code

    def terminate(self) -> None:
        self.terminated.set()

    def output(self):
        return self.stdout, self.stderr


class Spawner:
    """Fake spawn: each run gets the next child of ``children`` (default: a noop run)."""

    def __init__(self, *children: FakeChild) -> None:
        self.children = list(children)
        self.runs: list[dict[str, str]] = []  # the environment of each run

    def __call__(self, command, env):
        self.runs.append(dict(env))
        if self.children:
            return self.children.pop(0)
        return FakeChild(0, json.dumps({"run_id": f"run-{len(self.runs)}", "status": "noop"}))

    def sweeps(self) -> list[bool]:
        return [Settings.from_env(e).pipeline.sweep_raw_zone for e in self.runs]


def _scheduler(settings, spawner, clock, **kwargs):
    settings = settings.override("pipeline", min_interval=30.0, schedule_interval=3600.0)
    return RunScheduler(
        settings, command=["run"], env={"PATH": "x"}, spawn=spawner, clock=clock, **kwargs
    )


def _batch_notice(batch_id: str = "b") -> CommittedBatch:
    return CommittedBatch(batch_id, READING_SCHEMA.empty_table(), T0)


def test_the_first_run_starts_at_once_and_sweeps_then_runs_wait_for_batches(settings):
    spawner, clock = Spawner(), Clock()
    scheduler = _scheduler(settings, spawner, clock)
    assert scheduler.tick() == 3600.0  # ran; next: the schedule
    assert spawner.sweeps() == [True]
    clock.advance(100)
    assert scheduler.tick() == 3500.0  # nothing committed: no run
    assert len(spawner.runs) == 1
    env = spawner.runs[0]
    assert env["PATH"] == "x"
    assert Settings.from_env(env).lake == settings.lake  # the serve's own lake


def test_a_burst_of_batches_makes_one_debounced_run_without_a_sweep(settings):
    spawner, clock = Spawner(), Clock()
    scheduler = _scheduler(settings, spawner, clock)
    scheduler.tick()
    clock.advance(10)
    for n in range(20):
        scheduler.notify(_batch_notice(f"b{n}"))
    assert scheduler.tick() == 20.0  # 30 s after the last start
    assert len(spawner.runs) == 1
    clock.advance(20)
    scheduler.tick()
    clock.advance(1)
    scheduler.tick()
    assert spawner.sweeps() == [True, False]  # one run for the burst, pending from the store


def test_the_scheduled_run_comes_with_nothing_new_and_sweeps(settings):
    spawner, clock = Spawner(), Clock()
    scheduler = _scheduler(settings, spawner, clock)
    scheduler.tick()
    clock.advance(3599)
    scheduler.tick()
    clock.advance(1)
    scheduler.tick()
    assert spawner.sweeps() == [True, True]


def test_a_held_lock_is_retried_at_the_next_tick_quietly(settings, caplog):
    held = str(RunInProgress(settings.lake.location))
    spawner, clock = Spawner(FakeChild(1, "", f"Error: {held}\n")), Clock()
    scheduler = _scheduler(settings, spawner, clock)
    caplog.set_level(logging.INFO)
    assert scheduler.tick() == 30.0  # owed: again after min_interval, not the schedule
    clock.advance(30)
    scheduler.tick()
    assert spawner.sweeps() == [True, True]  # the owed first run still sweeps
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_failed_run_is_logged_and_not_retried_until_batches_arrive(settings, caplog):
    spawner, clock = Spawner(FakeChild(1, "", "Error: internal error: boom\n")), Clock()
    scheduler = _scheduler(settings, spawner, clock)
    assert scheduler.tick() == 3600.0
    assert "boom" in caplog.text


def test_a_published_run_reports_its_batches_to_the_hooks(settings):
    meta = open_metadata(settings.lake)
    for batch_id in ("b1", "b2", "b3"):
        _batch(meta, batch_id)
    meta.start_run("run-9", T0)
    meta.reject_batches(["b2"], "run-9", "unreadable")
    meta.finish_run("run-9", status="published", finished_at=T0, report={}, loaded_batch_ids=["b1"])
    report = json.dumps({"run_id": "run-9", "status": "published"})
    calls: list[tuple[str, list[str]]] = []

    def broken(run_id, batch_ids):
        raise RuntimeError("a hook's own fault")

    spawner = Spawner(FakeChild(0, report))
    scheduler = _scheduler(
        settings, spawner, Clock(), on_published=[broken, lambda *a: calls.append(a)]
    )
    outcome = scheduler.run_once(sweep=True)
    assert outcome is not None
    assert outcome.status == "published"
    assert calls == [("run-9", ["b1", "b2"])]  # loaded or rejected; b3 is still pending


def test_stop_ends_a_run_that_outlives_the_grace(settings):
    child = FakeChild(None)
    spawner = Spawner(child)
    settings = settings.override("pipeline", stop_grace=0.2)
    scheduler = RunScheduler(settings, command=["run"], env={}, spawn=spawner)
    scheduler.start()
    deadline = time.monotonic() + 5
    while not spawner.runs and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    scheduler.stop()
    assert child.terminated.is_set()
    assert 0.2 <= time.monotonic() - started < 2
    assert len(spawner.runs) == 1  # no run starts once stopping


def test_stop_waits_for_a_run_within_the_grace(settings):
    class Slow(FakeChild):
        def wait(self, timeout=None):
            time.sleep(0.1)
            return 0

    child = Slow(0, json.dumps({"run_id": "r", "status": "noop"}))
    spawner = Spawner(child)
    settings = settings.override("pipeline", stop_grace=5.0)
    scheduler = RunScheduler(settings, command=["run"], env={}, spawn=spawner)
    scheduler.start()
    deadline = time.monotonic() + 5
    while not spawner.runs and time.monotonic() < deadline:
        time.sleep(0.01)
    scheduler.stop()
    assert not child.terminated.is_set()
    assert len(spawner.runs) == 1


# ---- real runs: the scheduler's child is `python -m glucosestream run --json` ----------------

RUN_COMMAND = [sys.executable, "-m", "glucosestream", "run", "--json", "--workers", "1"]


def test_the_scheduler_runs_the_pipeline_and_reports_what_it_published(settings):
    records = [
        {"patient_id": "A1", "time": f"2026-01-01T{h:02d}:00:00Z", "glucose_mg_dl": 110 + h}
        for h in range(6)
    ]
    ingested = ingest_records(settings, records)
    published: list[tuple[str, list[str]]] = []
    scheduler = RunScheduler(
        settings,
        command=RUN_COMMAND,
        env=child_environment(settings),
        on_published=[lambda run_id, ids: published.append((run_id, ids))],
    )
    scheduler.start()
    try:
        deadline = time.monotonic() + 120
        while not published and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        scheduler.stop()
    [(run_id, batch_ids)] = published
    assert batch_ids == [ingested.batch_id]
    [run] = open_metadata(settings.lake).run_history(1)
    assert (run["run_id"], run["status"]) == (run_id, "published")


def test_a_run_started_while_another_holds_the_lock_is_owed(settings):
    ingest_records(
        settings, [{"patient_id": "A1", "time": "2026-01-01T00:00:00Z", "glucose_mg_dl": 99}]
    )
    scheduler = RunScheduler(settings, command=RUN_COMMAND, env=child_environment(settings))
    with run_lock(settings.lake):
        outcome = scheduler.run_once(sweep=False)
    assert outcome is not None
    assert outcome.status == "lock_held"
    assert open_metadata(settings.lake).run_history(1) == []


def test_maintenance_runs_a_day_after_the_last_one_between_runs(settings):
    meta = open_metadata(settings.lake)
    meta.start_run("maint-earlier", T0 - dt.timedelta(hours=23))
    maintained = json.dumps({"run_id": "maint-now", "expired_snapshots": 3})
    held = str(RunInProgress(settings.lake.location))
    noop = json.dumps({"run_id": "r", "status": "noop"})
    spawner = Spawner(
        FakeChild(0, noop),
        FakeChild(0, noop),
        FakeChild(1, "", f"Error: {held}"),  # the first maintenance finds the lock held
        FakeChild(0, maintained),
    )
    clock = Clock()
    scheduler = _scheduler(settings, spawner, clock, maintain_command=["maintain"])
    assert scheduler.tick() == 3600.0  # the run; maintenance is 1 h away
    clock.advance(3600)
    scheduler.tick()  # the scheduled run, then the maintenance: lock held
    assert len(spawner.runs) == 3
    clock.advance(29)
    assert scheduler.tick() == 1.0
    clock.advance(1)
    scheduler.tick()
    assert len(spawner.runs) == 4
    assert spawner.children == []
    assert scheduler.tick() == 3600.0 - 30  # the next scheduled run comes before


# ---- the per-batch cost: pending from the store, each batch read once, no empty files -------


def _upload(settings, n: int, patient: str = "U1") -> str:
    at = T0 + dt.timedelta(minutes=5 * n)
    return ingest_records(
        settings, [{"patient_id": patient, "time": at.isoformat(), "glucose_mg_dl": 100 + n}]
    ).batch_id


def _orphan(settings, batch_id: str) -> None:
    """A batch committed in the raw zone whose ingest died before recording it."""
    zone = RawZone(open_storage(settings.lake))
    source = zone.batch(_upload(settings, 99, patient="O1"))
    manifest = {**source.manifest(), "batch_id": batch_id}
    zone.write_batch(batch_id, source.readings(), source.quarantine(), manifest)


def test_discover_takes_pending_batches_from_the_store_and_sweeps_when_asked(settings):
    first, second = _upload(settings, 0), _upload(settings, 1)
    meta = open_metadata(settings.lake)
    meta.reject_batches([first], "run-0", "set aside by hand")
    _orphan(settings, "20260201T000000000000Z-orphan")
    raw = RawZone(open_storage(settings.lake))
    found = discover(meta, raw, "run-1", T0, sweep=False)
    pending = [b.batch_id for b in found.pending]
    assert second in pending
    assert "20260201T000000000000Z-orphan" not in pending  # unrecorded: only a sweep finds it
    assert first not in pending
    assert meta.batch_records(["20260201T000000000000Z-orphan"]) == {}
    inflight = "20260201T000000000001Z-inflight"  # an ingest writing it now: no manifest yet
    raw.stage_batch(inflight, READING_SCHEMA.empty_table(), QUARANTINE_SCHEMA.empty_table())
    swept = discover(meta, raw, "run-1", T0, sweep=True)
    assert "20260201T000000000000Z-orphan" in [b.batch_id for b in swept.pending]
    assert meta.batch_records(["20260201T000000000000Z-orphan"])  # registered from its manifest
    assert inflight not in [b.batch_id for b in swept.pending]
    assert inflight not in swept.unreadable
    assert meta.batch_records([inflight]) == {}


def test_a_run_sweeps_the_raw_zone_only_when_its_settings_say(settings):
    """``pipeline.sweep_raw_zone`` reaches discover through the run (serve's debounced runs
    take their batches from the store; the CLI's and scheduled runs sweep)."""
    orphan = "20260201T000000000000Z-orphan"
    _orphan(settings, orphan)
    meta = open_metadata(settings.lake)
    assert run_pipeline(settings.override("pipeline", sweep_raw_zone=False)).status == "published"
    assert meta.batch_records([orphan]) == {}  # not found: only a sweep finds it
    assert run_pipeline(settings).status == "published"
    assert meta.batch_records([orphan])[orphan].loaded_run_id is not None


def test_a_recorded_batch_whose_files_are_gone_is_rejected_not_lost(settings):
    batch_id = _upload(settings, 0)
    raw = RawZone(open_storage(settings.lake))
    (Path(raw.batch(batch_id).path) / "readings.parquet").unlink()
    meta = open_metadata(settings.lake)
    found = discover(meta, raw, "run-1", T0, sweep=False)
    assert found.pending == []
    assert found.unreadable[batch_id].startswith("unreadable: FileNotFoundError")
    assert meta.batch_records([batch_id])[batch_id].rejected_run_id == "run-1"


def test_a_run_reads_each_small_batch_once(settings, monkeypatch):
    ids = [_upload(settings, n, patient=f"U{n % 3}") for n in range(12)]
    opened: list[str] = []
    original = RawBatch.read_once

    def counted(self, manifest, *, with_readings):
        opened.append(self.batch_id)
        assert with_readings
        return original(self, manifest, with_readings=with_readings)

    def only_from_what_was_read(name):
        method = getattr(RawBatch, name)

        def answer(self, *args, **kwargs):
            assert self.contents is not None, f"{name} of {self.batch_id} opened its files"
            return method(self, *args, **kwargs)

        return answer

    monkeypatch.setattr(RawBatch, "read_once", counted)
    for name in ("row_count", "earliest_reading", "readings"):
        monkeypatch.setattr(RawBatch, name, only_from_what_was_read(name))
    real_manifest = RawBatch.manifest

    def manifest_once(self):
        assert self.contents is not None or self.batch_id not in opened, "manifest read again"
        return real_manifest(self)

    monkeypatch.setattr(RawBatch, "manifest", manifest_once)
    report = run_pipeline(settings.override("pipeline", sweep_raw_zone=False))
    assert report.status == "published"
    assert report.readings_new == 12
    assert sorted(opened) == sorted(ids)


def test_a_batch_that_quarantined_nothing_has_no_quarantine_file(settings):
    clean = _upload(settings, 0)
    dirty = ingest_records(
        settings,
        [
            {"patient_id": "U1", "time": "2026-02-01T13:00:00Z", "glucose_mg_dl": 100},
            {"patient_id": "U1", "time": "not a time", "glucose_mg_dl": 100},
        ],
    ).batch_id
    raw = RawZone(open_storage(settings.lake))
    assert sorted(p.name for p in Path(raw.batch(clean).path).iterdir()) == [
        "manifest.json",
        "readings.parquet",
    ]
    assert raw.batch(clean).quarantine().num_rows == 0
    assert raw.batch(dirty).quarantine().num_rows == 1
    # an erasure that leaves a quarantine empty removes its file
    batch = raw.batch(dirty)
    raw.rewrite_batch(batch, batch.readings(), QUARANTINE_SCHEMA.empty_table(), batch.manifest())
    assert not (Path(batch.path) / "quarantine.parquet").exists()
    assert raw.batch(dirty).quarantine().num_rows == 0


def test_each_run_is_logged_and_a_failed_one_as_a_warning(settings, caplog):
    failed = json.dumps({"run_id": "run-f", "status": "failed"})
    spawner = Spawner(FakeChild(0, json.dumps({"run_id": "run-n", "status": "noop"})))
    spawner.children.append(FakeChild(1, failed))
    scheduler = _scheduler(settings, spawner, Clock())
    caplog.set_level(logging.INFO, logger="glucosestream.pipeline.always_on")
    scheduler.run_once(sweep=True)
    scheduler.run_once(sweep=False)
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert (logging.INFO, "run scheduler: starting run (sweep=true)") in lines
    assert any(level == logging.INFO and "run-n status=noop" in m for level, m in lines)
    assert any(level == logging.WARNING and "run-f status=failed" in m for level, m in lines)


def test_a_serve_killed_outright_leaves_its_run_to_finish(settings, tmp_path):
    """The child runs in its own session with its output in files: killing the scheduler's
    process (SIGKILL) neither kills it nor breaks its output."""
    started, done = tmp_path / "started", tmp_path / "done"
    child = (
        "import pathlib, sys, time; pathlib.Path(sys.argv[1]).touch(); time.sleep(1.5); "
        "print('x' * 100000); pathlib.Path(sys.argv[2]).touch()"
    )
    parent = (
        "import sys, time\n"
        "from glucosestream.config import Settings\n"
        "from glucosestream.pipeline.always_on import RunScheduler\n"
        f"command = [sys.executable, '-c', {child!r}, {str(started)!r}, {str(done)!r}]\n"
        "RunScheduler(Settings(), command=command, env={}).start()\n"
        "time.sleep(60)\n"
    )
    serve = subprocess.Popen([sys.executable, "-c", parent], cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), "the run never started"
    finally:
        serve.kill()
        serve.wait()
    deadline = time.monotonic() + 30
    while not done.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert done.exists()  # the run finished after its serve was killed
