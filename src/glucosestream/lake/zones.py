"""The raw zone: one folder per ingest batch, written once and never changed.

A batch is committed by its ``manifest.json``, written last: a folder without one is an
unfinished write (an ingest that died) and is ignored by readers, on local disk and on S3
alike. On local disk every file is fsynced before the manifest is written.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from glucosestream.errors import LakeError
from glucosestream.lake.storage import Storage
from glucosestream.readings import READING_SCHEMA

__all__ = ["QUARANTINE_SCHEMA", "RawBatch", "RawZone"]

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("line", pa.int64()),
        pa.field("reason", pa.string()),
        pa.field("patient_key", pa.string()),
        pa.field("time", pa.string()),
        pa.field("glucose", pa.string()),
    ]
)
_MANIFEST = "manifest.json"


@dataclass(frozen=True, slots=True)
class RawBatch:
    batch_id: str
    storage: Storage
    path: str

    def readings(self) -> pa.Table:
        return pq.read_table(
            f"{self.path}/readings.parquet", schema=READING_SCHEMA, filesystem=self.storage.fs
        )

    def row_count(self) -> int:
        """Readings in the batch, from the Parquet footer (nothing else is read)."""
        with self.storage.fs.open_input_file(f"{self.path}/readings.parquet") as f:
            return int(pq.ParquetFile(f).metadata.num_rows)

    def quarantine(self) -> pa.Table:
        return pq.read_table(
            f"{self.path}/quarantine.parquet", schema=QUARANTINE_SCHEMA, filesystem=self.storage.fs
        )

    def manifest(self) -> dict[str, Any]:
        with self.storage.fs.open_input_stream(f"{self.path}/{_MANIFEST}") as f:
            loaded: dict[str, Any] = json.loads(f.read().decode("utf-8"))
        return loaded


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
    ) -> RawBatch:
        """Write one batch: data files first, then the manifest that commits it."""
        fs = self.storage.fs
        folder = f"{self.batches_path}/{batch_id}"
        try:
            if fs.get_file_info(f"{folder}/{_MANIFEST}").type != pafs.FileType.NotFound:
                raise LakeError(f"raw batch {batch_id} already exists; batch ids must be unique")
            fs.create_dir(folder, recursive=True)
            pq.write_table(
                readings.cast(READING_SCHEMA), f"{folder}/readings.parquet", filesystem=fs
            )
            pq.write_table(
                quarantine.cast(QUARANTINE_SCHEMA), f"{folder}/quarantine.parquet", filesystem=fs
            )
            if self.storage.local:
                _fsync(Path(folder) / "readings.parquet", Path(folder) / "quarantine.parquet")
            with fs.open_output_stream(f"{folder}/{_MANIFEST}") as f:
                f.write(json.dumps(manifest, indent=2).encode("utf-8"))
            if self.storage.local:
                _fsync(Path(folder) / _MANIFEST, Path(folder), Path(self.batches_path))
        except OSError as err:
            raise LakeError(
                f"could not write raw batch {batch_id} under {self.storage.uri('raw')}: {err}; "
                "check the lake is writable and has space"
            ) from err
        return RawBatch(batch_id, self.storage, folder)

    def rewrite_batch(
        self,
        batch: RawBatch,
        readings: pa.Table,
        quarantine: pa.Table,
        manifest: dict[str, Any],
    ) -> None:
        """Replace a batch's files (erasure only): each file is replaced whole, atomically."""
        fs = self.storage.fs
        for name, table, schema in (
            ("readings.parquet", readings, READING_SCHEMA),
            ("quarantine.parquet", quarantine, QUARANTINE_SCHEMA),
        ):
            tmp = f"{batch.path}/.{name}.tmp"
            pq.write_table(table.cast(schema), tmp, filesystem=fs)
            fs.move(tmp, f"{batch.path}/{name}")
        tmp = f"{batch.path}/.{_MANIFEST}.tmp"
        with fs.open_output_stream(tmp) as f:
            f.write(json.dumps(manifest, indent=2).encode("utf-8"))
        fs.move(tmp, f"{batch.path}/{_MANIFEST}")

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


def _fsync(*paths: Path) -> None:
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
