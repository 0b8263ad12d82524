"""A run gives the same tables, bit for bit, whatever executes its bucket tasks: one task in
this process, many tasks in this process, worker processes, or a Ray cluster; on the
validation cohort and on a 200-patient lake through ingest → full run → new day → incremental
run → full refresh. And a worker killed mid-task is retried without changing the result."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from glucosestream.config import IngestSettings, LakeSettings, PipelineSettings, Settings
from glucosestream.ingest import ingest_path
from glucosestream.lake import open_lakehouse, open_metadata
from glucosestream.pipeline import run_pipeline, run_state
from glucosestream.pipeline.execution import Execution
from glucosestream.pipeline.table_registry import TABLES
from glucosestream.pipeline.task_executor import open_executor
from glucosestream.synth import CohortSpec, write_cohort

from . import ray_head, scale_faults
from .conftest import DATA, SECRET

# Columns that differ between two lakes fed the same files: when and by which run or batch.
VOLATILE = ("run_id", "computed_at", "batch_id", "ingested_at")
# Tasks of 8,000 readings: 16 buckets for these lakes (a dozen patients each).
SMALL_TASKS = 8_000


def _settings(lake: Path, readings_per_task: int = 1_000_000) -> Settings:
    return Settings(
        lake=LakeSettings(root=str(lake)),
        ingest=IngestSettings(pseudonym_secret=SECRET),
        pipeline=PipelineSettings(readings_per_task=readings_per_task),
    )


def tables_of(settings: Settings) -> dict[str, list[dict[str, object]]]:
    """Every published table, without the volatile columns, in one order."""
    published = open_metadata(settings.lake).published()
    lake = open_lakehouse(settings.lake, TABLES)
    out = {}
    for spec in TABLES:
        table = lake.read_table(spec.short, published.of(spec.short))
        table = table.drop_columns([c for c in VOLATILE if c in table.column_names])
        keys = [(c, "ascending") for c in table.column_names if _sortable(table.schema, c)]
        out[spec.short] = table.sort_by(keys).to_pylist()
    return out


def _sortable(schema: pa.Schema, column: str) -> bool:
    kind = schema.field(column).type
    return not (pa.types.is_list(kind) or pa.types.is_struct(kind) or pa.types.is_map(kind))


@pytest.fixture(scope="module")
def journey_files(tmp_path_factory) -> tuple[Path, Path]:
    """200 patients: three days of history, then the next day on its own."""
    folder = tmp_path_factory.mktemp("cohort200")
    spec = CohortSpec(patients=200, days=4, seed=15, interval_min=15)
    whole = pq.read_table(write_cohort(spec, folder / "all.parquet", "parquet").path)
    cut = pc.max(whole["time"]).as_py().replace(hour=0, minute=0, second=0, microsecond=0)
    early = pc.less(whole["time"], pa.scalar(cut, whole["time"].type))
    history, new_day = folder / "history.parquet", folder / "new-day.parquet"
    pq.write_table(whole.filter(early), history)
    pq.write_table(whole.filter(pc.invert(early)), new_day)
    return history, new_day


def journey(
    lake: Path, files: tuple[Path, Path], execution: Execution, readings_per_task: int
) -> list[dict]:
    """The published tables after a full run, an incremental run and a full refresh."""
    settings = _settings(lake, readings_per_task)
    states = []
    for path in files:
        ingest_path(settings, path)
        report = run_pipeline(settings, execution=execution)
        assert report.status == "published", report.message
        states.append(tables_of(settings))
    report = run_pipeline(settings, full_refresh=True, execution=execution)
    assert report.status == "published", report.message
    states.append(tables_of(settings))
    return states


@pytest.fixture(scope="module")
def one_task(journey_files, tmp_path_factory) -> list[dict]:
    """The reference: every run one task in this process."""
    lake = tmp_path_factory.mktemp("one-task") / "lake"
    return journey(lake, journey_files, Execution(workers=1), 1_000_000)


def test_many_buckets_in_this_process_equal_one_task(journey_files, one_task, tmp_path):
    execution = Execution(workers=1)
    assert journey(tmp_path / "lake", journey_files, execution, SMALL_TASKS) == one_task


def test_worker_processes_equal_one_task(journey_files, one_task, tmp_path):
    with open_executor(workers=2) as executor:
        execution = Execution(executor=executor)
        assert journey(tmp_path / "lake", journey_files, execution, SMALL_TASKS) == one_task


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[ray_head.RayHead]:
    """A real Ray head on 127.0.0.1 for this module (tests/ray_head.py), stopped at its end."""
    yield from ray_head.running_head()


def test_a_ray_cluster_equals_one_task(journey_files, one_task, ray_cluster, tmp_path):
    with open_executor(cluster=ray_cluster.address) as executor:
        execution = Execution(executor=executor)
        assert journey(tmp_path / "lake", journey_files, execution, SMALL_TASKS) == one_task


@pytest.fixture(params=["processes", "ray"])
def many(request: pytest.FixtureRequest) -> Iterator[Execution]:
    """Worker processes or a Ray cluster."""
    if request.param == "ray":
        address = request.getfixturevalue("ray_cluster").address
        opened = open_executor(cluster=address)
    else:
        opened = open_executor(workers=2)
    with opened as executor:
        yield Execution(executor=executor)


def test_validation_cohort_on_many_workers_equals_one_task(many, tmp_path):
    cohort = DATA / "validation" / "cohort.csv"
    results = []
    for name, execution, per_task in (
        ("one", Execution(workers=1), 1_000_000),
        ("many", many, 1_000),
    ):
        settings = _settings(tmp_path / name, per_task)
        ingest_path(settings, cohort, tz="UTC")
        report = run_pipeline(settings, execution=execution)
        assert report.status == "published", report.message
        assert (report.buckets > 1) == (name == "many")
        results.append(tables_of(settings))
    assert results[0] == results[1]
    assert len(results[0]["daily"]) > 50


def test_a_worker_killed_mid_task_is_retried_and_the_run_publishes_the_same(
    journey_files, one_task, tmp_path, monkeypatch
):
    monkeypatch.setattr(run_state, "run_bucket_task", scale_faults.killed_once)
    lake = tmp_path / "lake"
    scale_faults.arm(lake)
    with open_executor(workers=2) as executor:
        execution = Execution(executor=executor)
        settings = _settings(lake, SMALL_TASKS)
        ingest_path(settings, journey_files[0])
        report = run_pipeline(settings, execution=execution)
    assert report.status == "published", report.message
    assert not scale_faults.armed(lake)  # a worker did die
    assert tables_of(settings) == one_task[0]
    assert list((lake / "staging").iterdir()) == []


def test_the_report_names_the_executor_and_each_processs_peak(journey_files, tmp_path):
    with open_executor(workers=2) as executor:
        execution = Execution(executor=executor)
        settings = _settings(tmp_path / "lake", SMALL_TASKS)
        ingest_path(settings, journey_files[0])
        report = run_pipeline(settings, execution=execution)
    assert report.executor == "processes"
    assert report.buckets >= 16
    assert sum(w.tasks for w in report.workers) == report.buckets
    assert all(w.peak_rss_bytes > 10 * 1024**2 for w in report.workers)
    assert 1 <= len(report.workers) <= 2
    assert {s.step for s in report.steps} >= {"plan", "merge", "transform", "stage", "publish"}


def test_progress_is_reported_once_per_bucket(journey_files, tmp_path):
    seen = []
    execution = Execution(workers=1, progress=seen.append)
    settings = _settings(tmp_path / "lake", SMALL_TASKS)
    ingest_path(settings, journey_files[0])
    report = run_pipeline(settings, execution=execution)
    assert [p.buckets_done for p in seen] == list(range(1, report.buckets + 1))
    assert {p.buckets for p in seen} == {report.buckets}
    assert seen[-1].readings_done == report.readings_in
