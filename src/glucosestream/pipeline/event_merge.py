"""The events' part of a bucket task's merge: the bucket's events of the pending batches, the row
checks, and the first arrival of each event curated.events does not hold yet.

Events are few beside readings (tens a day per patient against 288 readings), so a run does
not split them into per-bucket parts: each bucket task reads the events files of the batches
the plan names for it and keeps its own patients' rows (``bucket_events``). The row checks
(``quality.set_aside_events``) set aside the events the gate refuses; the rest are merged as
readings are (``first_arrival.new_events``) against the curated events the run reads for its
patients, which also give the recomputed days their totals (``MergedEvents.every``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    GreaterThanOrEqual,
    In,
)

from glucosestream.events import EVENT_SCHEMA, MAX_DURATION_MIN
from glucosestream.lake import Lakehouse, RawBatch, RawZone
from glucosestream.metrics import local_dates
from glucosestream.pipeline.first_arrival import new_events
from glucosestream.quality import SET_ASIDE_SCHEMA, SetAsideRows

__all__ = [
    "EVENT_LOOKBACK",
    "PATIENT_DAYS",
    "MergedEvents",
    "bucket_events",
    "event_days",
    "has_events",
    "merge_events",
    "read_curated_events",
]

# A recomputed day's totals need every event that overlaps it: a basal segment or an extended
# bolus began up to its longest duration (a day; an open pump segment, until the next, at most
# 25 hours: metrics.basal_delivery) before. The run reads curated events from so much before its
# readings' history start, and an hour more.
EVENT_LOOKBACK: Final = dt.timedelta(minutes=MAX_DURATION_MIN, hours=2)
# Past this many patient keys, a scan filters on time only and narrows to the keys in memory
# (as lake.Scope does: planning an In over thousands of keys costs more than the rows it skips).
_MANY_KEYS: Final = 1_000
# (patient_key, date): patient-days, as metrics.touched_days gives them.
PATIENT_DAYS: Final = pa.schema(
    [pa.field("patient_key", pa.string()), pa.field("date", pa.date32())]
)


@dataclass(frozen=True, slots=True)
class MergedEvents:
    """A bucket's events through the merge."""

    arrived_rows: int
    set_aside: pa.Table  # quality.SET_ASIDE_SCHEMA: the arrived events kept out, and why
    incoming: pa.Table  # the arrived events the row checks kept
    new: pa.Table  # those curated.events does not hold yet (EVENT_SCHEMA, first arrivals)
    every: pa.Table  # the curated events the run read, and the new ones

    @classmethod
    def empty(cls) -> MergedEvents:
        none = EVENT_SCHEMA.empty_table()
        return cls(0, SET_ASIDE_SCHEMA.empty_table(), none, none, none)


def has_events(batch: RawBatch) -> bool:
    """Whether the batch's manifest says it accepted events (its events file has rows); a
    TypeError when its ``events`` entry is not the events' counts (discover rejects it)."""
    counts = batch.manifest().get("events")
    if counts is None:
        return False
    accepted = counts.get("accepted", 0) if isinstance(counts, dict) else None
    if not isinstance(accepted, int):
        raise TypeError(f"manifest.json's events is {counts!r}, not the events' counts")
    return accepted > 0


def bucket_events(raw: RawZone, batch_ids: Sequence[str], prefix: str) -> pa.Table:
    """The events of these raw batches whose patient key starts with ``prefix``."""
    tables = []
    for batch_id in batch_ids:
        events = raw.batch(batch_id).events()
        if prefix and events.num_rows:
            events = events.filter(pc.starts_with(events["patient_key"], prefix))
        if events.num_rows:
            tables.append(events.select(EVENT_SCHEMA.names).cast(EVENT_SCHEMA))
    return pa.concat_tables(tables) if tables else EVENT_SCHEMA.empty_table()


def read_curated_events(
    lake: Lakehouse, snapshot_id: int | None, keys: Collection[str], since: dt.datetime | None
) -> pa.Table:
    """The patients' curated events at a snapshot, from ``since`` less ``EVENT_LOOKBACK`` on
    (None: all of them)."""
    if snapshot_id is None or not keys:
        return EVENT_SCHEMA.empty_table()
    where: BooleanExpression = AlwaysTrue()
    if since is not None:
        where = GreaterThanOrEqual("ts", (since - EVENT_LOOKBACK).isoformat())
    many = len(keys) >= _MANY_KEYS
    if not many:
        where = And(In("patient_key", sorted(keys)), where)
    rows = lake.read_table("events", snapshot_id, where)
    if many:
        wanted = pa.array(sorted(keys), pa.string())
        rows = rows.filter(pc.is_in(rows["patient_key"], value_set=wanted))
    return rows


def merge_events(admitted: SetAsideRows, arrived_rows: int, curated: pa.Table) -> MergedEvents:
    """The admitted events merged against ``curated`` (the patients' curated events from
    before the earliest of them on)."""
    new = new_events(admitted.kept, curated)
    every = pa.concat_tables([curated.cast(EVENT_SCHEMA), new]) if curated.num_rows else new
    return MergedEvents(arrived_rows, admitted.set_aside, admitted.kept, new, every)


def event_days(events: pa.Table) -> pa.Table:
    """(patient_key, date) of every local day (in the event's own zone) an event begins on,
    each once, sorted."""
    if events.num_rows == 0:
        return PATIENT_DAYS.empty_table()
    days = pa.table({"patient_key": events["patient_key"], "date": local_dates(events)})
    distinct = days.group_by(["patient_key", "date"]).aggregate([])
    return distinct.sort_by([("patient_key", "ascending"), ("date", "ascending")])
