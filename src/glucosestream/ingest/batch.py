"""One raw batch in the making: rows pseudonymised, validated and accounted for. No I/O but
reading the pseudonym key: ``accept`` (one batch) and ``chunked`` (a large file) write it.

``check_parts`` turns the parts' raw rows into checked rows (``normalise``: the reason a row is
quarantined, or whether it is a duplicate), and their raw event rows into checked events
(``event_checks``); ``build_batch`` makes of them the batch's readings, quarantine, events,
event quarantine, manifest and record, and each part's report (``event_batch`` for events).
A part's readings and events share its lines (those of its file): the next part's start after
the larger of the two.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.clock import Clock
from glucosestream.config import Settings
from glucosestream.engines import Engine
from glucosestream.formats import RAW_SCHEMA, ParsedFile, decoded
from glucosestream.formats.rows import TREND_SCHEMA
from glucosestream.ingest.devicestatus import batch_devicestatus, documents
from glucosestream.ingest.event_batch import (
    EarlierEvents,
    batch_event_files,
    event_manifest,
    mark_duplicates,
)
from glucosestream.ingest.event_checks import EventInput, check_events
from glucosestream.ingest.fastpath import constant_strings, dictionary_codes
from glucosestream.ingest.identity import load_secret, pseudonymised_rows
from glucosestream.ingest.ingest_report import IngestReport, PartResult
from glucosestream.ingest.normalise import normalise
from glucosestream.lake import BatchRecord

__all__ = [
    "BuiltBatch",
    "CheckedRows",
    "Part",
    "build_batch",
    "check_parts",
    "incoming_rows",
    "log_batch",
    "source_label",
]

log = logging.getLogger("glucosestream.ingest.accept")  # ingest's batch lines keep their logger

_INSTANT = pa.timestamp("us", tz="UTC")
# Sources that name a kind of request, not a file (``service``): kept as they are.
_REQUEST_SOURCES = frozenset({"http", "nightscout-api"})
# A quarantined row keeps at most this much of its raw time and glucose text.
_QUARANTINE_TEXT_CHARS = 256


@dataclass(frozen=True, slots=True)
class Part:
    """One input of a group batch (an HTTP request): its raw rows and how to read them."""

    parsed: ParsedFile
    source: str
    fmt: str
    sha256: str
    patient_key: str | None = None
    tz: str | None = None
    # Nightscout sgv entries whose parse waits for the group (``request_parts.parse_waiting``);
    # ``parsed`` is empty until then.
    entries: tuple[Any, ...] | None = None
    # Nightscout devicestatus documents kept as posted: ``line`` (int64, 1-based place in the
    # request) and ``document`` (its JSON text); the part's ``patient_key`` is theirs.
    devicestatus: pa.Table | None = None


@dataclass(frozen=True, slots=True)
class CheckedRows:
    """The rows of one future batch after validation (``normalise``), before any accounting."""

    batch_id: str
    ingested_at: dt.datetime
    checked: pa.Table
    offsets: tuple[int, ...]  # each part's first line - 1, then the last part's last line
    external_ids: dict[str, str]
    events: pa.Table | None = None  # checked events (``event_checks``), duplicates marked


@dataclass(frozen=True, slots=True)
class BuiltBatch:
    """What one batch writes and records, and each part's accounting."""

    results: list[PartResult]
    readings: pa.Table
    quarantine: pa.Table
    manifest: dict[str, Any]
    record: BatchRecord
    external_ids: dict[str, str]
    accepted_keys: pa.Table  # patient_key, device_id, ts of the accepted rows
    events: pa.Table | None = None  # EVENT_SCHEMA: the accepted events
    event_quarantine: pa.Table | None = None  # the quarantined events (batch-wide lines)
    devicestatus: pa.Table | None = None  # the posted devicestatus documents, kept raw


def check_parts(
    settings: Settings,
    parts: Sequence[Part],
    *,
    engine: Engine | None,
    now: Clock,
    carried: pa.Table | None = None,
    earlier_events: EarlierEvents | None = None,
) -> CheckedRows:
    """Pseudonymise and validate the parts' rows and events as one batch (nothing is
    written). ``carried``, ``earlier_events``: what earlier chunks of the same file reached
    (see ``normalise``) and accepted."""
    ingested_at = now()
    batch_id = f"{ingested_at:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"
    secret = load_secret(settings)
    incoming, offsets, external_ids = incoming_rows(settings, parts, secret)
    formats = _time_formats(parts)
    checked = normalise(engine, settings, incoming, formats, carried, received_at=ingested_at)
    events = None
    inputs = _event_inputs(parts, offsets)
    if inputs:
        earlier = earlier_events or EarlierEvents()
        found = check_events(
            settings,
            inputs,
            secret,
            engine=engine,
            received_at=ingested_at,
            time_formats=formats,
            carried=earlier.carried,
        )
        events = mark_duplicates(found.rows, earlier.keys)
        external_ids = {**found.external_ids, **external_ids}
    return CheckedRows(batch_id, ingested_at, checked, tuple(offsets), external_ids, events)


def _event_inputs(parts: Sequence[Part], offsets: Sequence[int]) -> list[EventInput]:
    """The parts' raw event rows, with lines of the batch (a part's own + its offset)."""
    inputs = []
    for part, offset in zip(parts, offsets, strict=False):
        raw = part.parsed.events
        if raw is None or raw.num_rows == 0:
            continue
        if offset:
            raw = raw.set_column(0, "line", pc.add(raw["line"], offset))
        inputs.append(EventInput(raw, part.fmt, part.tz, part.patient_key))
    return inputs


def build_batch(rows: CheckedRows, parts: Sequence[Part]) -> BuiltBatch:
    """The batch's files, manifest and record, and each part's accounting, from its rows."""
    checked, offsets, batch_id = rows.checked, rows.offsets, rows.batch_id
    results = _part_results(checked, parts, offsets, batch_id)
    events, bad_events, event_totals = batch_event_files(
        rows.events, rows.offsets, rows.batch_id, rows.ingested_at
    )
    results = [
        PartResult(
            dataclasses.replace(
                r.report.with_events(counts), devicestatus=documents(part.devicestatus)
            ),
            r.quarantine,
            bad,
        )
        for r, (counts, bad), part in zip(results, event_totals[1:], parts, strict=True)
    ]
    devicestatus = batch_devicestatus(
        [(p.devicestatus, p.patient_key) for p in parts], offsets, rows.ingested_at
    )
    good = _where(checked, pc.and_(pc.is_null(checked["reason"]), pc.invert(checked["duplicate"])))
    manifest, record = _manifest_and_record(rows, parts, results)
    manifest.update(event_manifest(event_totals[0][0]))
    if devicestatus is not None:
        manifest["devicestatus"] = devicestatus.num_rows
    return BuiltBatch(
        results,
        _readings(good, batch_id, rows.ingested_at),
        _quarantine(_where(checked, pc.is_valid(checked["reason"]))),
        manifest,
        record,
        rows.external_ids,
        good.select(["patient_key", "device_id", "ts"]),
        events,
        bad_events,
        devicestatus,
    )


def _manifest_and_record(
    rows: CheckedRows, parts: Sequence[Part], results: Sequence[PartResult]
) -> tuple[dict[str, Any], BatchRecord]:
    """The batch's manifest (its readings' counts; events are added by the caller) and the
    record the metadata store keeps of it."""
    totals = {
        name: sum(getattr(r.report, name) for r in results)
        for name in ("received", "accepted", "duplicates", "quarantined")
    }
    fmts = sorted({p.fmt for p in parts})
    fmt = fmts[0] if len(fmts) == 1 else "mixed"
    sha256 = (
        parts[0].sha256
        if len(parts) == 1
        else hashlib.sha256("".join(p.sha256 for p in parts).encode("ascii")).hexdigest()
    )
    source = source_label(parts[0]) if len(parts) == 1 else f"{len(parts)} requests"
    manifest: dict[str, Any] = {
        "batch_id": rows.batch_id,
        "source": source,
        "format": fmt,
        "source_sha256": sha256,
        **totals,
        "not_readings": sum(p.parsed.skipped for p in parts),
        "ingested_at": rows.ingested_at.isoformat(),
    }
    if len(parts) > 1:
        manifest["parts"] = [
            {"source_sha256": p.sha256, "first_line": rows.offsets[i] + 1, **_counts(results[i])}
            for i, p in enumerate(parts)
        ]
    record = BatchRecord(
        batch_id=rows.batch_id,
        source_name=source,
        source_sha256=sha256,
        format=fmt,
        created_at=rows.ingested_at,
        **totals,
    )
    return manifest, record


def source_label(part: Part) -> str:
    """What the metadata store and the manifest keep of where a part came from: the request
    kind, or ``"<format> file"``. Never a file's name or folder: exports are often named after
    the patient (``CaseyHidden_glucose_6-20-2015.csv``); the content hash identifies the file."""
    return part.source if part.source in _REQUEST_SOURCES else f"{part.fmt} file"


def log_batch(
    record: BatchRecord,
    not_readings: int,
    parts: int,
    duration_ms: int,
    events: dict[str, int] | None = None,
) -> None:
    """The one INFO line of an ingested batch (``events``: its manifest's event counts)."""
    counts = events or {}
    log.info(
        "ingest batch_id=%s format=%s parts=%d received=%d accepted=%d duplicates=%d "
        "quarantined=%d not_readings=%d events_received=%d events_accepted=%d "
        "events_quarantined=%d duration_ms=%d",
        record.batch_id,
        record.format,
        parts,
        record.received,
        record.accepted,
        record.duplicates,
        record.quarantined,
        not_readings,
        counts.get("received", 0),
        counts.get("accepted", 0),
        counts.get("quarantined", 0),
        duration_ms,
    )


def _where(table: pa.Table, mask: pa.Array | pa.ChunkedArray) -> pa.Table:
    """``table.filter(mask)``, without copying anything when the mask keeps all or nothing."""
    kept = _count_true(mask)
    if kept == table.num_rows:
        return table
    return table.slice(0, 0) if kept == 0 else table.filter(mask)


def _counts(result: PartResult) -> dict[str, int]:
    r = result.report
    return {
        "received": r.received,
        "accepted": r.accepted,
        "duplicates": r.duplicates,
        "quarantined": r.quarantined,
    }


def _time_formats(parts: Sequence[Part]) -> tuple[str, ...]:
    formats: dict[str, None] = {}
    for part in parts:
        formats.update(dict.fromkeys(part.parsed.time_formats))
    return tuple(formats)


def incoming_rows(
    settings: Settings, parts: Sequence[Part], secret: bytes
) -> tuple[pa.Table, list[int], dict[str, str]]:
    """The parts' rows as one table with batch-wide lines, and each part's first line - 1.
    Parts alike (``_alike``: one-reading uploader requests) are pseudonymised as one table."""
    tables: list[pa.Table] = []
    offsets = [0]
    external_ids: dict[str, str] = {}
    for run in _alike(parts):
        first = len(offsets) - 1
        for part in run:
            offsets.append(offsets[-1] + _line_span(part.parsed, part.devicestatus))
        raws = [p.parsed.rows for p in run]
        table, ids = pseudonymised_rows(
            settings,
            _conform(raws[0] if len(raws) == 1 else pa.concat_tables(raws)),
            secret,
            bound=None if run[0].patient_key is None else _bound_keys(run),
            fmt=run[0].fmt,
            tz=run[0].tz,
        )
        external_ids.update(ids)
        if offsets[first] or len(run) > 1:
            sizes = [p.parsed.rows.num_rows for p in run]
            shift = pa.array(np.repeat(np.asarray(offsets[first : first + len(run)]), sizes))
            line = table.schema.get_field_index("line")
            table = table.set_column(line, "line", pc.add(table["line"], shift))
        tables.append(table)
    incoming = pa.concat_tables(tables, promote_options="permissive")
    pos = pa.array(np.arange(incoming.num_rows, dtype=np.int64))
    return incoming.set_column(0, "pos", pos), offsets, external_ids


def _alike(parts: Sequence[Part]) -> list[list[Part]]:
    """The parts in runs of consecutive ones pseudonymised alike: each bound to its patient
    (``patient_key``), of one format and zone, with the same raw columns."""
    runs: list[list[Part]] = []
    for part in parts:
        last = runs[-1][-1] if runs else None
        if (
            last is not None
            and part.patient_key is not None
            and last.patient_key is not None
            and (part.fmt, part.tz) == (last.fmt, last.tz)
            and part.parsed.rows.schema.equals(last.parsed.rows.schema)
        ):
            runs[-1].append(part)
        else:
            runs.append([part])
    return runs


def _line_span(parsed: ParsedFile, devicestatus: pa.Table | None = None) -> int:
    """Lines a part occupies in its batch: its largest line of a reading or an event (at
    least its count of rows and of events)."""
    span = 0
    for rows in (parsed.rows, parsed.events, devicestatus):
        if rows is not None and rows.num_rows:
            largest = pc.max(rows["line"]).as_py()
            span = max(span, int(largest or 0), rows.num_rows)
    return span


def _part_results(
    checked: pa.Table, parts: Sequence[Part], offsets: Sequence[int], batch_id: str
) -> list[PartResult]:
    """Each part's accounting. The checked rows are in line order, so a part's rows
    (``offsets[i] < line <= offsets[i + 1]``) are one slice; the masks and the patients' codes
    are made once for the batch, and each part takes its slice of them (a group of 64
    one-reading requests is not 64 rounds of Arrow calls)."""
    bounds = np.searchsorted(checked["line"].to_numpy(), offsets, side="right")
    duplicate = pc.fill_null(checked["duplicate"], False)
    good = pc.fill_null(
        pc.and_(pc.is_null(checked["reason"]), pc.invert(checked["duplicate"])), False
    )
    good_np = good.to_numpy()
    counts = {
        name: np.concatenate([[0], np.cumsum(mask.to_numpy(), dtype=np.int64)])
        for name, mask in (
            ("accepted", good),
            ("duplicates", duplicate),
            ("quarantined", pc.is_valid(checked["reason"])),
        )
    }
    codes, null = dictionary_codes(checked["patient_key"])
    empty = _quarantine(checked.slice(0, 0))
    shifted_empty = empty.set_column(0, "line", pc.subtract(empty["line"], 1))
    results = []
    for i, part in enumerate(parts):
        lo, hi = int(bounds[i]), int(bounds[i + 1])
        n = {name: int(c[hi] - c[lo]) for name, c in counts.items()}
        if n["quarantined"]:
            quarantine, reasons = _quarantined(checked.slice(lo, hi - lo), offsets[i])
        else:
            quarantine, reasons = (shifted_empty if offsets[i] else empty), ()
        patients = np.unique(codes[lo:hi][good_np[lo:hi]]) if n["accepted"] else codes[:0]
        report = IngestReport(
            source=part.source,
            format=part.fmt,
            received=hi - lo,
            accepted=n["accepted"],
            duplicates=n["duplicates"],
            quarantined=n["quarantined"],
            patients=len(patients) - int(null is not None and null in patients),
            top_reasons=reasons,
            batch_id=batch_id,
            already_ingested_as=None,
            duration_ms=0,
            batch_ids=(batch_id,),
        )
        results.append(PartResult(report, quarantine))
    return results


def _quarantined(mine: pa.Table, first: int) -> tuple[pa.Table, tuple[tuple[str, int], ...]]:
    """A part's quarantined rows (line = index in the part + 1) and its five top reasons."""
    bad = _where(mine, pc.is_valid(mine["reason"]))
    quarantine = _quarantine(bad)
    if first:
        quarantine = quarantine.set_column(0, "line", pc.subtract(quarantine["line"], first))
    reasons = Counter(bad["reason"].to_pylist()).most_common(5)
    return quarantine, tuple((str(r), n) for r, n in reasons)


def _count_true(mask: pa.Array | pa.ChunkedArray) -> int:
    return int(pc.sum(mask).as_py() or 0) if len(mask) else 0


def _quarantine(bad: pa.Table) -> pa.Table:
    return pa.table(
        {
            "line": bad["line"],
            "reason": bad["reason"],
            "patient_key": bad["patient_key"],
            "time": _clipped(bad["raw_time"]),
            "glucose": _clipped(bad["raw_glucose"]),
        }
    )


def _clipped(text: pa.ChunkedArray) -> pa.ChunkedArray:
    """Raw text cut to ``_QUARANTINE_TEXT_CHARS`` (a 100 MB value is not kept whole)."""
    text = decoded(text)
    if not pa.types.is_string(text.type) or len(text) == 0:
        return text
    return pc.utf8_slice_codeunits(text, 0, _QUARANTINE_TEXT_CHARS)


def _bound_keys(run: Sequence[Part]) -> pa.Array:
    """The patient key each part of ``run`` is bound to, once per row (a dictionary array)."""
    keys = list(dict.fromkeys(p.patient_key for p in run))
    if len(keys) == 1:
        return constant_strings(str(keys[0]), sum(p.parsed.rows.num_rows for p in run))
    code = {key: i for i, key in enumerate(keys)}
    indices = np.repeat(
        np.array([code[p.patient_key] for p in run], np.int32),
        [p.parsed.rows.num_rows for p in run],
    )
    return pa.DictionaryArray.from_arrays(pa.array(indices), pa.array(keys, pa.string()))


def _conform(raw: pa.Table) -> pa.Table:
    """Raw rows with every column of ``RAW_SCHEMA`` and ``TREND_SCHEMA``: optional ones a
    caller left out are empty."""
    names = set(raw.column_names)
    missing = [f for f in (*RAW_SCHEMA, *TREND_SCHEMA) if f.name not in names]
    for column in missing:
        if column.name == "flags":
            raw = raw.append_column(column, pa.repeat(pa.scalar(0, column.type), raw.num_rows))
        else:
            raw = raw.append_column(column, pa.nulls(raw.num_rows, column.type))
    return raw


def _readings(rows: pa.Table, batch_id: str, ingested_at: dt.datetime) -> pa.Table:
    """The accepted rows as readings. String columns stay as they are (a dictionary column is
    written from its dictionary; see ``RawZone.write_batch``), so no key is copied per row."""
    n = rows.num_rows
    ts = rows["ts"]
    flags = rows["flags"]
    return pa.table(
        {
            "patient_key": rows["patient_key"],
            "device_id": rows["device_id"],
            "source": rows["source"],
            "ts": ts if ts.type == _INSTANT else ts.cast(_INSTANT),
            "glucose_mg_dl": rows["glucose_mg_dl"],
            "original_value": rows["original_value"],
            "original_unit": rows["original_unit"],
            "flags": flags if flags.type == pa.int32() else flags.cast(pa.int32()),
            "tz": rows["tz"],
            "batch_id": constant_strings(batch_id, n),
            "ingested_at": pa.repeat(pa.scalar(ingested_at, _INSTANT), n),
            "direction": rows["direction"],
            "rate_mg_dl_min": rows["rate_mg_dl_min"],
        }
    )
