"""Accept inputs into the raw zone: a file (``ingest_path``) or posted records
(``ingest_records``), each as one immutable raw batch, or a large file as several
(``chunked``). The batch itself is made in ``batch``; ``write_batch`` writes and records one
(the HTTP service's group commits write theirs with it too)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from glucosestream.clock import Clock, utc_now
from glucosestream.config import ENV_PREFIX, Settings
from glucosestream.errors import ConfigError, InvalidInput
from glucosestream.formats import (
    ParsedFile,
    detect,
    raw_rows_from_records,
    read_raw_rows,
)
from glucosestream.ingest import chunked
from glucosestream.ingest.batch import (
    BuiltBatch,
    Part,
    build_batch,
    check_parts,
    incoming_rows,
    log_batch,
)
from glucosestream.ingest.identity import load_secret, patient_key
from glucosestream.ingest.ingest_report import IngestReport, PartResult
from glucosestream.lake import BatchRecord, MetadataStore, RawZone, open_metadata, open_storage
from glucosestream.readings import check_zone

__all__ = [
    "IngestReport",
    "Part",
    "PartResult",
    "check_source",
    "ingest_parsed",
    "ingest_path",
    "ingest_records",
    "write_batch",
]

log = logging.getLogger(__name__)

# Formats whose rows may each name their patient; a device export that names none needs --patient.
_PER_ROW_PATIENT_FORMATS = frozenset({"csv", "jsonl", "json", "parquet"})

# Quarantine reasons an argument can cause or cure, with the fix: a file whose every row has one
# of them is refused rather than recorded, so the corrected command is not "already ingested".
# (No argument sets a unit: a file in an unknown unit is recorded, its rows quarantined.)
_ARGUMENT_FIXES = {
    "missing patient id": "its rows name no patient: pass --patient ID",
    "unknown time zone": (
        "its times carry no UTC offset and name no known zone: pass --tz ZONE (an IANA name "
        "such as Europe/London) or fix its tz column"
    ),
}


@dataclass(frozen=True, slots=True)
class _Options:
    source: str
    fmt: str
    sha256: str
    patient_id: str | None
    tz: str | None
    now: Clock
    patient_key: str | None = None  # a pseudonym already known (Nightscout: the token's patient)
    is_file: bool = True  # a file, refused unwritten when its arguments quarantine every row


def ingest_path(
    settings: Settings,
    path: Path,
    *,
    fmt: str = "auto",
    patient_id: str | None = None,
    tz: str | None = None,
    now: Clock = utc_now,
    chunk_readings: int | None = None,
) -> IngestReport:
    """Ingest one file. A file already ingested (same bytes) changes nothing.

    A CSV, JSON-lines or Parquet file of more than ``chunk_readings`` readings (default
    ``chunked.CHUNK_READINGS``) is ingested in chunks, as several raw batches (see ``chunked``).
    """
    check_source(path)
    if tz is not None:  # before anything is read: a typo would quarantine every row
        check_zone(tz, "--tz")
    else:
        check_zone(settings.ingest.default_tz, f"{ENV_PREFIX}INGEST__DEFAULT_TZ")
    detected = detect(path) if fmt == "auto" else None  # a JSON document it decoded is kept
    used = fmt if detected is None else detected.fmt
    if used in chunked.CHUNKED_FORMATS:
        detected = None  # read in chunks, never whole
    size = chunk_readings or chunked.CHUNK_READINGS
    with ThreadPoolExecutor(max_workers=2) as pool:  # hashing and opening overlap the parse
        hashing = pool.submit(_sha256_file, path)
        opening = pool.submit(open_metadata, settings.lake)
        chunks = (
            chunked.iter_file_chunks(path, used, size) if used in chunked.CHUNKED_FORMATS else None
        )
        first = None if chunks is None else next(chunks)
        sha256, meta = hashing.result(), opening.result()
    standing = None
    record = meta.batch_by_sha256(sha256)
    if record is not None:
        standing = chunked.standing_chunks(settings, meta, record)
        if standing.complete:
            events = standing.events_received(settings)
            return _already_ingested(record, standing.records.values(), str(path), events)
    options = _Options(str(path), used, sha256, patient_id, tz, now)
    if chunks is None or first is None:
        used, parsed = read_raw_rows(path, used, detected)
        del detected  # its document is in the rows now: let it go
        _refuse_nothing_read(parsed, str(path))
        if patient_id is None and used not in _PER_ROW_PATIENT_FORMATS:
            _require_patient_ids(parsed, str(path), used)
        return _accept(settings, parsed, options, meta)
    if standing is not None and standing.chunk_readings not in (0, size):
        size = standing.chunk_readings  # resume with the chunking of the earlier ingest
        chunks = chunked.iter_file_chunks(path, used, size)
        first = next(chunks)
    stream = _drain([first], chunks)
    del first  # held by the stream only, so it is let go once written
    return _ingest_chunks(settings, options, meta, standing, stream, size)


def check_source(path: Path) -> None:
    """Refuse a path that is not a readable file, saying what it is and what to pass instead."""
    if path.is_dir():
        suffixes = Counter(p.suffix for p in path.iterdir() if p.is_file() and p.suffix)
        pattern = path / f"*{suffixes.most_common(1)[0][0]}" if suffixes else path / "FILE"
        raise InvalidInput(f"is a folder; pass the files in it, e.g. {pattern}", source=str(path))
    if not path.exists():
        raise InvalidInput("no such file; check the path", source=str(path))
    if not path.is_file():
        raise InvalidInput("is not a regular file; pass a CGM export file", source=str(path))


def _ingest_chunks(
    settings: Settings,
    options: _Options,
    meta: MetadataStore,
    standing: chunked.Standing | None,
    chunks: Iterator[ParsedFile],
    size: int,
) -> IngestReport:
    """One batch when the file is one chunk (and no earlier ingest of it stands), else several."""
    ahead = [next(chunks)]
    second = next(chunks, None)
    if second is None and standing is None:
        return _accept(settings, ahead.pop(), options, meta)
    if second is not None:
        ahead.append(second)
        del second  # held by ``ahead`` only, so each is let go once written
    if options.patient_id is None and standing is None:
        _refuse_unnamed_patients(ahead[0], options.source)
    key, registered = _given_patient(settings, options.patient_id)

    def part_of(parsed: ParsedFile, index: int) -> Part:
        sha256 = chunked.chunk_sha256(options.sha256, index)
        return Part(parsed, options.source, options.fmt, sha256, key, options.tz)

    return chunked.write_chunks(
        settings,
        _drain(ahead, chunks),
        part_of,
        chunk_readings=size,
        now=options.now,
        meta=meta,
        register=registered,
        standing=standing,
    )


def _refuse_unnamed_patients(first: ParsedFile, source: str) -> None:
    """Refuse a file of several chunks whose first names no patient, before any is written (a
    file of one chunk is refused once all its rows are quarantined for it: see ``_accept``)."""
    rows = first.rows
    if rows.num_rows and rows["patient_id"].null_count == rows.num_rows:
        raise ConfigError(
            f"{source}: its first {rows.num_rows:,} rows name no patient, so nothing was written "
            "and the file is not recorded as ingested; pass --patient ID"
        )


def _drain(ahead: list[ParsedFile], rest: Iterator[ParsedFile]) -> Iterator[ParsedFile]:
    """The chunks already read (dropping each once handed over), then the rest."""
    while ahead:
        yield ahead.pop(0)
    yield from rest


def _given_patient(settings: Settings, patient_id: str | None) -> tuple[str | None, dict[str, str]]:
    """The pseudonym of ``--patient`` (None: the rows name their patients), and its mapping."""
    if patient_id is None:
        return None, {}
    key = patient_key(load_secret(settings), patient_id)
    return key, {key: patient_id}


def ingest_records(
    settings: Settings,
    records: Sequence[Mapping[str, Any]],
    *,
    source: str = "http",
    tz: str | None = None,
    now: Clock = utc_now,
) -> IngestReport:
    """Ingest readings posted as JSON records (see formats.tabular for the field names)."""
    if not records:
        raise InvalidInput("the request has no readings; send at least one", source=source)
    if tz is not None:
        check_zone(tz, "tz")
    body = json.dumps(list(records), sort_keys=True, default=str).encode("utf-8")
    sha256 = hashlib.sha256(body).hexdigest()
    meta = open_metadata(settings.lake)
    earlier = meta.batch_by_sha256(sha256)
    if earlier is not None:
        return _already_ingested(earlier, [earlier], source)
    parsed = ParsedFile(raw_rows_from_records(records, source=source))
    options = _Options(source, "json", sha256, None, tz, now, is_file=False)
    return _accept(settings, parsed, options, meta)


def ingest_parsed(
    settings: Settings,
    parsed: ParsedFile,
    *,
    source: str,
    fmt: str,
    sha256: str,
    patient_id: str,
    tz: str | None = None,
    now: Clock = utc_now,
) -> IngestReport:
    """Ingest rows made from a file rather than read from it (a Nightscout profile's schedule
    over the days of the data beside it: ``basal_profiles``) as one batch recorded under ``sha256``:
    the same digest already ingested changes nothing."""
    meta = open_metadata(settings.lake)
    earlier = meta.batch_by_sha256(sha256)
    if earlier is not None:
        events = 0 if parsed.events is None else parsed.events.num_rows
        return _already_ingested(earlier, [earlier], source, events)
    return _accept(settings, parsed, _Options(source, fmt, sha256, patient_id, tz, now), meta)


def _refuse_nothing_read(parsed: ParsedFile, source: str) -> None:
    """Refuse, before anything is written, an input whose records are all skipped: none is a
    reading or an event (a Nightscout profile alone, an export of only alerts). One with no
    records at all (a header) is ingested as before: an empty batch."""
    events = 0 if parsed.events is None else parsed.events.num_rows
    if parsed.skipped and not parsed.rows.num_rows and not events:
        raise InvalidInput(
            f"none of its {parsed.skipped:,} records is a glucose reading or an event "
            "GlucoseStream reads (a Nightscout profile's basal schedule, alerts, ...); nothing "
            "was ingested: pass the export that holds the readings or treatments (docs/events.md "
            "says which records of each format are read)",
            source=source,
        )


def _require_patient_ids(parsed: ParsedFile, source: str, fmt: str) -> None:
    """Refuse, before anything is written, an export that names no patient when none is given
    (in its readings, nor in its events)."""
    tables = [t for t in (parsed.rows, parsed.events) if t is not None and t.num_rows]
    if tables and all(t["patient_id"].null_count == t.num_rows for t in tables):
        raise InvalidInput(
            f"this {fmt} export does not name its patient (only a name, which is never read); "
            "pass --patient ID",
            source=source,
        )


def _already_ingested(
    first: BatchRecord, records: Iterable[BatchRecord], source: str, events: int = 0
) -> IngestReport:
    """The report of bytes already ingested, as ``first`` (and, for a large file, ``records``:
    every batch of its chunks); ``events``: the events they received, all duplicates now."""
    log.info(
        "ingest source_sha256=%s already_ingested_as=%s", first.source_sha256[:12], first.batch_id
    )
    received = sum(r.received for r in records)
    return IngestReport(
        source=source,
        format=first.format,
        received=received,
        accepted=0,
        duplicates=received,
        quarantined=0,
        patients=0,
        top_reasons=(),
        batch_id=None,
        already_ingested_as=first.batch_id,
        duration_ms=0,
        events_received=events,
        events_duplicates=events,
    )


def _accept(
    settings: Settings, parsed: ParsedFile, options: _Options, meta: MetadataStore
) -> IngestReport:
    started = time.perf_counter()
    key, registered = _given_patient(settings, options.patient_id)
    part = Part(
        parsed, options.source, options.fmt, options.sha256, key or options.patient_key, options.tz
    )
    batch = build_batch(check_parts(settings, [part], engine=None, now=options.now), [part])
    if options.is_file:
        _refuse_argument_errors(batch.results[0].report)
    return write_batch(
        settings, batch, parts=1, started=started, metadata=meta, register=registered
    )[0].report


def _refuse_argument_errors(report: IngestReport) -> None:
    """Refuse, unwritten, an input whose every row (reading or event) was quarantined for
    reasons an argument causes or cures (no patient, an unknown zone), naming the fix."""
    received = report.received + report.events_received
    quarantined = report.quarantined + report.events_quarantined
    reasons = Counter(dict(report.top_reasons)) + Counter(dict(report.events_top_reasons))
    if not received or quarantined != received:
        return
    if sum(reasons.values()) != quarantined or not set(reasons) <= set(_ARGUMENT_FIXES):
        return
    found = ", ".join(f"{reason}: {n}" for reason, n in reasons.most_common())
    fixes = "; ".join(_ARGUMENT_FIXES[r] for r in reasons)
    raise ConfigError(
        f"{report.source}: all {received} rows were quarantined ({found}), so nothing "
        f"was written and the file is not recorded as ingested; {fixes}"
    )


def write_batch(
    settings: Settings,
    batch: BuiltBatch,
    *,
    parts: int,
    started: float,
    metadata: MetadataStore | None = None,
    register: Mapping[str, str] | None = None,
    record: Callable[[BatchRecord, list[PartResult]], None] | None = None,
) -> list[PartResult]:
    """Write a checked batch and record it; each part's result. The one write of a raw batch
    (files and HTTP requests alike), in this order: the patients' id mapping (``register`` adds
    to the batch's own), the data files, the manifest that commits them, then the record:
    ``record`` (the HTTP ledger: the batch and its requests in one transaction), else the
    batch alone. A failure before the manifest leaves nothing committed (the staged folder is
    removed); after it, the next run registers the batch from its manifest."""
    meta = metadata or open_metadata(settings.lake)
    meta.register_patients({**batch.external_ids, **(register or {})}, batch.record.created_at)
    RawZone(open_storage(settings.lake)).write_batch(
        batch.record.batch_id,
        batch.readings,
        batch.quarantine,
        batch.manifest,
        batch.events,
        batch.event_quarantine,
        devicestatus=batch.devicestatus,
    )
    duration_ms = round((time.perf_counter() - started) * 1000)
    results = [
        dataclasses.replace(r, report=dataclasses.replace(r.report, duration_ms=duration_ms))
        for r in batch.results
    ]
    if record is None:
        meta.add_batch(batch.record)
    else:
        record(batch.record, results)
    log_batch(
        batch.record,
        batch.manifest["not_readings"],
        parts,
        duration_ms,
        batch.manifest.get("events"),
    )
    return results


def _incoming(
    settings: Settings, parts: Sequence[Part], secret: bytes, now: Clock
) -> tuple[pa.Table, list[int], dict[str, str]]:
    """``batch.incoming_rows`` under its former name (tests/test_ingest_fastpath.py uses it)."""
    return incoming_rows(settings, parts, secret)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
