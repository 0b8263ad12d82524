"""Write-audit-publish: a failing check publishes nothing; a reading outside the gate is set
aside alone; an unpublished write is undone."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow as pa
import sqlalchemy as sa

from glucosestream.config import QualitySettings
from glucosestream.ingest import ingest_path
from glucosestream.lake import open_lakehouse, open_metadata
from glucosestream.pipeline import SetAside, run_pipeline
from glucosestream.pipeline.table_registry import TABLES
from glucosestream.quality import QualityReport, StagedRun, run_checks
from glucosestream.readings import READING_SCHEMA

HEAD = "patient_id,device_id,time,glucose_mg_dl,tz\n"


def _day(tmp_path: Path, name: str, day: int, value: int) -> Path:
    rows = [f"A,d1,2026-01-{day:02d}T{h:02d}:00:00Z,{value},UTC" for h in range(24)]
    path = tmp_path / name
    path.write_text(HEAD + "\n".join(rows) + "\n")
    return path


def _published_daily(settings) -> list[dict]:
    published = open_metadata(settings.lake).published()
    return open_lakehouse(settings.lake, TABLES).read_daily(published.of("daily")).to_pylist()


def test_a_reading_outside_the_gate_is_set_aside_and_its_file_can_come_back(
    settings, tmp_path, clock
):
    """Issue 13: the gate sets offending readings aside (it rejected the whole batch)."""
    ingest_path(settings, _day(tmp_path, "good.csv", 1, 120), now=clock)
    assert run_pipeline(settings, now=clock).status == "published"
    before = _published_daily(settings)

    # 350 mg/dL was inside the gate's range when it was ingested; the limit was lowered to
    # 300 mg/dL before the run (ingest applies the gate's range too: see test_hardening_ingest).
    strict = dataclasses.replace(settings, quality=QualitySettings(max_mg_dl=300.0))
    high = ingest_path(settings, _day(tmp_path, "high.csv", 2, 350), now=clock)
    report = run_pipeline(strict, now=clock)

    assert report.status == "published", report.message
    assert report.rejected == ()
    assert report.set_aside == (SetAside(high.batch_id, "glucose_range", 24),)
    assert "24 readings set aside (glucose_range 24)" in report.message
    assert report.readings_new == 0
    glucose_check = next(c for c in report.checks if c.name == "glucose_range")
    assert glucose_check.passed
    assert glucose_check.set_aside == 24
    assert glucose_check.detail.startswith("24 set aside")
    assert _published_daily(strict) == before
    readings = open_lakehouse(settings.lake, TABLES).read_readings(
        open_metadata(settings.lake).published().of("readings"),
        [before[0]["patient_key"]],
    )
    assert readings.num_rows == 24
    history = open_metadata(settings.lake).run_history()
    assert [r["status"] for r in history][:2] == ["published", "published"]
    assert any(
        c["check_name"] == "glucose_range" and c["detail"].startswith("24 set aside")
        for c in history[0]["checks"]
    )
    # The set-aside readings do not block the lake: the next run has nothing left to do ...
    assert run_pipeline(strict, now=clock).status == "noop"
    # ... and once the limit is right, the same file can be ingested again and published.
    again = ingest_path(settings, tmp_path / "high.csv", now=clock)
    assert again.already_ingested_as is None
    assert again.accepted == 24
    assert run_pipeline(settings, now=clock).status == "published"
    assert len(_published_daily(settings)) == 2


def test_one_bad_batch_does_not_hold_back_good_ones(settings, tmp_path, clock):
    strict = dataclasses.replace(settings, quality=QualitySettings(max_mg_dl=300.0))
    # ingested before the gate's limit was lowered to 300 mg/dL
    good = ingest_path(settings, _day(tmp_path, "good.csv", 1, 120), now=clock)
    bad = ingest_path(settings, _day(tmp_path, "high.csv", 2, 350), now=clock)
    report = run_pipeline(strict, now=clock)
    assert report.status == "published"
    assert report.rejected == ()
    assert report.set_aside == (SetAside(bad.batch_id, "glucose_range", 24),)
    assert report.readings_new == good.accepted == 24
    assert all(c.passed for c in report.checks)
    assert [r["date"].day for r in _published_daily(strict)] == [1]


def test_a_fault_that_blames_no_batch_publishes_nothing(settings, tmp_path, clock, monkeypatch):
    from glucosestream.pipeline import steps

    real = steps.compute_daily_metrics

    def broken(*args, **kwargs):
        daily = real(*args, **kwargs)
        index = daily.schema.get_field_index("pct_active")
        return daily.set_column(index, "pct_active", pa.array([150.0] * daily.num_rows))

    monkeypatch.setattr(steps, "compute_daily_metrics", broken)
    ingest_path(settings, _day(tmp_path, "good.csv", 1, 120), now=clock)
    report = run_pipeline(settings, now=clock)
    assert report.status == "failed"
    assert report.failed_checks == ("daily_bounds",)
    assert report.rejected == ()
    assert open_metadata(settings.lake).published() is None
    monkeypatch.setattr(steps, "compute_daily_metrics", real)
    assert run_pipeline(settings, now=clock).status == "published"


def test_a_batch_whose_ingest_died_before_it_was_recorded_is_still_loaded(
    settings, tmp_path, clock
):
    report = ingest_path(settings, _day(tmp_path, "one.csv", 1, 100), now=clock)
    with sa.create_engine(settings.lake.resolved_metadata_url()).begin() as con:
        con.execute(sa.text("DELETE FROM batches"))
    run = run_pipeline(settings, now=clock)
    assert run.status == "published"
    assert run.readings_new == 24
    record = open_metadata(settings.lake).batch_records([report.batch_id])[report.batch_id]
    assert record.source_name.startswith("(recovered")
    assert record.loaded_run_id == run.run_id


def test_unpublished_snapshots_are_rolled_back_by_the_next_run(settings, tmp_path, clock):
    ingest_path(settings, _day(tmp_path, "one.csv", 1, 110), now=clock)
    assert run_pipeline(settings, now=clock).status == "published"
    published = open_metadata(settings.lake).published()
    lake = open_lakehouse(settings.lake, TABLES)
    # A run that died after writing but before publishing leaves a stray snapshot behind.
    stray = lake.read_readings(
        published.of("readings"),
        lake.read_daily(published.of("daily"))["patient_key"].to_pylist(),
    )
    lake.append_rows("readings", stray)

    ingest_path(settings, _day(tmp_path, "two.csv", 2, 130), now=clock)
    report = run_pipeline(settings, now=clock)
    assert report.recovered
    assert report.status == "published"
    assert report.readings_new == 24
    assert report.duplicates == 0
    rows = _published_daily(settings)
    assert [r["readings"] for r in rows] == [24, 24]


def test_quality_checks_catch_duplicate_keys_and_bad_bands():
    ts = pa.array([0, 0], pa.timestamp("us", tz="UTC"))
    readings = pa.table(
        {
            "patient_key": ["k", "k"],
            "device_id": ["d", "d"],
            "source": ["csv", "csv"],
            "ts": ts,
            "glucose_mg_dl": [100.0, 100.0],
            "original_value": [100.0, 100.0],
            "original_unit": ["mg/dL", "mg/dL"],
            "flags": pa.array([0, 0], pa.int32()),
            "tz": ["UTC", "UTC"],
            "batch_id": ["b", "b"],
            "ingested_at": ts,
            "direction": pa.nulls(2, pa.string()),
            "rate_mg_dl_min": pa.nulls(2, pa.float64()),
        },
        schema=READING_SCHEMA,
    )
    daily = pa.table(
        {
            "readings": [2],
            "pct_below_54": [0.0],
            "pct_below_70": [10.0],
            "pct_70_180": [80.0],
            "pct_above_180": [5.0],
            "pct_above_250": [0.0],
            "pct_active": [100.0],
        }
    )
    days = pa.table({"patient_key": ["k"], "date": [None]})
    staged = StagedRun(readings, readings, daily, days)
    report = QualityReport(tuple(run_checks(staged, QualitySettings())))
    assert set(report.failed) == {"unique_readings", "daily_bounds"}


def test_a_merge_that_loses_a_reading_publishes_nothing(settings, tmp_path, clock, monkeypatch):
    """The run's merge duplicates are counted as incoming - set aside - new, which would hide a
    merge that dropped a reading; every_reading_lands checks each incoming key is in the lake
    afterwards (new, or published before)."""
    from glucosestream.pipeline import steps

    real = steps.new_readings

    def lossy(incoming, curated):
        out = real(incoming, curated)
        return out.slice(1) if out.num_rows else out

    monkeypatch.setattr(steps, "new_readings", lossy)
    ingest_path(settings, _day(tmp_path, "good.csv", 1, 120), now=clock)
    report = run_pipeline(settings, now=clock)
    assert report.status == "failed"
    assert report.failed_checks == ("every_reading_lands",)
    assert open_metadata(settings.lake).published() is None
