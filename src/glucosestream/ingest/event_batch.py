"""A raw batch's events, from its checked event rows (``event_checks``): the duplicates found,
the files the batch writes (``events.parquet`` and ``event_quarantine.parquet``), each part's
accounting and the manifest's ``"events"`` counts. PURE.

Every received event is accounted for once: accepted, a duplicate, quarantined with its reason,
or (a note with nothing kept) dropped: received = accepted + duplicates + quarantined +
notes_dropped, for each part and for the batch.

Two events are the same event when their key (``events.EVENT_KEY``) and amount (the first
non-NULL of ``events.EVENT_AMOUNT``) agree; the first line wins, as for readings. A large file's
chunks pass the keys they accepted on (``accepted_event_keys``), so a repeat in a later chunk is a
duplicate too.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.events import EVENT_AMOUNT, EVENT_KEY, EVENT_SCHEMA
from glucosestream.ingest.fastpath import constant_strings
from glucosestream.ingest.normalise import carry_repeated

__all__ = [
    "EarlierEvents",
    "EventCounts",
    "accepted_event_keys",
    "batch_event_files",
    "batch_events",
    "event_manifest",
    "event_quarantine",
    "mark_duplicates",
    "part_event_results",
]

_INSTANT: Final = pa.timestamp("us", tz="UTC")
_KEY: Final = [*EVENT_KEY, "amount"]
_QUARANTINE_TEXT_CHARS: Final = 256


@dataclass(frozen=True, slots=True)
class EventCounts:
    """How one part's (or a batch's) events were accounted for."""

    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    notes_dropped: int = 0
    top_reasons: tuple[tuple[str, int], ...] = ()

    def __add__(self, other: EventCounts) -> EventCounts:
        reasons = Counter(dict(self.top_reasons)) + Counter(dict(other.top_reasons))
        return EventCounts(
            self.received + other.received,
            self.accepted + other.accepted,
            self.duplicates + other.duplicates,
            self.quarantined + other.quarantined,
            self.notes_dropped + other.notes_dropped,
            tuple(reasons.most_common(5)),
        )


@dataclass(frozen=True, slots=True)
class EarlierEvents:
    """What a large file's earlier chunks tell the next chunk's events: the keys they
    accepted (``accepted_event_keys``) and the repeated local times they reached
    (``normalise.carry_repeated``)."""

    keys: pa.Table | None = None
    carried: pa.Table | None = None

    def after(self, events: pa.Table | None) -> EarlierEvents:
        """What a chunk whose checked events are ``events`` adds."""
        if events is None or not events.num_rows:
            return self
        return EarlierEvents(
            accepted_event_keys(events, self.keys), carry_repeated(events, self.carried)
        )


def batch_event_files(
    rows: pa.Table | None, offsets: Sequence[int], batch_id: str, ingested_at: dt.datetime
) -> tuple[pa.Table | None, pa.Table | None, list[tuple[EventCounts, pa.Table | None]]]:
    """From a batch's checked events (None: it received none): its events, its event
    quarantine, then its totals and each part's accounting and quarantined events."""
    parts = len(offsets) - 1
    if rows is None:
        return None, None, [(EventCounts(), None)] * (parts + 1)
    per_part: list[tuple[EventCounts, pa.Table | None]] = list(part_event_results(rows, offsets))
    total = sum((counts for counts, _ in per_part), EventCounts())
    events = batch_events(rows, batch_id, ingested_at)
    return events, event_quarantine(rows), [(total, None), *per_part]


def _good(rows: pa.Table) -> pa.ChunkedArray:
    return pc.and_(pc.is_null(rows["reason"]), pc.invert(rows["dropped"]))


def _keys(rows: pa.Table) -> pa.Table:
    """Each row's event key and amount (-1 for none: no amount is negative once checked)."""
    amount = pc.coalesce(*(rows[name] for name in EVENT_AMOUNT), pa.scalar(-1.0))
    columns = {name: rows[name] for name in EVENT_KEY}
    columns["ts"] = rows["ts"].cast(pa.int64())
    columns["subtype"] = pc.coalesce(rows["subtype"], pa.scalar("", pa.string()))  # joins
    return pa.table({**columns, "amount": amount})


def mark_duplicates(rows: pa.Table, earlier: pa.Table | None = None) -> pa.Table:
    """Checked ``rows`` (in line order) with ``duplicate``: a good row whose key an earlier good
    row has (first line wins), or one of ``earlier`` (``accepted_event_keys`` of a large file's
    earlier chunks)."""
    good = np.asarray(_good(rows).to_numpy(), dtype=bool) if rows.num_rows else np.zeros(0, bool)
    duplicate = np.zeros(rows.num_rows, dtype=bool)
    if good.any():
        keys = _keys(rows).append_column("row", pa.array(np.arange(rows.num_rows)))
        keys = keys.filter(pa.array(good))
        first = keys.group_by(_KEY).aggregate([("row", "min")])["row_min"].to_numpy()
        duplicate[keys["row"].to_numpy()] = True
        duplicate[first] = False
        if earlier is not None and earlier.num_rows:
            seen = keys.join(earlier, _KEY, join_type="left semi")["row"].to_numpy()
            duplicate[seen] = True
    if "duplicate" in rows.column_names:
        return rows.set_column(
            rows.schema.get_field_index("duplicate"), "duplicate", pa.array(duplicate)
        )
    return rows.append_column("duplicate", pa.array(duplicate))


def accepted_event_keys(rows: pa.Table, earlier: pa.Table | None = None) -> pa.Table | None:
    """The keys of the accepted events of ``rows`` (marked), added to ``earlier``'s."""
    accepted = pc.and_(_good(rows), pc.invert(rows["duplicate"])) if rows.num_rows else None
    if accepted is None or not pc.any(accepted).as_py():
        return earlier
    keys = _keys(rows.filter(accepted))
    return keys if earlier is None else pa.concat_tables([earlier, keys])


def batch_events(rows: pa.Table, batch_id: str, ingested_at: dt.datetime) -> pa.Table:
    """The accepted events as ``EVENT_SCHEMA`` rows of the batch."""
    accepted = rows.filter(pc.and_(_good(rows), pc.invert(rows["duplicate"])))
    n = accepted.num_rows
    filled = {
        "batch_id": constant_strings(batch_id, n).cast(pa.string()),
        "ingested_at": pa.repeat(pa.scalar(ingested_at, _INSTANT), n),
    }
    columns = [filled[f.name] if f.name in filled else accepted[f.name] for f in EVENT_SCHEMA]
    return pa.Table.from_arrays(
        [c.cast(f.type) for c, f in zip(columns, EVENT_SCHEMA, strict=True)], schema=EVENT_SCHEMA
    )


def event_quarantine(rows: pa.Table) -> pa.Table:
    """The quarantined events (``lake.EVENT_QUARANTINE_SCHEMA``'s columns): where, why, and
    their raw time, kind and first amount, clipped; never a note's text."""
    bad = rows.filter(pc.is_valid(rows["reason"])) if rows.num_rows else rows
    return pa.table(
        {
            "line": bad["line"].cast(pa.int64()),
            "reason": bad["reason"].cast(pa.string()),
            "patient_key": bad["patient_key"].cast(pa.string()),
            "time": _clipped(bad["raw_time"]),
            "kind": _clipped(bad["raw_kind"]),
            "amount": _clipped(bad["raw_amount"]),
        }
    )


def _clipped(text: pa.ChunkedArray) -> pa.ChunkedArray:
    text = text.cast(pa.string())
    return pc.utf8_slice_codeunits(text, 0, _QUARANTINE_TEXT_CHARS) if len(text) else text


def part_event_results(
    rows: pa.Table, offsets: Sequence[int]
) -> list[tuple[EventCounts, pa.Table]]:
    """Each part's counts and its quarantined events (line = line in the part), the parts'
    rows being those with ``offsets[i] < line <= offsets[i + 1]`` (rows in line order)."""
    lines = rows["line"].to_numpy() if rows.num_rows else np.zeros(0, np.int64)
    bounds = np.searchsorted(lines, offsets, side="right")
    quarantine = event_quarantine(rows.slice(0, 0))
    results = []
    for i in range(len(offsets) - 1):
        lo, hi = int(bounds[i]), int(bounds[i + 1])
        if lo == hi:
            results.append((EventCounts(), quarantine))
            continue
        mine = rows.slice(lo, hi - lo)
        counts, bad = _counts(mine)
        if offsets[i]:
            bad = bad.set_column(0, "line", pc.subtract(bad["line"], offsets[i]))
        results.append((counts, bad))
    return results


def _counts(rows: pa.Table) -> tuple[EventCounts, pa.Table]:
    bad = event_quarantine(rows)
    dropped = int(pc.sum(rows["dropped"]).as_py() or 0)
    duplicates = int(pc.sum(rows["duplicate"]).as_py() or 0)
    reasons = Counter(bad["reason"].to_pylist()).most_common(5)
    counts = EventCounts(
        received=rows.num_rows,
        accepted=rows.num_rows - bad.num_rows - dropped - duplicates,
        duplicates=duplicates,
        quarantined=bad.num_rows,
        notes_dropped=dropped,
        top_reasons=tuple((str(r), n) for r, n in reasons),
    )
    return counts, bad


def event_manifest(counts: EventCounts) -> dict[str, Any]:
    """The manifest's ``"events"`` entry (empty when the batch received no event)."""
    if not counts.received:
        return {}
    return {
        "events": {
            "received": counts.received,
            "accepted": counts.accepted,
            "duplicates": counts.duplicates,
            "quarantined": counts.quarantined,
            "notes_dropped": counts.notes_dropped,
        }
    }
