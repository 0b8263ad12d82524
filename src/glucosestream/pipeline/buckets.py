"""Buckets of patients: the unit a run's tasks work on, so a task's memory does not grow with
the lake.

Patients are bucketed by the first hex digits of their key (an HMAC, so the digits are
uniform): none for a run one task can hold (one bucket), one digit (16 buckets), two (256) or
three (4,096), as ``pipeline.run_plan`` chooses. The same prefix is the curated table's
partition, so a bucket's curated reads touch only its own partitions.

A run of more than one bucket first splits each raw batch into per-bucket parts in the staging
zone (``split_batch``, one task per batch, reading the batch a chunk at a time); a bucket task
then reads only its own parts. A one-bucket run reads the raw batches themselves.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np
import pyarrow as pa

from glucosestream.config import Settings
from glucosestream.lake import RawZone, StagingZone, TableWriter, open_storage
from glucosestream.readings import READING_SCHEMA

__all__ = ["SPLIT_CHUNK_ROWS", "SplitOutcome", "SplitTask", "key_prefixes", "split_batch"]

SPLIT_CHUNK_ROWS: Final = 1_000_000  # readings of a raw batch in memory at once while splitting


def _hex_values() -> np.ndarray:
    """The value of each byte as a lowercase hex digit (255: not one)."""
    values = np.full(256, 255, dtype=np.uint8)
    values[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint8)
    return values


_HEX: Final = _hex_values()


def key_prefixes(width: int) -> tuple[str, ...]:
    """Every bucket's key prefix at this width, in order ("" alone at width 0)."""
    if width == 0:
        return ("",)
    return tuple(f"{n:0{width}x}" for n in range(16**width))


@dataclass(frozen=True, slots=True)
class SplitTask:
    """Split one raw batch into the buckets of a plan of ``width`` key digits."""

    settings: Settings
    run_id: str
    attempt: int
    batch_id: str
    width: int


@dataclass(frozen=True, slots=True)
class SplitOutcome:
    batch_id: str
    parts: dict[str, tuple[str, int]]  # prefix -> (staged file, readings)


def split_batch(task: SplitTask) -> SplitOutcome:
    """Write the batch's readings of each bucket to one staged file of that bucket.

    Safe to run twice or to retry: every attempt writes files of its own, and the outcome names
    the files it wrote (the plan takes those).
    """
    storage = open_storage(task.settings.lake)
    staging = StagingZone(storage)
    batch = RawZone(storage).batch(task.batch_id)
    name = f"{task.batch_id}-{uuid.uuid4().hex[:8]}.arrow"
    paths: dict[str, str] = {}
    writers: dict[str, TableWriter] = {}
    try:
        for chunk in batch.readings_in_chunks(SPLIT_CHUNK_ROWS):
            for prefix, rows in _by_prefix(chunk, task.width):
                if prefix not in writers:
                    paths[prefix] = staging.run_path(
                        task.run_id, f"attempt-{task.attempt}", "incoming", prefix, name
                    )
                    writers[prefix] = staging.open_table_writer(paths[prefix], READING_SCHEMA)
                writers[prefix].write_table(rows)
    finally:
        for writer in writers.values():
            writer.close()
    parts = {p: (paths[p], writers[p].rows) for p in sorted(writers)}
    return SplitOutcome(task.batch_id, parts)


def _by_prefix(rows: pa.Table, width: int) -> Iterator[tuple[str, pa.Table]]:
    """The rows grouped by the first ``width`` hex digits of their patient key, in one stable
    sort of a small integer per row (rows keep their order within a prefix)."""
    if width == 0:
        yield "", rows
        return
    code = _prefix_codes(rows["patient_key"], width)
    order = np.argsort(code, kind="stable")
    ordered = rows.take(pa.array(order))
    counts = np.bincount(code, minlength=16**width)
    starts = np.concatenate(([0], np.cumsum(counts)))
    for number in np.flatnonzero(counts):
        yield f"{number:0{width}x}", ordered.slice(int(starts[number]), int(counts[number]))


def _prefix_codes(keys: pa.ChunkedArray, width: int) -> np.ndarray:
    """The first ``width`` hex digits of each key as a number, from the strings' bytes (keys
    are lowercase hex HMACs; any other first characters are a fault of the batch)."""
    out = np.zeros(len(keys), dtype=np.int64)
    offset = 0
    for chunk in keys.chunks:
        chunk = chunk.cast(pa.string())
        _, offsets_buffer, data_buffer = chunk.buffers()
        offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[
            chunk.offset : chunk.offset + len(chunk) + 1
        ]
        data = np.frombuffer(data_buffer, dtype=np.uint8)
        starts = offsets[:-1]
        if chunk.null_count or np.any(offsets[1:] - starts < width):
            raise ValueError("a reading's patient_key is not a pseudonym of at least one digit")
        code = np.zeros(len(chunk), dtype=np.int64)
        for digit in range(width):
            value = _HEX[data[starts + digit]]
            if np.any(value == 255):
                raise ValueError("a reading's patient_key is not a hex pseudonym")
            code = code * 16 + value
        out[offset : offset + len(chunk)] = code
        offset += len(chunk)
    return out
