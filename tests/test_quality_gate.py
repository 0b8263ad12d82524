"""Write-audit-publish: a failing check publishes nothing; an unpublished write is undone."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow as pa

from glucosestream.config import QualitySettings
from glucosestream.ingest import ingest_path
from glucosestream.lake import open_lakehouse, open_metadata
from glucosestream.pipeline import run_pipeline
from glucosestream.quality import StagedRun, evaluate
from glucosestream.readings import READING_SCHEMA

HEAD = "patient_id,device_id,time,glucose_mg_dl,tz\n"


def _day(tmp_path: Path, name: str, day: int, value: int) -> Path:
    rows = [f"A,d1,2026-01-{day:02d}T{h:02d}:00:00Z,{value},UTC" for h in range(24)]
    path = tmp_path / name
    path.write_text(HEAD + "\n".join(rows) + "\n")
    return path


def _published_daily(settings) -> list[dict]:
    published = open_metadata(settings.lake).published()
    return open_lakehouse(settings.lake).read_daily(published.daily_snapshot_id).to_pylist()


def test_failing_check_publishes_nothing_and_keeps_earlier_snapshot(settings, tmp_path, clock):
    ingest_path(settings, _day(tmp_path, "good.csv", 1, 120), now=clock)
    assert run_pipeline(settings, now=clock).status == "published"
    before = _published_daily(settings)

    # 350 mg/dL is plausible at ingest but above this gate's 300 mg/dL limit.
    strict = dataclasses.replace(settings, quality=QualitySettings(max_mg_dl=300.0))
    ingest_path(strict, _day(tmp_path, "high.csv", 2, 350), now=clock)
    failed = run_pipeline(strict, now=clock)

    assert failed.status == "failed"
    assert failed.failed_checks == ("glucose_range",)
    glucose_check = next(c for c in failed.checks if c.name == "glucose_range")
    assert glucose_check.failed_rows == 24
    assert _published_daily(strict) == before
    readings = open_lakehouse(settings.lake).read_readings(
        open_metadata(settings.lake).published().readings_snapshot_id,
        [before[0]["patient_key"]],
    )
    assert readings.num_rows == 24
    history = open_metadata(settings.lake).run_history()
    assert [r["status"] for r in history][:2] == ["failed", "published"]


def test_unpublished_snapshots_are_rolled_back_by_the_next_run(settings, tmp_path, clock):
    ingest_path(settings, _day(tmp_path, "one.csv", 1, 110), now=clock)
    assert run_pipeline(settings, now=clock).status == "published"
    published = open_metadata(settings.lake).published()
    lake = open_lakehouse(settings.lake)
    # A run that died after writing but before publishing leaves a stray snapshot behind.
    stray = lake.read_readings(
        published.readings_snapshot_id,
        lake.read_daily(published.daily_snapshot_id)["patient_key"].to_pylist(),
    )
    lake.append_readings(stray)

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
    staged = StagedRun(readings, readings, daily, 2, 2, 0, 0, 0)
    report = evaluate(staged, QualitySettings())
    assert set(report.failed) == {"unique_readings", "daily_bounds"}
