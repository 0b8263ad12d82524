"""One raw batch in the making: rows pseudonymised, validated and accounted for. No I/O but
reading the pseudonym key: ``accept`` (one batch) and ``chunked`` (a large file) write it.

``check_parts`` turns the parts' raw rows into checked rows (``normalise``: the reason a row is
quarantined, or whether it is a duplicate); ``build_batch`` makes of them the batch's readings,
quarantine, manifest and record, and each part's report.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.clock import Clock
from glucosestream.config import Settings
from glucosestream.engines import Engine
from glucosestream.formats import RAW_SCHEMA, ParsedFile, decoded
from glucosestream.formats.rows import TREND_SCHEMA
from glucosestream.ingest.fastpath import constant_strings, dictionary_codes
from glucosestream.ingest.identity import device_key, load_secret, patient_key
from glucosestream.ingest.normalise import normalise
from glucosestream.lake import BatchRecord
from glucosestream.readings import MAX_ID_CHARS, is_known_zone

__all__ = [
    "BuiltBatch",
    "CheckedRows",
    "IngestReport",
    "Part",
    "PartResult",
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
    batch_ids: tuple[str, ...] = ()  # every batch the input landed in (a large file: several)


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


@dataclass(frozen=True, slots=True)
class CheckedRows:
    """The rows of one future batch after validation (``normalise``), before any accounting."""

    batch_id: str
    ingested_at: dt.datetime
    checked: pa.Table
    offsets: tuple[int, ...]  # each part's first line - 1, then the last part's last line
    external_ids: dict[str, str]


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


def check_parts(
    settings: Settings,
    parts: Sequence[Part],
    *,
    engine: Engine | None,
    now: Clock,
    carried: pa.Table | None = None,
) -> CheckedRows:
    """Pseudonymise and validate the parts' rows as one batch (nothing is written).
    ``carried``: what earlier chunks of the same file reached (see ``normalise``)."""
    ingested_at = now()
    batch_id = f"{ingested_at:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"
    secret = load_secret(settings)
    incoming, offsets, external_ids = incoming_rows(settings, parts, secret)
    checked = normalise(
        engine, settings, incoming, _time_formats(parts), carried, received_at=ingested_at
    )
    return CheckedRows(batch_id, ingested_at, checked, tuple(offsets), external_ids)


def build_batch(rows: CheckedRows, parts: Sequence[Part]) -> BuiltBatch:
    """The batch's files, manifest and record, and each part's accounting, from its rows."""
    checked, offsets, batch_id = rows.checked, rows.offsets, rows.batch_id
    results = [
        _part_result(checked, part, offsets[i], offsets[i + 1], batch_id)
        for i, part in enumerate(parts)
    ]
    good = _where(checked, pc.and_(pc.is_null(checked["reason"]), pc.invert(checked["duplicate"])))
    readings = _readings(good, batch_id, rows.ingested_at)
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
    source = source_label(parts[0]) if len(parts) == 1 else f"{len(parts)} requests"
    manifest = {
        "batch_id": batch_id,
        "source": source,
        "format": fmt,
        "source_sha256": sha256,
        **totals,
        "not_readings": sum(p.parsed.skipped for p in parts),
        "ingested_at": rows.ingested_at.isoformat(),
    }
    if len(parts) > 1:
        manifest["parts"] = [
            {"source_sha256": p.sha256, "first_line": offsets[i] + 1, **_counts(results[i])}
            for i, p in enumerate(parts)
        ]
    record = BatchRecord(
        batch_id=batch_id,
        source_name=source,
        source_sha256=sha256,
        format=fmt,
        created_at=rows.ingested_at,
        **totals,
    )
    keys = good.select(["patient_key", "device_id", "ts"])
    return BuiltBatch(results, readings, quarantine, manifest, record, rows.external_ids, keys)


def source_label(part: Part) -> str:
    """What the metadata store and the manifest keep of where a part came from: the request
    kind, or ``"<format> file"``. Never a file's name or folder: exports are often named after
    the patient (``CaseyHidden_glucose_6-20-2015.csv``); the content hash identifies the file."""
    return part.source if part.source in _REQUEST_SOURCES else f"{part.fmt} file"


def log_batch(record: BatchRecord, not_readings: int, parts: int, duration_ms: int) -> None:
    """The one INFO line of an ingested batch."""
    log.info(
        "ingest batch_id=%s format=%s parts=%d received=%d accepted=%d duplicates=%d "
        "quarantined=%d not_readings=%d duration_ms=%d",
        record.batch_id,
        record.format,
        parts,
        record.received,
        record.accepted,
        record.duplicates,
        record.quarantined,
        not_readings,
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
    """The parts' rows as one table with batch-wide lines, and each part's first line - 1."""
    tables: list[pa.Table] = []
    offsets = [0]
    external_ids: dict[str, str] = {}
    for part in parts:
        table, ids = _pseudonymise(settings, part, secret)
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
        batch_ids=(batch_id,),
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


@dataclass(slots=True)
class _Pseudonyms:
    """The keyed pseudonyms of one part's ids, each distinct id worked on once. An id over
    ``MAX_ID_CHARS`` is neither hashed nor registered: its rows are quarantined."""

    secret: bytes
    default_device: str
    keys: dict[str, str] = field(default_factory=dict)  # by external patient id
    too_long: set[str] = field(default_factory=set)  # "patient", "device": kinds found too long

    def patient(self, external_id: str) -> str | None:
        if len(external_id) > MAX_ID_CHARS:
            self.too_long.add("patient")
            return None
        if not external_id.strip():
            return None
        self.keys[external_id] = patient_key(self.secret, external_id)
        return self.keys[external_id]

    def device(self, device_id: str) -> str:
        if len(device_id) > MAX_ID_CHARS:
            self.too_long.add("device")
            return self.default_device
        return device_key(self.secret, device_id) if device_id.strip() else self.default_device


def _pseudonymise(settings: Settings, part: Part, secret: bytes) -> tuple[pa.Table, dict[str, str]]:
    """Replace patient ids and device serials by keyed pseudonyms; check each time zone once.

    Each distinct value is worked on once in Python; the columns stay Arrow arrays.
    """
    raw = _conform(part.parsed.rows)
    n = raw.num_rows
    default_device = settings.ingest.default_device_id
    names = _Pseudonyms(secret, default_device)
    patient_keys = (
        _map_distinct(raw["patient_id"], names.patient, None)
        if part.patient_key is None
        else constant_strings(part.patient_key, n)
    )
    default_tz = part.tz or settings.ingest.default_tz
    zones = _map_distinct(raw["tz"], lambda z: z if z.strip() else default_tz, default_tz)
    incoming = pa.table(
        {
            "pos": pa.array(np.arange(n, dtype=np.int64)),
            "line": raw["line"],
            "source": constant_strings(part.fmt, n),
            "patient_key": patient_keys,
            "device_id": _map_distinct(raw["device_id"], names.device, default_device),
            "time": raw["time"],
            "instant": raw["instant"],
            "glucose": raw["glucose"],
            "unit": raw["unit"],
            "tz": zones,
            "tz_ok": _map_distinct(zones, is_known_zone, False, pa.bool_()),
            "flags": raw["flags"],
            "problem": _id_problems(raw, names.too_long) if names.too_long else raw["problem"],
            "direction": decoded(raw["direction"]),
            "rate": decoded(raw["rate"]),
        }
    )
    return incoming, {k: i for i, k in names.keys.items()}


def _id_problems(raw: pa.Table, too_long: set[str]) -> pa.ChunkedArray:
    """The rows' problems, with rows whose patient or device id is over ``MAX_ID_CHARS``
    quarantined (a parser's own problem comes first)."""
    problems = [raw["problem"]]
    for kind in ("patient", "device"):
        if kind not in too_long:
            continue
        ids = raw[f"{kind}_id"]
        if pa.types.is_dictionary(ids.type):
            ids = ids.cast(ids.type.value_type)
        over = pc.greater(pc.utf8_length(ids), MAX_ID_CHARS)
        reason = pa.scalar(f"{kind} id longer than {MAX_ID_CHARS} characters")
        problems.append(pc.if_else(over, reason, pa.scalar(None, pa.string())))
    return pc.coalesce(*problems)


def _conform(raw: pa.Table) -> pa.Table:
    """Raw rows with every column of ``RAW_SCHEMA`` and ``TREND_SCHEMA``: optional ones a
    caller left out are empty."""
    missing = [f for f in (*RAW_SCHEMA, *TREND_SCHEMA) if f.name not in raw.column_names]
    for column in missing:
        if column.name == "flags":
            raw = raw.append_column(column, pa.repeat(pa.scalar(0, column.type), raw.num_rows))
        else:
            raw = raw.append_column(column, pa.nulls(raw.num_rows, column.type))
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
    values = [func(v) for v in encoded.dictionary.to_pylist()]
    indices = encoded.indices
    if indices.null_count:
        values.append(if_null)
        indices = pc.fill_null(indices, len(values) - 1)
    mapped = pa.array(values, type_ or pa.string())
    if type_ is not None:
        return pc.take(mapped, indices)
    return pa.DictionaryArray.from_arrays(indices, mapped)


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
