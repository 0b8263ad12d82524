"""Crash safety and concurrency with real processes: SIGKILL at several points of ingest and
run must leave the lake readable, and the next run must end with exactly the results of an
uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from glucosestream.config import IngestSettings, LakeSettings, Settings
from glucosestream.errors import RunInProgress
from glucosestream.ingest import ingest_path
from glucosestream.lake import open_lakehouse, open_metadata
from glucosestream.pipeline import run_pipeline
from glucosestream.pipeline.table_registry import TABLES
from glucosestream.synth import CohortSpec, write_cohort

from .conftest import SECRET

KILLER = Path(__file__).with_name("killer.py")
VOLATILE = ("run_id", "computed_at")


def _settings(lake: Path) -> Settings:
    return Settings(
        lake=LakeSettings(root=str(lake)), ingest=IngestSettings(pseudonym_secret=SECRET)
    )


def _cli(
    lake: Path, target: str, when: str, *args: str, flag: str = "", **env_vars: str
) -> subprocess.Popen:
    env = {**os.environ, "GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": SECRET, **env_vars}
    command = [sys.executable, str(KILLER), target, when, flag, "--", *args, "--lake", str(lake)]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _state(settings: Settings) -> tuple[list[dict], int]:
    """What a reader sees: published daily metrics (minus run ids) and the reading count."""
    published = open_metadata(settings.lake).published()
    lake = open_lakehouse(settings.lake, TABLES)
    daily = lake.read_daily(published.of("daily"))
    keys = daily["patient_key"].to_pylist()
    readings = lake.read_readings(published.of("readings"), keys).num_rows
    columns = [c for c in daily.column_names if c not in VOLATILE]
    return daily.select(columns).to_pylist(), readings


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("cohort")
    spec = CohortSpec(patients=3, days=3, seed=5)
    whole = Path(write_cohort(spec, folder / "all.csv", "csv").path)
    lines = whole.read_text().splitlines(keepends=True)
    first, second = folder / "first.csv", folder / "second.csv"
    first.write_text("".join(lines[: len(lines) * 2 // 3]))
    second.write_text(lines[0] + "".join(lines[len(lines) // 3 :]))  # overlaps the first
    return [first, second]


@pytest.fixture(scope="module")
def expected(files, tmp_path_factory):
    settings = _settings(tmp_path_factory.mktemp("reference") / "lake")
    for path in files:
        ingest_path(settings, path)
        assert run_pipeline(settings).status == "published"
    return _state(settings)


RUN_POINTS = [
    ("glucosestream.pipeline.steps:process_bucket", "after"),
    ("glucosestream.lake.catalog:Lakehouse.commit_data_files", "after"),  # readings only
    ("glucosestream.lake.catalog:Lakehouse.replace_rows", "before"),
    ("glucosestream.lake.catalog:Lakehouse.replace_rows", "after"),  # and daily
    ("glucosestream.lake.metadata:MetadataStore.finish_run", "before"),
]


@pytest.mark.parametrize(("target", "when"), RUN_POINTS)
def test_killed_run_then_next_run_gives_uninterrupted_results(
    files, expected, tmp_path, target, when
):
    lake = tmp_path / "lake"
    settings = _settings(lake)
    ingest_path(settings, files[0])
    assert run_pipeline(settings).status == "published"
    before = _state(settings)
    ingest_path(settings, files[1])
    process = _cli(lake, target, when, "run")
    assert process.wait(timeout=60) == -signal.SIGKILL, process.stderr.read().decode()
    process.stderr.close()
    assert _state(settings) == before  # readers still see the last published results
    report = run_pipeline(settings)
    assert report.status == "published"
    assert _state(settings) == expected
    # The killed run's record was left "running"; the next run closed it (issue 13, finding 8).
    statuses = [r["status"] for r in open_metadata(settings.lake).run_history()]
    assert statuses == ["published", "abandoned", "published"]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_coordinator_killed_between_bucket_tasks_then_next_run_gives_the_same(
    files, expected, tmp_path, workers
):
    """SIGKILL the coordinator once its first bucket task is done (its tasks in its own process,
    or in worker processes still busy with the others): the next run redoes the run from a new
    plan, publishes the uninterrupted results, and removes the dead run's staged files."""
    lake = tmp_path / "lake"
    settings = _settings(lake)
    ingest_path(settings, files[0])
    assert run_pipeline(settings).status == "published"
    ingest_path(settings, files[1])
    target = "glucosestream.pipeline.execution:ProgressMeter.finished"
    tasks_of = {"GLUCOSESTREAM_PIPELINE__READINGS_PER_TASK": "1000"}  # a bucket per patient
    process = _cli(lake, target, "after", "run", "--workers", workers, **tasks_of)
    assert process.wait(timeout=60) == -signal.SIGKILL, process.stderr.read().decode()
    process.stderr.close()
    assert list((lake / "staging").iterdir()) != []  # the dead run's plan and staged files
    report = run_pipeline(settings)
    assert report.status == "published"
    assert _state(settings) == expected
    assert list((lake / "staging").iterdir()) == []
    statuses = [r["status"] for r in open_metadata(settings.lake).run_history()]
    assert statuses == ["published", "abandoned", "published"]


INGEST_POINTS = [
    ("glucosestream.lake.zones:RawZone.stage_batch", "before"),  # patients registered only
    ("glucosestream.lake.zones:_fsync", "after"),  # files written, no manifest yet
    ("glucosestream.lake.zones:RawZone.commit_batch", "after"),  # committed, not yet recorded
    ("glucosestream.lake.metadata:MetadataStore.add_batch", "after"),
]


@pytest.mark.parametrize(("target", "when"), INGEST_POINTS)
def test_killed_ingest_then_retry_gives_uninterrupted_results(
    files, expected, tmp_path, target, when
):
    lake = tmp_path / "lake"
    settings = _settings(lake)
    ingest_path(settings, files[0])
    process = _cli(lake, target, when, "ingest", str(files[1]))
    assert process.wait(timeout=60) == -signal.SIGKILL, process.stderr.read().decode()
    process.stderr.close()
    # The user saw no acknowledgement, so they ingest the file again, then run.
    ingest_path(settings, files[1])
    assert run_pipeline(settings).status == "published"
    assert _state(settings) == expected


def test_ingest_during_a_run_loses_nothing_and_duplicates_nothing(files, expected, tmp_path):
    lake = tmp_path / "lake"
    settings = _settings(lake)
    ingest_path(settings, files[0])
    flag = str(tmp_path / "go")
    process = _cli(lake, "glucosestream.pipeline.steps:process_bucket", "pause", "run", flag=flag)
    deadline = time.monotonic() + 60
    while not Path(flag + ".paused").exists():
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    ingest_path(settings, files[1])  # arrives while the run is between merge and publish
    Path(flag).touch()
    assert process.wait(timeout=60) == 0, process.stderr.read().decode()
    process.stderr.close()
    second = run_pipeline(settings)
    assert second.status == "published"
    assert second.batches == 1
    assert run_pipeline(settings).status == "noop"
    assert _state(settings) == expected


def test_a_second_run_while_one_is_working_is_refused(files, tmp_path):
    lake = tmp_path / "lake"
    settings = _settings(lake)
    ingest_path(settings, files[0])
    flag = str(tmp_path / "go")
    process = _cli(lake, "glucosestream.pipeline.steps:process_bucket", "pause", "run", flag=flag)
    deadline = time.monotonic() + 60
    while not Path(flag + ".paused").exists():
        assert process.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with pytest.raises(RunInProgress, match="another `glucosestream run`"):
        run_pipeline(settings)
    Path(flag).touch()
    assert process.wait(timeout=60) == 0
    process.stderr.close()
    assert run_pipeline(settings).status == "noop"
