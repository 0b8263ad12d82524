"""Issue 13, pipeline side: no reading can stop a run for everyone, the gate sets rows aside
(never a batch that mixes clients), and a run never stays "running" after it stopped.

Bad rows are written into the raw zone by hand (as data an older ingest, or other settings, let
in), so these tests do not depend on what ingest accepts today.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

from glucosestream.config import QualitySettings
from glucosestream.ingest import ingest_path
from glucosestream.ingest.identity import patient_key
from glucosestream.lake import (
    QUARANTINE_SCHEMA,
    RawZone,
    open_lakehouse,
    open_metadata,
    open_storage,
)
from glucosestream.pipeline import SetAside, run_pipeline
from glucosestream.pipeline import steps as pipeline_steps
from glucosestream.pipeline.table_registry import TABLES
from glucosestream.quality import set_aside_rows
from glucosestream.readings import READING_SCHEMA

from .conftest import SECRET

HEAD = "patient_id,device_id,time,glucose_mg_dl,tz\n"
DAY = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)


def _key(patient_id: str) -> str:
    return patient_key(SECRET.encode(), patient_id)


def _reading(patient_id: str, ts: dt.datetime, *, glucose: float = 120.0, tz: str = "UTC"):
    return {
        "patient_key": _key(patient_id),
        "device_id": "dev",
        "source": "csv",
        "ts": ts,
        "glucose_mg_dl": glucose,
        "original_value": glucose,
        "original_unit": "mg/dL",
        "flags": 0,
        "tz": tz,
    }


def _day_of(patient_id: str, day: dt.datetime = DAY, count: int = 24) -> list[dict]:
    return [_reading(patient_id, day + dt.timedelta(hours=h)) for h in range(count)]


def _raw_batch(settings, batch_id: str, rows: list[dict], received_at: dt.datetime) -> str:
    """A committed raw batch holding ``rows`` as they are (an older ingest wrote it)."""
    rows = [{**r, "batch_id": batch_id, "ingested_at": received_at} for r in rows]
    table = pa.Table.from_pylist(rows, schema=READING_SCHEMA)
    manifest = {
        "batch_id": batch_id,
        "format": "mixed",
        "source_sha256": batch_id.ljust(64, "0")[:64],
        "received": len(rows),
        "accepted": len(rows),
        "duplicates": 0,
        "quarantined": 0,
        "not_readings": 0,
        "ingested_at": received_at.isoformat(),
    }
    RawZone(open_storage(settings.lake)).write_batch(
        batch_id, table, QUARANTINE_SCHEMA.empty_table(), manifest
    )
    patients = {_key(p): p for p in ("A", "B")}  # as ingest registers them
    open_metadata(settings.lake).register_patients(patients, received_at)
    return batch_id


def _published_days(settings) -> dict[str, list[int]]:
    """Published daily rows: patient key -> readings per day."""
    published = open_metadata(settings.lake).published()
    daily = open_lakehouse(settings.lake, TABLES).read_daily(published.of("daily")).to_pylist()
    out: dict[str, list[int]] = {}
    for row in sorted(daily, key=lambda r: (r["patient_key"], r["date"])):
        out.setdefault(row["patient_key"], []).append(row["readings"])
    return out


def _published_readings(settings, patient_id: str) -> int:
    published = open_metadata(settings.lake).published()
    lake = open_lakehouse(settings.lake, TABLES)
    return lake.read_readings(published.of("readings"), [_key(patient_id)]).num_rows


# finding 1 -------------------------------------------------------------------------------------


def test_finding1_an_unknown_zone_is_set_aside_and_every_other_patient_is_published(
    settings, tmp_path, clock
):
    good = tmp_path / "good.csv"
    good.write_text(HEAD + "".join(f"B,d1,2026-01-05T{h:02d}:00:00Z,110,UTC\n" for h in range(24)))
    ingest_path(settings, good, now=clock)
    mars = [*_day_of("A"), _reading("A", DAY + dt.timedelta(minutes=30), tz="Mars/Olympus_Mons")]
    batch_id = _raw_batch(settings, "20260105T000000000000Z-mars0000", mars, clock())

    report = run_pipeline(settings, now=clock)

    assert report.status == "published", report.message
    assert report.set_aside == (SetAside(batch_id, "known_zone", 1),)
    assert report.readings_set_aside == 1
    assert report.readings_new == 48
    assert _published_days(settings) == {_key("A"): [24], _key("B"): [24]}
    zone_check = next(c for c in report.checks if c.name == "known_zone")
    assert zone_check.passed
    assert zone_check.set_aside == 1
    # Recorded per batch and reason in the metadata store, the rows' keys in the lake.
    meta = open_metadata(settings.lake)
    assert meta.set_aside_counts(report.run_id) == [(batch_id, "known_zone", 1)]
    # Every later run works too, a full refresh included.
    assert run_pipeline(settings, now=clock).status == "noop"
    refresh = run_pipeline(settings, full_refresh=True, now=clock)
    assert refresh.status == "published", refresh.message
    assert _published_days(settings) == {_key("A"): [24], _key("B"): [24]}
    assert all(h["status"] != "running" for h in meta.run_history())


BAD_ROWS = [  # (what differs from a good reading, the reason it is set aside)
    ({"tz": ""}, "known_zone"),
    ({"tz": "+05:00"}, "known_zone"),  # Arrow takes it, DuckDB does not
    ({"tz": "europe/london"}, "known_zone"),
    ({"glucose": float("nan")}, "finite_glucose"),
    ({"glucose": float("inf")}, "finite_glucose"),
    ({"glucose": float("-inf")}, "finite_glucose"),
    ({"ts": dt.datetime(1, 1, 2, tzinfo=dt.UTC)}, "plausible_time"),
    ({"ts": dt.datetime(1900, 1, 1, tzinfo=dt.UTC)}, "plausible_time"),
    ({"ts": dt.datetime(2199, 12, 31, tzinfo=dt.UTC)}, "no_future_readings"),
    ({"ts": dt.datetime(9999, 12, 31, tzinfo=dt.UTC)}, "no_future_readings"),
    ({"tz": "Mars/Olympus_Mons", "glucose": float("nan")}, "known_zone"),  # the first check
]


def test_finding1_each_reading_the_run_cannot_process_is_set_aside_alone(settings, clock):
    """Every value that raised inside a run (DuckDB's cast of NaN, a zone DuckDB or Arrow does
    not know, a date out of Python's range) or made it run for ever (2199: grids to that day)."""
    rows = [*_day_of("A"), *_day_of("B")]
    for i, (bad, _) in enumerate(BAD_ROWS):
        odd = {"ts": DAY + dt.timedelta(minutes=30 + i), **bad}
        rows.append(_reading("A", odd.pop("ts"), **odd))
    batch_id = _raw_batch(settings, "20260105T000000000000Z-odd00000", rows, clock())

    report = run_pipeline(settings, now=clock)

    assert report.status == "published", report.message
    expected: dict[str, int] = {}
    for _, reason in BAD_ROWS:
        expected[reason] = expected.get(reason, 0) + 1
    assert report.set_aside == tuple(
        SetAside(batch_id, reason, n) for reason, n in sorted(expected.items())
    )
    assert report.readings_in == 48 + len(BAD_ROWS)
    assert report.readings_new == 48
    assert _published_days(settings) == {_key("A"): [24], _key("B"): [24]}
    assert run_pipeline(settings, full_refresh=True, now=clock).status == "published"
    assert _published_days(settings) == {_key("A"): [24], _key("B"): [24]}


def test_finding1_row_checks_set_aside_missing_values_too():
    """Nulls cannot reach a raw batch (its columns are required), but the row checks do not
    rely on it: a reading with no zone, glucose or time is set aside, never passed on."""
    received = dt.datetime(2026, 1, 10, tzinfo=dt.UTC)
    rows = [
        {**_reading("A", DAY), "tz": None},
        {**_reading("A", DAY), "glucose_mg_dl": None},
        {**_reading("A", None)},
        _reading("A", DAY),
    ]
    rows = [{**r, "batch_id": "b", "ingested_at": received} for r in rows]
    nullable = pa.schema([f.with_nullable(True) for f in READING_SCHEMA])
    result = set_aside_rows(pa.Table.from_pylist(rows, schema=nullable), QualitySettings())
    assert result.kept.num_rows == 1
    assert result.set_aside["reason"].to_pylist() == [
        "known_zone", "finite_glucose", "plausible_time"
    ]  # fmt: skip
    assert "glucose_mg_dl" not in result.set_aside.column_names


def test_finding1_an_error_inside_a_run_fails_the_run_and_frees_the_lake(
    settings, tmp_path, clock, monkeypatch
):
    _raw_batch(settings, "20260105T000000000000Z-good0000", _day_of("A"), clock())

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(pipeline_steps, "compute_daily_metrics", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        run_pipeline(settings, now=clock)
    [failed] = open_metadata(settings.lake).run_history()
    assert failed["status"] == "failed"
    assert failed["finished_at"] is not None
    assert "RuntimeError: disk on fire" in failed["report"]["message"]
    assert open_metadata(settings.lake).published() is None

    monkeypatch.undo()
    report = run_pipeline(settings, now=clock)  # the lock was released, the batch is pending
    assert report.status == "published"
    assert report.readings_new == 24


# finding 3 -------------------------------------------------------------------------------------


def test_finding3_one_clients_bad_readings_never_drop_another_clients_readings(settings, clock):
    """An HTTP group commit puts several clients in one raw batch: the gate sets aside the
    offending rows, each with its check's name, and publishes everyone else's."""
    received_at = clock()
    strict = dataclasses.replace(settings, quality=QualitySettings(max_mg_dl=300.0))
    uploader_1 = [_reading("A", DAY + dt.timedelta(minutes=5 * i)) for i in range(40)]
    uploader_2 = [
        _reading("B", DAY),
        _reading("B", received_at + dt.timedelta(days=365)),  # a device clock a year ahead
        _reading("B", DAY + dt.timedelta(minutes=5), glucose=350.0),  # above this gate's limit
    ]
    batch_id = _raw_batch(
        strict, "20260105T000000000000Z-group000", uploader_1 + uploader_2, received_at
    )

    report = run_pipeline(strict, now=clock)

    assert report.status == "published", report.message
    assert report.rejected == ()
    assert report.set_aside == (
        SetAside(batch_id, "glucose_range", 1),
        SetAside(batch_id, "no_future_readings", 1),
    )
    assert report.readings_in == 43
    assert report.readings_new == 41
    assert _published_readings(strict, "A") == 40
    assert _published_readings(strict, "B") == 1
    assert all(c.passed for c in report.checks)
    record = open_metadata(strict.lake).batch_records([batch_id])[batch_id]
    assert record.loaded_run_id == report.run_id
    assert record.rejected_run_id is None
    # Each set-aside reading is recorded with its keys and reason, and no glucose value.
    meta = open_metadata(strict.lake)
    assert meta.set_aside_counts(report.run_id) == [
        (batch_id, "glucose_range", 1),
        (batch_id, "no_future_readings", 1),
    ]
    with sa.create_engine(strict.lake.resolved_metadata_url()).connect() as con:
        kept = con.execute(sa.text("SELECT * FROM set_aside")).mappings().all()
    assert {c for row in kept for c in row} == {
        "run_id", "batch_id", "patient_key", "device_id", "ts", "reason"
    }  # fmt: skip
    assert {row["patient_key"] for row in kept} == {_key("B")}
    meta.forget_patient(_key("B"))  # erasure takes the set-aside keys too
    assert meta.set_aside_counts(report.run_id) == []
    # The next run has nothing left to do: the batch is settled, not retried forever.
    assert run_pipeline(strict, now=clock).status == "noop"


def test_finding3_a_batch_whose_file_lost_rows_is_still_rejected_as_a_whole(settings, clock):
    """Reconciliation stays a batch's fault: its file does not hold what it accepted."""
    batch_id = _raw_batch(settings, "20260105T000000000000Z-short000", _day_of("A"), clock())
    good = _raw_batch(settings, "20260105T000000000001Z-good0000", _day_of("B"), clock())
    manifest_path = Path(open_storage(settings.lake).path("raw", "batches", batch_id))
    manifest = manifest_path / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"accepted": 24', '"accepted": 25'))
    report = run_pipeline(settings, now=clock)
    assert report.status == "published"
    assert [r.batch_id for r in report.rejected] == [batch_id]
    assert "reconciliation" in report.rejected[0].reason
    assert open_metadata(settings.lake).batch_records([good])[good].loaded_run_id == report.run_id


# finding 8 -------------------------------------------------------------------------------------


def test_finding8_a_run_left_running_is_closed_as_abandoned_by_the_next_run(settings, clock):
    meta = open_metadata(settings.lake)
    meta.start_run("run-killed", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))  # never finished

    report = run_pipeline(settings, now=clock)

    assert report.status == "noop"
    history = {h["run_id"]: h for h in meta.run_history()}
    killed = history["run-killed"]
    assert killed["status"] == "abandoned"
    assert killed["finished_at"] is not None
    assert "did not finish" in killed["report"]["message"]
    assert [h["status"] for h in meta.run_history()].count("running") == 0


def test_finding1_a_batch_whose_files_cannot_be_read_is_rejected_alone(settings, clock):
    """A raw batch whose manifest is not JSON, or whose readings file is cut short, is the
    batch's own fault: it is rejected with the reason, and the other batches are published."""
    bad_manifest = _raw_batch(settings, "20260105T000000000000Z-json0000", _day_of("A"), clock())
    cut_short = _raw_batch(settings, "20260105T000000000001Z-trunc000", _day_of("A"), clock())
    good = _raw_batch(settings, "20260105T000000000002Z-good0000", _day_of("B"), clock())
    raw = Path(open_storage(settings.lake).path("raw", "batches"))
    (raw / bad_manifest / "manifest.json").write_text("{not json")
    data = raw / cut_short / "readings.parquet"
    data.write_bytes(data.read_bytes()[:100])

    report = run_pipeline(settings, now=clock)

    assert report.status == "published", report.message
    assert [r.batch_id for r in report.rejected] == [bad_manifest, cut_short]
    assert all(r.reason.startswith("unreadable") for r in report.rejected)
    assert report.readings_new == 24
    assert _published_days(settings) == {_key("B"): [24]}
    records = open_metadata(settings.lake).batch_records([bad_manifest, cut_short, good])
    assert records[bad_manifest].rejected_run_id == report.run_id
    assert records[cut_short].rejected_run_id == report.run_id
    assert records[good].loaded_run_id == report.run_id
    assert run_pipeline(settings, now=clock).status == "noop"


def test_a_manifest_is_written_aside_and_renamed_so_it_is_never_read_half_written(settings):
    """A batch is committed by its manifest: on local disk the manifest is written to a hidden
    file and renamed, so a failure mid-write leaves an uncommitted folder readers ignore, never
    a committed batch whose manifest is cut short (which stopped every later discover)."""
    zone = RawZone(open_storage(settings.lake))
    empty = READING_SCHEMA.empty_table()
    zone.stage_batch("b-half", empty, QUARANTINE_SCHEMA.empty_table())
    folder = Path(zone.batch("b-half").path)
    (folder / ".manifest.json.tmp").write_text('{"batch_id": "b-ha')  # a write that died
    assert [b.batch_id for b in zone.list_batches()] == []
    zone.commit_batch("b-half", {"batch_id": "b-half", "received": 0})
    # (no quarantine.parquet: a batch that quarantined nothing has none)
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "readings.parquet"]
    assert zone.batch("b-half").manifest() == {"batch_id": "b-half", "received": 0}
