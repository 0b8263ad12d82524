"""Discover: the raw batches a run loads (the second step of ``steps.STEPS``), each read once.

The pending batches are those the metadata store records as neither loaded nor rejected (and,
when the raw zone is swept, committed batches no one recorded). Each is read once here, in
parallel threads: its manifest checked, its readings file's footer (and a small batch's
readings) kept for the plan and the audit, its events file (if its manifest counts events)
read through. A batch whose files cannot be read is rejected with
the reason; the run goes on without it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa

from glucosestream.lake import BatchRecord, MetadataStore, RawBatch, RawZone
from glucosestream.pipeline.event_merge import has_events

__all__ = ["EAGER_READINGS", "RECOVERED_SOURCE", "Discovered", "describe_error", "discover"]

log = logging.getLogger(__name__)

RECOVERED_SOURCE: Final = "(recovered from the raw zone: its ingest did not finish)"


@dataclass(frozen=True, slots=True)
class Discovered:
    """The raw batches a run loads, and those it rejected because their files cannot be read."""

    pending: list[RawBatch]
    unreadable: dict[str, str]  # batch_id -> reason


def discover(
    meta: MetadataStore,
    raw: RawZone,
    run_id: str,
    found_at: dt.datetime,
    *,
    sweep: bool = True,
) -> Discovered:
    """Raw batches no run has loaded or rejected, oldest first, each read once (``RawBatch.
    read_once``: its manifest and footer, and a small batch's readings, in parallel).

    The pending batches are those the metadata store records as neither loaded nor rejected.
    With ``sweep``, the raw zone is listed too: a batch whose ingest was killed after its folder
    was committed but before it was recorded is registered here from its manifest, so it is
    neither lost nor loaded twice (a listing grows with every batch ever written: ``serve``
    sweeps on its schedule, not on every run). A batch whose manifest, readings or events file
    cannot be read (not JSON, a field missing, a file cut short) is the batch's own fault: it
    is rejected here with the reason, under ``run_id``, and the run goes on without it. An I/O
    error that may pass (a network store) is raised.
    """
    recorded = meta.pending_batch_ids()
    ids = set(recorded)
    if sweep:
        known = meta.settled_batch_ids() | ids
        ids |= {b for b in raw.batch_ids() if b not in known and raw.committed(b)}
    pending = [raw.batch(batch_id) for batch_id in sorted(ids)]
    read = _read_batches(pending)
    readable, unreadable = [], {}
    for batch in pending:
        found = read[batch.batch_id]
        if isinstance(found, RawBatch):
            readable.append(found)
        else:
            unreadable[batch.batch_id] = f"unreadable: {describe_error(found)}"
        if batch.batch_id not in recorded:
            log.warning("discover batch_id=%s registered from its manifest", batch.batch_id)
            manifest = found.manifest() if isinstance(found, RawBatch) else None
            meta.add_batch(_record_from(batch.batch_id, manifest, found_at))
    for batch_id, reason in unreadable.items():
        log.warning("discover batch_id=%s rejected: %s", batch_id, reason)
        meta.reject_batches([batch_id], run_id, reason)
    return Discovered(readable, unreadable)


# Readings of the pending batches read as discover finds them (a batch read once is handed to
# the plan and the audit): what 1,000 uploaders leave in a run's time, many times over, and
# little memory (~100 MB). Past it a run reads the rest from the raw zone as before.
EAGER_READINGS: Final = 1_000_000
_READ_THREADS: Final = 8  # reading small files is I/O: threads, not processes


def _read_batches(pending: list[RawBatch]) -> dict[str, RawBatch | Exception]:
    """Each batch read once, in parallel threads: its manifest, then its readings file (the
    readings too while ``EAGER_READINGS`` allows); a batch that cannot be read: its error."""
    budget = _Budget(EAGER_READINGS)

    def read(batch: RawBatch) -> RawBatch | Exception:
        manifest = _manifest(batch)
        if isinstance(manifest, Exception):
            return manifest
        try:
            found = batch.read_once(manifest, with_readings=budget.take(manifest["accepted"]))
            if has_events(found):  # its events file read once too: a bad one is the batch's fault
                found.events()
            return found
        except _UNREADABLE as err:
            return err

    with ThreadPoolExecutor(_READ_THREADS, thread_name_prefix="discover") as pool:
        return dict(zip([b.batch_id for b in pending], pool.map(read, pending), strict=True))


class _Budget:
    """Readings left to read eagerly, shared by discover's threads."""

    def __init__(self, readings: int) -> None:
        self._left = readings
        self._lock = threading.Lock()

    def take(self, readings: int) -> bool:
        with self._lock:
            if readings > self._left:
                return False
            self._left -= readings
            return True


# Content faults of a batch's files (a FileNotFoundError too: a committed batch lacks a file).
_UNREADABLE: Final = (ValueError, KeyError, TypeError, pa.ArrowException, FileNotFoundError)
_ERROR_CHARS: Final = 500
_MANIFEST_FIELDS: Final = (
    "source_sha256",
    "format",
    "received",
    "accepted",
    "duplicates",
    "quarantined",
    "ingested_at",
)


def _manifest(batch: RawBatch) -> dict[str, Any] | Exception:
    """The batch's manifest once its fields are checked, or why it cannot be read."""
    try:
        manifest = batch.manifest()
        missing = [f for f in _MANIFEST_FIELDS if f not in manifest]
        if missing:
            raise KeyError(f"manifest.json lacks {', '.join(missing)}")
        dt.datetime.fromisoformat(manifest["ingested_at"])
        if not isinstance(manifest["accepted"], int):
            raise TypeError(f"manifest.json's accepted is {manifest['accepted']!r}, not a count")
        return manifest
    except _UNREADABLE as err:
        return err


def _record_from(
    batch_id: str, manifest: dict[str, Any] | None, found_at: dt.datetime
) -> BatchRecord:
    """The record of a batch found only in the raw zone (an unreadable one: an empty one)."""
    if manifest is None:
        return BatchRecord(batch_id, RECOVERED_SOURCE, "", "unknown", 0, 0, 0, 0, found_at)
    return BatchRecord(
        batch_id=batch_id,
        source_name=RECOVERED_SOURCE,
        source_sha256=manifest["source_sha256"],
        format=manifest["format"],
        received=manifest["received"],
        accepted=manifest["accepted"],
        duplicates=manifest["duplicates"],
        quarantined=manifest["quarantined"],
        created_at=dt.datetime.fromisoformat(manifest["ingested_at"]),
    )


def describe_error(err: BaseException) -> str:
    """An error's class and first line, at most 500 characters (for a record, not a log)."""
    lines = str(err).strip().splitlines()
    text = lines[0] if lines else ""
    text = text if len(text) <= _ERROR_CHARS else text[:_ERROR_CHARS] + "…"
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
