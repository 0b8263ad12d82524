"""Always on, the runs part: the publish settles the live readings, and the run scheduler
inside `serve` starts runs by itself (debounced, on a schedule, one at a time)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from glucosestream.lake import BatchRecord, live_readings, metadata_engine, open_metadata

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
