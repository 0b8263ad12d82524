"""Runs split into buckets of patients (staged files, bucket tasks) give exactly the results
of a run that holds everything in one task; the staging zone is empty after every run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow.compute as pc
import pytest
from pyiceberg.expressions import EqualTo

from glucosestream.config import IngestSettings, LakeSettings, PipelineSettings, Settings
from glucosestream.ingest import ingest_path
from glucosestream.lake import open_lakehouse, open_metadata
from glucosestream.pipeline import run_pipeline
from glucosestream.pipeline.execution import Execution
from glucosestream.pipeline.table_registry import TABLES
from glucosestream.synth import CohortSpec, write_cohort

from .conftest import SECRET


def _state(settings):
    published = open_metadata(settings.lake).published()
    lake = open_lakehouse(settings.lake, TABLES)
    daily = lake.read_daily(published.of("daily")).drop_columns(["run_id", "computed_at"])
    keys = daily["patient_key"].to_pylist()
    readings = lake.read_readings(published.of("readings"), keys).drop_columns(
        ["batch_id", "ingested_at"]
    )
    order = [("patient_key", "ascending"), ("device_id", "ascending"), ("ts", "ascending")]
    periods = lake.read_table("periods", published.of("periods"))
    agp = lake.read_table("agp", published.of("agp"))
    sessions = lake.read_table("sessions", published.of("sessions"))
    return (
        sessions.drop_columns(["run_id", "computed_at"]).to_pylist(),
        daily.to_pylist(),
        readings.sort_by(order).to_pylist(),
        periods.drop_columns(["run_id", "computed_at"]).to_pylist(),
        agp.drop_columns(["run_id", "computed_at"]).num_rows,
    )


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cohort")
    whole = Path(
        write_cohort(
            CohortSpec(patients=20, days=20, seed=9, interval_min=15), folder / "c.csv", "csv"
        ).path
    )
    lines = whole.read_text().splitlines(keepends=True)
    cut = len(lines) * 3 // 4
    (folder / "one.csv").write_text("".join(lines[:cut]))
    (folder / "two.csv").write_text(lines[0] + "".join(lines[cut // 2 :]))
    return [folder / "one.csv", folder / "two.csv"]


def _lake(tmp_path, name):
    return Settings(
        lake=LakeSettings(root=str(tmp_path / name)), ingest=IngestSettings(pseudonym_secret=SECRET)
    )


ONE_PROCESS = Execution(workers=1)


def _tiny(settings: Settings) -> Settings:
    """Tasks of 400 readings: two-digit buckets for these lakes."""
    return dataclasses.replace(settings, pipeline=PipelineSettings(readings_per_task=400))


def test_bucketed_runs_equal_in_memory_runs(parts, tmp_path):
    whole, split = _lake(tmp_path, "whole"), _tiny(_lake(tmp_path, "split"))
    for path in parts:
        ingest_path(whole, path)
        assert run_pipeline(whole).status == "published"
    for number, path in enumerate(parts):
        ingest_path(split, path)
        report = run_pipeline(split, execution=ONE_PROCESS)
        assert report.status == "published"
        assert report.buckets > 1
        # sized for the new readings and (incrementally) the history it reads with them
        if number == 0:
            assert report.planned_readings == report.readings_in
        else:
            curated = open_lakehouse(split.lake, TABLES).readings.scan().count()
            assert report.readings_in < report.planned_readings <= report.readings_in + curated
        if number == 0:
            _each_bucket_wrote_its_own_files_and_a_patient_reads_one_a_day(split)
    assert _state(split) == _state(whole)
    assert run_pipeline(split, full_refresh=True, execution=ONE_PROCESS).status == "published"
    assert run_pipeline(whole, full_refresh=True).status == "published"
    assert _state(split) == _state(whole)


def _each_bucket_wrote_its_own_files_and_a_patient_reads_one_a_day(settings):
    """Each bucket task writes its readings' data files (one per key digit and day); buckets
    sharing a key digit share its partitions, but a file holds one bucket's sorted keys, so a
    patient's read of a day opens one file (the key bounds prune the rest)."""
    readings = open_lakehouse(settings.lake, TABLES).readings
    files = readings.inspect.files()
    partitions = [tuple(p.values()) for p in files["partition"].to_pylist()]
    assert max(partitions.count(p) for p in set(partitions)) > 1  # two-digit buckets
    key = pc.min(readings.scan(selected_fields=("patient_key",)).to_arrow()["patient_key"])
    days = pc.unique(
        pc.floor_temporal(
            readings.scan(row_filter=EqualTo("patient_key", key.as_py())).to_arrow()["ts"],
            unit="day",
        )
    )
    tasks = list(readings.scan(row_filter=EqualTo("patient_key", key.as_py())).plan_files())
    assert len(tasks) == len(days)  # one file per (key digit, UTC day) partition it has data in


def test_staging_zone_is_empty_after_the_run(parts, tmp_path):
    settings = _tiny(_lake(tmp_path, "lake"))
    ingest_path(settings, parts[0])
    report = run_pipeline(settings, execution=ONE_PROCESS)
    assert report.status == "published"
    assert report.buckets > 1
    assert list((tmp_path / "lake" / "staging").iterdir()) == []


def test_a_dead_runs_staging_folder_is_removed_by_the_next_run(parts, tmp_path):
    settings = _lake(tmp_path, "lake")
    stale = tmp_path / "lake" / "staging" / "run-dead" / "attempt-0" / "incoming"
    stale.mkdir(parents=True)
    (stale / "part.arrow").write_bytes(b"left by a run that was killed")
    ingest_path(settings, parts[0])
    assert run_pipeline(settings).status == "published"
    assert list((tmp_path / "lake" / "staging").iterdir()) == []
