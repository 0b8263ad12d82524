"""The readings a merge adds to curated.readings: the first arrival of each reading's key.

A reading's key is (patient_key, device_id, ts). A run may bring the same key in several raw
batches (an export sent twice, overlapping exports) and curated may hold it already. The new
readings are the incoming ones whose key curated does not hold, one per key: the one of the
earliest batch (smallest ``batch_id``; ingest keeps each key once per batch), in key order.

``merge.sql`` does the anti-join against curated and sorts by key, then ``batch_id``; the first
row of each run of equal keys is then the first arrival, found by comparing each row with the
one before it (``quality.repeats_previous_key``, which the unique-keys check uses too). That is
one pass over the three key columns instead of a window partitioned by key.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.engines import Engine, read_sql
from glucosestream.quality import repeats_previous_key
from glucosestream.readings import READING_SCHEMA

__all__ = ["new_readings"]


def new_readings(engine: Engine, incoming: pa.Table, curated: pa.Table) -> pa.Table:
    """The first arrival of each key of ``incoming`` that ``curated`` does not hold, in key
    order (``READING_SCHEMA``)."""
    arrivals = engine.query(
        read_sql("glucosestream.pipeline", "merge.sql"),
        {"incoming": incoming, "curated": curated},
    ).cast(READING_SCHEMA)
    repeats = repeats_previous_key(arrivals)
    if not pc.any(repeats).as_py():
        return arrivals
    return arrivals.filter(pc.invert(repeats))
