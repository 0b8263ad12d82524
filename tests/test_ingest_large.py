"""Large files are ingested in chunks (several raw batches) with the guarantees of one batch:
every row accounted for, duplicates found across chunks, nothing written on a structural error,
the same bytes ingested twice change nothing, and a chunk a run rejected can be ingested again."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from glucosestream.errors import InvalidInput
from glucosestream.ingest import ingest_path
from glucosestream.ingest.chunked import chunk_sha256
from glucosestream.lake import RawZone, open_metadata

from .conftest import write

HEAD = "patient_id,device_id,time,glucose_mg_dl,tz\n"


def _csv_lines(n: int, *, start_minute: int = 0) -> list[str]:
    """``n`` good readings of two patients, interleaved, five minutes apart."""
    lines = []
    for i in range(n):
        minute = start_minute + 5 * (i // 2)
        day, rest = divmod(minute, 24 * 60)
        at = f"2026-01-{1 + day:02d}T{rest // 60:02d}:{rest % 60:02d}:00Z"
        lines.append(f"{'AB'[i % 2]},d{i % 2},{at},{100 + i % 50},UTC\n")
    return lines


def _state(settings) -> tuple[list[dict], list[tuple[int, str]]]:
    """Every committed reading (without batch columns) and quarantined (line, reason)."""
    batches = RawZone(Path(settings.lake.root)).list_batches()
    readings = [
        {k: v for k, v in r.items() if k not in ("batch_id", "ingested_at")}
        for b in batches
        for r in b.readings().to_pylist()
    ]
    quarantine = [(q["line"], q["reason"]) for b in batches for q in b.quarantine().to_pylist()]
    key = ("patient_key", "device_id", "ts")
    return sorted(readings, key=lambda r: tuple(str(r[k]) for k in key)), sorted(quarantine)


def _counts(report) -> tuple[int, int, int, int]:
    return (report.received, report.accepted, report.duplicates, report.quarantined)


def _other_lake(settings, tmp_path):
    lake = settings.lake.__class__(root=str(tmp_path / "whole"))
    return settings.__class__(lake=lake, ingest=settings.ingest)


def test_a_chunked_csv_gives_what_one_batch_gives(settings, tmp_path, clock):
    lines = _csv_lines(60)
    lines[41] = lines[7]  # a duplicate of a reading two chunks earlier
    lines[50] = "A,d0,not-a-time,100,UTC\n"
    lines[33] = lines[32]  # a duplicate inside a chunk
    path = write(tmp_path / "big.csv", HEAD + "".join(lines))
    chunked = ingest_path(settings, path, now=clock, chunk_readings=10)
    whole_settings = _other_lake(settings, tmp_path)
    whole = ingest_path(whole_settings, path, now=clock)
    assert len(chunked.batch_ids) >= 5
    assert len(whole.batch_ids) == 1
    assert _counts(chunked) == _counts(whole) == (60, 57, 2, 1)
    assert _state(settings) == _state(whole_settings)
    assert _state(settings)[1] == [(52, "unparsable time")]
    assert chunked.patients == whole.patients == 2


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_chunked_jsonl_and_parquet_match_one_batch(settings, tmp_path, clock, fmt):
    records = [
        {
            "patient_id": "AB"[i % 3 % 2],
            "device_id": f"d{i % 3}",
            "time": f"2026-01-01T{i // 60:02d}:{i % 60:02d}:00Z",
            "glucose_mg_dl": 80 + i % 40,
        }
        for i in range(90)
    ]
    records[70] = dict(records[4])  # repeats a reading of the first chunk
    records[20]["glucose_mg_dl"] = 5000  # quarantined
    path = tmp_path / f"big.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    else:
        pq.write_table(pa.Table.from_pylist(records), path, row_group_size=7)
    chunked = ingest_path(settings, path, now=clock, chunk_readings=16)
    whole_settings = _other_lake(settings, tmp_path)
    whole = ingest_path(whole_settings, path, now=clock)
    assert len(chunked.batch_ids) >= 5
    assert _counts(chunked) == _counts(whole) == (90, 88, 1, 1)
    assert _state(settings) == _state(whole_settings)


def test_jsonl_chunks_with_blank_lines_keep_their_line_numbers(settings, tmp_path, clock):
    lines = [
        json.dumps({"patient_id": "A", "time": f"2026-01-01T00:{i:02d}:00Z", "gl": 100 + i})
        for i in range(40)
    ]
    lines[30] = json.dumps({"patient_id": "A", "time": "nope", "gl": 1})
    text = "\n".join(lines[:25]) + "\n\n\n" + "\n".join(lines[25:]) + "\n"
    path = write(tmp_path / "blank.jsonl", text)
    report = ingest_path(settings, path, now=clock, chunk_readings=8)
    assert len(report.batch_ids) >= 3
    assert _counts(report) == (40, 39, 0, 1)
    assert _state(settings)[1] == [(33, "unparsable time")]  # two blank lines before it


def test_a_quoted_line_break_in_a_later_chunk_goes_to_the_careful_reader(settings, tmp_path, clock):
    lines = _csv_lines(40)
    lines[30] = 'A,"d\n0",2026-02-01T00:00:00Z,100,UTC\n'  # one record over two lines
    lines[35] = "A,d0,2026-02-01T00:05:00Z,,UTC\n"
    path = write(tmp_path / "quoted.csv", HEAD + "".join(lines))
    report = ingest_path(settings, path, now=clock, chunk_readings=8)
    assert _counts(report) == (40, 39, 0, 1)
    assert _state(settings)[1] == [(38, "missing glucose")]  # line 37 + the extra line


def test_a_structural_error_in_a_later_chunk_writes_nothing(settings, tmp_path, clock):
    lines = _csv_lines(50)
    lines[45] = "A,d0,2026-01-01T00:00:00Z,100\n"  # a field short
    path = write(tmp_path / "broken.csv", HEAD + "".join(lines))
    with pytest.raises(InvalidInput, match="expected 5 fields") as caught:
        ingest_path(settings, path, now=clock, chunk_readings=10)
    assert caught.value.line == 47
    batches = Path(settings.lake.root) / "raw" / "batches"
    assert not batches.exists() or list(batches.iterdir()) == []
    assert RawZone(Path(settings.lake.root)).list_batches() == []


def test_the_same_large_file_twice_changes_nothing(settings, tmp_path, clock):
    path = write(tmp_path / "twice.csv", HEAD + "".join(_csv_lines(45)))
    first = ingest_path(settings, path, now=clock, chunk_readings=10)
    before = _state(settings)
    again = ingest_path(settings, path, now=clock, chunk_readings=10)
    assert again.already_ingested_as == first.batch_id == first.batch_ids[0]
    assert (again.received, again.accepted, again.duplicates) == (45, 0, 45)
    assert _state(settings) == before
    manifest = RawZone(Path(settings.lake.root)).batch(first.batch_id).manifest()
    assert (manifest["chunk"], manifest["chunks"]) == (0, len(first.batch_ids))


def test_a_rejected_chunk_is_ingested_again_alone(settings, tmp_path, clock):
    path = write(tmp_path / "rejected.csv", HEAD + "".join(_csv_lines(45)))
    first = ingest_path(settings, path, now=clock, chunk_readings=10)
    meta = open_metadata(settings.lake)
    rejected = first.batch_ids[2]
    meta.reject_batches([rejected], "run-1", "a test")
    received = meta.batch_records([rejected])[rejected].received
    # the default chunk size is larger: the chunking is read back from the first manifest
    again = ingest_path(settings, path, now=clock)
    assert _counts(again) == (received, received, 0, 0)
    assert len(again.batch_ids) == 1
    record = meta.batch_records(list(again.batch_ids))[again.batch_ids[0]]
    file_sha256 = meta.batch_records([first.batch_id])[first.batch_id].source_sha256
    assert record.source_sha256 == chunk_sha256(file_sha256, 2)
    assert ingest_path(settings, path, now=clock).already_ingested_as == first.batch_id


def test_raw_batch_files_read_back_as_the_reading_schema_without_naming_it(
    settings, tmp_path, clock
):
    from glucosestream.lake.zones import QUARANTINE_SCHEMA
    from glucosestream.readings import READING_SCHEMA

    lines = [*_csv_lines(6), "A,d0,late,100,UTC\n"]
    report = ingest_path(settings, write(tmp_path / "s.csv", HEAD + "".join(lines)), now=clock)
    folder = Path(settings.lake.root) / "raw" / "batches" / report.batch_id
    assert pq.read_schema(folder / "readings.parquet").remove_metadata() == READING_SCHEMA
    assert pq.read_schema(folder / "quarantine.parquet").remove_metadata() == QUARANTINE_SCHEMA


def test_a_fall_back_hour_split_between_chunks_keeps_both_passes(settings, tmp_path, clock):
    # New York fell back on 2025-11-02: local 01:00-01:55 happened twice (EDT, then EST).
    local = [f"00:{m:02d}" for m in range(0, 60, 5)]
    local += [f"01:{m:02d}" for m in range(0, 60, 5)] * 2
    local += [f"02:{m:02d}" for m in range(0, 60, 5)]
    rows = "".join(
        f"A,d0,2025-11-02 {t}:00,{100 + i},America/New_York\n" for i, t in enumerate(local)
    )
    path = write(tmp_path / "fall-back.csv", HEAD + rows)
    chunked = ingest_path(settings, path, now=clock, chunk_readings=10)
    whole_settings = _other_lake(settings, tmp_path)
    whole = ingest_path(whole_settings, path, now=clock)
    assert len(chunked.batch_ids) >= 4
    assert _counts(chunked) == _counts(whole) == (48, 48, 0, 0)
    assert _state(settings) == _state(whole_settings)
