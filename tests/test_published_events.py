"""``PublishedRun.events``: a patient's curated events at the pinned run's snapshot of
curated.events, read once per run and cached; none before the table existed.

The read is tested against an events table written straight into a lake (the registry's
curated.events), so it holds whatever the pipeline writes; the end-to-end read (POST
treatments, run, GET treatments) is in test_treatments_read_api.py."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from glucosestream.events import EVENT_SCHEMA
from glucosestream.ingest import ingest_records
from glucosestream.ingest.identity import patient_key
from glucosestream.lake import Lakehouse, open_lakehouse
from glucosestream.pipeline import run_pipeline
from glucosestream.pipeline.table_registry import TABLES
from glucosestream.published import PublishedLake, PublishedRun

from .conftest import SECRET

T0 = dt.datetime(2026, 1, 5, 7, 30, tzinfo=dt.UTC)
INGESTED = dt.datetime(2026, 1, 20, tzinfo=dt.UTC)


def event(
    kind: str,
    at: dt.datetime,
    *,
    patient: str = "pk-a",
    device: str = "dev-1",
    tz: str = "UTC",
    **amounts: Any,
) -> dict[str, Any]:
    """One EVENT_SCHEMA row: ``amounts`` fill the kind's columns (units, carbs_g, subtype...)."""
    row: dict[str, Any] = dict.fromkeys(EVENT_SCHEMA.names)
    row.update(
        patient_key=patient,
        device_id=device,
        source="test",
        ts=at,
        tz=tz,
        kind=kind,
        batch_id="b1",
        ingested_at=INGESTED,
        **amounts,
    )
    return row


def event_table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """Rows as an EVENT_SCHEMA table."""
    return pa.Table.from_pylist(list(rows), schema=EVENT_SCHEMA)


class _Snapshots:
    def __init__(self, run_id: str, ids: dict[str, int | None]) -> None:
        self.run_id = run_id
        self._ids = ids

    def of(self, table: str) -> int | None:
        return self._ids.get(table)


def _lake_with_events(settings, rows) -> tuple[Lakehouse, int | None]:
    lake = open_lakehouse(settings.lake, TABLES)
    return lake, lake.append_rows("events", event_table(rows))


def _run(lake: Lakehouse, events_snapshot: int | None) -> PublishedRun:
    return PublishedRun(lambda: lake, _Snapshots("r1", {"events": events_snapshot}))


def test_a_patients_events_at_the_pinned_snapshot_in_time_order(settings):
    rows = [
        event("carbs", T0 + dt.timedelta(hours=5), subtype="meal", carbs_g=60.0),
        event("bolus", T0, subtype="normal", units=4.5),
        event("bolus", T0, patient="pk-b", subtype="normal", units=9.0),
        event("basal", T0 - dt.timedelta(days=40), subtype="injection", units=20.0),
    ]
    lake, first = _lake_with_events(settings, rows)
    later = lake.append_rows("events", event_table([event("bolus", T0, units=1.0)]))
    run = _run(lake, first)  # pinned before the second append
    got = run.events("pk-a")
    assert got.schema == EVENT_SCHEMA
    assert got["kind"].to_pylist() == ["basal", "bolus", "carbs"]
    assert got["units"].to_pylist() == [20.0, 4.5, None]
    assert got["ts"].to_pylist() == sorted(r["ts"] for r in rows if r["patient_key"] == "pk-a")
    assert run.events("pk-b")["units"].to_pylist() == [9.0]
    assert run.events("pk-unknown").num_rows == 0
    assert _run(lake, later).events("pk-a").num_rows == 4  # the newer snapshot has the 4th


def test_start_is_included_and_end_is_not(settings):
    times = [T0 + dt.timedelta(hours=h) for h in range(4)]
    lake, snap = _lake_with_events(
        settings, [event("bolus", t, units=1.0 + i) for i, t in enumerate(times)]
    )
    run = _run(lake, snap)
    window = run.events("pk-a", times[1], times[3])
    assert window["ts"].to_pylist() == times[1:3]
    assert run.events("pk-a", start=times[2])["units"].to_pylist() == [3.0, 4.0]
    assert run.events("pk-a", end=times[1])["units"].to_pylist() == [1.0]


def test_read_once_per_run_and_patient(settings, monkeypatch):
    lake, snap = _lake_with_events(settings, [event("bolus", T0, units=2.0)])
    reads = [0]
    original = Lakehouse.read_table

    def counted(self, *args, **kwargs):
        reads[0] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Lakehouse, "read_table", counted)
    run = _run(lake, snap)
    for start in (None, T0, T0 + dt.timedelta(days=1)):
        run.events("pk-a", start)
    assert reads[0] == 1
    run.events("pk-b")
    assert reads[0] == 2  # another patient: its own read
    _run(lake, snap).events("pk-a")
    assert reads[0] == 3  # another run: read afresh


def test_a_run_published_before_the_events_table_existed_has_none(settings, monkeypatch):
    lake, _ = _lake_with_events(settings, [event("bolus", T0, units=2.0)])
    monkeypatch.setattr(Lakehouse, "read_table", _never)
    run = _run(lake, None)  # the run's snapshots name no events table
    assert run.events("pk-a").num_rows == 0
    assert run.events("pk-a").schema == EVENT_SCHEMA
    unpublished = PublishedRun(_never, None)  # before any run: the lake is not even opened
    assert unpublished.events("pk-a").schema == EVENT_SCHEMA


def _never(*args, **kwargs):
    raise AssertionError("nothing may be read")


def test_a_lake_with_readings_only_reads_no_events(settings):
    ingest_records(
        settings,
        [
            {"patient_id": "P1", "time": (T0 + dt.timedelta(minutes=5 * i)).isoformat(),
             "glucose_mg_dl": 120.0, "tz": "UTC"}
            for i in range(12)
        ],
    )  # fmt: skip
    assert run_pipeline(settings).status == "published"
    run = PublishedLake(settings).current()
    assert run.events(patient_key(SECRET.encode(), "P1")).num_rows == 0
