"""What a run reports: its status and message, counts (readings and events), checks, rejected
batches, readings and events set aside, step timings and the processes that ran its bucket
tasks (``glucosestream run`` prints it; the metadata store keeps it with the run's record)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from glucosestream.pipeline.bucket_task import BucketOutcome
from glucosestream.quality import CheckResult

__all__ = [
    "RejectedBatch",
    "RunReport",
    "RunStatus",
    "SetAside",
    "StepTiming",
    "WorkerFigures",
    "by_reason",
    "set_aside_of",
    "worker_figures",
]

RunStatus = Literal["published", "noop", "rejected", "failed"]


@dataclass(frozen=True, slots=True)
class StepTiming:
    step: str
    duration_ms: int


@dataclass(frozen=True, slots=True)
class RejectedBatch:
    batch_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class SetAside:
    """Readings of one raw batch the run kept out for one reason (a row check's name)."""

    batch_id: str
    reason: str
    rows: int


@dataclass(frozen=True, slots=True)
class WorkerFigures:
    """What one process did for a run: its bucket tasks, their seconds, its own peak memory."""

    worker: str  # host:pid ("coordinator" for the run's own process)
    tasks: int
    seconds: float
    peak_rss_bytes: int


@dataclass(frozen=True, slots=True)
class RunReport:
    run_id: str
    status: RunStatus
    message: str
    batches: int
    readings_in: int
    readings_new: int
    duplicates: int
    patient_days: int
    checks: tuple[CheckResult, ...]
    rejected: tuple[RejectedBatch, ...]
    recovered: bool
    steps: tuple[StepTiming, ...]
    duration_ms: int
    set_aside: tuple[SetAside, ...] = ()
    executor: str = "inline"
    buckets: int = 0
    planned_readings: int = 0  # what the plan sized the buckets for: new and history
    workers: tuple[WorkerFigures, ...] = ()
    events_in: int = 0  # the events of the run's batches
    events_new: int = 0  # those curated.events gained
    events_duplicates: int = 0  # already there, or twice in the run
    events_set_aside: tuple[SetAside, ...] = ()  # kept out by an event row check

    @property
    def failed_checks(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.checks if not c.passed)

    @property
    def readings_set_aside(self) -> int:
        return sum(s.rows for s in self.set_aside)

    @property
    def events_set_aside_rows(self) -> int:
        return sum(s.rows for s in self.events_set_aside)


def worker_figures(outcomes: Iterable[BucketOutcome]) -> tuple[WorkerFigures, ...]:
    """Per process that ran bucket tasks: how many, their seconds, its peak memory."""
    by_worker: dict[str, list[BucketOutcome]] = {}
    for outcome in outcomes:
        by_worker.setdefault(outcome.worker, []).append(outcome)
    return tuple(
        WorkerFigures(
            worker=worker,
            tasks=len(done),
            seconds=round(sum(sum(o.seconds.values()) for o in done), 3),
            peak_rss_bytes=max(o.peak_rss_bytes for o in done),
        )
        for worker, done in sorted(by_worker.items())
    )


def set_aside_of(
    outcomes: Iterable[BucketOutcome], *, events: bool = False
) -> tuple[SetAside, ...]:
    """Readings (``events``: events) set aside over the buckets, per batch and reason."""
    counts: dict[tuple[str, str], int] = {}
    for outcome in outcomes:
        found = outcome.event_set_aside_counts if events else outcome.set_aside_counts
        for key, n in found.items():
            counts[key] = counts.get(key, 0) + n
    return tuple(SetAside(b, r, n) for (b, r), n in sorted(counts.items()))


def by_reason(aside: Iterable[SetAside]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in aside:
        out[s.reason] = out.get(s.reason, 0) + s.rows
    return out
