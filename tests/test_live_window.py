"""The live unit: the trend (one definition), the window of recent readings (first arrival wins,
settled by a run, forgotten after its hours), and its durable copy in ``live_readings``, written
in the transaction that records the batch. SQLite here; PostgreSQL in the slow tier."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading

import pyarrow as pa
import pytest
import sqlalchemy as sa

from glucosestream.live import (
    DIRECTIONS,
    CommittedBatch,
    LiveReading,
    LiveWindow,
    delta_between,
    direction_for_rate,
    direction_of,
    live_state,
    open_live_store,
    rate_between,
    rate_of,
    trend_number,
)
from glucosestream.readings import READING_SCHEMA

from .conftest import FixedClock
from .pg_database import URL_FILE, throwaway_database

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def reading(minutes_ago: float, value: float = 100.0, **kw) -> LiveReading:
    fields = {
        "patient_key": "k1",
        "device_id": "d1",
        "ts": NOW - dt.timedelta(minutes=minutes_ago),
        "glucose_mg_dl": value,
        "flags": 0,
        "tz": "UTC",
        "direction": None,
        "rate_mg_dl_min": None,
        "batch_id": "b1",
        "settled": False,
    }
    return LiveReading(**{**fields, **kw})


def batch(batch_id: str, rows: list[tuple], *, at: dt.datetime = NOW) -> CommittedBatch:
    """rows: (patient_key, device_id, minutes_ago, glucose[, direction, rate])."""
    records = [
        {
            "patient_key": r[0],
            "device_id": r[1],
            "source": "nightscout",
            "ts": at - dt.timedelta(minutes=r[2]),
            "glucose_mg_dl": r[3],
            "original_value": r[3],
            "original_unit": "mg/dL",
            "flags": 0,
            "tz": "Europe/Paris",
            "batch_id": batch_id,
            "ingested_at": at,
            "direction": r[4] if len(r) > 4 else None,
            "rate_mg_dl_min": r[5] if len(r) > 5 else None,
        }
        for r in rows
    ]
    return CommittedBatch(batch_id, pa.Table.from_pylist(records, schema=READING_SCHEMA), at)


# trend -------------------------------------------------------------------------------------
@pytest.mark.fast
def test_trend_numbers_follow_nightscouts_order():
    assert (DIRECTIONS[0], DIRECTIONS[4], DIRECTIONS[9]) == ("NONE", "Flat", "RATE OUT OF RANGE")
    assert [trend_number(d) for d in DIRECTIONS] == list(range(10))
    assert trend_number(None) is None
    assert trend_number("Sideways") is None


@pytest.mark.fast
@pytest.mark.parametrize(
    ("rate", "direction"),
    [
        (3.01, "DoubleUp"), (3.0, "SingleUp"), (2.5, "SingleUp"), (2.0, "FortyFiveUp"),
        (1.0, "Flat"), (0.0, "Flat"), (-1.0, "Flat"), (-1.5, "FortyFiveDown"),
        (-2.0, "FortyFiveDown"), (-2.01, "SingleDown"), (-3.0, "SingleDown"), (-4.0, "DoubleDown"),
    ],
)  # fmt: skip
def test_direction_for_rate_uses_dexcoms_thresholds(rate, direction):
    assert direction_for_rate(rate) == direction


@pytest.mark.fast
def test_rate_between_one_device_within_fifteen_minutes():
    earlier, later = reading(5, 100.0), reading(0, 110.0)
    assert rate_between(earlier, later) == 2.0
    assert delta_between(earlier, later) == 10.0
    assert rate_between(later, earlier) is None  # out of order
    assert rate_between(reading(5, device_id="d2"), later) is None  # across devices
    assert rate_between(reading(15.0, 70.0), later) == pytest.approx(40 / 15)
    assert rate_between(reading(15.5, 70.0), later) is None  # a gap over 15 minutes
    assert delta_between(reading(16, 70.0), later) is None


@pytest.mark.fast
def test_the_uploaders_rate_and_direction_come_first():
    previous = reading(5, 100.0)
    computed = reading(0, 120.0)  # 4 mg/dL/min
    assert rate_of(computed, previous) == 4.0
    assert direction_of(computed, previous) == "DoubleUp"
    sent_rate = dataclasses.replace(computed, rate_mg_dl_min=-1.5)
    assert rate_of(sent_rate, previous) == -1.5
    assert direction_of(sent_rate, previous) == "FortyFiveDown"  # from the sent rate
    sent_both = dataclasses.replace(sent_rate, direction="Flat")
    assert direction_of(sent_both, previous) == "Flat"  # the sent direction wins
    only_direction = dataclasses.replace(computed, direction="SingleDown")
    assert rate_of(only_direction, previous) == 4.0  # a direction gives no number
    assert direction_of(computed, None) == "NONE"
    assert rate_of(computed, None) is None


# window ------------------------------------------------------------------------------------
@pytest.mark.fast
def test_the_first_arrival_of_a_key_wins_and_recent_is_in_time_order():
    window = LiveWindow(24, clock=FixedClock(NOW))
    window.add(batch("b1", [("k1", "d1", 5, 100.0, "Flat"), ("k1", "d1", 10, 95.0)]))
    window.add(batch("b2", [("k1", "d1", 5, 180.0, "DoubleUp"), ("k1", "d2", 5, 101.0)]))
    got = window.recent("k1")
    assert [(r.device_id, r.glucose_mg_dl, r.direction, r.batch_id) for r in got] == [
        ("d1", 95.0, None, "b1"),
        ("d1", 100.0, "Flat", "b1"),  # b2's copy of this key is ignored
        ("d2", 101.0, None, "b2"),
    ]
    assert got[0].tz == "Europe/Paris"
    assert window.recent("k1", since=NOW - dt.timedelta(minutes=5)) == got[1:]
    assert window.recent("nobody") == []
    assert window.last_reading_at("k1") == NOW - dt.timedelta(minutes=5)
    assert window.last_reading_at("nobody") is None


@pytest.mark.fast
def test_settled_readings_stay_and_say_which_run_settled_them():
    window = LiveWindow(24, clock=FixedClock(NOW))
    window.add(batch("b1", [("k1", "d1", 10, 100.0)]))
    window.add(batch("b2", [("k1", "d1", 5, 101.0), ("k2", "d1", 5, 90.0)]))
    window.settle(["b1", "unknown"], run_id="run-1")
    assert [(r.batch_id, r.settled, r.settled_run_id) for r in window.recent("k1")] == [
        ("b1", True, "run-1"),
        ("b2", False, None),
    ]
    assert [r.batch_id for r in window.unsettled("k1")] == ["b2"]
    window.settle(["b2"])  # a run id unknown to the caller
    assert window.unsettled("k1") == window.unsettled("k2") == []
    assert window.recent("k2")[0].settled


@pytest.mark.fast
def test_readings_older_than_the_window_are_forgotten():
    clock = FixedClock(NOW)
    window = LiveWindow(3, clock=clock)
    window.add(
        batch("b1", [("k1", "d1", 200, 80.0), ("k1", "d1", 170, 85.0), ("k2", "d1", 175, 90.0)])
    )
    assert [r.glucose_mg_dl for r in window.recent("k1")] == [85.0]  # 200 min ago: never added
    assert window.patients() == ["k1", "k2"]
    clock.now = NOW + dt.timedelta(minutes=10)  # both are past 3 hours now
    assert window.recent("k1") == []
    assert window.patients() == []
    window.add(batch("b2", [("k1", "d1", 170, 86.0)], at=clock.now))
    assert [r.glucose_mg_dl for r in window.recent("k1")] == [86.0]  # the key is free again


@pytest.mark.fast
def test_seed_skips_what_is_there_and_what_is_too_old():
    window = LiveWindow(1, clock=FixedClock(NOW))
    window.seed([reading(5, settled=True, settled_run_id="run-1"), reading(90), reading(5, 200.0)])
    (only,) = window.recent("k1")
    assert (only.glucose_mg_dl, only.settled) == (100.0, True)


@pytest.mark.fast
def test_the_window_takes_concurrent_batches():
    window = LiveWindow(24, clock=FixedClock(NOW))

    def post(i: int) -> None:
        for j in range(20):
            window.add(batch(f"b{i}-{j}", [("k1", f"d{i}", j, 100.0 + j)]))

    threads = [threading.Thread(target=post, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = window.recent("k1")
    assert len(got) == 80
    assert [r.ts for r in got] == sorted(r.ts for r in got)


# store -------------------------------------------------------------------------------------
def _store_rows(engine: sa.Engine) -> list[tuple]:
    with engine.connect() as con:
        return sorted(
            con.execute(
                sa.text(
                    "SELECT device_id, glucose_mg_dl, direction, rate_mg_dl_min, batch_id "
                    "FROM live_readings"
                )
            ).all()
        )


def _ledger_case(lake) -> None:
    from glucosestream.ingest.ledger import RequestRecord, open_ledger
    from glucosestream.lake import BatchRecord

    ledger = open_ledger(lake)

    def record(b: CommittedBatch) -> None:
        batch_record = BatchRecord(b.batch_id, "http", "0" * 64, "json", 1, 1, 0, 0, NOW)
        request = RequestRecord(b.batch_id.ljust(64, "0"), b.batch_id, 1, 1, 0, 0, NOW)
        ledger.record_batch(batch_record, [request], live=b)

    record(batch("b1", [("k1", "d1", 5, 100.0, "Flat", 0.5), ("k1", "d1", 60 * 25, 90.0)]))
    record(batch("b2", [("k1", "d1", 5, 180.0, "DoubleUp"), ("k1", "d2", 5, 101.0)]))
    store = open_live_store(lake)
    rows = _store_rows(store._engine)
    assert rows == [  # 25 hours ago: not stored; b2's copy of b1's key: ignored
        ("d1", 100.0, "Flat", 0.5, "b1"),
        ("d2", 101.0, None, None, "b2"),
    ]
    seeded = store.recent(NOW - dt.timedelta(hours=1))
    assert [(r.device_id, r.ts, r.direction, r.settled) for r in seeded] == [
        ("d1", NOW - dt.timedelta(minutes=5), "Flat", False),
        ("d2", NOW - dt.timedelta(minutes=5), None, False),
    ]
    assert seeded[0].ts.tzinfo is not None


def test_record_batch_stores_the_recent_readings_first_arrival_winning(settings):
    _ledger_case(settings.lake)


def test_a_failed_record_stores_no_live_reading(settings, monkeypatch):
    """The live rows are in record_batch's transaction: a failure after them undoes them too."""
    from glucosestream.errors import LakeError
    from glucosestream.ingest.ledger import open_ledger
    from glucosestream.lake import BatchRecord, open_metadata
    from glucosestream.live import LiveStore

    original = LiveStore.insert

    def insert_then_fail(self, con, committed):
        original(self, con, committed)
        assert con.execute(sa.text("SELECT count(*) FROM live_readings")).scalar() == 1
        raise sa.exc.OperationalError("insert", {}, Exception("injected"))

    monkeypatch.setattr(LiveStore, "insert", insert_then_fail)
    ledger = open_ledger(settings.lake)
    record = BatchRecord("b1", "http", "0" * 64, "json", 1, 1, 0, 0, NOW)
    live = batch("b1", [("k1", "d1", 5, 100.0)])
    with pytest.raises(LakeError):
        ledger.record_batch(record, [], live=live)
    assert _store_rows(open_live_store(settings.lake)._engine) == []
    assert open_metadata(settings.lake).batch_records(["b1"]) == {}


def test_live_state_seeds_the_window_from_the_store(settings):
    from glucosestream.ingest.ledger import open_ledger
    from glucosestream.lake import BatchRecord

    b = batch("b1", [("k1", "d1", 5, 100.0, "SingleUp")])
    open_ledger(settings.lake).record_batch(
        BatchRecord("b1", "http", "0" * 64, "json", 1, 1, 0, 0, NOW), [], live=b
    )
    window, _ = live_state(settings, FixedClock(NOW))
    assert [(r.glucose_mg_dl, r.direction) for r in window.recent("k1")] == [(100.0, "SingleUp")]
    assert window.hours == 24


@pytest.mark.slow
def test_record_batch_stores_live_readings_on_postgres(settings):
    if not URL_FILE.exists():
        pytest.skip("no test PostgreSQL server: run `scripts/postgres.sh start` (make test does)")

    with throwaway_database(URL_FILE.read_text().strip()) as url:
        _ledger_case(dataclasses.replace(settings.lake, metadata_url=url))


@pytest.mark.fast
@pytest.mark.parametrize(
    "rate", [-4.5, -3.0, -2.5, -2.0, -1.5, -1.0, 0.0, 1.0, 1.5, 2.0, 2.5, 3.0, 4.5]
)
def test_an_arrows_rate_range_holds_the_rates_that_give_that_arrow(rate):
    """rate_range (what the rate alerts read from an uploader's arrow) and direction_for_rate
    (the arrow the API and page compute) are one definition of Dexcom's thresholds."""
    from glucosestream.live.trend import direction_for_rate, rate_range

    lowest, highest = rate_range(direction_for_rate(rate))
    assert lowest <= rate <= highest
