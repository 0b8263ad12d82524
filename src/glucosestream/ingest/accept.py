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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.clock import Clock, utc_now
from glucosestream.config import Settings
from glucosestream.engines import Engine, open_engine, read_sql
from glucosestream.errors import InvalidInput
from glucosestream.formats import raw_rows_from_records, read_raw_rows
from glucosestream.ingest.identity import device_key, load_secret, patient_key
from glucosestream.lake import RawZone, open_metadata
from glucosestream.lake.metadata import BatchRecord
from glucosestream.readings import MG_DL_PER_MMOL_L, READING_SCHEMA

__all__ = ["IngestReport", "ingest_path", "ingest_records"]

log = logging.getLogger(__name__)


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
    used, raw = read_raw_rows(path, fmt)
    return _accept(settings, raw, _Options(str(path), used, sha256, patient_id, tz, now))


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
    raw = raw_rows_from_records(records, source=source)
    return _accept(settings, raw, _Options(source, "json", sha256, None, tz, now))


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


def _accept(settings: Settings, raw: pa.Table, options: _Options) -> IngestReport:
    started = time.perf_counter()
    ingested_at = options.now()
    batch_id = f"{ingested_at:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"
    secret = load_secret(settings)
    incoming, external_ids = _pseudonymise(settings, raw, secret, options)
    engine = open_engine(settings.engine)
    try:
        checked = _normalise(engine, settings, incoming)
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
    report = IngestReport(
        source=options.source,
        format=options.fmt,
        received=checked.num_rows,
        accepted=readings.num_rows,
        duplicates=int(pc.sum(checked["duplicate"]).as_py() or 0),
        quarantined=bad.num_rows,
        patients=len(set(readings["patient_key"].to_pylist())),
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
        "ingested_at": ingested_at.isoformat(),
    }
    RawZone(settings.lake.root_path).write_batch(batch_id, readings, quarantine, manifest)
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
        "duration_ms=%d",
        batch_id,
        options.fmt,
        report.received,
        report.accepted,
        report.duplicates,
        report.quarantined,
        duration_ms,
    )
    return dataclasses.replace(report, duration_ms=duration_ms)


def _pseudonymise(
    settings: Settings, raw: pa.Table, secret: bytes, options: _Options
) -> tuple[pa.Table, dict[str, str]]:
    """Replace patient ids and device serials by keyed pseudonyms; check each time zone once."""
    ids = raw["patient_id"].to_pylist()
    if options.patient_id is not None:
        ids = [options.patient_id] * raw.num_rows
    keys = {i: patient_key(secret, i) for i in set(ids) if i is not None and i.strip()}
    default_device = settings.ingest.default_device_id
    devices = {
        d: device_key(secret, d) for d in set(raw["device_id"].to_pylist()) if d and d.strip()
    }
    default_tz = options.tz or settings.ingest.default_tz
    zones = [z if z and z.strip() else default_tz for z in raw["tz"].to_pylist()]
    zone_ok = {z: _is_zone(z) for z in set(zones)}
    incoming = pa.table(
        {
            "line": raw["line"],
            "patient_key": pa.array([keys.get(i) if i else None for i in ids], pa.string()),
            "device_id": pa.array(
                [
                    devices.get(d, default_device) if d else default_device
                    for d in raw["device_id"].to_pylist()
                ],
                pa.string(),
            ),
            "time": raw["time"],
            "glucose": raw["glucose"],
            "unit": raw["unit"],
            "tz": pa.array(zones, pa.string()),
            "tz_ok": pa.array([zone_ok[z] for z in zones], pa.bool_()),
        }
    )
    return incoming, {k: i for i, k in keys.items()}


def _is_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _normalise(engine: Engine, settings: Settings, incoming: pa.Table) -> pa.Table:
    return engine.query(
        read_sql("glucosestream.ingest", "normalize.sql"),
        {"incoming": incoming},
        default_tz=settings.ingest.default_tz,
        default_unit="mg/dL",
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
            "source": pa.array([source] * n, pa.string()),
            "ts": rows["ts"].cast(pa.timestamp("us", tz="UTC")),
            "glucose_mg_dl": rows["glucose_mg_dl"],
            "original_value": rows["original_value"],
            "original_unit": rows["original_unit"],
            "flags": pa.array([0] * n, pa.int32()),
            "tz": rows["tz"],
            "batch_id": pa.array([batch_id] * n, pa.string()),
            "ingested_at": pa.array([ingested_at] * n, pa.timestamp("us", tz="UTC")),
        }
    ).cast(READING_SCHEMA)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
