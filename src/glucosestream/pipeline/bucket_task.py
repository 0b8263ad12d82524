"""A bucket task: one bucket of one run's plan, merged, transformed and checked, its tables
written to the staging zone. A pure function of the plan and the bucket.

``run_bucket_task`` needs nothing but its ``BucketTask`` (the settings, hence the lake, the run
id, the attempt and the bucket's number): it reads the plan and its bucket's incoming readings
from the lake, and the published snapshots the plan names. It runs the same in the coordinator
(inline), in a local worker process, or on a Ray node. It writes only files of its own (a
folder per attempt) and returns their names with the bucket's counts and checks: a task killed
or run twice leaves files nobody reads, and publish takes each bucket's outcome once.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import socket
import sys
import uuid
from dataclasses import dataclass
from importlib.metadata import version

import pyarrow as pa

from glucosestream.config import Settings
from glucosestream.engines import open_engine
from glucosestream.lake import (
    DataFile,
    DeviceRecord,
    Lakehouse,
    RawZone,
    Scope,
    StagingZone,
    open_lakehouse,
    open_storage,
)
from glucosestream.pipeline import steps, table_registry
from glucosestream.pipeline.event_merge import bucket_events
from glucosestream.pipeline.run_plan import BucketPlan, RunPlan, read_plan
from glucosestream.quality import CheckResult, count_set_aside
from glucosestream.readings import READING_SCHEMA

__all__ = ["BucketOutcome", "BucketTask", "StagedTable", "run_bucket_task"]


@dataclass(frozen=True, slots=True)
class BucketTask:
    settings: Settings
    run_id: str
    attempt: int
    bucket: int  # its index in the plan's buckets
    threads: int = 0  # cores the task may use; 0: every core


@dataclass(frozen=True, slots=True)
class StagedTable:
    """One table's rows of a bucket: in a staged file with the published rows they replace,
    or (a table runs append to) already written as the table's own data files, which publish
    commits."""

    path: str
    rows: int
    scope: Scope
    data_files: tuple[DataFile, ...] = ()


@dataclass(frozen=True, slots=True)
class BucketOutcome:
    prefix: str
    incoming_rows: int
    staged: dict[str, StagedTable]  # by the table's short key: one per entry of the registry
    set_aside: StagedTable  # quality.SET_ASIDE_SCHEMA rows
    set_aside_counts: dict[tuple[str, str], int]  # (batch_id, reason) -> readings
    incoming_events: int
    event_set_aside: StagedTable  # the same for events
    event_set_aside_counts: dict[tuple[str, str], int]  # (batch_id, reason) -> events
    days: int
    period_count: int
    devices: tuple[DeviceRecord, ...]
    checks: tuple[CheckResult, ...]
    seconds: dict[str, float]  # by step (merge, transform, audit, stage)
    peak_rss_bytes: int  # the process's own peak, as the task ended
    worker: str  # host:pid
    version: str  # glucosestream's version where it ran

    @property
    def new_readings(self) -> int:
        return self.staged["readings"].rows

    @property
    def new_events(self) -> int:
        return self.staged["events"].rows


def run_bucket_task(task: BucketTask) -> BucketOutcome:
    """Merge, transform and check the task's bucket; stage its tables."""
    settings = task.settings
    storage = open_storage(settings.lake)
    staging = StagingZone(storage)
    plan = read_plan(staging, task.run_id, task.attempt)
    planned = plan.buckets[task.bucket]
    timer = steps.StepSeconds()
    engine_settings = settings.engine
    if task.threads and not engine_settings.threads:
        engine_settings = dataclasses.replace(engine_settings, threads=task.threads)
    engine = open_engine(engine_settings)
    try:
        with timer.step("merge"):
            raw = RawZone(storage)
            arrived = _arrived(planned, raw, staging)
            events = bucket_events(raw, planned.event_batch_ids, planned.prefix)
        lake = open_lakehouse(settings.lake, table_registry.TABLES)
        work = steps.BucketWork(
            engine=engine,
            lake=lake,
            published=plan.published,
            quality=settings.quality,
            run_id=plan.run_id,
            computed_at=plan.computed_at,
            full_refresh=plan.full_refresh,
            threads=task.threads or None,
        )
        bucket = steps.Bucket(planned.prefix, arrived, planned.patient_keys, events)
        tables = steps.process_bucket(work, bucket, timer)
    finally:
        engine.close()
    with timer.step("stage"):
        return _stage(plan, tables, lake, staging, timer.totals)


def _arrived(planned: BucketPlan, raw: RawZone, staging: StagingZone) -> pa.Table:
    """The bucket's incoming readings: its raw batches (a one-bucket run) or its parts."""
    tables = [raw.batch(b).readings() for b in planned.raw_batches]
    tables += [staging.read_table(p) for p in planned.parts]
    if not tables:
        return READING_SCHEMA.empty_table()
    return pa.concat_tables([t.cast(READING_SCHEMA) for t in tables])


def _stage(
    plan: RunPlan,
    tables: steps.BucketTables,
    lake: Lakehouse,
    staging: StagingZone,
    seconds: dict[str, float],
) -> BucketOutcome:
    """The bucket's rows of each table: an appended table's as its data files (written here,
    in parallel with the other tasks, instead of by publish), the others as staged files."""
    folder = staging.run_path(
        plan.run_id,
        f"attempt-{plan.attempt}",
        "buckets",
        tables.prefix or "all",
        uuid.uuid4().hex[:12],
    )
    staged = {}
    for short, (rows, scope) in tables.tables.items():
        if lake.specs[short].write == "append":
            files = tuple(lake.write_data_files(short, rows))
            staged[short] = StagedTable("", rows.num_rows, scope, files)
            continue
        staging.write_table(f"{folder}/{short}.arrow", rows)
        staged[short] = StagedTable(f"{folder}/{short}.arrow", rows.num_rows, scope)
    staging.write_table(f"{folder}/set_aside.arrow", tables.set_aside)
    set_aside = StagedTable(f"{folder}/set_aside.arrow", tables.set_aside.num_rows, Scope())
    staging.write_table(f"{folder}/event_set_aside.arrow", tables.event_set_aside)
    event_set_aside = StagedTable(
        f"{folder}/event_set_aside.arrow", tables.event_set_aside.num_rows, Scope()
    )
    return BucketOutcome(
        prefix=tables.prefix,
        incoming_rows=tables.incoming_rows,
        staged=staged,
        set_aside=set_aside,
        set_aside_counts=count_set_aside(tables.set_aside),
        incoming_events=tables.incoming_events,
        event_set_aside=event_set_aside,
        event_set_aside_counts=count_set_aside(tables.event_set_aside),
        days=tables.days,
        period_count=tables.period_count,
        devices=tables.devices,
        checks=tables.checks,
        seconds=seconds,
        peak_rss_bytes=_peak_rss_bytes(),
        worker=f"{socket.gethostname()}:{os.getpid()}",
        version=version("glucosestream"),
    )


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux counts kilobytes
