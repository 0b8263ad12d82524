"""curated.events through a run: the bucket's events of the pending batches, set aside by the
gate's event row checks, merged by first arrival, appended; counted in the run's report."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import Any

import pyarrow as pa

from glucosestream.events import EVENT_SCHEMA
from glucosestream.ingest import ingest_records
from glucosestream.ingest.identity import patient_key
from glucosestream.lake import (
    QUARANTINE_SCHEMA,
    RawZone,
    open_lakehouse,
    open_metadata,
    open_storage,
)
from glucosestream.pipeline import run_pipeline
from glucosestream.pipeline.table_registry import TABLES
from glucosestream.readings import READING_SCHEMA

from .conftest import SECRET

START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
INGESTED = dt.datetime(2026, 1, 20, tzinfo=dt.UTC)


def key(patient: str) -> str:
    return patient_key(SECRET.encode(), patient)


def event(patient: str, at: dt.datetime, kind: str, subtype: str | None = None, **amounts) -> dict:
    row: dict[str, Any] = dict.fromkeys(EVENT_SCHEMA.names)
    row.update(
        patient_key=key(patient),
        device_id="pump",
        source="test",
        ts=at,
        tz=amounts.pop("tz", "UTC"),
        kind=kind,
        subtype=subtype,
        ingested_at=INGESTED,
    )
    row.update(amounts)
    return row


def write_event_batch(settings, batch_id: str, rows: list[dict]) -> None:
    """A committed raw batch holding these events and no readings (discover registers it from
    its manifest, as it does a batch whose ingest was cut short)."""
    events = pa.Table.from_pylist([{**r, "batch_id": batch_id} for r in rows], EVENT_SCHEMA)
    manifest = {
        "source_sha256": hashlib.sha256(batch_id.encode()).hexdigest(),
        "format": "test",
        "received": 0,
        "accepted": 0,
        "duplicates": 0,
        "quarantined": 0,
        "ingested_at": INGESTED.isoformat(),
        "events": {
            "received": len(rows),
            "accepted": len(rows),
            "duplicates": 0,
            "quarantined": 0,
            "notes_dropped": 0,
        },
    }
    raw = RawZone(open_storage(settings.lake))
    empty = READING_SCHEMA.empty_table()
    raw.write_batch(batch_id, empty, QUARANTINE_SCHEMA.empty_table(), manifest, events)


def readings(patient: str, days: int, tz: str = "UTC") -> list[dict]:
    return [
        {
            "patient_id": patient,
            "time": (START + dt.timedelta(minutes=5 * i)).isoformat(),
            "glucose_mg_dl": 120.0 + (i % 40),
            "tz": tz,
        }
        for i in range(days * 288)
    ]


def published_events(settings) -> list[dict]:
    published = open_metadata(settings.lake).published()
    lake = open_lakehouse(settings.lake, TABLES)
    return lake.read_table("events", published.of("events")).to_pylist()


def some_events() -> list[dict]:
    return [
        event("P1", START + dt.timedelta(hours=8), "bolus", "normal", units=4.5),
        event("P1", START + dt.timedelta(hours=8), "carbs", "meal", carbs_g=45.0),
        event("P1", START + dt.timedelta(hours=20), "device", "site_change"),
        event("P2", START + dt.timedelta(hours=9), "basal", "temporary", rate_u_h=0.8),
    ]


def test_a_batch_of_events_and_no_readings_loads_into_curated_events(settings):
    write_event_batch(settings, "b-0001", some_events())
    report = run_pipeline(settings)
    assert report.status == "published", report.message
    assert (report.events_in, report.events_new, report.events_duplicates) == (4, 4, 0)
    rows = published_events(settings)
    assert sorted((r["kind"], r["units"], r["carbs_g"]) for r in rows) == sorted(
        [("bolus", 4.5, None), ("carbs", None, 45.0), ("device", None, None), ("basal", None, None)]
    )
    assert {r["batch_id"] for r in rows} == {"b-0001"}


def test_the_same_events_again_are_duplicates_and_nothing_new(settings):
    ingest_records(settings, readings("P1", 2))
    write_event_batch(settings, "b-0001", some_events())
    assert run_pipeline(settings).events_new == 4
    write_event_batch(settings, "b-0002", some_events())
    again = run_pipeline(settings)
    assert again.status == "published", again.message
    assert (again.events_in, again.events_new, again.events_duplicates) == (4, 0, 4)
    assert len(published_events(settings)) == 4
    checks = {c.name: c for c in again.checks}
    assert checks["every_event_lands"].passed
    assert checks["reconciliation"].passed


def test_events_twice_in_one_run_land_once_and_another_amount_is_another_event(settings):
    first = some_events()
    other = event("P1", START + dt.timedelta(hours=8), "bolus", "normal", units=2.0)
    write_event_batch(settings, "b-0001", first)
    write_event_batch(settings, "b-0002", [*first, other])
    report = run_pipeline(settings)
    assert (report.events_in, report.events_new, report.events_duplicates) == (9, 5, 4)
    rows = published_events(settings)
    assert len(rows) == 5
    assert sum(r["batch_id"] == "b-0001" for r in rows) == 4  # the first arrival of each


def test_the_gate_sets_aside_future_and_implausible_events_one_reason_each(settings):
    bad = [
        event("P1", INGESTED + dt.timedelta(hours=2), "bolus", "normal", units=1.0),
        event("P1", START, "bolus", "normal", units=250.0),
        event("P1", START, "carbs", "meal", carbs_g=-5.0),
        event("P1", START, "basal", "scheduled", rate_u_h=80.0),
        event("P1", START, "bolus", "sideways", units=1.0),
        event("P1", START + dt.timedelta(minutes=1), "bolus", "normal"),  # no units
        event("P1", START, "smbg", glucose_mg_dl=5.0),
    ]
    write_event_batch(settings, "b-0001", [*some_events(), *bad])
    report = run_pipeline(settings)
    assert report.status == "published", report.message
    assert report.events_new == 4
    reasons = {s.reason: s.rows for s in report.events_set_aside}
    assert reasons == {
        "event_no_future": 1,
        "event_plausible_amount": 5,
        "event_known_kind": 1,
    }
    assert report.readings_set_aside == 0  # readings' accounting stays apart
    checks = {c.name: c for c in report.checks}
    assert checks["event_plausible_amount"].set_aside == 5
    assert checks["reconciliation"].passed
    counts = open_metadata(settings.lake).set_aside_counts(report.run_id)
    assert ("b-0001", "event_no_future", 1) in counts


def test_a_run_over_many_buckets_gives_each_bucket_its_own_events(settings):
    patients = [f"P{n}" for n in range(12)]
    for p in patients:
        ingest_records(settings, readings(p, 1))
    rows = [
        event(p, START + dt.timedelta(hours=3), "carbs", "meal", carbs_g=10.0) for p in patients
    ]
    rows.append(event("Q-only-events", START, "bolus", "normal", units=1.0))
    write_event_batch(settings, "b-0001", rows)
    wide = dataclasses.replace(
        settings, pipeline=dataclasses.replace(settings.pipeline, readings_per_task=200)
    )
    report = run_pipeline(wide)
    assert report.status == "published", report.message
    assert report.buckets > 1
    assert (report.events_in, report.events_new) == (13, 13)
    stored = published_events(settings)
    assert {r["patient_key"] for r in stored} == {key(p) for p in [*patients, "Q-only-events"]}
