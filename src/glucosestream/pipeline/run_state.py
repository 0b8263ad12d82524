"""The state of one run and its steps, wherever they run: in one process (``runner``) or each
in its own (``stepwise``: AWS Step Functions, whose state between steps is saved in the run's
staging folder, ``run.json``).

A run begins (recover, discover), plans an attempt, runs its bucket tasks, audits them, rejects
the batches the audit blames and plans again without them, then concludes: publishes, or closes
as rejected or failed. ``Run.finish`` builds the report and closes the run's record; only a
``finish`` with snapshots records a publish.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from glucosestream.clock import Clock
from glucosestream.config import Settings
from glucosestream.lake import (
    PublishedSnapshots,
    RawBatch,
    RawZone,
    StagingZone,
    open_lakehouse,
    open_metadata,
    open_storage,
)
from glucosestream.pipeline import steps, table_registry
from glucosestream.pipeline.bucket_task import BucketOutcome, BucketTask, run_bucket_task
from glucosestream.pipeline.discovery import describe_error, discover
from glucosestream.pipeline.execution import Execution, ProgressMeter, TaskRunner
from glucosestream.pipeline.run_plan import PlanInputs, RunPlan, plan_run
from glucosestream.pipeline.run_publish import publish, reconcile, set_aside_rows_of
from glucosestream.pipeline.run_report import (
    RejectedBatch,
    RunReport,
    RunStatus,
    SetAside,
    StepTiming,
    by_reason,
    set_aside_of,
    worker_figures,
)
from glucosestream.quality import (
    QualityReport,
    RunAccounts,
    check_reconciliation,
    combine,
    event_row_check_results,
    row_check_results,
)

__all__ = ["Audit", "Run", "Staged"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Audit:
    """An attempt's bucket outcomes, audited over the run."""

    outcomes: tuple[BucketOutcome, ...]
    accounts: RunAccounts
    quality: QualityReport
    set_aside: tuple[SetAside, ...]
    event_set_aside: tuple[SetAside, ...] = ()


@dataclass(frozen=True, slots=True)
class Staged:
    """The last attempt of a run, audited, with what the run rejected on the way."""

    plan: RunPlan
    audit: Audit
    pending: tuple[RawBatch, ...]
    rejections: tuple[RejectedBatch, ...]


@dataclass(slots=True)
class RunMemory:
    """What a run carries from step to step (saved between the processes of a stepwise run)."""

    run_id: str
    started_at: dt.datetime
    started_wall: float  # time.time() as it began: a run's duration spans its processes
    full_refresh: bool = False
    recovered: bool = False
    published: PublishedSnapshots | None = None
    unreadable: tuple[RejectedBatch, ...] = ()  # batches discover rejected
    rejections: tuple[RejectedBatch, ...] = ()  # batches the audit (or a failed task) blamed
    pending: tuple[str, ...] = ()  # batch ids the current attempt loads
    attempt: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        published = self.published
        return {
            "run_id": self.run_id,
            "started_at": self.started_at.isoformat(),
            "started_wall": self.started_wall,
            "full_refresh": self.full_refresh,
            "recovered": self.recovered,
            "published": None
            if published is None
            else {"run_id": published.run_id, "snapshot_ids": dict(published.snapshot_ids)},
            "unreadable": [[r.batch_id, r.reason] for r in self.unreadable],
            "rejections": [[r.batch_id, r.reason] for r in self.rejections],
            "pending": list(self.pending),
            "attempt": self.attempt,
            "seconds": self.seconds,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunMemory:
        published = d["published"]
        return cls(
            run_id=d["run_id"],
            started_at=dt.datetime.fromisoformat(d["started_at"]),
            started_wall=float(d["started_wall"]),
            full_refresh=bool(d["full_refresh"]),
            recovered=bool(d["recovered"]),
            published=None
            if published is None
            else PublishedSnapshots(published["run_id"], published["snapshot_ids"]),
            unreadable=tuple(RejectedBatch(b, r) for b, r in d["unreadable"]),
            rejections=tuple(RejectedBatch(b, r) for b, r in d["rejections"]),
            pending=tuple(d["pending"]),
            attempt=int(d["attempt"]),
            seconds={str(k): float(v) for k, v in d["seconds"].items()},
        )


class Run:
    """One run: its memory, clock, timings, and the stores it writes to."""

    def __init__(
        self,
        settings: Settings,
        now: Clock,
        execution: Execution,
        memory: RunMemory | None = None,
        *,
        full_refresh: bool = False,
    ) -> None:
        self.settings = settings
        self.now = now
        self.execution = execution
        self.open = memory is not None  # its record is "running": a resumed run's is
        if memory is None:
            started_at = now()
            run_id = f"run-{started_at:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:6]}"
            memory = RunMemory(run_id, started_at, time.time(), full_refresh)
        self.memory = memory
        self.run_id = memory.run_id
        self.started_at = memory.started_at
        self.timer = steps.StepSeconds()
        self.timer.totals.update(memory.seconds)
        self.meta = open_metadata(settings.lake)
        self.lake = open_lakehouse(settings.lake, table_registry.TABLES)
        self.storage = open_storage(settings.lake)
        self.staging = StagingZone(self.storage)
        self.tasks = TaskRunner(execution)
        self.executor_name = ""  # what the report names; empty: the task runner's executor

    def begin(self) -> list[RawBatch] | RunReport:
        """Open the run's record, recover, discover: the pending batches, or the report of a
        run with nothing to do."""
        self.meta.start_run(self.run_id, self.started_at)
        self.open = True
        with self.timer.step("recover"):
            self.memory.published = self.meta.published()
            self.memory.recovered = self.lake.recover(self.memory.published)
            for stale in self.staging.remove_other_runs(self.run_id):
                log.warning("recover removed the staging folder of run %s", stale)
        with self.timer.step("discover"):
            found = discover(
                self.meta,
                RawZone(self.storage),
                self.run_id,
                self.started_at,
                sweep=self.settings.pipeline.sweep_raw_zone,
            )
        self.memory.unreadable = tuple(RejectedBatch(b, r) for b, r in found.unreadable.items())
        if not found.pending and not self.memory.full_refresh:
            if self.memory.unreadable:
                return self.finish("rejected", all_rejected(len(self.memory.unreadable)))
            return self.finish("noop", "no new raw batches since the last run; nothing to do")
        return found.pending

    def plan(self, pending: Sequence[RawBatch], attempt: int) -> RunPlan:
        """Plan an attempt over ``pending`` (and write the plan to the staging zone)."""
        self.memory.pending = tuple(b.batch_id for b in pending)
        self.memory.attempt = attempt
        keys = tuple(self.meta.patient_keys()) if self.memory.full_refresh else ()
        with self.timer.step("plan"):
            return plan_run(
                PlanInputs(
                    settings=self.settings,
                    run_id=self.run_id,
                    attempt=attempt,
                    computed_at=self.started_at,
                    full_refresh=self.memory.full_refresh,
                    published=self.memory.published,
                    patient_keys=keys,
                    memory_budget=self.execution.budget,
                ),
                pending,
                self.lake,
                self.staging,
                self.tasks.run,
            )

    def pending(self) -> list[RawBatch]:
        """The batches of the current attempt (by their ids in the run's memory)."""
        raw = RawZone(self.storage)
        return [raw.batch(batch_id) for batch_id in self.memory.pending]

    def bucket_tasks(self, plan: RunPlan) -> tuple[BucketOutcome, ...]:
        """Every bucket's task, wherever they run; their step seconds added to the timer."""
        buckets = len(plan.buckets)
        if self.tasks.parallel(buckets):
            self.tasks.open()
        tasks = [
            BucketTask(self.settings, plan.run_id, plan.attempt, n, self.tasks.threads_per_task)
            for n in range(buckets)
        ]
        meter = ProgressMeter(self.execution, buckets)

        def finished(_: int, outcome: BucketOutcome) -> None:
            meter.finished(outcome.incoming_rows)

        outcomes = tuple(self.tasks.run(run_bucket_task, tasks, finished))
        self.add_task_seconds(outcomes)
        return outcomes

    def add_task_seconds(self, outcomes: Sequence[BucketOutcome]) -> None:
        for outcome in outcomes:
            for step, seconds in outcome.seconds.items():
                self.timer.totals[step] = self.timer.totals.get(step, 0.0) + seconds

    def audit(self, pending: Sequence[RawBatch], outcomes: tuple[BucketOutcome, ...]) -> Audit:
        """Every check over the attempt's buckets: row checks, the buckets' own, the accounts."""
        with self.timer.step("audit"):
            accounts = reconcile(pending, outcomes)
            aside = set_aside_of(outcomes)
            events_aside = set_aside_of(outcomes, events=True)
            checks = (
                *row_check_results(by_reason(aside)),
                *event_row_check_results(by_reason(events_aside)),
                *combine([o.checks for o in outcomes]),
                check_reconciliation(accounts),
            )
            return Audit(outcomes, accounts, QualityReport(checks), aside, events_aside)

    def reject(self, reasons: dict[str, str], pending: Sequence[RawBatch]) -> list[RawBatch]:
        """Record the batches in ``reasons`` as rejected; the pending batches left."""
        for batch_id, reason in sorted(reasons.items()):
            self.meta.reject_batches([batch_id], self.run_id, reason)
            self.memory.rejections += (RejectedBatch(batch_id, reason),)
        return [b for b in pending if b.batch_id not in reasons]

    def stage_until_clean(self, pending: list[RawBatch]) -> Staged:
        """Plan, run and audit attempts in this process until one is clean or nothing is left
        to load (each without the batches the last one's audit blamed)."""
        attempt = 0
        while True:
            plan = self.plan(pending, attempt)
            audit = self.audit(pending, self.bucket_tasks(plan))
            culprits = blamed(audit.quality)
            if not culprits:
                break
            pending = self.reject(culprits, pending)
            if not pending and not self.memory.full_refresh:
                break
            attempt += 1
        return Staged(plan, audit, tuple(pending), self.memory.rejections)

    def conclude(self, staged: Staged, confirm_lock: Callable[[], None]) -> RunReport:
        """The run's end after its last attempt: every batch rejected, the gate failed with no
        batch to blame, or the publish (``confirm_lock`` first: the lock is still this run's)."""
        if staged.rejections and not staged.pending and not self.memory.full_refresh:
            rejected = len(staged.rejections) + len(self.memory.unreadable)
            return self.finish("rejected", all_rejected(rejected), staged)
        quality = staged.audit.quality
        if not quality.passed:
            return self.finish(
                "failed",
                f"quality gate failed ({', '.join(quality.failed)}) with no batch to blame; "
                "nothing was published and the batches stay pending",
                staged,
            )
        confirm_lock()
        with self.timer.step("publish"):
            snapshots = publish(self.lake, self.staging, staged.audit.outcomes, self.run_id)
        message = _published_message(staged, len(self.memory.unreadable))
        return self.finish("published", message, staged, snapshots)

    def finish(
        self,
        status: RunStatus,
        message: str,
        staged: Staged | None = None,
        snapshots: PublishedSnapshots | None = None,
    ) -> RunReport:
        """Build the report and close the run; with ``snapshots`` this is the publish."""
        counts = _EMPTY if staged is None else _counts(staged, published=snapshots is not None)
        rejected = (*self.memory.unreadable, *(() if staged is None else staged.rejections))
        report = RunReport(
            run_id=self.run_id,
            status=status,
            message=message,
            recovered=self.memory.recovered,
            steps=self.timings(),
            duration_ms=round((time.time() - self.memory.started_wall) * 1000),
            executor=self.executor_name or self.tasks.name,
            **{**counts, "rejected": rejected},  # type: ignore[arg-type]
        )
        loaded = staged if snapshots is not None else None  # what the publish records
        outcomes = () if loaded is None else loaded.audit.outcomes
        self.meta.finish_run(
            self.run_id,
            status=status,
            finished_at=self.now(),
            report=asdict(report),
            checks=report.checks,
            published=snapshots,
            loaded_batch_ids=[] if loaded is None else [b.batch_id for b in loaded.pending],
            devices=[d for o in outcomes for d in o.devices],
            set_aside_rows=set_aside_rows_of(self.staging, outcomes),
        )
        self.open = False
        log.info(
            "run run_id=%s status=%s batches=%d rows_in=%d rows_new=%d duplicates=%d "
            "set_aside=%d events_in=%d events_new=%d events_duplicates=%d events_set_aside=%d "
            "patient_days=%d rejected=%d buckets=%d executor=%s duration_ms=%d",
            self.run_id, status, report.batches, report.readings_in, report.readings_new,
            report.duplicates, report.readings_set_aside, report.events_in, report.events_new,
            report.events_duplicates, report.events_set_aside_rows, report.patient_days,
            len(report.rejected), report.buckets, report.executor, report.duration_ms,
        )  # fmt: skip
        return report

    def fail(self, err: BaseException | str) -> None:
        """Close the run's record as "failed" with ``err`` (if it is still open); an error
        while doing so is logged, never raised over ``err``."""
        if not self.open:
            return
        why = err if isinstance(err, str) else describe_error(err)
        message = (
            f"the run stopped on an error and published nothing: {why}; the batches stay "
            "pending for the next run (`glucosestream run --debug` shows where it stopped)"
        )
        try:
            self.finish("failed", message)
        except Exception as second:
            log.error("run run_id=%s could not be closed as failed: %s", self.run_id, second)

    def timings(self) -> tuple[StepTiming, ...]:
        """The steps' milliseconds, in the order of ``steps.STEPS``."""
        totals = self.timer.totals
        return tuple(StepTiming(s, round(totals[s] * 1000)) for s in steps.STEPS if s in totals)

    def remember(self) -> RunMemory:
        """The run's memory with its step seconds so far (to save between processes)."""
        self.memory.seconds = dict(self.timer.totals)
        return self.memory


def blamed(quality: QualityReport) -> dict[str, str]:
    """The batches an audit that failed blames, with the reason for each (none: it passed, or
    its failure blames no batch)."""
    if quality.passed or not quality.attributable:
        return {}
    return {
        batch_id: "; ".join(
            f"{c.name}: {c.detail}"
            for c in quality.checks
            if not c.passed and batch_id in c.batch_ids
        )
        for batch_id in sorted(quality.culprits)
    }


def all_rejected(batches: int) -> str:
    return f"every new batch was rejected ({batches}); nothing was published"


def _published_message(staged: Staged, unreadable: int) -> str:
    message = "published"
    if staged.audit.set_aside:
        reasons = by_reason(staged.audit.set_aside)
        why = ", ".join(f"{r} {n}" for r, n in sorted(reasons.items()))
        message += f"; {sum(reasons.values())} readings set aside ({why})"
    if staged.audit.event_set_aside:
        reasons = by_reason(staged.audit.event_set_aside)
        why = ", ".join(f"{r} {n}" for r, n in sorted(reasons.items()))
        message += f"; {sum(reasons.values())} events set aside ({why})"
    if staged.rejections or unreadable:
        message += f"; {len(staged.rejections) + unreadable} batches rejected"
    return message


def _counts(staged: Staged, *, published: bool) -> dict[str, object]:
    """Row counts of the run; a run that published nothing added no readings and no days."""
    accounts = staged.audit.accounts
    return {
        "batches": len(accounts.batches),
        "readings_in": accounts.incoming_rows,
        "readings_new": accounts.new_rows if published else 0,
        "duplicates": accounts.duplicates_at_merge,
        "patient_days": sum(o.days for o in staged.audit.outcomes) if published else 0,
        "checks": staged.audit.quality.checks,
        "set_aside": staged.audit.set_aside,
        "buckets": len(staged.plan.buckets),
        "planned_readings": staged.plan.estimated_readings,
        "workers": worker_figures(staged.audit.outcomes),
        "events_in": accounts.events_incoming,
        "events_new": accounts.events_new if published else 0,
        "events_duplicates": accounts.events_duplicates,
        "events_set_aside": staged.audit.event_set_aside,
    }


_EMPTY: dict[str, object] = {
    "batches": 0,
    "readings_in": 0,
    "readings_new": 0,
    "duplicates": 0,
    "patient_days": 0,
    "checks": (),
    "set_aside": (),
}
