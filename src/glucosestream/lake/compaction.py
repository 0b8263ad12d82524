"""Compaction of a table's small files, partition by partition, in bounded memory.

Every run adds files: an append writes one file per partition it touches, and a copy-on-write
replacement writes a partition's kept rows apart from its new ones. ``compact_table`` rewrites
each partition that has more than one data file as one sorted file (more only past pyiceberg's
target file size), reading at most ``ROWS_PER_READ`` rows at a time (one partition at least),
and swaps the files in one snapshot. Partitions with one file are left alone, unread. Reading
the whole table at once, as compaction first did, needs memory in proportion to the lake:
more than this machine's 24 GB for the 260-million-reading lake of docs/decisions.md.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Final

from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.table import DataScan, FileScanTask, Table

from glucosestream.lake.catalog import write_files
from glucosestream.lake.table_spec import TableSpec

__all__ = ["ROWS_PER_READ", "compact_table"]

# Rows read and sorted at a time: about 1 GB of readings in Arrow memory (11 columns).
ROWS_PER_READ: Final = 8_000_000


def compact_table(
    table: Table, spec: TableSpec, rows_per_read: int = ROWS_PER_READ
) -> tuple[int, int]:
    """Rewrite every partition of ``table`` that has several data files as one; returns the
    number of data files (before, after). Writes nothing when no partition has two files."""
    with table.transaction() as tx:
        metadata = tx.table_metadata
        tasks = list(DataScan(metadata, table.io).plan_files())
        by_partition: defaultdict[object, list[FileScanTask]] = defaultdict(list)
        for task in tasks:
            by_partition[(task.file.spec_id, task.file.partition)].append(task)
        groups = [group for group in by_partition.values() if len(group) > 1]
        if not groups:
            return len(tasks), len(tasks)
        overwrite = tx.update_snapshot().overwrite()
        counter = itertools.count()
        scan = ArrowScan(metadata, table.io, metadata.schema(), AlwaysTrue())
        added = []
        for batch in _reads(groups, rows_per_read):
            rows = spec.prepare(scan.to_table(batch))
            added += write_files(tx.table_metadata, table, rows, overwrite.commit_uuid, counter)
            del rows  # before the next read
        for task in itertools.chain.from_iterable(groups):
            overwrite.delete_data_file(task.file)
        for data_file in added:
            overwrite.append_data_file(data_file)
        overwrite.commit()
    return len(tasks), len(tasks) - sum(map(len, groups)) + len(added)


def _reads(groups: Sequence[list[FileScanTask]], max_rows: int) -> Iterator[list[FileScanTask]]:
    """The groups' files, whole groups at a time, up to ``max_rows`` rows (a group at least)."""
    batch: list[FileScanTask] = []
    rows = 0
    for group in groups:
        size = sum(task.file.record_count for task in group)
        if batch and rows + size > max_rows:
            yield batch
            batch, rows = [], 0
        batch += group
        rows += size
    if batch:
        yield batch
