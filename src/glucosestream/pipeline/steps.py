"""The pipeline's steps, in order. Each is a plain function; ``runner`` times and records them.

``STEPS`` is the step list other deployments are generated from (one state per step).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.engines import Engine, read_sql
from glucosestream.lake import Lakehouse, MetadataStore, RawBatch, RawZone
from glucosestream.lake.metadata import BatchRecord, PublishedSnapshots
from glucosestream.metrics import compute_daily_metrics, touched_days
from glucosestream.quality import BatchCounts, StagedRun
from glucosestream.readings import READING_SCHEMA

__all__ = ["STEPS", "Merged", "Transformed", "discover", "merge", "publish", "stage", "transform"]

log = logging.getLogger(__name__)

STEPS: Final = ("recover", "discover", "merge", "transform", "audit", "publish")
_HISTORY_MARGIN: Final = dt.timedelta(days=2)
RECOVERED_SOURCE: Final = "(recovered from the raw zone: its ingest did not finish)"


@dataclass(frozen=True, slots=True)
class Merged:
    batches: tuple[RawBatch, ...]
    incoming: pa.Table
    curated: pa.Table
    new: pa.Table

    @property
    def all_readings(self) -> pa.Table:
        return _concat([self.curated, self.new])


@dataclass(frozen=True, slots=True)
class Transformed:
    days: pa.Table
    daily: pa.Table


def discover(meta: MetadataStore, raw: RawZone) -> list[RawBatch]:
    """Raw batches no run has loaded or rejected, oldest first.

    A batch whose ingest was killed after its folder was renamed into place but before it was
    recorded is registered here from its manifest, so it is neither lost nor loaded twice.
    """
    settled = meta.settled_batch_ids()
    pending = [b for b in raw.list_batches() if b.batch_id not in settled]
    known = meta.batch_records([b.batch_id for b in pending])
    for batch in pending:
        if batch.batch_id not in known:
            manifest = batch.manifest()
            log.warning("discover batch_id=%s registered from its manifest", batch.batch_id)
            meta.add_batch(
                BatchRecord(
                    batch_id=batch.batch_id,
                    source_name=RECOVERED_SOURCE,
                    source_sha256=manifest["source_sha256"],
                    format=manifest["format"],
                    received=manifest["received"],
                    accepted=manifest["accepted"],
                    duplicates=manifest["duplicates"],
                    quarantined=manifest["quarantined"],
                    created_at=dt.datetime.fromisoformat(manifest["ingested_at"]),
                )
            )
    return pending


def merge(
    engine: Engine,
    lake: Lakehouse,
    published: PublishedSnapshots | None,
    batches: Sequence[RawBatch],
    patient_keys: Sequence[str] | None = None,
) -> Merged:
    """New readings (first arrival of each key not yet curated) from ``batches``.

    ``patient_keys`` widens the curated rows read beyond the incoming patients (full refresh:
    all of their history); otherwise only recent curated rows of the incoming patients are read.
    """
    incoming = _concat([b.readings() for b in batches])
    keys = set(incoming["patient_key"].to_pylist()) | set(patient_keys or ())
    snapshot = None if published is None else published.readings_snapshot_id
    since = None
    if patient_keys is None and incoming.num_rows:
        # Only the local days the new readings fall on are recomputed; a local day starts at
        # most 14 hours before its UTC date, so two days of margin hold all of them.
        since = pc.min(incoming["ts"]).as_py() - _HISTORY_MARGIN
    curated = lake.read_readings(snapshot, keys, since)
    new = engine.query(
        read_sql("glucosestream.pipeline", "merge.sql"), {"incoming": incoming, "curated": curated}
    ).cast(READING_SCHEMA)
    return Merged(tuple(batches), incoming, curated, new)


def transform(
    engine: Engine, merged: Merged, *, full_refresh: bool, run_id: str, computed_at: dt.datetime
) -> Transformed:
    """Daily metrics of the patient-days the new readings touch (every day on a full refresh)."""
    every = merged.all_readings
    days = touched_days(engine, every if full_refresh else merged.new)
    daily = compute_daily_metrics(engine, every, days, run_id=run_id, computed_at=computed_at)
    return Transformed(days, daily)


def stage(merged: Merged, transformed: Transformed) -> StagedRun:
    """What the audit sees: the staged tables and every count that must reconcile."""
    batches = {}
    for batch in merged.batches:
        m = batch.manifest()
        rows = batch.readings().num_rows
        batches[batch.batch_id] = BatchCounts(
            m["received"], m["accepted"], m["duplicates"], m["quarantined"], rows
        )
    return StagedRun(
        new_readings=merged.new,
        all_readings=merged.all_readings,
        daily=transformed.daily,
        days=transformed.days,
        batches=batches,
        incoming_rows=merged.incoming.num_rows,
        duplicates_at_merge=merged.incoming.num_rows - merged.new.num_rows,
    )


def publish(
    lake: Lakehouse, merged: Merged, transformed: Transformed, *, full_refresh: bool, run_id: str
) -> PublishedSnapshots:
    """Write both tables; the caller records the returned snapshot ids (the real publish)."""
    readings_snapshot = lake.append_readings(merged.new)
    daily_snapshot = lake.replace_daily(
        transformed.daily, _days_by_patient(transformed.days), everything=full_refresh
    )
    return PublishedSnapshots(run_id, readings_snapshot, daily_snapshot)


def _concat(tables: list[pa.Table]) -> pa.Table:
    if not tables:
        return READING_SCHEMA.empty_table()
    return pa.concat_tables([t.cast(READING_SCHEMA) for t in tables])


def _days_by_patient(days: pa.Table) -> dict[str, list[dt.date]]:
    grouped: dict[str, list[dt.date]] = defaultdict(list)
    for key, date in zip(days["patient_key"].to_pylist(), days["date"].to_pylist(), strict=True):
        grouped[key].append(date)
    return dict(grouped)
