"""The raw zone's event files: events.parquet, event_quarantine.parquet and devicestatus.parquet
beside a batch's readings, read back in their schemas, absent when empty, rewritten for erasure."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from glucosestream.events import EVENT_SCHEMA
from glucosestream.lake import QUARANTINE_SCHEMA, RawZone
from glucosestream.lake.zones import DEVICESTATUS_SCHEMA, EVENT_QUARANTINE_SCHEMA
from glucosestream.readings import READING_SCHEMA

AT = dt.datetime(2026, 1, 5, 8, 30, tzinfo=dt.UTC)


def events(*rows: tuple[str, str, float | None, float | None]) -> pa.Table:
    """Events of (patient_key, kind, units, carbs_g), a minute apart."""
    columns: dict[str, list[object]] = {name: [] for name in EVENT_SCHEMA.names}
    for i, (patient, kind, units, carbs) in enumerate(rows):
        values = {
            "patient_key": patient,
            "device_id": "dev-1",
            "source": "tidepool",
            "ts": AT + dt.timedelta(minutes=i),
            "tz": "Europe/London",
            "kind": kind,
            "subtype": "normal" if kind == "bolus" else "meal",
            "units": units,
            "carbs_g": carbs,
            "batch_id": "b1",
            "ingested_at": AT,
        }
        for name in EVENT_SCHEMA.names:
            columns[name].append(values.get(name))
    return pa.table(columns, schema=EVENT_SCHEMA)


def quarantined(*patients: str) -> pa.Table:
    n = len(patients)
    return pa.table(
        {
            "line": list(range(1, n + 1)),
            "reason": ["carbs is negative"] * n,
            "patient_key": list(patients),
            "time": ["2026-01-05T08:30:00Z"] * n,
            "kind": ["carbs"] * n,
            "amount": ["-5"] * n,
        },
        schema=EVENT_QUARANTINE_SCHEMA,
    )


def statuses(*patients: str) -> pa.Table:
    n = len(patients)
    return pa.table(
        {
            "line": list(range(1, n + 1)),
            "patient_key": list(patients),
            "received_at": [AT] * n,
            "document": ['{"device":"loop://iPhone","pump":{"reservoir":112.5}}'] * n,
        },
        schema=DEVICESTATUS_SCHEMA,
    )


MANIFEST = {"batch_id": "b1", "received": 0, "accepted": 0, "duplicates": 0, "quarantined": 0}
EVENT_COUNTS = {"received": 4, "accepted": 3, "duplicates": 0, "quarantined": 1, "notes_dropped": 0}


@pytest.fixture
def raw(tmp_path: Path) -> RawZone:
    return RawZone(tmp_path / "lake")


def test_a_batch_of_events_and_no_readings_reads_back_its_events_and_their_quarantine(raw):
    written = events(
        ("p1", "bolus", 2.5, None), ("p1", "carbs", None, 40.0), ("p2", "bolus", 1.0, None)
    )
    manifest = {**MANIFEST, "events": EVENT_COUNTS}
    batch = raw.write_batch(
        "b1",
        READING_SCHEMA.empty_table(),
        QUARANTINE_SCHEMA.empty_table(),
        manifest,
        written,
        quarantined("p1"),
    )
    [listed] = raw.list_batches()
    assert listed.batch_id == "b1"
    assert batch.readings().num_rows == 0
    assert batch.events().equals(written)
    assert batch.events().schema.equals(EVENT_SCHEMA)
    assert batch.event_quarantine().equals(quarantined("p1"))
    assert batch.manifest()["events"] == EVENT_COUNTS
    files = sorted(p.name for p in Path(batch.path).iterdir())
    assert files == [
        "event_quarantine.parquet",
        "events.parquet",
        "manifest.json",
        "readings.parquet",
    ]


def test_a_batch_written_without_events_reads_as_none(raw):
    batch = raw.write_batch(
        "b0", READING_SCHEMA.empty_table(), QUARANTINE_SCHEMA.empty_table(), dict(MANIFEST)
    )
    assert batch.events().num_rows == 0
    assert batch.events().schema.equals(EVENT_SCHEMA)
    assert batch.event_quarantine().schema.equals(EVENT_QUARANTINE_SCHEMA)
    assert batch.devicestatus().schema.equals(DEVICESTATUS_SCHEMA)
    assert sorted(p.name for p in Path(batch.path).iterdir()) == [
        "manifest.json",
        "readings.parquet",
    ]


def test_empty_event_tables_write_no_files(raw):
    batch = raw.write_batch(
        "b2",
        READING_SCHEMA.empty_table(),
        QUARANTINE_SCHEMA.empty_table(),
        dict(MANIFEST),
        EVENT_SCHEMA.empty_table(),
        EVENT_QUARANTINE_SCHEMA.empty_table(),
        devicestatus=DEVICESTATUS_SCHEMA.empty_table(),
    )
    assert sorted(p.name for p in Path(batch.path).iterdir()) == [
        "manifest.json",
        "readings.parquet",
    ]


def test_devicestatus_documents_are_kept_as_posted(raw):
    batch = raw.write_batch(
        "b3",
        READING_SCHEMA.empty_table(),
        QUARANTINE_SCHEMA.empty_table(),
        {**MANIFEST, "devicestatus": 2},
        devicestatus=statuses("p1", "p1"),
    )
    assert batch.devicestatus().equals(statuses("p1", "p1"))
    assert batch.events().num_rows == 0


def test_rewrite_replaces_the_files_given_deletes_emptied_ones_and_leaves_the_rest(raw):
    written = events(("p1", "bolus", 2.5, None), ("p2", "carbs", None, 40.0))
    batch = raw.write_batch(
        "b4",
        READING_SCHEMA.empty_table(),
        QUARANTINE_SCHEMA.empty_table(),
        {**MANIFEST, "events": EVENT_COUNTS},
        written,
        quarantined("p1", "p2"),
        devicestatus=statuses("p1", "p2"),
    )
    kept = written.slice(1)
    manifest = {**batch.manifest(), "erased_rows": 1}
    raw.rewrite_batch(
        batch,
        batch.readings(),
        batch.quarantine(),
        manifest,
        kept,
        EVENT_QUARANTINE_SCHEMA.empty_table(),
    )
    assert batch.events().equals(kept)
    assert batch.event_quarantine().num_rows == 0
    assert not (Path(batch.path) / "event_quarantine.parquet").exists()
    assert batch.devicestatus().equals(statuses("p1", "p2"))  # None: left as it was
    assert batch.manifest()["erased_rows"] == 1
    raw.rewrite_batch(
        batch,
        batch.readings(),
        batch.quarantine(),
        manifest,
        devicestatus=statuses("p1", "p2").slice(1),
    )
    assert batch.devicestatus()["patient_key"].to_pylist() == ["p2"]
    assert batch.events().equals(kept)
    assert not list(Path(batch.path).glob(".*.tmp"))
