"""A run's plan: which raw batches it loads and which buckets of patients its tasks work on.

The plan is the first step of a run and its only input to the bucket tasks: it is written to
the staging zone (``staging/<run_id>/attempt-<n>/plan.json``), and a task needs nothing but the
lake's settings, the run id, the attempt and its bucket's number to find its work.

**Memory by design.** The planner sizes buckets by the readings a task will read: the new
readings plus the curated history the run must read with them (from a fortnight and a day before
the earliest new reading, so a closing period is covered; everything for a full refresh), counted
from the table's manifests (``lake.readings_since``). It takes the fewest key digits (1, 16, 256
or 4,096 buckets) that keep every task under the memory budget (``TASK_BASE_BYTES`` plus
``BYTES_PER_READING`` per reading, for the most it may read) and at about
``pipeline.readings_per_task`` readings (4 million by default) or fewer of what it typically reads
(as much history as new readings, in an incremental run). Neither much bigger tasks (the sorts
and the partition split of a task's writes grow faster than its readings: one task of 7.76
million readings took 39 s where sixteen took 22 s) nor many more: every task pays a fixed cost
(opening the lake, planning its scans over the table's manifests, a file per day partition),
which at 256 buckets of a 10,000-patient run outweighed the work (docs/decisions.md).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.config import Settings
from glucosestream.errors import ConfigError
from glucosestream.lake import (
    Lakehouse,
    PublishedSnapshots,
    RawBatch,
    StagingZone,
    readings_since,
)
from glucosestream.pipeline.buckets import SplitOutcome, SplitTask, key_prefixes, split_batch
from glucosestream.pipeline.event_merge import has_events

__all__ = [
    "BYTES_PER_READING",
    "MAX_WIDTH",
    "TASK_BASE_BYTES",
    "BucketPlan",
    "RunPlan",
    "choose_width",
    "plan_run",
]

log = logging.getLogger(__name__)

# A bucket task's peak memory: a process's own (imports, kernels, pools) and so much per reading
# it reads, new and history (measured with benchmarks/bench_pipeline.py: docs/decisions.md,
# "Scale-out").
TASK_BASE_BYTES: Final = 512 * 1024**2
BYTES_PER_READING: Final = 850
MAX_WIDTH: Final = 3  # 4,096 buckets
# History an incremental task reads before its earliest new reading: a closing fortnight and
# a day (pipeline.steps reads from 26 hours before it, or from the day before the first period).
_HISTORY_SPAN: Final = dt.timedelta(days=15)

T = TypeVar("T")
R = TypeVar("R")
RunTasks = Callable[[Callable[[T], R], Sequence[T]], list[R]]


@dataclass(frozen=True, slots=True)
class BucketPlan:
    prefix: str  # the patients whose key starts with it ("" for a one-bucket run)
    raw_batches: tuple[str, ...]  # a one-bucket run: the raw batches themselves
    parts: tuple[str, ...]  # otherwise: the bucket's staged parts of them
    incoming_rows: int
    patient_keys: tuple[str, ...] = ()  # a full refresh: every registered patient of the bucket
    batch_ids: tuple[str, ...] = ()  # the raw batches with readings in it
    event_batch_ids: tuple[str, ...] = ()  # the raw batches with events of its patients


@dataclass(frozen=True, slots=True)
class RunPlan:
    run_id: str
    attempt: int  # a run stages again (attempt + 1) without the batches it rejected
    computed_at: dt.datetime
    full_refresh: bool
    published: PublishedSnapshots | None
    batch_ids: tuple[str, ...]
    width: int
    estimated_readings: int  # what the run's tasks read in all, as the width was chosen from
    buckets: tuple[BucketPlan, ...]

    def path(self, staging: StagingZone) -> str:
        return plan_path(staging, self.run_id, self.attempt)

    def to_json(self) -> dict[str, Any]:
        published = None
        if self.published is not None:
            published = {
                "run_id": self.published.run_id,
                "snapshot_ids": dict(self.published.snapshot_ids),
            }
        return {
            "run_id": self.run_id,
            "attempt": self.attempt,
            "computed_at": self.computed_at.isoformat(),
            "full_refresh": self.full_refresh,
            "published": published,
            "batch_ids": list(self.batch_ids),
            "width": self.width,
            "estimated_readings": self.estimated_readings,
            "buckets": [
                {
                    "prefix": b.prefix,
                    "raw_batches": list(b.raw_batches),
                    "parts": list(b.parts),
                    "incoming_rows": b.incoming_rows,
                    "patient_keys": list(b.patient_keys),
                    "batch_ids": list(b.batch_ids),
                    "event_batch_ids": list(b.event_batch_ids),
                }
                for b in self.buckets
            ],
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> RunPlan:
        published = document["published"]
        return cls(
            run_id=document["run_id"],
            attempt=document["attempt"],
            computed_at=dt.datetime.fromisoformat(document["computed_at"]),
            full_refresh=document["full_refresh"],
            published=None
            if published is None
            else PublishedSnapshots(published["run_id"], published["snapshot_ids"]),
            batch_ids=tuple(document["batch_ids"]),
            width=document["width"],
            estimated_readings=document["estimated_readings"],
            buckets=tuple(
                BucketPlan(
                    prefix=b["prefix"],
                    raw_batches=tuple(b["raw_batches"]),
                    parts=tuple(b["parts"]),
                    incoming_rows=b["incoming_rows"],
                    patient_keys=tuple(b["patient_keys"]),
                    batch_ids=tuple(b["batch_ids"]),
                    event_batch_ids=tuple(b.get("event_batch_ids", ())),
                )
                for b in document["buckets"]
            ),
        )


def plan_path(staging: StagingZone, run_id: str, attempt: int) -> str:
    return staging.run_path(run_id, f"attempt-{attempt}", "plan.json")


def read_plan(staging: StagingZone, run_id: str, attempt: int) -> RunPlan:
    return RunPlan.from_json(staging.read_json(plan_path(staging, run_id, attempt)))


def choose_width(
    readings: int, most_readings: int, memory_budget: int, readings_per_task: int
) -> int:
    """The fewest key digits (at most ``MAX_WIDTH``) whose buckets each read about
    ``readings_per_task`` or fewer of the ``readings`` a run typically reads, and fit
    ``memory_budget`` bytes with the ``most_readings`` it may read."""
    per_task = (memory_budget - TASK_BASE_BYTES) // BYTES_PER_READING
    if per_task < 1:
        raise ConfigError(
            f"a memory budget of {memory_budget:,} bytes leaves nothing for readings after a "
            f"task's own {TASK_BASE_BYTES // 1024**2} MiB; raise --memory-budget"
        )
    if readings_per_task < 1:
        raise ConfigError(
            f"pipeline.readings_per_task is {readings_per_task}; set it to 1 or more "
            "(GLUCOSESTREAM_PIPELINE__READINGS_PER_TASK)"
        )
    needed = max(math.ceil(readings / readings_per_task), math.ceil(most_readings / per_task), 1)
    width = 0
    while 16**width < needed and width < MAX_WIDTH:
        width += 1
    if 16**width * per_task < most_readings:
        log.warning(
            "plan: %d readings need %d buckets to stay under a memory budget of %d bytes; "
            "using %d (raise --memory-budget)",
            most_readings, needed, memory_budget, 16**width,
        )  # fmt: skip
    return width


@dataclass(frozen=True, slots=True)
class PlanInputs:
    """What the coordinator knows when it plans."""

    settings: Settings
    run_id: str
    attempt: int
    computed_at: dt.datetime
    full_refresh: bool
    published: PublishedSnapshots | None
    patient_keys: tuple[str, ...]  # a full refresh: every registered patient
    memory_budget: int


def plan_run(
    inputs: PlanInputs,
    pending: Sequence[RawBatch],
    lake: Lakehouse,
    staging: StagingZone,
    run_tasks: RunTasks[SplitTask, SplitOutcome],
) -> RunPlan:
    """Choose the buckets, split the batches into them (tasks, when there is more than one
    bucket) and write the plan."""
    incoming = sum(b.row_count() for b in pending)
    events = {b.batch_id: b.events() for b in pending if has_events(b)}
    history = _history_estimate(inputs, pending, lake, events)
    # Typically an incremental task reads about as much history as new readings (26 hours
    # before the earliest); when a period closes, up to 15 days: the memory budget allows for
    # that, the speed sizing for the typical case (a full refresh reads all of it either way).
    typical = incoming + (history if inputs.full_refresh else min(history, incoming))
    readings_per_task = inputs.settings.pipeline.readings_per_task
    width = choose_width(typical, incoming + history, inputs.memory_budget, readings_per_task)
    if width == 0:
        ids = tuple(b.batch_id for b in pending)
        raw, parts = _one_bucket_inputs(inputs, pending, staging)
        buckets: tuple[BucketPlan, ...] = (
            BucketPlan("", raw, parts, incoming, inputs.patient_keys, ids, tuple(events)),
        )
    else:
        tasks = [
            SplitTask(inputs.settings, inputs.run_id, inputs.attempt, b.batch_id, width)
            for b in pending
        ]
        splits = run_tasks(split_batch, tasks)
        buckets = _buckets(width, splits, inputs.patient_keys, _event_prefixes(events, width))
    plan = RunPlan(
        run_id=inputs.run_id,
        attempt=inputs.attempt,
        computed_at=inputs.computed_at,
        full_refresh=inputs.full_refresh,
        published=inputs.published,
        batch_ids=tuple(b.batch_id for b in pending),
        width=width,
        estimated_readings=incoming + history,
        buckets=buckets,
    )
    staging.write_json(plan.path(staging), plan.to_json())
    return plan


def _one_bucket_inputs(
    inputs: PlanInputs, pending: Sequence[RawBatch], staging: StagingZone
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A one-bucket run's inputs: the raw batches discover did not read, and one staged part
    holding the readings of those it read (its task opens one file, not one per batch: with
    a batch per upload, thousands)."""
    read = [b.readings() for b in pending if b.contents and b.contents.readings is not None]
    raw = tuple(b.batch_id for b in pending if not (b.contents and b.contents.readings is not None))
    if len(read) < 2:
        return tuple(b.batch_id for b in pending), ()
    path = staging.run_path(inputs.run_id, f"attempt-{inputs.attempt}", "incoming", "read.arrow")
    staging.write_table(path, pa.concat_tables(read).combine_chunks())
    return raw, (path,)


def _event_prefixes(events: Mapping[str, pa.Table], width: int) -> dict[str, tuple[str, ...]]:
    """The batches with events of each key prefix (of ``width`` digits), in batch order."""
    prefixes: dict[str, list[str]] = {}
    for batch_id, rows in sorted(events.items()):
        found = pc.unique(pc.utf8_slice_codeunits(rows["patient_key"], 0, width)).to_pylist()
        for prefix in found:
            prefixes.setdefault(prefix, []).append(batch_id)
    return {prefix: tuple(ids) for prefix, ids in prefixes.items()}


def _buckets(
    width: int,
    splits: Sequence[SplitOutcome],
    patient_keys: Sequence[str],
    event_batches: Mapping[str, tuple[str, ...]],
) -> tuple[BucketPlan, ...]:
    """A bucket for every prefix with incoming readings or events or (a full refresh) a
    patient."""
    keys: dict[str, list[str]] = {}
    for key in patient_keys:
        keys.setdefault(key[:width], []).append(key)
    buckets = []
    for prefix in key_prefixes(width):
        holding = [s for s in splits if prefix in s.parts]
        if not holding and prefix not in keys and prefix not in event_batches:
            continue
        parts = [s.parts[prefix] for s in holding]
        rows = sum(n for _, n in parts)
        paths = tuple(p for p, _ in parts)
        batch_ids = tuple(s.batch_id for s in holding)
        patients = tuple(keys.get(prefix, ()))
        with_events = event_batches.get(prefix, ())
        buckets.append(BucketPlan(prefix, (), paths, rows, patients, batch_ids, with_events))
    return tuple(buckets)


def _history_estimate(
    inputs: PlanInputs,
    pending: Sequence[RawBatch],
    lake: Lakehouse,
    events: Mapping[str, pa.Table],
) -> int:
    """Curated readings the run's tasks will read with the new readings and events (an upper
    bound)."""
    snapshot = None if inputs.published is None else inputs.published.of("readings")
    if inputs.full_refresh:
        return readings_since(lake, snapshot, None)
    with_readings = [b for b in pending if b.row_count()]
    earliest = [t for t in (b.earliest_reading() for b in with_readings) if t is not None]
    if not earliest and with_readings:  # no statistics: count everything, to be safe
        return readings_since(lake, snapshot, None)
    earliest += [pc.min(rows["ts"]).as_py() for rows in events.values() if rows.num_rows]
    if not earliest:
        return 0
    try:
        since: dt.datetime | None = min(earliest) - _HISTORY_SPAN
    except OverflowError:  # a reading dated near year 1: the row checks set it aside later
        since = None
    return readings_since(lake, snapshot, since)
