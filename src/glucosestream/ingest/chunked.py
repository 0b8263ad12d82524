"""One large file as several raw batches, in bounded memory.

A CSV, JSON-lines or Parquet file of more than ``CHUNK_READINGS`` readings is parsed, checked
and written chunk by chunk (Parquet by record batches, text by blocks of whole lines), so memory
holds about one chunk whatever the file's size. Each chunk becomes one raw batch; the file stays
one unit:

- **Staged, then committed together.** A chunk's data files are written (and fsynced) as soon as
  it is checked, without a manifest; only when the whole file has been read are the manifests
  written, in order, and the batches recorded. A structural error in a later chunk (a malformed
  line) removes the staged chunks: nothing is written, as for a small file. A crash while reading
  leaves folders without a manifest, which readers ignore.
- **Dedupe across chunks.** A reading that repeats an accepted reading of an earlier chunk of the
  file is a duplicate (first line wins), as within one batch. The accepted instants of earlier
  chunks are kept per device as a range; only rows inside their device's range are looked up, in
  the earlier chunks' files. A file in time order, or grouped by device, has none.
- **Events.** A chunk's events (``ParsedFile.events`` of the chunk: the events among its lines)
  go into that chunk's batch, checked with its readings. The keys of the events accepted by
  earlier chunks are kept in memory (events are few beside readings: a key is ~100 bytes), so an
  event repeating one of an earlier chunk is a duplicate, as within one batch. Gathering them for
  the last chunk's batch would hold every event of the file until the end and tie them to a
  batch that may hold none of their lines; a batch of their own would need an identity of its
  own for the resume below. Per chunk, a resumed ingest rewrites exactly the events of the
  chunks it rewrites.
- **Identity.** Chunk 0's batch carries the file's SHA-256 and its manifest the chunk count and
  size; chunk i carries the SHA-256 of ``"<file sha>/<i>"``. The same bytes ingested again change
  nothing while every chunk's batch stands. When some do not (a run rejected them, or a crash
  came while the manifests were being written), ingesting again writes exactly those chunks: the
  chunking is deterministic, with the chunk size read back from the manifest.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.clock import Clock
from glucosestream.config import Settings
from glucosestream.engines import Engine, open_engine
from glucosestream.errors import InvalidInput
from glucosestream.formats import ParsedFile, decoded
from glucosestream.formats.tabular import iter_csv, iter_jsonl, iter_parquet
from glucosestream.ingest.batch import (
    BuiltBatch,
    Part,
    build_batch,
    check_parts,
    log_batch,
)
from glucosestream.ingest.event_batch import EarlierEvents, EventCounts
from glucosestream.ingest.ingest_report import IngestReport
from glucosestream.ingest.normalise import carry_repeated
from glucosestream.lake import BatchRecord, MetadataStore, RawBatch, RawZone, open_storage

__all__ = [
    "CHUNKED_FORMATS",
    "CHUNK_READINGS",
    "Standing",
    "chunk_sha256",
    "iter_file_chunks",
    "standing_chunks",
    "write_chunks",
]

# Readings per chunk. Measured peak resident memory of `glucosestream ingest` with this size
# (2-core machine, 2026-11-26): 1.1 GB for a 38.8 M-reading Parquet file (10.4 GB read whole),
# 1.4 GB for a 9.7 M-reading CSV (3.7 GB whole), 1.9 GB for the same as JSON lines (4.1 GB
# whole), whatever the file's size. 2^21 also keeps the 10^6-reading benchmark files whole.
CHUNK_READINGS: Final = 1 << 21
_READERS: Final[dict[str, Callable[[Path, int], Iterator[ParsedFile]]]] = {
    "csv": iter_csv,
    "jsonl": iter_jsonl,
    "parquet": iter_parquet,
}
CHUNKED_FORMATS: Final = frozenset(_READERS)
_KEY_COLUMNS: Final = ["patient_key", "device_id"]


@dataclass(frozen=True, slots=True)
class Standing:
    """The batches an earlier ingest of the same bytes left standing (not rejected)."""

    chunk_readings: int
    chunks: int
    records: dict[int, BatchRecord]  # by chunk index

    @property
    def complete(self) -> bool:
        return len(self.records) == self.chunks

    def events_received(self, settings: Settings) -> int:
        """The events the standing batches received (their manifests; one gone counts 0)."""
        raw = RawZone(open_storage(settings.lake))
        received = 0
        for record in self.records.values():
            try:
                counts = raw.batch(record.batch_id).manifest().get("events") or {}
            except OSError:
                continue
            received += int(counts.get("received", 0))
        return received


def chunk_sha256(file_sha256: str, index: int) -> str:
    """The ``source_sha256`` of a file's chunk ``index`` (chunk 0: the file's own)."""
    if index == 0:
        return file_sha256
    return hashlib.sha256(f"{file_sha256}/{index}".encode("ascii")).hexdigest()


def iter_file_chunks(path: Path, fmt: str, chunk_readings: int) -> Iterator[ParsedFile]:
    """``path`` parsed in chunks of about ``chunk_readings`` readings."""
    return _READERS[fmt](path, chunk_readings)


def standing_chunks(settings: Settings, meta: MetadataStore, first: BatchRecord) -> Standing:
    """What stands of the file whose chunk 0 (or only batch) is ``first``."""
    try:
        manifest = RawZone(open_storage(settings.lake)).batch(first.batch_id).manifest()
    except OSError:
        manifest = {}  # its files are gone (an erased patient's lake): it stands as one batch
    chunks = int(manifest.get("chunks", 1))
    records = {0: first}
    for index in range(1, chunks):
        record = meta.batch_by_sha256(chunk_sha256(first.source_sha256, index))
        if record is not None:
            records[index] = record
    return Standing(int(manifest.get("chunk_readings", 0)), chunks, records)


@dataclass(frozen=True, slots=True)
class _Staged:
    """What the commit needs of a staged chunk (its tables are on disk, not in memory)."""

    manifest: dict[str, Any]
    record: BatchRecord
    external_ids: dict[str, str]
    report: IngestReport
    not_readings: int

    @classmethod
    def of(cls, batch: BuiltBatch) -> _Staged:
        report = batch.results[0].report
        return cls(
            batch.manifest,
            batch.record,
            batch.external_ids,
            report,
            int(batch.manifest["not_readings"]),
        )


@dataclass(slots=True)
class _FileState:
    """What later chunks need of earlier ones (per device, the range of accepted instants, and
    the batches holding them), and the file's accounting so far."""

    ranges: pa.Table | None = None
    carried: pa.Table | None = None  # repeated local times reached (``normalise.carry_repeated``)
    events: EarlierEvents = field(default_factory=EarlierEvents)  # events' keys and times
    batches: list[RawBatch] = field(default_factory=list)
    patients: set[str] = field(default_factory=set)
    reasons: Counter[str] = field(default_factory=Counter)

    def remember(self, keys: pa.Table) -> None:
        """Fold a chunk's accepted rows (patient_key, device_id, ts) into the ranges."""
        if keys.num_rows == 0:
            return
        plain = pa.table({name: decoded(keys[name]) for name in [*_KEY_COLUMNS, "ts"]})
        ranges = plain.group_by(_KEY_COLUMNS).aggregate([("ts", "min"), ("ts", "max")])
        if self.ranges is not None:
            ranges = (
                pa.concat_tables([self.ranges, ranges])
                .group_by(_KEY_COLUMNS)
                .aggregate([("ts_min", "min"), ("ts_max", "max")])
                .rename_columns([*_KEY_COLUMNS, "ts_min", "ts_max"])
            )
        self.ranges = ranges.select([*_KEY_COLUMNS, "ts_min", "ts_max"])

    def count(self, batch: BuiltBatch) -> None:
        """Add a written chunk's patients and quarantine reasons to the file's."""
        patients = pc.unique(decoded(batch.accepted_keys["patient_key"]))
        self.patients.update(str(p) for p in patients.to_pylist())
        self.reasons.update(dict(batch.results[0].report.top_reasons))

    def report(self, reports: list[IngestReport], duration_ms: int) -> IngestReport:
        """The file's report: the sums of the chunks written now."""
        if not reports:
            raise InvalidInput("every chunk of the file is already ingested; nothing to do")
        events = sum((r.event_counts() for r in reports), EventCounts())
        return replace(
            reports[0].with_events(events),
            received=sum(r.received for r in reports),
            accepted=sum(r.accepted for r in reports),
            duplicates=sum(r.duplicates for r in reports),
            quarantined=sum(r.quarantined for r in reports),
            patients=len(self.patients),
            top_reasons=tuple(self.reasons.most_common(5)),
            duration_ms=duration_ms,
            batch_ids=tuple(r.batch_id for r in reports if r.batch_id is not None),
        )


def write_chunks(
    settings: Settings,
    chunks: Iterator[ParsedFile],
    part_of: Callable[[ParsedFile, int], Part],
    *,
    chunk_readings: int,
    now: Clock,
    meta: MetadataStore,
    register: dict[str, str],
    standing: Standing | None = None,
) -> IngestReport:
    """Check, stage and then commit every chunk of one file (see the module docstring)."""
    started = time.perf_counter()
    raw = RawZone(open_storage(settings.lake))
    engine: Engine | None = None
    state = _FileState()
    staged: dict[int, _Staged] = {}
    chunks_seen = 0
    try:
        for index, parsed in enumerate(chunks):
            chunks_seen = index + 1
            if engine is None and _needs_engine(parsed):
                engine = open_engine(settings.engine)
            kept = standing.records.get(index) if standing is not None else None
            item = _check_chunk(settings, part_of(parsed, index), engine, now, state, raw, kept)
            del parsed  # the chunk's tables are let go before the next one is read
            if item is not None:
                staged[index] = item
    except BaseException:
        for item in staged.values():
            raw.discard_staged(item.record.batch_id)
        raise
    finally:
        if engine is not None:
            engine.close()
    file = {"chunks": chunks_seen, "chunk_readings": chunk_readings}
    _commit(raw, meta, staged, file, register)
    duration_ms = round((time.perf_counter() - started) * 1000)
    for item in staged.values():
        log_batch(item.record, item.not_readings, 1, duration_ms, item.manifest.get("events"))
    return state.report([item.report for item in staged.values()], duration_ms)


def _check_chunk(
    settings: Settings,
    part: Part,
    engine: Engine | None,
    now: Clock,
    state: _FileState,
    raw: RawZone,
    kept: BatchRecord | None,
) -> _Staged | None:
    """Check one chunk against itself and the earlier chunks; stage it unless ``kept`` (its
    batch from an earlier ingest of the file) stands."""
    rows = check_parts(
        settings, [part], engine=engine, now=now, carried=state.carried, earlier_events=state.events
    )
    state.carried = carry_repeated(rows.checked, state.carried)
    state.events = state.events.after(rows.events)
    rows = replace(rows, checked=_dedupe_across(rows.checked, state))
    batch = build_batch(rows, [part])
    state.remember(batch.accepted_keys)
    if kept is not None:
        state.batches.append(raw.batch(kept.batch_id))
        return None
    raw.stage_batch(
        batch.record.batch_id,
        batch.readings,
        batch.quarantine,
        batch.events,
        batch.event_quarantine,
    )
    state.batches.append(raw.batch(batch.record.batch_id))
    state.count(batch)
    return _Staged.of(batch)


def _needs_engine(parsed: ParsedFile) -> bool:
    """Whether the chunk may need ``normalize.sql`` (one engine then serves every chunk)."""
    return bool(parsed.rows["instant"].null_count)


def _dedupe_across(checked: pa.Table, state: _FileState) -> pa.Table:
    """Mark as duplicates the accepted rows that repeat an accepted row of an earlier chunk."""
    if state.ranges is None or checked.num_rows == 0:
        return checked
    accepted = pc.and_(pc.is_null(checked["reason"]), pc.invert(checked["duplicate"]))
    rows = pa.table(
        {
            "row": pa.array(np.arange(checked.num_rows, dtype=np.int64)),
            "patient_key": decoded(checked["patient_key"]),
            "device_id": decoded(checked["device_id"]),
            "ts": checked["ts"].cast(pa.timestamp("us", tz="UTC")),
        }
    ).filter(accepted)
    inside = rows.join(state.ranges, _KEY_COLUMNS, join_type="inner")
    inside = inside.filter(
        pc.and_(
            pc.greater_equal(inside["ts"], inside["ts_min"]),
            pc.less_equal(inside["ts"], inside["ts_max"]),
        )
    )
    if inside.num_rows == 0:
        return checked
    suspects = inside.select(["row", *_KEY_COLUMNS, "ts"])
    patients = pc.unique(suspects["patient_key"])
    earlier = pa.concat_tables([b.reading_keys(patients) for b in state.batches])
    earlier = earlier.cast(pa.schema([pa.field(f.name, f.type) for f in earlier.schema]))
    repeated = suspects.join(earlier, [*_KEY_COLUMNS, "ts"], join_type="left semi")
    if repeated.num_rows == 0:
        return checked
    duplicate = np.array(checked["duplicate"].to_numpy(), dtype=bool)
    duplicate[repeated["row"].to_numpy()] = True
    index = checked.schema.get_field_index("duplicate")
    return checked.set_column(index, "duplicate", pa.array(duplicate))


def _commit(
    raw: RawZone,
    meta: MetadataStore,
    staged: dict[int, _Staged],
    file: dict[str, int],
    register: dict[str, str],
) -> None:
    """Write the manifests in chunk order, then record the batches: the file's commit."""
    for index, batch in sorted(staged.items()):
        raw.commit_batch(batch.record.batch_id, {**batch.manifest, "chunk": index, **file})
    external_ids = dict(register)
    for batch in staged.values():
        meta.add_batch(batch.record)
        external_ids.update(batch.external_ids)
    if staged:
        meta.register_patients(external_ids, next(iter(staged.values())).record.created_at)
