"""The raw zone: one folder per ingest batch, written once and never changed.

A batch folder is written under a temporary name and renamed into place, so a reader sees a
whole batch or none of it.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from glucosestream.errors import LakeError
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


@dataclass(frozen=True, slots=True)
class RawBatch:
    batch_id: str
    path: Path

    def readings(self) -> pa.Table:
        return pq.read_table(self.path / "readings.parquet", schema=READING_SCHEMA)

    def quarantine(self) -> pa.Table:
        return pq.read_table(self.path / "quarantine.parquet", schema=QUARANTINE_SCHEMA)

    def manifest(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((self.path / "manifest.json").read_text("utf-8"))
        return loaded


class RawZone:
    def __init__(self, root: Path) -> None:
        self.batches_path = root / "raw" / "batches"

    def write_batch(
        self,
        batch_id: str,
        readings: pa.Table,
        quarantine: pa.Table,
        manifest: dict[str, Any],
    ) -> RawBatch:
        """Write one batch atomically (temporary folder, fsync, rename)."""
        final = self.batches_path / batch_id
        if final.exists():
            raise LakeError(f"raw batch {batch_id} already exists; batch ids must be unique")
        tmp = self.batches_path / f".tmp-{batch_id}-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir(parents=True)
            pq.write_table(readings.cast(READING_SCHEMA), tmp / "readings.parquet")
            pq.write_table(quarantine.cast(QUARANTINE_SCHEMA), tmp / "quarantine.parquet")
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2), "utf-8")
            for name in ("readings.parquet", "quarantine.parquet", "manifest.json"):
                _fsync(tmp / name)
            tmp.rename(final)
            _fsync(self.batches_path)
        except OSError as err:
            shutil.rmtree(tmp, ignore_errors=True)
            raise LakeError(
                f"could not write raw batch {batch_id} under {self.batches_path}: {err}; "
                "check the lake folder is writable and has space"
            ) from err
        return RawBatch(batch_id, final)

    def list_batches(self) -> list[RawBatch]:
        """Every complete batch, oldest first (batch ids sort by creation time)."""
        if not self.batches_path.is_dir():
            return []
        return [
            RawBatch(p.name, p)
            for p in sorted(self.batches_path.iterdir())
            if p.is_dir() and not p.name.startswith(".")
        ]


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
