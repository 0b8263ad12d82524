"""Runs split into buckets of patients (with spill files) give exactly the results of a run
that holds everything in memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from glucosestream.config import IngestSettings, LakeSettings, Settings
from glucosestream.ingest import ingest_path
from glucosestream.lake import open_lakehouse, open_metadata
from glucosestream.pipeline import buckets, run_pipeline
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


def test_bucketed_runs_equal_in_memory_runs(parts, tmp_path, monkeypatch):
    whole, split = _lake(tmp_path, "whole"), _lake(tmp_path, "split")
    for path in parts:
        ingest_path(whole, path)
        assert run_pipeline(whole).status == "published"
    monkeypatch.setattr(buckets, "ROWS_PER_BUCKET", 400)  # two-digit buckets here
    for number, path in enumerate(parts):
        ingest_path(split, path)
        report = run_pipeline(split)
        assert report.status == "published"
        if number == 0:  # buckets of one key digit were appended together: a file a partition
            files = open_lakehouse(split.lake, TABLES).readings.inspect.files()
            partitions = [tuple(p.values()) for p in files["partition"].to_pylist()]
            assert len(partitions) == len(set(partitions))
    assert _state(split) == _state(whole)
    assert run_pipeline(split, full_refresh=True).status == "published"
    assert run_pipeline(whole, full_refresh=True).status == "published"
    assert _state(split) == _state(whole)


def test_spill_folder_is_removed_after_the_run(parts, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(buckets, "ROWS_PER_BUCKET", 400)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    settings = _lake(tmp_path, "lake")
    ingest_path(settings, parts[0])
    assert run_pipeline(settings).status == "published"
    assert list((tmp_path / "tmp").iterdir()) == []
