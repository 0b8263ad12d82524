"""Keeping a lake healthy for years: compaction, snapshot expiry with orphan-file removal, and
erasure of one patient through every zone (a person's right to be forgotten).

Everything runs under the run lock and ends, when it changed a table, by publishing the new
snapshot ids exactly as a pipeline run does, so readers never see a half-maintained lake.
Iceberg's snapshot expiry in pyiceberg forgets snapshots but leaves their files; we delete every
file under a table's folder that no remaining snapshot references.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
from pyiceberg.expressions import EqualTo
from pyiceberg.table import Table

from glucosestream.clock import Clock, utc_now
from glucosestream.config import LakeSettings
from glucosestream.lake.catalog import Lakehouse, open_lakehouse
from glucosestream.lake.compaction import compact_table
from glucosestream.lake.lock import run_lock
from glucosestream.lake.metadata import MetadataStore, PublishedSnapshots, open_metadata
from glucosestream.lake.storage import Storage, open_storage
from glucosestream.lake.table_spec import TableRegistry
from glucosestream.lake.zones import RawZone

__all__ = ["MaintenanceReport", "maintain"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MaintenanceReport:
    run_id: str
    compacted_files: dict[str, tuple[int, int]]  # table -> (files before, files after)
    expired_snapshots: int
    deleted_files: int
    erased_readings: int
    erased_days: int
    erased_raw_rows: int  # readings, events and devicestatus documents, with the quarantined
    duration_ms: int
    erased_events: int = 0  # rows of curated.events


def maintain(
    settings: LakeSettings,
    specs: TableRegistry,
    *,
    compact: bool = True,
    expire_older_than: dt.timedelta | None = dt.timedelta(days=7),
    erase_patient_key: str | None = None,
    now: Clock = utc_now,
) -> MaintenanceReport:
    """Compact, expire and/or erase the registry's tables (``pipeline.table_registry.TABLES``)
    and the raw zone; publish the result like a run."""
    started = time.perf_counter()
    started_at = now()
    run_id = f"maint-{started_at:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:6]}"
    with run_lock(settings) as held:
        meta = open_metadata(settings)
        lake = open_lakehouse(settings, specs)
        lake.recover(meta.published())
        meta.start_run(run_id, started_at)
        erased = (0, 0, 0, 0)
        if erase_patient_key is not None:
            erased = _erase(settings, lake, meta, erase_patient_key)
            expire_older_than = dt.timedelta(0)  # the old snapshots still hold the person's data
        compacted = _compact(lake) if compact else {}
        snapshots = PublishedSnapshots(
            run_id, {short: _current(table) for short, table in lake.tables.items()}
        )
        expired = deleted = 0
        held.confirm()  # before deleting files: a lease another run took stops it here
        if expire_older_than is not None:
            expired, deleted = _expire_all(
                lake, snapshots, started_at - expire_older_than, open_storage(settings)
            )
        report = MaintenanceReport(
            run_id=run_id,
            compacted_files=compacted,
            expired_snapshots=expired,
            deleted_files=deleted,
            erased_readings=erased[0],
            erased_days=erased[1],
            erased_raw_rows=erased[2],
            duration_ms=_ms_since(started),
            erased_events=erased[3],
        )
        held.confirm()
        _publish(meta, report, snapshots, now)
        if erase_patient_key is not None:
            meta.compact_storage()
    log.info(
        "maintain run_id=%s expired=%d deleted_files=%d erased_readings=%d duration_ms=%d",
        run_id, expired, deleted, erased[0], report.duration_ms,
    )  # fmt: skip
    return report


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _publish(
    meta: MetadataStore, report: MaintenanceReport, snapshots: PublishedSnapshots, now: Clock
) -> None:
    """Close the maintenance run as published, with the tables' new snapshots."""
    meta.finish_run(
        report.run_id,
        status="published",
        finished_at=now(),
        report={"maintenance": dataclasses.asdict(report)},
        published=snapshots,
    )


def _current(table: Table) -> int | None:
    table.refresh()
    snapshot = table.current_snapshot()
    return None if snapshot is None else int(snapshot.snapshot_id)


def _expire_all(
    lake: Lakehouse, snapshots: PublishedSnapshots, cutoff: dt.datetime, storage: Storage
) -> tuple[int, int]:
    """Expire each table's snapshots older than ``cutoff`` (but the published one) and delete
    the files none left references: (snapshots expired, files deleted)."""
    expired = deleted = 0
    for short, table in lake.tables.items():
        expired += _expire(table, cutoff, {snapshots.of(short)})
        deleted += _delete_orphans(table, storage)
    return expired, deleted


def _compact(lake: Lakehouse) -> dict[str, tuple[int, int]]:
    """Rewrite each partition with more than one data file as one sorted file; per table
    changed, its data files (before, after)."""
    out = {}
    for spec in lake.specs:
        table = lake.tables[spec.short]
        if table.current_snapshot() is None:
            continue
        before, after = compact_table(table, spec)
        if after != before:
            out[".".join(table.name())] = (before, after)
    return out


def _expire(table: Table, cutoff: dt.datetime, keep: set[int | None]) -> int:
    table.refresh()
    current = table.current_snapshot()
    protected = keep | {None if current is None else current.snapshot_id}
    old = [
        s.snapshot_id
        for s in table.metadata.snapshots
        if s.snapshot_id not in protected and s.timestamp_ms <= cutoff.timestamp() * 1000
    ]
    if old:
        table.maintenance.expire_snapshots().by_ids(old).commit()
    return len(old)


def _live_files(table: Table) -> set[str]:
    table.refresh()
    live = {table.metadata_location}
    live |= {s.manifest_list for s in table.metadata.snapshots if s.manifest_list}
    if table.metadata.snapshots:
        live |= set(table.inspect.all_manifests()["path"].to_pylist())
        live |= set(table.inspect.all_files()["file_path"].to_pylist())
    return {_fs_path(p) for p in live}


def _delete_orphans(table: Table, storage: Storage) -> int:
    """Delete every file under the table's folder that no remaining snapshot references."""
    live = _live_files(table)
    selector = pafs.FileSelector(_fs_path(table.location()), recursive=True, allow_not_found=True)
    orphans = [
        info.path
        for info in storage.fs.get_file_info(selector)
        if info.type == pafs.FileType.File and info.path not in live
    ]
    for path in orphans:
        storage.fs.delete_file(path)
    return len(orphans)


def _fs_path(uri: str) -> str:
    for scheme in ("file://", "s3://", "s3a://"):
        if uri.startswith(scheme):
            return uri[len(scheme) :]
    return uri


def _erase(
    settings: LakeSettings, lake: Lakehouse, meta: MetadataStore, patient_key: str
) -> tuple[int, int, int, int]:
    """Delete one patient's rows from the tables (curated.readings, curated.events, every
    results table), the raw zone and the metadata store: (readings, daily rows, raw rows,
    events)."""
    counts = {short: _count(table, patient_key) for short, table in lake.tables.items()}
    for short, table in lake.tables.items():
        if counts[short]:
            table.delete(EqualTo("patient_key", patient_key))
    readings, days, events = counts["readings"], counts["daily"], counts.get("events", 0)
    raw_rows = _erase_raw(RawZone(open_storage(settings)), patient_key)
    meta.forget_patient(patient_key)
    return readings, days, raw_rows, events


def _count(table: Table, patient_key: str) -> int:
    if table.current_snapshot() is None:
        return 0
    scan = table.scan(
        row_filter=EqualTo("patient_key", patient_key), selected_fields=("patient_key",)
    )
    return int(scan.to_arrow().num_rows)


def _erase_raw(raw: RawZone, patient_key: str) -> int:
    """Rewrite the raw batches that hold the patient's rows (readings, events, devicestatus
    documents, and the quarantined readings and events) without them: the one exception to
    the raw zone's immutability. Each manifest's counts stay reconciled."""
    erased = 0
    for batch in raw.list_batches():
        files = {
            "readings": batch.readings(),
            "quarantine": batch.quarantine(),
            "events": batch.events(),
            "event_quarantine": batch.event_quarantine(),
            "devicestatus": batch.devicestatus(),
        }
        kept = {name: _without(rows, patient_key) for name, rows in files.items()}
        gone = {name: files[name].num_rows - kept[name].num_rows for name in files}
        if not any(gone.values()):
            continue
        manifest = _erased_counts(batch.manifest(), gone)
        raw.rewrite_batch(
            batch,
            kept["readings"],
            kept["quarantine"],
            manifest,
            kept["events"] if gone["events"] else None,
            kept["event_quarantine"] if gone["event_quarantine"] else None,
            devicestatus=kept["devicestatus"] if gone["devicestatus"] else None,
        )
        erased += sum(gone.values())
    return erased


def _without(rows: pa.Table, patient_key: str) -> pa.Table:
    """The rows of any other patient (a row without a patient key is kept)."""
    if rows.num_rows == 0:
        return rows
    return rows.filter(pc.invert(pc.fill_null(pc.equal(rows["patient_key"], patient_key), False)))


def _erased_counts(manifest: dict[str, Any], gone: dict[str, int]) -> dict[str, Any]:
    """The manifest less the erased rows: received, accepted and quarantined (of readings and
    of events), the devicestatus count, and the rows erased in all."""
    manifest = dict(manifest)
    manifest["received"] -= gone["readings"] + gone["quarantine"]
    manifest["accepted"] -= gone["readings"]
    manifest["quarantined"] -= gone["quarantine"]
    if manifest.get("events"):
        events = dict(manifest["events"])
        events["received"] -= gone["events"] + gone["event_quarantine"]
        events["accepted"] -= gone["events"]
        events["quarantined"] -= gone["event_quarantine"]
        manifest["events"] = events
    if gone["devicestatus"] and isinstance(manifest.get("devicestatus"), int):
        manifest["devicestatus"] -= gone["devicestatus"]
    manifest["erased_rows"] = manifest.get("erased_rows", 0) + sum(gone.values())
    return manifest
