"""What a merge adds to curated.readings and curated.events: the first arrival of each key. PURE.

A reading's key is (patient_key, device_id, ts). A run may bring the same key in several raw
batches (an export sent twice, overlapping exports) and curated may hold it already. The new
readings are the incoming ones whose key curated does not hold, one per key: the one of the
earliest batch (smallest ``batch_id``; ingest keeps each key once per batch), in key order.

The incoming rows whose key curated lacks (a hash anti-join on the key) are sorted by key,
then ``batch_id``; the first row of each run of equal keys is then the first arrival, found by
comparing each row with the one before it (``quality.repeats_previous_key``, which the
unique-keys check uses too). Until issue 15 this was a SQL model with a ``row_number()``
window per key; DuckDB ran that window as a hash group-by carrying every column, two thirds
of the merge's time, and the round trip of a bucket through DuckDB alone cost more than this
whole function (docs/decisions.md). The old query is kept as the reference the tests hold
this function equal to (tests/data/merge_window.sql).

Events are merged the same way (``new_events``), by their own key: (patient_key, device_id,
kind, ts) and the amount (``quality.EVENT_IDENTITY``).
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.events import EVENT_SCHEMA
from glucosestream.quality import EVENT_IDENTITY, READING_KEY, event_identity, repeats_previous_key
from glucosestream.readings import READING_SCHEMA

__all__ = ["new_events", "new_readings"]

_ARRIVAL_ORDER: Final = tuple((name, "ascending") for name in (*READING_KEY, "batch_id"))
_EVENT_ARRIVAL_ORDER: Final = tuple((name, "ascending") for name in (*EVENT_IDENTITY, "batch_id"))


def new_readings(incoming: pa.Table, curated: pa.Table) -> pa.Table:
    """The first arrival of each key of ``incoming`` that ``curated`` does not hold, in key
    order (``READING_SCHEMA``)."""
    arrivals = incoming.select(READING_SCHEMA.names)
    if curated.num_rows:
        keys = list(READING_KEY)
        arrivals = arrivals.join(curated.select(keys), keys, join_type="left anti")
    arrivals = arrivals.sort_by(list(_ARRIVAL_ORDER)).cast(READING_SCHEMA)
    repeats = repeats_previous_key(arrivals)
    if not pc.any(repeats).as_py():
        return arrivals
    return arrivals.filter(pc.invert(repeats))


def new_events(incoming: pa.Table, curated: pa.Table) -> pa.Table:
    """The first arrival (smallest ``batch_id``) of each event of ``incoming`` that
    ``curated`` does not hold, the same event being ``EVENT_IDENTITY`` (``EVENT_SCHEMA``)."""
    arrivals = event_identity(incoming.select(EVENT_SCHEMA.names))
    if curated.num_rows:
        keys = list(EVENT_IDENTITY)
        held = event_identity(curated.select(EVENT_SCHEMA.names)).select(keys)
        arrivals = arrivals.join(held, keys, join_type="left anti")
    arrivals = arrivals.sort_by(list(_EVENT_ARRIVAL_ORDER))
    repeats = repeats_previous_key(arrivals, EVENT_IDENTITY)
    if pc.any(repeats).as_py():
        arrivals = arrivals.filter(pc.invert(repeats))
    return arrivals.select(EVENT_SCHEMA.names).cast(EVENT_SCHEMA)
