"""One pipeline run, with write-audit-publish: a plan, bucket tasks, one publish.

recover (undo writes of a run that died before publishing, and remove its staging folder) →
discover (raw batches not yet loaded or rejected; none: nothing to do, and say so) → plan
(choose buckets of patients, split the batches into them, write the plan: ``run_plan``) →
bucket tasks, each merge (set aside the readings the row checks refuse, then each key once,
first arrival wins), transform (the tables' rows for the touched patient-days), check, and
stage its tables (``bucket_task``; in this process, worker processes or a Ray cluster:
``execution``) → audit (every check over the run) → publish (write every table of
``table_registry`` from the staged files, then record their snapshot ids, the loaded batches
and the set-aside readings in one metadata transaction: ``run_publish``).

A reading the run must not publish (``quality.row_checks``) is set aside alone, with its reason: its
batch, which may hold other clients' requests, is loaded without it. Only reconciliation blames
a whole batch (its file does not hold what it accepted): such a batch is rejected (recorded with
the reason, never loaded) and the run is staged again without it. A failure that blames no
batch publishes nothing and leaves the batches pending. An error anywhere in a run closes its
record as "failed" with the error, and the lock is released; a run killed outright is closed as
"abandoned" by the next one to take the lock (``lake.lock``).
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Literal

from glucosestream.clock import Clock, utc_now
from glucosestream.config import Settings
from glucosestream.lake import (
    PublishedSnapshots,
    RawBatch,
    RawZone,
    StagingZone,
    open_lakehouse,
    open_metadata,
    open_storage,
    run_lock,
)
from glucosestream.pipeline import steps, table_registry
from glucosestream.pipeline.bucket_task import BucketOutcome, BucketTask, run_bucket_task
from glucosestream.pipeline.execution import Execution, ProgressMeter, TaskRunner
from glucosestream.pipeline.run_plan import PlanInputs, RunPlan, plan_run
from glucosestream.pipeline.run_publish import publish, reconcile, set_aside_rows_of
from glucosestream.quality import (
    CheckResult,
    QualityReport,
    RunAccounts,
    check_reconciliation,
    combine,
    row_check_results,
)

__all__ = ["RejectedBatch", "RunReport", "SetAside", "StepTiming", "WorkerFigures", "run_pipeline"]

log = logging.getLogger(__name__)

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

    @property
    def failed_checks(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.checks if not c.passed)

    @property
    def readings_set_aside(self) -> int:
        return sum(s.rows for s in self.set_aside)


def run_pipeline(
    settings: Settings,
    *,
    full_refresh: bool = False,
    now: Clock = utc_now,
    execution: Execution | None = None,
) -> RunReport:
    """Run the pipeline once over the lake in ``settings``; the report says what happened.

    ``execution`` says where the bucket tasks run (default: worker processes on every core,
    when the run has more than one bucket) and the memory budget per task.

    Raises ``RunInProgress`` (retryable) if another run is working on the same lake. Any other
    error is raised after the run's record is closed as "failed" with it.
    """
    with run_lock(settings.lake, now=now):
        run = _Run(settings, now, full_refresh, execution or Execution())
        try:
            return _run_locked(run)
        except BaseException as err:
            run.fail(err)
            raise
        finally:
            run.tasks.close()
            run.staging.remove_run(run.run_id)


def _run_locked(run: _Run) -> RunReport:
    run.meta.start_run(run.run_id, run.started_at)
    run.open = True
    with run.timer.step("recover"):
        published = run.meta.published()
        run.recovered = run.lake.recover(published)
        for stale in run.staging.remove_other_runs(run.run_id):
            log.warning("recover removed the staging folder of run %s", stale)
    with run.timer.step("discover"):
        raw = RawZone(run.storage)
        found = steps.discover(run.meta, raw, run.run_id, run.started_at)
    run.unreadable = tuple(RejectedBatch(b, why) for b, why in found.unreadable.items())
    pending = found.pending
    if not pending and not run.full_refresh:
        if run.unreadable:
            return run.finish("rejected", _all_rejected(len(run.unreadable)))
        return run.finish("noop", "no new raw batches since the last run; nothing to do")

    staged = run.stage_until_clean(published, pending)
    if staged.rejections and not staged.pending and not run.full_refresh:
        rejected = len(staged.rejections) + len(run.unreadable)
        return run.finish("rejected", _all_rejected(rejected), staged)
    if not staged.quality.passed:
        failed = ", ".join(staged.quality.failed)
        return run.finish(
            "failed",
            f"quality gate failed ({failed}) with no batch to blame; nothing was published "
            "and the batches stay pending",
            staged,
        )
    with run.timer.step("publish"):
        snapshots = publish(run.lake, run.staging, staged.outcomes, run.run_id)
    return run.finish(
        "published", _published_message(staged, len(run.unreadable)), staged, snapshots
    )


def _timings(timer: steps.StepSeconds) -> tuple[StepTiming, ...]:
    """The steps' milliseconds, in the order of ``steps.STEPS``."""
    totals = timer.totals
    return tuple(StepTiming(s, round(totals[s] * 1000)) for s in steps.STEPS if s in totals)


def _all_rejected(batches: int) -> str:
    return f"every new batch was rejected ({batches}); nothing was published"


def _published_message(staged: _Staged, unreadable: int) -> str:
    message = "published"
    if staged.set_aside:
        reasons = _by_reason(staged.set_aside)
        why = ", ".join(f"{r} {n}" for r, n in sorted(reasons.items()))
        message += f"; {sum(reasons.values())} readings set aside ({why})"
    if staged.rejections or unreadable:
        message += f"; {len(staged.rejections) + unreadable} batches rejected"
    return message


@dataclass(frozen=True, slots=True)
class _Staged:
    plan: RunPlan
    outcomes: tuple[BucketOutcome, ...]
    accounts: RunAccounts
    quality: QualityReport
    pending: tuple[RawBatch, ...]
    rejections: tuple[RejectedBatch, ...]
    set_aside: tuple[SetAside, ...]


class _Run:
    """The state of one run: its id, clock, timings, and the stores it writes to."""

    def __init__(
        self, settings: Settings, now: Clock, full_refresh: bool, execution: Execution
    ) -> None:
        self.settings = settings
        self.now = now
        self.full_refresh = full_refresh
        self.execution = execution
        self.started = time.perf_counter()
        self.started_at = now()
        self.run_id = f"run-{self.started_at:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:6]}"
        self.timer = steps.StepSeconds()
        self.meta = open_metadata(settings.lake)
        self.lake = open_lakehouse(settings.lake, table_registry.TABLES)
        self.storage = open_storage(settings.lake)
        self.staging = StagingZone(self.storage)
        self.tasks = TaskRunner(execution)
        self.recovered = False
        self.open = False  # its record is "running"
        self.unreadable: tuple[RejectedBatch, ...] = ()  # batches discover rejected

    def stage_until_clean(
        self, published: PublishedSnapshots | None, pending: list[RawBatch]
    ) -> _Staged:
        """Plan and run the bucket tasks, and audit the run; reject blamed batches and stage
        again (a new attempt, without them)."""
        rejections: list[RejectedBatch] = []
        keys = tuple(self.meta.patient_keys()) if self.full_refresh else ()
        for attempt in itertools.count():
            with self.timer.step("plan"):
                plan = plan_run(
                    PlanInputs(
                        settings=self.settings,
                        run_id=self.run_id,
                        attempt=attempt,
                        computed_at=self.started_at,
                        full_refresh=self.full_refresh,
                        published=published,
                        patient_keys=keys,
                        memory_budget=self.execution.budget,
                    ),
                    pending,
                    self.lake,
                    self.staging,
                    self.tasks.run,
                )
            outcomes = self._bucket_tasks(plan)
            with self.timer.step("audit"):
                accounts = reconcile(pending, outcomes)
                aside = _set_aside(outcomes)
                checks = (
                    *row_check_results(_by_reason(aside)),
                    *combine([o.checks for o in outcomes]),
                    check_reconciliation(accounts),
                )
                quality = QualityReport(checks)
            if quality.passed or not quality.attributable:
                break
            for batch_id in sorted(quality.culprits):
                rejection = RejectedBatch(batch_id, _reason(quality, batch_id))
                self.meta.reject_batches([batch_id], self.run_id, rejection.reason)
                rejections.append(rejection)
            pending = [b for b in pending if b.batch_id not in quality.culprits]
            if not pending and not self.full_refresh:
                break
        return _Staged(plan, outcomes, accounts, quality, tuple(pending), tuple(rejections), aside)

    def _bucket_tasks(self, plan: RunPlan) -> tuple[BucketOutcome, ...]:
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
        for outcome in outcomes:
            for step, seconds in outcome.seconds.items():
                self.timer.totals[step] = self.timer.totals.get(step, 0.0) + seconds
        return outcomes

    def finish(
        self,
        status: RunStatus,
        message: str,
        staged: _Staged | None = None,
        snapshots: PublishedSnapshots | None = None,
    ) -> RunReport:
        """Build the report and close the run; with ``snapshots`` this is the publish."""
        counts = _EMPTY if staged is None else _counts(staged, published=snapshots is not None)
        rejected = (*self.unreadable, *(() if staged is None else staged.rejections))
        counts = {**counts, "rejected": rejected}
        report = RunReport(
            run_id=self.run_id,
            status=status,
            message=message,
            recovered=self.recovered,
            steps=_timings(self.timer),
            duration_ms=round((time.perf_counter() - self.started) * 1000),
            executor=self.tasks.name,
            **counts,  # type: ignore[arg-type]
        )
        loaded = staged if snapshots is not None else None  # what the publish records
        outcomes = () if loaded is None else loaded.outcomes
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
            "set_aside=%d patient_days=%d rejected=%d buckets=%d executor=%s duration_ms=%d",
            self.run_id, status, report.batches, report.readings_in, report.readings_new,
            report.duplicates, report.readings_set_aside, report.patient_days,
            len(report.rejected), report.buckets, report.executor, report.duration_ms,
        )  # fmt: skip
        return report

    def fail(self, err: BaseException) -> None:
        """Close the run's record as "failed" with ``err`` (if it is still open); an error
        while doing so is logged, never raised over ``err``."""
        if not self.open:
            return
        message = (
            f"the run stopped on an error and published nothing: {steps.describe_error(err)}; "
            "the batches stay pending for the next run (`glucosestream run --debug` shows "
            "where it stopped)"
        )
        try:
            self.finish("failed", message)
        except Exception as second:
            log.error("run run_id=%s could not be closed as failed: %s", self.run_id, second)


def _counts(staged: _Staged, *, published: bool) -> dict[str, object]:
    """Row counts of the run; a run that published nothing added no readings and no days."""
    accounts = staged.accounts
    return {
        "batches": len(accounts.batches),
        "readings_in": accounts.incoming_rows,
        "readings_new": accounts.new_rows if published else 0,
        "duplicates": accounts.duplicates_at_merge,
        "patient_days": sum(o.days for o in staged.outcomes) if published else 0,
        "checks": staged.quality.checks,
        "rejected": staged.rejections,
        "set_aside": staged.set_aside,
        "buckets": len(staged.plan.buckets),
        "planned_readings": staged.plan.estimated_readings,
        "workers": _worker_figures(staged.outcomes),
    }


_EMPTY: dict[str, object] = {
    "batches": 0,
    "readings_in": 0,
    "readings_new": 0,
    "duplicates": 0,
    "patient_days": 0,
    "checks": (),
    "rejected": (),
    "set_aside": (),
}


def _worker_figures(outcomes: tuple[BucketOutcome, ...]) -> tuple[WorkerFigures, ...]:
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


def _set_aside(outcomes: tuple[BucketOutcome, ...]) -> tuple[SetAside, ...]:
    """Readings set aside over the buckets, per batch and reason."""
    counts: dict[tuple[str, str], int] = {}
    for outcome in outcomes:
        for key, n in outcome.set_aside_counts.items():
            counts[key] = counts.get(key, 0) + n
    return tuple(SetAside(b, r, n) for (b, r), n in sorted(counts.items()))


def _by_reason(aside: tuple[SetAside, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in aside:
        out[s.reason] = out.get(s.reason, 0) + s.rows
    return out


def _reason(quality: QualityReport, batch_id: str) -> str:
    return "; ".join(
        f"{c.name}: {c.detail}" for c in quality.checks if not c.passed and batch_id in c.batch_ids
    )
