"""The last steps of a run, in the coordinator: the run-wide audit over every bucket's outcome,
then the publish (every table of the registry in one commit each: the data files the tasks wrote
for an appended table, the staged files' rows for a replaced one; the caller records the
snapshot ids in one metadata transaction, which is the real publish)."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from glucosestream.errors import LakeError
from glucosestream.lake import Lakehouse, PublishedSnapshots, RawBatch, StagingZone
from glucosestream.pipeline.bucket_task import BucketOutcome
from glucosestream.pipeline.event_merge import has_events
from glucosestream.quality import BatchCounts, RunAccounts

__all__ = ["publish", "reconcile", "set_aside_rows_of"]


def reconcile(batches: Sequence[RawBatch], outcomes: Sequence[BucketOutcome]) -> RunAccounts:
    """The run's counts: each batch's manifest against its files (readings and events), and
    the merge's totals."""
    counts = {}
    for batch in batches:
        m = batch.manifest()
        events = m.get("events") or {}
        counts[batch.batch_id] = BatchCounts(
            m["received"],
            m["accepted"],
            m["duplicates"],
            m["quarantined"],
            batch.row_count(),
            events_accepted=events.get("accepted", 0),
            event_rows=batch.events().num_rows if has_events(batch) else 0,
        )
    incoming = sum(o.incoming_rows for o in outcomes)
    new = sum(o.new_readings for o in outcomes)
    aside = sum(o.set_aside.rows for o in outcomes)
    events_in = sum(o.incoming_events for o in outcomes)
    events_new = sum(o.new_events for o in outcomes)
    events_aside = sum(o.event_set_aside.rows for o in outcomes)
    return RunAccounts(
        counts,
        incoming,
        new,
        incoming - aside - new,
        aside,
        events_incoming=events_in,
        events_new=events_new,
        events_duplicates=events_in - events_aside - events_new,
        events_set_aside=events_aside,
    )


def publish(
    lake: Lakehouse, staging: StagingZone, outcomes: Sequence[BucketOutcome], run_id: str
) -> PublishedSnapshots:
    """Write every table of the registry from the buckets' staged files; the snapshot ids."""
    unstaged = [s.name for s in lake.specs if any(s.short not in o.staged for o in outcomes)]
    if unstaged:  # before any write: a registry entry without the step computing its rows
        raise LakeError(f"the run staged no rows for {', '.join(unstaged)}; nothing written")
    snapshot_ids = {}
    for spec in lake.specs:
        staged = [o.staged[spec.short] for o in outcomes]
        if spec.write == "append":  # the tasks wrote the data files: one commit adds them
            files = (f for s in staged for f in s.data_files)
            snapshot_ids[spec.short] = lake.commit_data_files(spec.short, files)
        else:
            parts = ((staging.read_table(s.path), s.scope) for s in staged)
            snapshot_ids[spec.short] = lake.replace_rows(spec.short, parts)
    return PublishedSnapshots(run_id, snapshot_ids)


def set_aside_rows_of(
    staging: StagingZone, outcomes: Sequence[BucketOutcome]
) -> list[dict[str, object]]:
    """Every reading and event the run set aside, as rows for the metadata store (an event's
    reason names an event check: ``quality.EVENT_ROW_CHECKS``)."""
    staged = [s for o in outcomes for s in (o.set_aside, o.event_set_aside) if s.rows]
    tables: list[pa.Table] = [staging.read_table(s.path) for s in staged]
    return [row for table in tables for row in table.to_pylist()]
