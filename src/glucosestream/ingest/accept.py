"""Accept raw rows into the raw zone as one immutable batch."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import time
import uuid
import zoneinfo
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.clock import Clock, utc_now
from glucosestream.config import Settings
from glucosestream.engines import Engine
from glucosestream.errors import InvalidInput
from glucosestream.formats import RAW_SCHEMA, ParsedFile, raw_rows_from_records, read_raw_rows
from glucosestream.ingest.fastpath import dictionary_codes
from glucosestream.ingest.identity import device_key, load_secret, patient_key
from glucosestream.ingest.normalise import normalise
from glucosestream.lake import RawZone, open_metadata, open_storage
from glucosestream.lake.metadata import BatchRecord, MetadataStore
from glucosestream.readings import READING_SCHEMA

__all__ = ["IngestReport", "Part", "accept_parts", "ingest_path", "ingest_records"]

log = logging.getLogger(__name__)

# Formats whose rows may each name their patient; a device export that names none needs --patient.
_PER_ROW_PATIENT_FORMATS = frozenset({"csv", "jsonl", "json", "parquet"})


@dataclass(frozen=True, slots=True)
class IngestReport:
    source: str
    format: str
    received: int
    accepted: int
    duplicates: int
    quarantined: int
    patients: int
    top_reasons: tuple[tuple[str, int], ...]
    batch_id: str | None
    already_ingested_as: str | None
    duration_ms: int


@dataclass(frozen=True, slots=True)
class _Options:
    source: str
    fmt: str
    sha256: str
    patient_id: str | None
    tz: str | None
    now: Clock
    patient_key: str | None = None  # a pseudonym already known (Nightscout: the token's patient)


@dataclass(frozen=True, slots=True)
class Part:
    """One input of a group batch (an HTTP request): its raw rows and how to read them."""

    parsed: ParsedFile
    source: str
    fmt: str
    sha256: str
    patient_key: str | None = None
    tz: str | None = None


@dataclass(frozen=True, slots=True)
class PartResult:
    """How one part was accounted for, and its quarantined rows (line = index in the part + 1)."""

    report: IngestReport
    quarantine: pa.Table


def ingest_path(
    settings: Settings,
    path: Path,
    *,
    fmt: str = "auto",
    patient_id: str | None = None,
    tz: str | None = None,
    now: Clock = utc_now,
) -> IngestReport:
    """Ingest one file. A file already ingested (same bytes) changes nothing."""
    if not path.is_file():
        raise InvalidInput("no such file; check the path", source=str(path))
    sha256 = _sha256_file(path)
    meta = open_metadata(settings.lake)
    earlier = _already_ingested(meta, sha256, str(path))
    if earlier is not None:
        return earlier
    used, parsed = read_raw_rows(path, fmt)
    if patient_id is None and used not in _PER_ROW_PATIENT_FORMATS:
        _require_patient_ids(parsed.rows, str(path), used)
    options = _Options(str(path), used, sha256, patient_id, tz, now)
    return _accept(settings, parsed, options, meta)


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
    body = json.dumps(list(records), sort_keys=True, default=str).encode("utf-8")
    sha256 = hashlib.sha256(body).hexdigest()
    meta = open_metadata(settings.lake)
    earlier = _already_ingested(meta, sha256, source)
    if earlier is not None:
        return earlier
    parsed = ParsedFile(raw_rows_from_records(records, source=source))
    return _accept(settings, parsed, _Options(source, "json", sha256, None, tz, now), meta)


def _require_patient_ids(raw: pa.Table, source: str, fmt: str) -> None:
    """Refuse, before anything is written, an export that names no patient when none is given."""
    if raw.num_rows and raw["patient_id"].null_count == raw.num_rows:
        raise InvalidInput(
            f"this {fmt} export does not name its patient (only a name, which is never read); "
            "pass --patient ID",
            source=source,
        )


def _already_ingested(meta: MetadataStore, sha256: str, source: str) -> IngestReport | None:
    record = meta.batch_by_sha256(sha256)
    if record is None:
        return None
    log.info("ingest source_sha256=%s already_ingested_as=%s", sha256[:12], record.batch_id)
    return IngestReport(
        source=source,
        format=record.format,
        received=record.received,
        accepted=0,
        duplicates=record.received,
        quarantined=0,
        patients=0,
        top_reasons=(),
        batch_id=None,
        already_ingested_as=record.batch_id,
        duration_ms=0,
    )


def _accept(
    settings: Settings, parsed: ParsedFile, options: _Options, meta: MetadataStore
) -> IngestReport:
    part = Part(
        parsed, options.source, options.fmt, options.sha256, options.patient_key, options.tz
    )
    if options.patient_id is not None:
        key = patient_key(load_secret(settings), options.patient_id)
        part = dataclasses.replace(part, patient_key=key)
        registered = {key: options.patient_id}
    else:
        registered = {}
    results = accept_parts(settings, [part], now=options.now, register=registered, metadata=meta)
    return results[0].report


def accept_parts(
    settings: Settings,
    parts: Sequence[Part],
    *,
    engine: Engine | None = None,
    now: Clock = utc_now,
    register: Mapping[str, str] | None = None,
    metadata: MetadataStore | None = None,
) -> list[PartResult]:
    """Validate several inputs together and write them as ONE raw batch (one fsync'd write).

    Rows are checked in one pass, in the order of ``parts`` (so a reading in a later part that
    repeats an earlier part's is that later part's duplicate: first arrival wins). Each part
    gets its own accounting; the manifest lists them in order (``parts``), and a quarantined
    row's ``line`` in the batch is its part's ``first_line`` + its line in the part - 1.
    ``engine`` runs ``normalize.sql`` when the fast path cannot (None: one is opened for it);
    ``metadata`` is the store to record the batch in (None: the lake's, opened here).
    """
    started = time.perf_counter()
    ingested_at = now()
    batch_id = f"{ingested_at:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"
    secret = load_secret(settings)
    incoming, offsets, external_ids = _incoming(settings, parts, secret, now)
    checked = normalise(engine, settings, incoming, _time_formats(parts))
    results = [
        _part_result(checked, part, offsets[i], offsets[i + 1], batch_id)
        for i, part in enumerate(parts)
    ]
    good = pc.and_(pc.is_null(checked["reason"]), pc.invert(checked["duplicate"]))
    readings = _readings(_where(checked, good), batch_id, ingested_at)
    quarantine = _quarantine(_where(checked, pc.is_valid(checked["reason"])))
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
    manifest = {
        "batch_id": batch_id,
        "format": fmt,
        "source_sha256": sha256,
        **totals,
        "not_readings": sum(p.parsed.skipped for p in parts),
        "ingested_at": ingested_at.isoformat(),
    }
    if len(parts) > 1:
        manifest["parts"] = [
            {"source_sha256": p.sha256, "first_line": offsets[i] + 1, **_counts(results[i])}
            for i, p in enumerate(parts)
        ]
    RawZone(open_storage(settings.lake)).write_batch(batch_id, readings, quarantine, manifest)
    meta = metadata or open_metadata(settings.lake)
    meta.add_batch(
        BatchRecord(
            batch_id=batch_id,
            source_name=parts[0].source if len(parts) == 1 else f"{len(parts)} requests",
            source_sha256=sha256,
            format=fmt,
            created_at=ingested_at,
            **totals,
        )
    )
    meta.register_patients({**external_ids, **(register or {})}, ingested_at)
    duration_ms = round((time.perf_counter() - started) * 1000)
    log.info(
        "ingest batch_id=%s format=%s parts=%d received=%d accepted=%d duplicates=%d "
        "quarantined=%d not_readings=%d duration_ms=%d",
        batch_id,
        fmt,
        len(parts),
        totals["received"],
        totals["accepted"],
        totals["duplicates"],
        totals["quarantined"],
        manifest["not_readings"],
        duration_ms,
    )
    return [
        PartResult(dataclasses.replace(r.report, duration_ms=duration_ms), r.quarantine)
        for r in results
    ]


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


def _incoming(
    settings: Settings, parts: Sequence[Part], secret: bytes, now: Clock
) -> tuple[pa.Table, list[int], dict[str, str]]:
    """The parts' rows as one table with batch-wide lines, and each part's first line - 1."""
    tables: list[pa.Table] = []
    offsets = [0]
    external_ids: dict[str, str] = {}
    for part in parts:
        options = _Options(part.source, part.fmt, part.sha256, None, part.tz, now, part.patient_key)
        table, ids = _pseudonymise(settings, part.parsed.rows, secret, options)
        external_ids.update(ids)
        shift = offsets[-1]
        if shift:
            table = table.set_column(
                table.schema.get_field_index("line"), "line", pc.add(table["line"], shift)
            )
        tables.append(table)
        offsets.append(shift + _line_span(part.parsed.rows))
    incoming = pa.concat_tables(tables, promote_options="permissive")
    pos = pa.array(np.arange(incoming.num_rows, dtype=np.int64))
    return incoming.set_column(0, "pos", pos), offsets, external_ids


def _line_span(rows: pa.Table) -> int:
    """Lines a part occupies in its batch: its largest line (at least its row count)."""
    largest = pc.max(rows["line"]).as_py() if rows.num_rows else 0
    return int(max(int(largest or 0), rows.num_rows))


def _part_result(checked: pa.Table, part: Part, first: int, last: int, batch_id: str) -> PartResult:
    # the checked rows are in line order, so a part's rows (first < line <= last) are one slice
    lo, hi = np.searchsorted(checked["line"].to_numpy(), [first, last], side="right")
    mine = checked.slice(int(lo), int(hi - lo))
    good = pc.and_(pc.is_null(mine["reason"]), pc.invert(mine["duplicate"]))
    bad = _where(mine, pc.is_valid(mine["reason"]))
    quarantine = _quarantine(bad)
    if first:
        quarantine = quarantine.set_column(0, "line", pc.subtract(quarantine["line"], first))
    reasons = Counter(bad["reason"].to_pylist()).most_common(5)
    report = IngestReport(
        source=part.source,
        format=part.fmt,
        received=mine.num_rows,
        accepted=_count_true(good),
        duplicates=_count_true(mine["duplicate"]),
        quarantined=bad.num_rows,
        patients=_distinct_count(_where(mine.select(["patient_key"]), good)["patient_key"]),
        top_reasons=tuple((str(r), n) for r, n in reasons),
        batch_id=batch_id,
        already_ingested_as=None,
        duration_ms=0,
    )
    return PartResult(report, quarantine)


def _count_true(mask: pa.Array | pa.ChunkedArray) -> int:
    return int(pc.sum(mask).as_py() or 0) if len(mask) else 0


def _distinct_count(column: pa.Array | pa.ChunkedArray) -> int:
    """Distinct non-null values; a dictionary column is counted by the values it uses."""
    if not pa.types.is_dictionary(column.type):
        return int(pc.count_distinct(column).as_py())
    chunked = column if isinstance(column, pa.ChunkedArray) else pa.chunked_array([column])
    codes, null = dictionary_codes(chunked)
    return len(np.unique(codes)) - (0 if null is None else 1)


def _quarantine(bad: pa.Table) -> pa.Table:
    return pa.table(
        {
            "line": bad["line"],
            "reason": bad["reason"],
            "patient_key": bad["patient_key"],
            "time": bad["raw_time"],
            "glucose": bad["raw_glucose"],
        }
    )


def _pseudonymise(
    settings: Settings, raw: pa.Table, secret: bytes, options: _Options
) -> tuple[pa.Table, dict[str, str]]:
    """Replace patient ids and device serials by keyed pseudonyms; check each time zone once.

    Each distinct value is worked on once in Python; the columns stay Arrow arrays.
    """
    raw = _conform(raw)
    n = raw.num_rows
    ids = raw["patient_id"]
    keys: dict[str, str] = {}

    def key_of(external_id: str) -> str | None:
        if not external_id.strip():
            return None
        keys[external_id] = patient_key(secret, external_id)
        return keys[external_id]

    patient_keys = (
        _map_distinct(ids, key_of, None)
        if options.patient_key is None
        else pa.repeat(pa.scalar(options.patient_key, pa.string()), n)
    )

    default_device = settings.ingest.default_device_id
    default_tz = options.tz or settings.ingest.default_tz
    zones = _map_distinct(raw["tz"], lambda z: z if z.strip() else default_tz, default_tz)
    incoming = pa.table(
        {
            "pos": pa.array(np.arange(n, dtype=np.int64)),
            "line": raw["line"],
            "source": pa.repeat(pa.scalar(options.fmt, pa.string()), n),
            "patient_key": patient_keys,
            "device_id": _map_distinct(
                raw["device_id"],
                lambda d: device_key(secret, d) if d.strip() else default_device,
                default_device,
            ),
            "time": raw["time"],
            "instant": raw["instant"],
            "glucose": raw["glucose"],
            "unit": raw["unit"],
            "tz": zones,
            "tz_ok": _map_distinct(zones, _is_zone, False, pa.bool_()),
            "flags": raw["flags"],
            "problem": raw["problem"],
        }
    )
    return incoming, {k: i for i, k in keys.items()}


def _conform(raw: pa.Table) -> pa.Table:
    """Raw rows with every column of ``RAW_SCHEMA``: optional ones a caller left out are empty."""
    missing = [f for f in RAW_SCHEMA if f.name not in raw.column_names]
    for field in missing:
        if field.name == "flags":
            raw = raw.append_column(field, pa.repeat(pa.scalar(0, field.type), raw.num_rows))
        else:
            raw = raw.append_column(field, pa.nulls(raw.num_rows, field.type))
    return raw


def _map_distinct(
    column: pa.Array | pa.ChunkedArray,
    func: Callable[[str], Any],
    if_null: Any,
    type_: pa.DataType | None = None,
) -> pa.Array:
    """``func`` applied to each distinct value of a string column (``if_null`` for nulls), as a
    dictionary-encoded array: each distinct value is worked on once and no string is copied."""
    encoded = pc.dictionary_encode(column)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.unify_dictionaries().combine_chunks()
    values = [func(v) for v in encoded.dictionary.to_pylist()] + [if_null]
    indices = pc.fill_null(encoded.indices, len(values) - 1)
    mapped = pa.array(values, type_ or pa.string())
    if type_ is not None:
        return pc.take(mapped, indices)
    return pa.DictionaryArray.from_arrays(indices, mapped)


def _is_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _readings(rows: pa.Table, batch_id: str, ingested_at: dt.datetime) -> pa.Table:
    n = rows.num_rows
    return pa.table(
        {
            "patient_key": rows["patient_key"],
            "device_id": rows["device_id"],
            "source": rows["source"],
            "ts": rows["ts"].cast(pa.timestamp("us", tz="UTC")),
            "glucose_mg_dl": rows["glucose_mg_dl"],
            "original_value": rows["original_value"],
            "original_unit": rows["original_unit"],
            "flags": rows["flags"].cast(pa.int32()),
            "tz": rows["tz"],
            "batch_id": pa.repeat(pa.scalar(batch_id, pa.string()), n),
            "ingested_at": pa.repeat(pa.scalar(ingested_at, pa.timestamp("us", tz="UTC")), n),
        }
    ).cast(READING_SCHEMA)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
