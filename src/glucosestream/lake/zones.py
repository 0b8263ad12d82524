"""The raw zone: one folder per ingest batch, written once and never changed.

A batch is committed by its ``manifest.json``, written last: a folder without one is an
unfinished write (an ingest that died) and is ignored by readers, on local disk and on S3
alike. On local disk every file is fsynced before the manifest is written.

A batch holds ``readings.parquet`` (``READING_SCHEMA``, always, perhaps empty), and only when
they have rows: ``quarantine.parquet`` (``QUARANTINE_SCHEMA``), ``events.parquet``
(``events.EVENT_SCHEMA``: insulin, carbs, exercise, device events...), ``event_quarantine.parquet``
(``EVENT_QUARANTINE_SCHEMA``) and ``devicestatus.parquet`` (``DEVICESTATUS_SCHEMA``: what
Nightscout uploaders post to ``/api/v1/devicestatus``, kept as posted; no run reads it). A
batch written before events existed reads as one without events.

Files are written as plain Parquet whose columns read back as their schema with or without the
reader naming it. A string column handed over
dictionary-encoded (patient keys, zones, the batch id) is written from its dictionary, without
first being expanded to one string per row; timestamps use DELTA_BINARY_PACKED, which is faster
to write and smaller for readings in time order (see DESIGN.md, storage layout).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from glucosestream.errors import LakeError
from glucosestream.events import EVENT_SCHEMA
from glucosestream.lake.storage import Storage
from glucosestream.readings import READING_SCHEMA

__all__ = [
    "DEVICESTATUS_SCHEMA",
    "EVENT_QUARANTINE_SCHEMA",
    "QUARANTINE_SCHEMA",
    "BatchContents",
    "RawBatch",
    "RawZone",
]

log = logging.getLogger(__name__)

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("line", pa.int64()),
        pa.field("reason", pa.string()),
        pa.field("patient_key", pa.string()),
        pa.field("time", pa.string()),
        pa.field("glucose", pa.string()),
    ]
)
# A quarantined event: where it was, why, and its raw text (clipped), never a note's text.
EVENT_QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("line", pa.int64()),
        pa.field("reason", pa.string()),
        pa.field("patient_key", pa.string()),
        pa.field("time", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("amount", pa.string()),
    ]
)
# A Nightscout devicestatus document (pump, loop and uploader state), kept as posted: its
# patient, when it was received, its place in the request and its JSON text.
DEVICESTATUS_SCHEMA = pa.schema(
    [
        pa.field("line", pa.int64()),
        pa.field("patient_key", pa.string()),
        pa.field("received_at", pa.timestamp("us", tz="UTC")),
        pa.field("document", pa.string()),
    ]
)
_MANIFEST = "manifest.json"
_QUARANTINE = "quarantine.parquet"
_EVENTS = "events.parquet"
_EVENT_QUARANTINE = "event_quarantine.parquet"
_DEVICESTATUS = "devicestatus.parquet"
# The files written only when they have rows, and the schema each reads back as.
_OPTIONAL_FILES = {
    _QUARANTINE: QUARANTINE_SCHEMA,
    _EVENTS: EVENT_SCHEMA,
    _EVENT_QUARANTINE: EVENT_QUARANTINE_SCHEMA,
    _DEVICESTATUS: DEVICESTATUS_SCHEMA,
}
_DELTA_COLUMNS = ("ts",)  # time-ordered per device: small deltas


@dataclass(frozen=True, slots=True)
class BatchContents:
    """What a run read of a batch once: its manifest, its readings file's row count and
    earliest ``ts``, and (a small batch) the readings themselves."""

    manifest: dict[str, Any]
    rows: int
    earliest: dt.datetime | None
    readings: pa.Table | None = None


@dataclass(frozen=True, slots=True)
class RawBatch:
    batch_id: str
    storage: Storage
    path: str
    contents: BatchContents | None = dataclasses.field(default=None, compare=False, repr=False)

    def read_once(self, manifest: dict[str, Any], *, with_readings: bool) -> RawBatch:
        """This batch with its ``manifest`` (as read) and its readings file's footer (with
        its readings, if ``with_readings``) read in one opening of the file: its methods
        answer from them after."""
        with self.storage.fs.open_input_file(f"{self.path}/readings.parquet") as f:
            parquet = pq.ParquetFile(f)
            readings = _as_readings(parquet.read()) if with_readings else None
            footer = parquet.metadata
        contents = BatchContents(manifest, footer.num_rows, _earliest(footer), readings)
        return dataclasses.replace(self, contents=contents)

    def readings(self) -> pa.Table:
        if self.contents is not None and self.contents.readings is not None:
            return self.contents.readings
        return pq.read_table(
            f"{self.path}/readings.parquet", schema=READING_SCHEMA, filesystem=self.storage.fs
        )

    def readings_in_chunks(self, rows: int) -> Iterator[pa.Table]:
        """The readings ``rows`` at a time (one chunk in memory, whatever the batch's size)."""
        with self.storage.fs.open_input_file(f"{self.path}/readings.parquet") as f:
            for chunk in pq.ParquetFile(f).iter_batches(batch_size=rows):
                yield _as_readings(pa.Table.from_batches([chunk]))

    def earliest_reading(self) -> dt.datetime | None:
        """The earliest ``ts`` of the batch, from the Parquet footer's statistics (None when
        the file has no readings or no statistics)."""
        if self.contents is not None:
            return self.contents.earliest
        with self.storage.fs.open_input_file(f"{self.path}/readings.parquet") as f:
            return _earliest(pq.ParquetFile(f).metadata)

    def row_count(self) -> int:
        """Readings in the batch, from the Parquet footer (nothing else is read)."""
        if self.contents is not None:
            return self.contents.rows
        with self.storage.fs.open_input_file(f"{self.path}/readings.parquet") as f:
            return int(pq.ParquetFile(f).metadata.num_rows)

    def reading_keys(self, patient_keys: pa.Array) -> pa.Table:
        """``patient_key``, ``device_id`` and ``ts`` of the readings of these patients."""
        table = pq.read_table(
            f"{self.path}/readings.parquet",
            columns=["patient_key", "device_id", "ts"],
            filters=pc.field("patient_key").isin(patient_keys),
            filesystem=self.storage.fs,
        )
        return table.cast(pa.schema([READING_SCHEMA.field(n) for n in table.column_names]))

    def quarantine(self) -> pa.Table:
        """The quarantined rows (a batch that quarantined none has no file: no rows)."""
        return self._optional(_QUARANTINE)

    def events(self) -> pa.Table:
        """The accepted events (``EVENT_SCHEMA``); none when the batch has no events file (it
        received none, or was written before events existed)."""
        return self._optional(_EVENTS)

    def event_quarantine(self) -> pa.Table:
        """The quarantined events (``EVENT_QUARANTINE_SCHEMA``); none without a file."""
        return self._optional(_EVENT_QUARANTINE)

    def devicestatus(self) -> pa.Table:
        """The devicestatus documents posted (``DEVICESTATUS_SCHEMA``); none without a file."""
        return self._optional(_DEVICESTATUS)

    def _optional(self, name: str) -> pa.Table:
        schema = _OPTIONAL_FILES[name]
        try:
            return pq.read_table(f"{self.path}/{name}", schema=schema, filesystem=self.storage.fs)
        except FileNotFoundError:
            return schema.empty_table()

    def manifest(self) -> dict[str, Any]:
        if self.contents is not None:
            return self.contents.manifest
        with self.storage.fs.open_input_stream(f"{self.path}/{_MANIFEST}") as f:
            loaded: dict[str, Any] = json.loads(f.read().decode("utf-8"))
        return loaded


def _earliest(footer: pq.FileMetaData) -> dt.datetime | None:
    """The earliest ``ts`` in a readings file's statistics (None: no rows, or no statistics)."""
    column = footer.schema.names.index("ts") if "ts" in footer.schema.names else -1
    lows = []
    for group in range(footer.num_row_groups):
        stats = footer.row_group(group).column(column).statistics if column >= 0 else None
        if stats is None or not stats.has_min_max:
            return None
        lows.append(stats.min)
    if not lows:
        return None
    low: dt.datetime = min(lows)
    return low if low.tzinfo is not None else low.replace(tzinfo=dt.UTC)


def _as_readings(table: pa.Table) -> pa.Table:
    """A raw batch's readings in ``READING_SCHEMA``; columns a batch written before they
    existed lacks (the uploader's trend) read as nulls."""
    if table.schema.equals(READING_SCHEMA):
        return table
    for field in READING_SCHEMA:
        if field.name not in table.column_names:
            table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    return table.select(READING_SCHEMA.names).cast(READING_SCHEMA)


class RawZone:
    def __init__(self, storage: Storage | Path) -> None:
        if isinstance(storage, Path):
            storage = Storage(pafs.LocalFileSystem(), str(storage), "file")
        self.storage = storage
        self.batches_path = storage.path("raw", "batches")

    def write_batch(
        self,
        batch_id: str,
        readings: pa.Table,
        quarantine: pa.Table,
        manifest: dict[str, Any],
        events: pa.Table | None = None,
        event_quarantine: pa.Table | None = None,
        *,
        devicestatus: pa.Table | None = None,
    ) -> RawBatch:
        """Write one batch: data files first, then the manifest that commits it. A failure
        before the manifest removes the staged folder (best effort: readers ignore a folder
        without a manifest), so nothing is left half-written."""
        try:
            self.stage_batch(
                batch_id, readings, quarantine, events, event_quarantine, devicestatus=devicestatus
            )
            return self.commit_batch(batch_id, manifest)
        except Exception:
            self._discard_uncommitted(batch_id)
            raise

    def _discard_uncommitted(self, batch_id: str) -> None:
        try:
            self.discard_staged(batch_id)  # refuses a committed batch
        except Exception:
            log.warning("could not remove the unfinished raw batch %s", batch_id, exc_info=True)

    def stage_batch(
        self,
        batch_id: str,
        readings: pa.Table,
        quarantine: pa.Table,
        events: pa.Table | None = None,
        event_quarantine: pa.Table | None = None,
        *,
        devicestatus: pa.Table | None = None,
    ) -> RawBatch:
        """Write a batch's data files (durable on local disk) without committing it: readers
        ignore it until ``commit_batch`` writes its manifest. The readings file is always
        written; the others only when they have rows."""
        fs = self.storage.fs
        folder = f"{self.batches_path}/{batch_id}"
        optional = {
            _QUARANTINE: quarantine,
            _EVENTS: events,
            _EVENT_QUARANTINE: event_quarantine,
            _DEVICESTATUS: devicestatus,
        }
        try:
            if fs.get_file_info(f"{folder}/{_MANIFEST}").type != pafs.FileType.NotFound:
                raise LakeError(f"raw batch {batch_id} already exists; batch ids must be unique")
            self.storage.make_folder(folder)
            written = [f"{folder}/readings.parquet"]
            _write_parquet(readings, READING_SCHEMA, written[0], fs)
            for name, table in optional.items():
                if table is not None and table.num_rows:  # no rows: no file (none read back)
                    written.append(f"{folder}/{name}")
                    _write_parquet(table, _OPTIONAL_FILES[name], written[-1], fs)
            if self.storage.local:
                _fsync(*(Path(p) for p in written))
        except OSError as err:
            raise self._write_error(batch_id, err) from err
        return RawBatch(batch_id, self.storage, folder)

    def commit_batch(self, batch_id: str, manifest: dict[str, Any]) -> RawBatch:
        """Commit a staged batch by writing its manifest (fsynced with its folder)."""
        fs = self.storage.fs
        folder = f"{self.batches_path}/{batch_id}"
        data = json.dumps(manifest, indent=2).encode("utf-8")
        try:
            if self.storage.local:  # written aside, then renamed: never seen half-written
                tmp = f"{folder}/.{_MANIFEST}.tmp"
                with fs.open_output_stream(tmp) as f:
                    f.write(data)
                _fsync(Path(tmp))
                fs.move(tmp, f"{folder}/{_MANIFEST}")
                _fsync(Path(folder), Path(self.batches_path))
            else:  # an object store's PUT is atomic: the object appears whole or not at all
                with fs.open_output_stream(f"{folder}/{_MANIFEST}") as f:
                    f.write(data)
        except OSError as err:
            raise self._write_error(batch_id, err) from err
        return RawBatch(batch_id, self.storage, folder)

    def discard_staged(self, batch_id: str) -> None:
        """Remove a staged batch that will not be committed (never a committed one)."""
        fs = self.storage.fs
        folder = f"{self.batches_path}/{batch_id}"
        if fs.get_file_info(f"{folder}/{_MANIFEST}").type != pafs.FileType.NotFound:
            raise LakeError(f"raw batch {batch_id} is committed; it cannot be discarded")
        fs.delete_dir(folder)

    def batch(self, batch_id: str) -> RawBatch:
        """The batch ``batch_id`` (committed or staged), without checking that it exists."""
        return RawBatch(batch_id, self.storage, f"{self.batches_path}/{batch_id}")

    def _write_error(self, batch_id: str, err: OSError) -> LakeError:
        return LakeError(
            f"could not write raw batch {batch_id} under {self.storage.uri('raw')}: {err}; "
            "check the lake is writable and has space"
        )

    def rewrite_batch(
        self,
        batch: RawBatch,
        readings: pa.Table,
        quarantine: pa.Table,
        manifest: dict[str, Any],
        events: pa.Table | None = None,
        event_quarantine: pa.Table | None = None,
        *,
        devicestatus: pa.Table | None = None,
    ) -> None:
        """Replace a batch's files (erasure only): each file is replaced whole, atomically; a
        file left with no rows is deleted (the readings file is kept, perhaps empty). None
        leaves that file as it is. The manifest is replaced last."""
        fs = self.storage.fs
        tables = {
            "readings.parquet": readings,
            _QUARANTINE: quarantine,
            _EVENTS: events,
            _EVENT_QUARANTINE: event_quarantine,
            _DEVICESTATUS: devicestatus,
        }
        for name, table in tables.items():
            path = f"{batch.path}/{name}"
            if table is None:
                continue
            if name != "readings.parquet" and not table.num_rows:
                if fs.get_file_info(path).type != pafs.FileType.NotFound:
                    fs.delete_file(path)
                continue
            tmp = f"{batch.path}/.{name}.tmp"
            _write_parquet(table, _OPTIONAL_FILES.get(name, READING_SCHEMA), tmp, fs)
            fs.move(tmp, path)
        tmp = f"{batch.path}/.{_MANIFEST}.tmp"
        with fs.open_output_stream(tmp) as f:
            f.write(json.dumps(manifest, indent=2).encode("utf-8"))
        fs.move(tmp, f"{batch.path}/{_MANIFEST}")

    def batch_ids(self) -> list[str]:
        """The id of every batch folder, committed or not, in order: one listing of the
        batches folder, not of each batch's files (35 times faster for 2,000 batches on local
        disk; on S3 a key per batch, not three); ``committed`` tells the ones that count."""
        selector = pafs.FileSelector(self.batches_path, allow_not_found=True)
        infos = self.storage.fs.get_file_info(selector)
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)

    def committed(self, batch_id: str) -> bool:
        """Whether the batch's manifest is written (an unfinished write has none)."""
        info = self.storage.fs.get_file_info(f"{self.batches_path}/{batch_id}/{_MANIFEST}")
        return bool(info.type == pafs.FileType.File)

    def list_batches(self) -> list[RawBatch]:
        """Every committed batch, oldest first (batch ids sort by creation time)."""
        fs = self.storage.fs
        selector = pafs.FileSelector(self.batches_path, recursive=True, allow_not_found=True)
        committed = sorted(
            info.path.rsplit("/", 2)[-2]
            for info in fs.get_file_info(selector)
            if info.base_name == _MANIFEST and info.type == pafs.FileType.File
        )
        return [RawBatch(b, self.storage, f"{self.batches_path}/{b}") for b in committed]


def _write_parquet(table: pa.Table, schema: pa.Schema, path: str, fs: pafs.FileSystem) -> None:
    """``table`` as a Parquet file that reads back as ``schema``.

    String columns may be dictionary-encoded: they are written from their dictionary (the
    Parquet file holds plain strings either way, and no Arrow schema is stored, so every reader
    sees ``schema``'s types). Other columns are cast to ``schema``'s types.
    """
    columns = []
    for field in schema:
        column = table[field.name]
        keep = (
            pa.types.is_dictionary(column.type)
            and column.type.value_type == field.type
            and not any(chunk.dictionary.null_count for chunk in _chunks(column))
        )
        columns.append(column if keep else column.cast(field.type))
    fields = [pa.field(f.name, c.type, f.nullable) for f, c in zip(schema, columns, strict=True)]
    typed = pa.Table.from_arrays(columns, schema=pa.schema(fields))
    delta = [n for n in _DELTA_COLUMNS if n in schema.names]
    pq.write_table(
        typed,
        path,
        filesystem=fs,
        store_schema=False,
        use_dictionary=[n for n in schema.names if n not in delta],
        column_encoding=dict.fromkeys(delta, "DELTA_BINARY_PACKED") or None,
    )


def _chunks(column: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    return column.chunks if isinstance(column, pa.ChunkedArray) else [column]


def _fsync(*paths: Path) -> None:
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
