"""The alert store: one transaction per change with its deliveries, one active alert per patient
and kind whatever races, and the history and audit of acks and snoozes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading

import pytest
import sqlalchemy as sa

from glucosestream.alerts.changes import AlertChange
from glucosestream.alerts.evaluate import alert_id_for
from glucosestream.alerts.outbox import enqueue as outbox_enqueue
from glucosestream.alerts.rules import RuleRow
from glucosestream.alerts.store import open_alert_store
from glucosestream.alerts.webhooks import open_webhook_store
from glucosestream.config import LakeSettings
from glucosestream.errors import InvalidInput, NotFound
from glucosestream.lake import metadata_engine, open_access

from .pg_database import URL_FILE, throwaway_database

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


class Outbox:
    """An enqueue that remembers what it was given, and can fail."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[AlertChange]] = []
        self.fail = fail

    def __call__(self, con, changes) -> int:
        if self.fail:
            raise RuntimeError("outbox down")
        self.calls.append(list(changes))
        return len(changes)


def _fire(kind: str = "low", minutes: float = 0, *, patient: str = "p1", **kw) -> AlertChange:
    at = T0 + dt.timedelta(minutes=minutes)
    return AlertChange(
        alert_id=alert_id_for(patient, kind, at),
        patient_key=patient,
        kind=kind,
        event="fired",
        seq=0,
        at=at,
        glucose_mg_dl=kw.pop("glucose", 62.0),
        threshold_mg_dl=70.0,
        **kw,
    )


def _next(change: AlertChange, event: str, minutes: float, **kw) -> AlertChange:
    seq = {"escalated": 1, "cleared": 2}[event]
    return AlertChange(
        alert_id=change.alert_id,
        patient_key=change.patient_key,
        kind=change.kind,
        event=event,  # type: ignore[arg-type]
        seq=seq,
        at=T0 + dt.timedelta(minutes=minutes),
        glucose_mg_dl=kw.pop("glucose", None),
        threshold_mg_dl=None,
        **kw,
    )


@pytest.fixture
def store(settings):
    return open_alert_store(settings.lake)


def test_a_fire_writes_the_alert_its_history_and_its_deliveries(store):
    outbox = Outbox()
    fire = _fire(detail={"rate_mg_dl_min": -1.5})
    assert store.apply([fire], enqueue=outbox) == [fire]
    assert outbox.calls == [[fire]]
    (row,) = store.list_alerts(patient_key="p1")
    assert (row.alert_id, row.kind, row.state, row.glucose_mg_dl) == (
        fire.alert_id,
        "low",
        "active",
        62.0,
    )
    assert (row.fired_at, row.reading_ts, row.suppressed) == (T0, T0, False)
    (event,) = store.events(fire.alert_id)
    assert (event.event, event.actor, event.detail) == ("fired", "system", {"rate_mg_dl_min": -1.5})
    assert store.patient_alerts("p1").active["low"].alert_id == fire.alert_id
    assert store.active_patients() == ["p1"]


def test_a_failing_outbox_records_nothing(store):
    with pytest.raises(RuntimeError, match="outbox down"):
        store.apply([_fire()], enqueue=Outbox(fail=True))
    assert store.list_alerts() == []
    assert store.patient_alerts("p1").active == {}


def test_a_second_fire_of_an_active_kind_is_already_active(store):
    outbox = Outbox()
    first = _fire()
    assert store.apply([first], enqueue=outbox) == [first]
    assert store.apply([first], enqueue=outbox) == []  # the same fire again (a restart)
    assert store.apply([_fire(minutes=5)], enqueue=outbox) == []  # another, while active
    assert len(outbox.calls) == 1
    assert len(store.list_alerts()) == 1
    assert [e.event for e in store.events(first.alert_id)] == ["fired"]


def test_changes_apply_together_and_a_fire_recorded_first_elsewhere_is_dropped(store):
    outbox = Outbox()
    low, high = _fire("low"), _fire("high", glucose=300.0)
    assert store.apply([low, high], enqueue=outbox) == [low, high]
    assert outbox.calls == [[low, high]]  # one transaction, one enqueue
    urgent = _fire("urgent_low", 5, glucose=50.0)
    clear = _next(high, "cleared", 5, glucose=200.0)
    assert store.apply([urgent, _fire("low", 5), clear], enqueue=outbox) == [urgent, clear]
    assert sorted(r.kind for r in store.list_alerts(active_only=True)) == ["low", "urgent_low"]


def test_escalation_and_clear_apply_once(store):
    outbox = Outbox()
    fire = _fire("stale_data", level="warning", glucose=None)
    store.apply([fire], enqueue=outbox)
    escalation = _next(fire, "escalated", 20, level="urgent")
    assert store.apply([escalation], enqueue=outbox) == [escalation]
    assert store.apply([escalation], enqueue=outbox) == []
    clear = _next(fire, "cleared", 30, glucose=120.0)
    assert store.apply([clear], enqueue=outbox) == [clear]
    assert store.apply([clear], enqueue=outbox) == []
    row = store.get(fire.alert_id)
    assert (row.state, row.level, row.cleared_at, row.reading_ts) == (
        "cleared",
        "urgent",
        T0 + dt.timedelta(minutes=30),
        None,
    )
    assert [e.event for e in store.events(fire.alert_id)] == ["fired", "escalated", "cleared"]
    assert len(outbox.calls) == 3
    again = _fire("stale_data", 40, level="warning", glucose=None)  # a new episode
    assert store.apply([again], enqueue=outbox) == [again]


def test_a_suppressed_fire_is_recorded_as_suppressed(store):
    fire = _fire(suppressed=True)
    store.apply([fire], enqueue=Outbox())
    assert store.get(fire.alert_id).suppressed
    assert [e.event for e in store.events(fire.alert_id)] == ["suppressed"]


def test_a_fire_after_the_snooze_unsuppresses_the_episode_once(store):
    outbox = Outbox()
    fire = _fire(suppressed=True)
    store.apply([fire], enqueue=outbox)
    late = _fire(detail={"after_snooze": True})  # the same episode, its snooze over
    assert store.apply([late], enqueue=outbox) == [late]
    assert store.apply([late], enqueue=outbox) == []
    assert not store.get(fire.alert_id).suppressed
    assert [e.event for e in store.events(fire.alert_id)] == ["suppressed", "fired"]
    assert outbox.calls == [[fire], [late]]


def test_two_threads_racing_fire_once(settings):
    fires = [_fire(minutes=m) for m in (0, 0, 1, 2)]  # the same fire twice, and two more
    stores = [open_alert_store(settings.lake) for _ in fires]
    barrier = threading.Barrier(len(fires))
    outbox = Outbox()
    applied: list[list[AlertChange]] = []

    def race(store, change) -> None:
        barrier.wait()
        applied.append(store.apply([change], enqueue=outbox))

    threads = [threading.Thread(target=race, args=pair) for pair in zip(stores, fires, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(a) for a in applied) == 1
    assert len(outbox.calls) == 1
    assert len(stores[0].list_alerts()) == 1


def test_ack_records_history_and_the_audit_trail(settings, store):
    fire = _fire()
    store.apply([fire], enqueue=Outbox())
    at = T0 + dt.timedelta(minutes=3)
    row = store.ack(fire.alert_id, actor="cli", at=at)
    assert (row.acked_at, row.acked_by) == (at, "cli")
    assert store.patient_alerts("p1").active["low"].acked
    assert [e.event for e in store.events(fire.alert_id)] == ["fired", "acked"]
    (entry,) = open_access(settings.lake).audit.access_entries("p1", action="alert.ack")
    assert (entry.token_id, entry.role, entry.resource) == (
        "cli",
        "cli",
        f"alerts/{fire.alert_id}",
    )


def test_snooze_records_history_audit_and_the_snooze(settings, store):
    fire = _fire()
    store.apply([fire], enqueue=Outbox())
    row = store.snooze(fire.alert_id, minutes=60, actor="tok123", at=T0, role="clinician")
    until = T0 + dt.timedelta(minutes=60)
    assert row.snoozed_until == until
    assert store.patient_alerts("p1").snoozed_until == {"low": until}
    (event,) = [e for e in store.events(fire.alert_id) if e.event == "snoozed"]
    assert (event.actor, event.detail["minutes"]) == ("tok123", 60)
    (entry,) = open_access(settings.lake).audit.access_entries("p1", action="alert.snooze")
    assert (entry.token_id, entry.role) == ("tok123", "clinician")
    store.snooze(fire.alert_id, minutes=5, actor="cli", at=T0)  # a new snooze replaces it
    assert store.patient_alerts("p1").snoozed_until == {"low": T0 + dt.timedelta(minutes=5)}


@pytest.mark.parametrize(
    ("kind", "minutes"),
    [("low", 0), ("low", -5), ("low", 1441), ("low", float("nan")), ("urgent_low", 31)],
)
def test_a_snooze_out_of_range_is_refused(store, kind, minutes):
    fire = _fire(kind)
    store.apply([fire], enqueue=Outbox())
    with pytest.raises(InvalidInput, match="cannot snooze"):
        store.snooze(fire.alert_id, minutes=minutes, actor="cli", at=T0)
    assert store.patient_alerts("p1").snoozed_until == {}


def test_ack_or_snooze_of_an_unknown_alert_is_not_found(store):
    with pytest.raises(NotFound, match="alerts list"):
        store.ack("al_nope", actor="cli", at=T0)
    with pytest.raises(NotFound):
        store.snooze("al_nope", minutes=5, actor="cli", at=T0)
    assert store.get("al_nope") is None


def test_list_alerts_newest_first_filtered(store):
    outbox = Outbox()
    a = _fire("low", 0)
    b = _fire("high", 5, glucose=300.0)
    c = _fire("low", 10, patient="p2")
    store.apply([a, b, c], enqueue=outbox)
    store.apply([_next(a, "cleared", 15, glucose=90.0)], enqueue=outbox)
    assert [r.alert_id for r in store.list_alerts()] == [c.alert_id, b.alert_id, a.alert_id]
    assert [r.alert_id for r in store.list_alerts(patient_key="p1", active_only=True)] == [
        b.alert_id
    ]
    assert len(store.list_alerts(limit=2)) == 2


def test_rule_rows_of_the_patient_and_the_site(store):
    for patient, kind in (("*", "high"), ("p1", "low"), ("p2", "low")):
        store.set_rule(RuleRow(patient, kind, True, 65.0, None), actor="cli", at=T0)
    store.set_rule(RuleRow("p1", "low", False, None, None), actor="cli", at=T0)  # replaces
    rows = store.patient_alerts("p1").rule_rows
    assert sorted((r.patient_key, r.kind, r.enabled) for r in rows) == [
        ("*", "high", True),
        ("p1", "low", False),
    ]
    both = store.patients_alerts(["p1", "p2", "p3"])
    assert [(r.patient_key, r.kind) for r in both["p3"].rule_rows] == [("*", "high")]
    assert sorted(r.patient_key for r in both["p2"].rule_rows) == ["*", "p2"]
    assert store.remove_rule("p1", "low")
    assert not store.remove_rule("p1", "low")
    assert [r.kind for r in store.patient_alerts("p1").rule_rows] == ["high"]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (RuleRow("p1", "urgent_low", False, None, None), "fixed at 55"),
        (RuleRow("p1", "low", True, 500.0, None), "outside 40.0-400.0"),
        (RuleRow("p1", "hyper", True, 200.0, None), "unknown kind"),
    ],
)
def test_a_rule_the_rules_would_not_use_is_refused(store, row, message):
    with pytest.raises(InvalidInput, match=message):
        store.set_rule(row, actor="cli", at=T0)
    assert store.patient_alerts("p1").rule_rows == []


def test_deliveries_are_counted_per_outbox_state(settings, store):
    webhooks = open_webhook_store(settings.lake)
    webhooks.add("https://example.org/hook", at=T0)
    fire = _fire()
    store.apply([fire], enqueue=outbox_enqueue)
    assert store.get(fire.alert_id).deliveries == {"pending": 1}
    suppressed = _fire("high", glucose=300.0, suppressed=True)
    store.apply([suppressed], enqueue=outbox_enqueue)
    assert store.get(suppressed.alert_id).deliveries == {}
    engine = metadata_engine(settings.lake)
    with engine.begin() as con:
        assert con.execute(sa.text("select count(*) from webhook_outbox")).scalar() == 1


@pytest.fixture
def pg_settings(tmp_path, settings):
    if not URL_FILE.exists():
        pytest.skip("no test PostgreSQL server: run `scripts/postgres.sh start` (make test does)")
    with throwaway_database(URL_FILE.read_text().strip()) as url:
        lake = LakeSettings(root=str(tmp_path / "pg-lake"), catalog_url=url, metadata_url=url)
        yield dataclasses.replace(settings, lake=lake)


@pytest.mark.slow
def test_on_postgres_one_active_alert_whatever_races_and_the_flows_hold(pg_settings):
    """The partial unique index, the escalation's IS DISTINCT FROM and the late delivery's
    boolean test on PostgreSQL (the rest of this file runs on SQLite)."""
    test_two_threads_racing_fire_once(pg_settings)
    store = open_alert_store(pg_settings.lake)
    low = store.list_alerts()[0]
    stale = _fire("stale_data", level="warning", glucose=None, suppressed=True)
    outbox = Outbox()
    assert store.apply([stale, _fire("low", 9)], enqueue=outbox) == [stale]
    late = _fire("stale_data", level="warning", glucose=None)
    escalation = _next(stale, "escalated", 20, level="urgent")
    assert store.apply([late, escalation], enqueue=outbox) == [late, escalation]
    assert store.apply([escalation], enqueue=outbox) == []
    store.ack(low.alert_id, actor="cli", at=T0)
    assert store.patient_alerts("p1").active["low"].acked
    assert [e.event for e in store.events(stale.alert_id)] == ["suppressed", "fired", "escalated"]
