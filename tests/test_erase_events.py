"""Erasure (`maintain --erase`) covers events: the patient's rows of curated.events and, in the
raw zone, their events, quarantined events and devicestatus documents, each manifest's counts
kept reconciled; the other patient's rows stay, and runs after it still publish."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pyarrow as pa

from glucosestream.events import EVENT_SCHEMA
from glucosestream.ingest import ingest_path
from glucosestream.ingest.identity import patient_key
from glucosestream.lake import (
    QUARANTINE_SCHEMA,
    RawZone,
    maintain,
    open_lakehouse,
    open_metadata,
    open_storage,
)
from glucosestream.lake.zones import DEVICESTATUS_SCHEMA, EVENT_QUARANTINE_SCHEMA
from glucosestream.pipeline import run_pipeline
from glucosestream.pipeline.table_registry import TABLES
from glucosestream.readings import READING_SCHEMA
from glucosestream.synth import CohortSpec, write_cohort

from .conftest import SECRET

AT = dt.datetime(2026, 3, 8, 12, tzinfo=dt.UTC)


def key(patient: str) -> str:
    return patient_key(SECRET.encode(), patient)


def side_batch(settings) -> None:
    """A batch of both patients' devicestatus documents and quarantined events (and one event
    each), as the Nightscout routes write them."""
    events = pa.Table.from_pylist(
        [
            {
                **dict.fromkeys(EVENT_SCHEMA.names),
                "patient_key": key(p),
                "device_id": "loop",
                "source": "nightscout",
                "ts": AT,
                "tz": "UTC",
                "kind": "device",
                "subtype": "site_change",
                "batch_id": "b-side",
                "ingested_at": AT,
            }
            for p in ("P00001", "P00002")
        ],
        EVENT_SCHEMA,
    )
    quarantined = pa.Table.from_pylist(
        [
            {"line": n, "reason": "amount", "patient_key": key(p), "time": "t", "kind": "bolus"}
            for n, p in enumerate(("P00001", "P00002", "P00001"))
        ],
        EVENT_QUARANTINE_SCHEMA,
    )
    status = pa.Table.from_pylist(
        [
            {"line": n, "patient_key": key(p), "received_at": AT, "document": "{}"}
            for n, p in enumerate(("P00001", "P00002"))
        ],
        DEVICESTATUS_SCHEMA,
    )
    manifest = {
        "source_sha256": hashlib.sha256(b"side").hexdigest(),
        "format": "nightscout",
        "received": 0,
        "accepted": 0,
        "duplicates": 0,
        "quarantined": 0,
        "ingested_at": AT.isoformat(),
        "events": {
            "received": 5,
            "accepted": 2,
            "duplicates": 0,
            "quarantined": 3,
            "notes_dropped": 0,
        },
        "devicestatus": 2,
    }
    RawZone(open_storage(settings.lake)).write_batch(
        "b-side",
        READING_SCHEMA.empty_table(),
        QUARANTINE_SCHEMA.empty_table(),
        manifest,
        events,
        quarantined,
        devicestatus=status,
    )


def lake_events(settings) -> list[dict]:
    published = open_metadata(settings.lake).published()
    lake = open_lakehouse(settings.lake, TABLES)
    return lake.read_table("events", published.of("events")).to_pylist()


def test_erasure_takes_the_patients_events_from_every_zone(settings, tmp_path: Path):
    spec = CohortSpec(2, 3, "t1d", 5, 1, dt.date(2026, 3, 7))
    out = Path(write_cohort(spec, tmp_path / "cohort", "tidepool").path)
    for path in sorted(out.glob("*.json")):
        ingest_path(settings, path, patient_id=path.name.split("_")[0])
    side_batch(settings)
    assert run_pipeline(settings).status == "published"
    gone, kept = key("P00001"), key("P00002")
    before = lake_events(settings)
    theirs = sum(r["patient_key"] == gone for r in before)
    assert theirs > 1
    assert any(r["patient_key"] == kept for r in before)

    report = maintain(settings.lake, TABLES, compact=False, erase_patient_key=gone)
    assert report.erased_events == theirs
    after = lake_events(settings)
    assert {r["patient_key"] for r in after} == {kept}
    assert len(after) == len(before) - theirs

    raw = RawZone(open_storage(settings.lake))
    for batch in raw.list_batches():
        for rows in (batch.events(), batch.event_quarantine(), batch.devicestatus()):
            assert gone not in rows["patient_key"].to_pylist(), batch.batch_id
        manifest = batch.manifest()
        if manifest.get("events"):
            assert manifest["events"]["accepted"] == batch.events().num_rows
            assert manifest["events"]["quarantined"] == batch.event_quarantine().num_rows
    side = raw.batch("b-side")
    assert side.devicestatus()["patient_key"].to_pylist() == [kept]
    assert side.manifest()["devicestatus"] == 1
    assert side.manifest()["events"]["received"] == 2  # 5 less one event and two quarantined

    refreshed = run_pipeline(settings, full_refresh=True)  # every day again, from the lake
    assert refreshed.status == "published", refreshed.message
    assert {r["patient_key"] for r in lake_events(settings)} == {kept}
