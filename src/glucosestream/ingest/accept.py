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
from glucosestream.engines import Engine, open_engine, read_sql
from glucosestream.errors import InvalidInput
from glucosestream.formats import RAW_SCHEMA, ParsedFile, raw_rows_from_records, read_raw_rows
from glucosestream.ingest.identity import device_key, load_secret, patient_key
from glucosestream.lake import RawZone, open_metadata, open_storage
from glucosestream.lake.metadata import BatchRecord
from glucosestream.readings import MG_DL_PER_MMOL_L, READING_SCHEMA, ReadingFlag

__all__ = ["IngestReport", "ingest_path", "ingest_records"]

log = logging.getLogger(__name__)

# Instants outside these are typing or clock errors (year 99999 parses); the earliest allows
# exports whose dates were shifted to anonymise them (a public Dexcom sample is set in 1961).
EARLIEST_READING_AT = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
LATEST_READING_AT = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)

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
    earlier = _already_ingested(settings, sha256, str(path))
    if earlier is not None:
        return earlier
    used, parsed = read_raw_rows(path, fmt)
    if patient_id is None and used not in _PER_ROW_PATIENT_FORMATS:
        _require_patient_ids(parsed.rows, str(path), used)
    return _accept(settings, parsed, _Options(str(path), used, sha256, patient_id, tz, now))


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
    earlier = _already_ingested(settings, sha256, source)
    if earlier is not None:
        return earlier
    parsed = ParsedFile(raw_rows_from_records(records, source=source))
    return _accept(settings, parsed, _Options(source, "json", sha256, None, tz, now))


def _require_patient_ids(raw: pa.Table, source: str, fmt: str) -> None:
    """Refuse, before anything is written, an export that names no patient when none is given."""
    if raw.num_rows and raw["patient_id"].null_count == raw.num_rows:
        raise InvalidInput(
            f"this {fmt} export does not name its patient (only a name, which is never read); "
            "pass --patient ID",
            source=source,
        )


def _already_ingested(settings: Settings, sha256: str, source: str) -> IngestReport | None:
    record = open_metadata(settings.lake).batch_by_sha256(sha256)
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


def _accept(settings: Settings, parsed: ParsedFile, options: _Options) -> IngestReport:
    started = time.perf_counter()
    ingested_at = options.now()
    batch_id = f"{ingested_at:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"
    secret = load_secret(settings)
    incoming, external_ids = _pseudonymise(settings, parsed.rows, secret, options)
    engine = open_engine(settings.engine)
    try:
        checked = _normalise(engine, settings, incoming, parsed.time_formats)
    finally:
        engine.close()
    good = pc.and_(pc.is_null(checked["reason"]), pc.invert(checked["duplicate"]))
    readings = _readings(checked.filter(good), options.fmt, batch_id, ingested_at)
    bad = checked.filter(pc.is_valid(checked["reason"]))
    quarantine = pa.table(
        {
            "line": bad["line"],
            "reason": bad["reason"],
            "patient_key": bad["patient_key"],
            "time": bad["raw_time"],
            "glucose": bad["raw_glucose"],
        }
    )
    reasons = Counter(bad["reason"].to_pylist()).most_common(5)
    duplicates = int(pc.sum(checked["duplicate"]).as_py() or 0)
    report = IngestReport(
        source=options.source,
        format=options.fmt,
        received=checked.num_rows,
        accepted=readings.num_rows,
        duplicates=duplicates,
        quarantined=bad.num_rows,
        patients=pc.count_distinct(readings["patient_key"]).as_py(),
        top_reasons=tuple((str(r), n) for r, n in reasons),
        batch_id=batch_id,
        already_ingested_as=None,
        duration_ms=0,
    )
    manifest = {
        "batch_id": batch_id,
        "format": options.fmt,
        "source_sha256": options.sha256,
        "received": report.received,
        "accepted": report.accepted,
        "duplicates": report.duplicates,
        "quarantined": report.quarantined,
        "not_readings": parsed.skipped,
        "ingested_at": ingested_at.isoformat(),
    }
    RawZone(open_storage(settings.lake)).write_batch(batch_id, readings, quarantine, manifest)
    meta = open_metadata(settings.lake)
    meta.add_batch(
        BatchRecord(
            batch_id=batch_id,
            source_name=options.source,
            source_sha256=options.sha256,
            format=options.fmt,
            received=report.received,
            accepted=report.accepted,
            duplicates=report.duplicates,
            quarantined=report.quarantined,
            created_at=ingested_at,
        )
    )
    meta.register_patients(external_ids, ingested_at)
    duration_ms = round((time.perf_counter() - started) * 1000)
    log.info(
        "ingest batch_id=%s format=%s received=%d accepted=%d duplicates=%d quarantined=%d "
        "not_readings=%d duration_ms=%d",
        batch_id,
        options.fmt,
        report.received,
        report.accepted,
        report.duplicates,
        report.quarantined,
        parsed.skipped,
        duration_ms,
    )
    return dataclasses.replace(report, duration_ms=duration_ms)


def _pseudonymise(
    settings: Settings, raw: pa.Table, secret: bytes, options: _Options
) -> tuple[pa.Table, dict[str, str]]:
    """Replace patient ids and device serials by keyed pseudonyms; check each time zone once.

    Each distinct value is worked on once in Python; the columns stay Arrow arrays.
    """
    raw = _conform(raw)
    n = raw.num_rows
    ids = raw["patient_id"]
    if options.patient_id is not None:
        ids = pa.repeat(pa.scalar(options.patient_id, pa.string()), n)
    keys: dict[str, str] = {}

    def key_of(external_id: str) -> str | None:
        if not external_id.strip():
            return None
        keys[external_id] = patient_key(secret, external_id)
        return keys[external_id]

    default_device = settings.ingest.default_device_id
    default_tz = options.tz or settings.ingest.default_tz
    zones = _map_distinct(raw["tz"], lambda z: z if z.strip() else default_tz, default_tz)
    incoming = pa.table(
        {
            "pos": pa.array(np.arange(n, dtype=np.int64)),
            "line": raw["line"],
            "patient_key": _map_distinct(ids, key_of, None),
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


def _normalise(
    engine: Engine, settings: Settings, incoming: pa.Table, time_formats: tuple[str, ...]
) -> pa.Table:
    return engine.query(
        read_sql("glucosestream.ingest", "normalize.sql"),
        {"incoming": incoming},
        default_unit="mg/dL",
        time_formats=list(time_formats),
        earliest=EARLIEST_READING_AT,
        latest=LATEST_READING_AT,
        scan_flag=int(ReadingFlag.SCAN),
        min_mg_dl=settings.ingest.min_mg_dl,
        max_mg_dl=settings.ingest.max_mg_dl,
        mg_per_mmol=MG_DL_PER_MMOL_L,
    )


def _readings(rows: pa.Table, source: str, batch_id: str, ingested_at: dt.datetime) -> pa.Table:
    n = rows.num_rows
    return pa.table(
        {
            "patient_key": rows["patient_key"],
            "device_id": rows["device_id"],
            "source": pa.repeat(pa.scalar(source, pa.string()), n),
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
