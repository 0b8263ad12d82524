"""The alert engine: batches evaluated off the ingest path, the stale-data tick, and a restart
that refires nothing."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass

import hypothesis
import pyarrow as pa
import pytest
import sqlalchemy as sa
from hypothesis import strategies as st

from glucosestream.alerts.changes import KINDS
from glucosestream.alerts.engine import AlertEngine
from glucosestream.alerts.outbox import enqueue as outbox_enqueue
from glucosestream.alerts.store import open_alert_store
from glucosestream.alerts.webhooks import open_webhook_store
from glucosestream.lake import metadata_engine
from glucosestream.live import CommittedBatch, LiveWindow
from glucosestream.readings import READING_SCHEMA

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class Reading:
    ts: dt.datetime
    glucose_mg_dl: float
    device_id: str = "dev1"
    flags: int = 0
    tz: str = "UTC"
    direction: str | None = None
    rate_mg_dl_min: float | None = None


class Window:
    """A live window: each patient's readings, ascending."""

    def __init__(self) -> None:
        self.readings: dict[str, list[Reading]] = {}
        self.broken: set[str] = set()
        self.read: list[str] = []  # the patients whose readings were asked for

    def add(self, patient: str, minutes: float, glucose: float) -> CommittedBatch:
        reading = Reading(T0 + dt.timedelta(minutes=minutes), glucose)
        self.readings.setdefault(patient, []).append(reading)
        return CommittedBatch(f"b{minutes}", pa.table({"patient_key": [patient]}), reading.ts)

    def recent(self, patient_key, since=None):
        self.read.append(patient_key)
        if patient_key in self.broken:
            raise RuntimeError("window broken")
        return [r for r in self.readings.get(patient_key, []) if since is None or r.ts >= since]

    def patients(self):
        return sorted(self.readings)

    def last_reading_at(self, patient_key):
        readings = self.readings.get(patient_key)
        return max(r.ts for r in readings) if readings else None


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def at(self, minutes: float) -> None:
        self.now = T0 + dt.timedelta(minutes=minutes)


def _recording():
    calls = []
    return calls, lambda con, changes: calls.append(list(changes))


def _engine(settings, window, clock, **kw):
    kw.setdefault("enqueue", _recording()[1])
    return AlertEngine(settings, window, open_alert_store(settings.lake), clock=clock, **kw)


def test_submit_only_queues_and_the_thread_evaluates(settings):
    window, clock, changed = Window(), Clock(), threading.Event()
    engine = _engine(settings, window, clock, on_change=changed.set)
    engine.submit(window.add("p1", 0, 60))
    store = open_alert_store(settings.lake)
    assert store.list_alerts() == []  # nothing evaluated in the caller's thread
    engine.start()
    try:
        assert changed.wait(10)
    finally:
        engine.stop()
    assert [a.kind for a in store.list_alerts(active_only=True)] == ["low"]


def test_batches_queued_before_stop_are_evaluated(settings):
    window, clock = Window(), Clock()
    engine = _engine(settings, window, clock)
    engine.start()
    for i, patient in enumerate(("p1", "p2", "p3")):
        engine.submit(window.add(patient, i / 10, 300))
    engine.stop()
    assert store_kinds(settings) == {"p1": ["high"], "p2": ["high"], "p3": ["high"]}


def store_kinds(settings) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for row in open_alert_store(settings.lake).list_alerts(active_only=True):
        out.setdefault(row.patient_key, []).append(row.kind)
    return {key: sorted(kinds) for key, kinds in out.items()}


def test_a_restart_refires_nothing(settings):
    open_webhook_store(settings.lake).add("https://example.org/hook", at=T0)
    window, clock = Window(), Clock()
    window.add("p1", 0, 62)
    first = _engine(settings, window, clock, enqueue=outbox_enqueue)
    assert [c.kind for c in first.evaluate_all()] == ["low"]
    clock.at(1)
    again = _engine(settings, window, clock, enqueue=outbox_enqueue)  # a new store, same DB
    assert again.evaluate_all() == []
    assert store_kinds(settings) == {"p1": ["low"]}
    with metadata_engine(settings.lake).begin() as con:
        assert con.execute(sa.text("select count(*) from webhook_outbox")).scalar() == 1


def test_the_tick_fires_stale_data_escalates_it_and_a_reading_clears_it(settings):
    window, clock = Window(), Clock()
    engine = _engine(settings, window, clock)
    window.add("p1", 0, 120)
    assert engine.evaluate_all() == []
    clock.at(19)
    assert engine.tick() == []
    clock.at(20)
    (fired,) = engine.tick()
    assert (fired.kind, fired.level) == ("stale_data", "warning")
    clock.at(40)
    (escalated,) = engine.tick()
    assert (escalated.event, escalated.alert_id) == ("escalated", fired.alert_id)
    clock.at(41)
    window.add("p1", 41, 120)
    (cleared,) = engine.evaluate_patient("p1")
    assert cleared.delivered_kind == "stale_data_cleared"


def test_the_tick_leaves_patients_with_recent_readings_alone(settings):
    window, clock = Window(), Clock()
    engine = _engine(settings, window, clock)
    window.add("fresh", 0, 120)
    window.add("quiet", -10, 120)
    clock.at(1)
    engine.tick()
    assert window.read == ["quiet"]


def test_the_thread_ticks_by_itself(settings):
    window, clock, changed = Window(), Clock(), threading.Event()
    window.add("p1", 0, 120)
    engine = _engine(settings, window, clock, on_change=changed.set, tick_s=0.05)
    engine.start()
    try:
        assert not changed.wait(0.15)  # the start's evaluation and the ticks: nothing stale
        clock.at(25)
        assert changed.wait(10)
    finally:
        engine.stop()
    assert store_kinds(settings) == {"p1": ["stale_data"]}


def test_one_failing_patient_does_not_stop_the_others(settings, caplog):
    window, clock = Window(), Clock()
    window.add("bad", 0, 60)
    window.add("good", 0, 60)
    window.broken.add("bad")
    engine = _engine(settings, window, clock)
    assert [c.patient_key for c in engine.evaluate_all()] == ["good"]
    assert "alert evaluation failed for one patient" in caplog.text


def test_a_failing_store_is_logged_without_the_rows_it_quotes(settings, caplog):
    """A metadata store error quotes the statement's parameters (patient keys, glucose): the
    engine logs its class only, and evaluates the patients again at the next tick."""
    from glucosestream.errors import LakeError

    window, clock = Window(), Clock()
    window.add("p-secret-key", 0, 52)
    engine = _engine(settings, window, clock)

    def failing(changes, *, enqueue):
        raise LakeError("metadata store failed: [parameters: ('p-secret-key', 52.0)]")

    engine._store.apply = failing
    assert engine.evaluate_all() == []
    assert "recording alerts of 1 patients failed (LakeError)" in caplog.text
    assert "p-secret-key" not in caplog.text
    assert "52.0" not in caplog.text


@pytest.mark.parametrize(
    "table", [pa.table({"x": [1]}), pa.table({"patient_key": pa.array([], pa.string())})]
)
def test_a_batch_without_patients_is_ignored(settings, table):
    window, clock, changed = Window(), Clock(), threading.Event()
    engine = _engine(settings, window, clock, on_change=changed.set)
    engine.start()
    engine.submit(CommittedBatch("b", table, T0))
    engine.stop()
    assert not changed.is_set()


def _reading_table(patient: str, rows: list[tuple[float, float]]) -> pa.Table:
    """A READING_SCHEMA table of one patient's readings (minutes after T0, mg/dL)."""
    n = len(rows)
    return pa.table(
        {
            "patient_key": [patient] * n,
            "device_id": ["dev1"] * n,
            "source": ["nightscout"] * n,
            "ts": [T0 + dt.timedelta(minutes=m) for m, _ in rows],
            "glucose_mg_dl": [g for _, g in rows],
            "original_value": [g for _, g in rows],
            "original_unit": ["mg/dL"] * n,
            "flags": pa.array([0] * n, pa.int32()),
            "tz": ["UTC"] * n,
            "batch_id": ["b1"] * n,
            "ingested_at": [T0] * n,
            "direction": [None] * n,
            "rate_mg_dl_min": pa.array([None] * n, pa.float64()),
        },
        schema=READING_SCHEMA,
    )


def test_the_engine_runs_on_the_live_window(settings):
    clock = Clock()
    window = LiveWindow(24, clock=clock)
    engine = _engine(settings, window, clock)
    clock.at(10)
    batch = CommittedBatch("b1", _reading_table("p1", [(0, 80), (5, 50), (10, 50)]), clock())
    window.add(batch)  # the hooks run in this order: the window first, then the engine
    engine.submit(batch)
    engine.start()
    engine.stop()
    assert store_kinds(settings) == {"p1": ["low", "urgent_low"]}
    clock.at(15)
    window.add(CommittedBatch("b2", _reading_table("p1", [(15, 50)]), clock()))
    (fired,) = engine.evaluate_patient("p1")
    assert (fired.kind, fired.at) == ("hypo_level2_episode", T0 + dt.timedelta(minutes=15))


# kind: (the readings that fire it, minutes evaluated at), (the readings that clear it, minutes)
EACH_KIND = {
    "urgent_low": (([(0, 50)], 0), ([(5, 60)], 5)),
    "low": (([(0, 65)], 0), ([(5, 75)], 5)),
    "high": (([(0, 300)], 0), ([(5, 250)], 5)),
    "urgent_low_soon": (([(0, 85), (5, 70)], 5), ([(10, 90)], 10)),
    "rising_fast": (([(0, 100), (5, 115)], 5), ([(10, 116)], 10)),
    "falling_fast": (([(0, 130), (5, 115)], 5), ([(10, 114)], 10)),
    "stale_data": (([(0, 120)], 25), ([(26, 120)], 26)),
    "hypo_level2_episode": (
        ([(0, 50), (5, 50), (10, 50)], 10),
        ([(15, 80), (20, 80), (25, 80)], 25),
    ),
}


@pytest.mark.parametrize("kind", sorted(EACH_KIND))
def test_each_kind_fires_once_survives_a_restart_and_clears(settings, kind):
    (fire_rows, fire_at), (clear_rows, clear_at) = EACH_KIND[kind]
    window, clock = Window(), Clock()
    for minutes, glucose in fire_rows:
        window.add("p1", minutes, glucose)
    clock.at(fire_at)
    calls, enqueue = _recording()
    first = _engine(settings, window, clock, enqueue=enqueue)
    (fired,) = [c for c in first.evaluate_all() if c.kind == kind]
    assert first.evaluate_all() == []  # once per episode
    restarted = _engine(settings, window, clock, enqueue=enqueue)
    assert restarted.evaluate_all() == []  # a restart fires nothing again
    for minutes, glucose in clear_rows:
        window.add("p1", minutes, glucose)
    clock.at(clear_at)
    (cleared,) = [c for c in restarted.evaluate_all() if c.kind == kind]
    assert (cleared.event, cleared.alert_id) == ("cleared", fired.alert_id)
    delivered = [c for batch in calls for c in batch if c.kind == kind]
    assert [c.event for c in delivered] == ["fired", "cleared"]


_GLUCOSE = st.one_of(st.sampled_from([50.0, 65.0, 75.0, 120.0, 260.0]), st.floats(40, 400))
_HISTORIES = {  # an alert's history, as the store may hold it
    ("fired",),
    ("fired", "cleared"),
    ("fired", "escalated"),
    ("fired", "escalated", "cleared"),
    ("suppressed",),
    ("suppressed", "cleared"),
    ("suppressed", "escalated"),
    ("suppressed", "escalated", "cleared"),
    ("suppressed", "fired"),
    ("suppressed", "fired", "cleared"),
    ("suppressed", "fired", "escalated"),
    ("suppressed", "fired", "escalated", "cleared"),
}


def test_random_traces_give_well_formed_histories_and_a_restart_changes_nothing(settings):
    """Over random readings, gaps and snoozes, through the engine and the store: one active alert
    per kind at a time, each alert's history in order, and a new engine over the same store
    records nothing for what the last one saw."""
    store = open_alert_store(settings.lake)
    patients = iter(range(10**6))

    @hypothesis.settings(max_examples=12, deadline=None)
    @hypothesis.given(
        st.lists(st.tuples(st.integers(1, 45), _GLUCOSE), min_size=1, max_size=15),
        st.sampled_from(["low", "high", "stale_data"]),
    )
    def check(steps, snoozed_kind):
        patient = f"r{next(patients)}"
        window, clock = Window(), Clock()
        engine = AlertEngine(settings, window, store, enqueue=lambda con, c: None, clock=clock)
        minutes = 0
        for gap, glucose in steps:
            minutes += gap
            window.add(patient, minutes, glucose)
            clock.at(minutes)
            engine.evaluate_patient(patient)
            for row in store.list_alerts(patient_key=patient, active_only=True):
                if row.kind == snoozed_kind and row.snoozed_until is None:
                    store.snooze(row.alert_id, minutes=30, actor="test", at=clock())
            for quiet in (gap / 2, gap - 0.5):  # up to 44.5 minutes without a reading
                clock.at(minutes + quiet)
                engine.tick()
        restarted = AlertEngine(settings, window, store, enqueue=lambda con, c: None, clock=clock)
        assert restarted.evaluate_all() == []
        rows = store.list_alerts(patient_key=patient, limit=1000)
        for kind in KINDS:
            assert sum(r.kind == kind and r.state == "active" for r in rows) <= 1
        for row in rows:
            history = tuple(e.event for e in store.events(row.alert_id) if e.actor == "system")
            assert history in _HISTORIES, (row.kind, history)
            assert (history[-1] == "cleared") == (row.state == "cleared")

    check()
