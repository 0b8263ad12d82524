"""Compaction in bounded memory: partitions with several files are rewritten as one sorted file
each, a bounded number of rows read at a time, in one snapshot; partitions with one file are left
alone, unread; the table's rows do not change."""

from __future__ import annotations

from collections import defaultdict

import pyarrow.parquet as pq
import pytest
from pyiceberg.io.pyarrow import ArrowScan

from glucosestream.ingest import ingest_path
from glucosestream.lake import open_lakehouse
from glucosestream.lake.compaction import compact_table
from glucosestream.pipeline import run_pipeline, table_registry
from glucosestream.pipeline.table_registry import TABLES

HEAD = "patient_id,device_id,time,glucose_mg_dl,tz\n"
SORT = [("patient_key", "ascending"), ("device_id", "ascending"), ("ts", "ascending")]


def _hours(patients: str, day: int, hours: range) -> str:
    return "".join(
        f"{p},d-{p},2026-01-{day:02d}T{h:02d}:00:00Z,{80 + 7 * i + h},UTC\n"
        for i, p in enumerate(patients)
        for h in hours
    )


@pytest.fixture
def fragmented(settings, tmp_path, clock):
    """Days 1 and 2 of six patients arrive in three runs of eight hours each (three files per
    readings partition); day 9 of one patient arrives once (one file)."""
    for part in range(3):
        hours = range(8 * part, 8 * part + 8)
        text = _hours("ABCDEF", 1, hours) + _hours("ABCDEF", 2, hours)
        if part == 0:
            text += _hours("G", 9, range(24))
        (tmp_path / f"part{part}.csv").write_text(HEAD + text)
        ingest_path(settings, tmp_path / f"part{part}.csv", now=clock)
        assert run_pipeline(settings, now=clock).status == "published"
    return settings


def _files_by_partition(table) -> dict[str, list[str]]:
    files = table.inspect.files()
    out: defaultdict[str, list[str]] = defaultdict(list)
    for partition, path in zip(
        files["partition"].to_pylist(), files["file_path"].to_pylist(), strict=True
    ):
        out[str(sorted(partition.items()))].append(path)
    return out


def test_compaction_rewrites_each_fragmented_partition_in_bounded_reads(
    fragmented, monkeypatch, opened
) -> None:
    table = open_lakehouse(fragmented.lake, TABLES).readings
    before_rows = table.scan().to_arrow().sort_by(SORT)
    before = _files_by_partition(table)
    single = [files[0] for files in before.values() if len(files) == 1]
    fragmented_files = [f for files in before.values() if len(files) > 1 for f in files]
    assert len(single) == 1  # patient G's day 9
    assert sum(len(files) == 3 for files in before.values()) >= 2
    snapshots = len(table.metadata.snapshots)

    opened.clear()  # count only what the compaction opens
    reads: list[int] = []
    original_to_table = ArrowScan.to_table

    def to_table(self, tasks):
        reads.append(len({task.file.partition for task in tasks}))
        return original_to_table(self, tasks)

    monkeypatch.setattr(ArrowScan, "to_table", to_table)
    counts = compact_table(table, table_registry.READINGS, rows_per_read=1)  # one partition a read
    monkeypatch.undo()  # stops both counts: the checks below read the table

    table.refresh()
    after = _files_by_partition(table)
    assert counts == (sum(map(len, before.values())), len(before))
    assert after.keys() == before.keys()
    assert all(len(files) == 1 for files in after.values())
    assert single[0] in {files[0] for files in after.values()}  # left as it was
    assert sorted(opened) == sorted(fragmented_files)  # each fragmented file read, once
    assert all(n == 1 for n in opened.values())
    assert reads == [1] * (len(before) - 1)  # the bound held: one partition per read
    assert len(table.metadata.snapshots) == snapshots + 1
    assert table.scan().to_arrow().sort_by(SORT).equals(before_rows)
    for files in after.values():  # each new file is in the table's write order
        keys = pq.read_table(files[0].removeprefix("file://"), columns=[c for c, _ in SORT])
        assert keys.equals(keys.sort_by(SORT))


def test_partitions_fit_in_one_read_when_the_bound_allows(fragmented, monkeypatch) -> None:
    table = open_lakehouse(fragmented.lake, TABLES).readings
    reads: list[int] = []
    original_to_table = ArrowScan.to_table

    def to_table(self, tasks):
        reads.append(len(tasks))
        return original_to_table(self, tasks)

    monkeypatch.setattr(ArrowScan, "to_table", to_table)
    before, after = compact_table(table, table_registry.READINGS)
    assert reads == [before - 1]  # every fragmented file in one read; the single one unread
    assert after < before


def test_a_table_without_fragmented_partitions_is_left_alone(fragmented) -> None:
    table = open_lakehouse(fragmented.lake, TABLES).readings
    compact_table(table, table_registry.READINGS)
    table.refresh()
    snapshots = len(table.metadata.snapshots)
    files = _files_by_partition(table)
    assert compact_table(table, table_registry.READINGS) == (len(files), len(files))
    table.refresh()
    assert len(table.metadata.snapshots) == snapshots
    assert _files_by_partition(table) == files


def test_rows_survive_compaction_of_every_table(fragmented) -> None:
    lake = open_lakehouse(fragmented.lake, TABLES)
    before = {spec.short: lake.tables[spec.short].scan().to_arrow() for spec in TABLES}
    for spec in TABLES:
        compact_table(lake.tables[spec.short], spec, rows_per_read=10)
    for spec in TABLES:
        table = lake.tables[spec.short]
        table.refresh()
        assert spec.prepare(table.scan().to_arrow()).equals(spec.prepare(before[spec.short]))
