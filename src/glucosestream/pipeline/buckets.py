"""Work in buckets of patients, so a run's memory does not grow with the data.

Patients are bucketed by the first hex digits of their key (an HMAC, so the digits are
uniform): none for a small run, one (16 buckets) or two (256) for large ones, chosen so a bucket
holds about ``ROWS_PER_BUCKET`` incoming readings. Each raw batch is read once and split into
per-bucket spill files; a bucket's results are spilled too, so that only one bucket is ever in
memory. The same prefix is the curated table's partition, so a bucket's curated reads touch
only its own partitions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from glucosestream.lake import RawBatch
from glucosestream.readings import READING_SCHEMA

__all__ = ["ROWS_PER_BUCKET", "Bucket", "Spilled", "partition"]

ROWS_PER_BUCKET: Final = 4_000_000


@dataclass(frozen=True, slots=True)
class Spilled:
    """A table kept in memory for a one-bucket run, or in a spill file otherwise."""

    table: pa.Table | None = None
    path: Path | None = None
    rows: int = 0

    def load(self) -> pa.Table:
        if self.table is not None:
            return self.table
        if self.path is None:
            return READING_SCHEMA.empty_table()
        return pq.read_table(self.path)

    @classmethod
    def keep(cls, table: pa.Table, folder: Path | None, name: str) -> Spilled:
        if folder is None:
            return cls(table=table, rows=table.num_rows)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.parquet"
        pq.write_table(table, path)
        return cls(path=path, rows=table.num_rows)


@dataclass(frozen=True, slots=True)
class Bucket:
    prefix: str  # "" for a one-bucket run
    parts: tuple[Spilled, ...]

    def incoming(self) -> pa.Table:
        tables = [p.load().cast(READING_SCHEMA) for p in self.parts]
        return pa.concat_tables(tables) if tables else READING_SCHEMA.empty_table()


def prefix_width(rows: int, rows_per_bucket: int) -> int:
    if rows <= rows_per_bucket:
        return 0
    return 1 if rows <= 16 * rows_per_bucket else 2


def partition(
    batches: Sequence[RawBatch],
    spill: Path,
    *,
    extra_prefixes_of: Sequence[str] = (),
    rows_per_bucket: int | None = None,
) -> list[Bucket]:
    """The pending batches' readings in buckets (``extra_prefixes_of``: patient keys whose
    buckets must exist even without incoming readings, for a full refresh)."""
    total = sum(b.row_count() for b in batches) + len(extra_prefixes_of)
    per_bucket = rows_per_bucket or ROWS_PER_BUCKET
    width = prefix_width(total, per_bucket)
    if width == 0:
        return [Bucket("", tuple(Spilled.keep(b.readings(), None, "") for b in batches))]
    parts: dict[str, list[Spilled]] = {k[:width]: [] for k in extra_prefixes_of}
    for batch in batches:
        rows = batch.readings()
        # A bucket's worth at a time, so splitting copies one slice, not the whole batch.
        for number, start in enumerate(range(0, rows.num_rows, per_bucket)):
            piece = rows.slice(start, per_bucket)
            for prefix, chunk in _split_by_prefix(piece, width):
                name = f"{batch.batch_id}-{number}"
                parts.setdefault(prefix, []).append(
                    Spilled.keep(chunk, spill / "incoming" / prefix, name)
                )
    return [Bucket(p, tuple(parts[p])) for p in sorted(parts)]


def _split_by_prefix(rows: pa.Table, width: int) -> Iterator[tuple[str, pa.Table]]:
    """The rows grouped by the first ``width`` characters of their patient key, in one stable
    sort (not one filter pass per prefix: 256 of them at width 2)."""
    prefixes = pc.utf8_slice_codeunits(rows["patient_key"], 0, width)
    order = pc.sort_indices(prefixes)  # stable: rows keep their order within a prefix
    ordered = rows.take(order)
    counts = pc.value_counts(prefixes)
    runs = sorted(
        zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True)
    )
    start = 0
    for prefix, count in runs:
        yield prefix, ordered.slice(start, count)
        start += count
