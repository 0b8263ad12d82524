"""One pipeline run, with write-audit-publish.

recover (undo writes of a run that died before publishing) → discover (raw batches not yet
loaded or rejected; none: nothing to do, and say so) → merge (set aside the readings the row
checks refuse, then each key once, first arrival wins) → transform (daily metrics of the
touched patient-days) → audit (every check on the staged data) → publish (write every table
of ``table_registry``, then record their snapshot ids, the loaded batches and the set-aside
readings in one metadata transaction).

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
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from glucosestream.clock import Clock, utc_now
from glucosestream.config import Settings
from glucosestream.engines import open_engine
from glucosestream.lake import (
    PublishedSnapshots,
    RawBatch,
    RawZone,
    open_lakehouse,
    open_metadata,
    open_storage,
    run_lock,
)
from glucosestream.pipeline import steps
from glucosestream.pipeline.buckets import partition
from glucosestream.pipeline.table_registry import TABLES
from glucosestream.quality import (
    CheckResult,
    QualityReport,
    RunAccounts,
    check_reconciliation,
    combine,
    count_set_aside,
    row_check_results,
)

__all__ = ["RejectedBatch", "RunReport", "SetAside", "StepTiming", "run_pipeline"]

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

    @property
    def failed_checks(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.checks if not c.passed)

    @property
    def readings_set_aside(self) -> int:
        return sum(s.rows for s in self.set_aside)


@dataclass
class _Timer:
    totals: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            self.totals[name] = self.totals.get(name, 0.0) + elapsed

    def timings(self) -> tuple[StepTiming, ...]:
        return tuple(
            StepTiming(s, round(self.totals[s] * 1000)) for s in steps.STEPS if s in self.totals
        )


def run_pipeline(
    settings: Settings, *, full_refresh: bool = False, now: Clock = utc_now
) -> RunReport:
    """Run the pipeline once over the lake in ``settings``; the report says what happened.

    Raises ``RunInProgress`` (retryable) if another run is working on the same lake. Any other
    error is raised after the run's record is closed as "failed" with it.
    """
    with run_lock(settings.lake, now=now):
        run = _Run(settings, now, full_refresh)
        try:
            return _run_locked(run)
        except BaseException as err:
            run.fail(err)
            raise


def _run_locked(run: _Run) -> RunReport:
    run.meta.start_run(run.run_id, run.started_at)
    run.open = True
    with run.timer.step("recover"):
        published = run.meta.published()
        run.recovered = run.lake.recover(published)
    with run.timer.step("discover"):
        raw = RawZone(open_storage(run.settings.lake))
        found = steps.discover(run.meta, raw, run.run_id, run.started_at)
    run.unreadable = tuple(RejectedBatch(b, why) for b, why in found.unreadable.items())
    pending = found.pending
    if not pending and not run.full_refresh:
        if run.unreadable:
            return run.finish("rejected", _all_rejected(len(run.unreadable)))
        return run.finish("noop", "no new raw batches since the last run; nothing to do")

    with tempfile.TemporaryDirectory(prefix="glucosestream-run-") as spill:
        staged = run.stage_until_clean(published, pending, Path(spill))
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
            snapshots = steps.publish(run.lake, staged.results, run.run_id)
        return run.finish(
            "published", _published_message(staged, len(run.unreadable)), staged, snapshots
        )


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
    results: tuple[steps.BucketResult, ...]
    accounts: RunAccounts
    quality: QualityReport
    pending: tuple[RawBatch, ...]
    rejections: tuple[RejectedBatch, ...]
    set_aside: tuple[SetAside, ...]


class _Run:
    """The state of one run: its id, clock, timings, and the stores it writes to."""

    def __init__(self, settings: Settings, now: Clock, full_refresh: bool) -> None:
        self.settings = settings
        self.now = now
        self.full_refresh = full_refresh
        self.started = time.perf_counter()
        self.started_at = now()
        self.run_id = f"run-{self.started_at:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:6]}"
        self.timer = _Timer()
        self.meta = open_metadata(settings.lake)
        self.lake = open_lakehouse(settings.lake, TABLES)
        self.recovered = False
        self.open = False  # its record is "running"
        self.unreadable: tuple[RejectedBatch, ...] = ()  # batches discover rejected

    def stage_until_clean(
        self, published: PublishedSnapshots | None, pending: list[RawBatch], spill: Path
    ) -> _Staged:
        """Stage every bucket and audit the run; reject blamed batches and stage again."""
        rejections: list[RejectedBatch] = []
        keys = tuple(self.meta.patient_keys()) if self.full_refresh else ()
        engine = open_engine(self.settings.engine)
        try:
            for attempt in itertools.count():
                folder = spill / str(attempt)
                with self.timer.step("merge"):
                    buckets = partition(pending, folder, extra_prefixes_of=keys)
                work = steps.BucketWork(
                    engine=engine,
                    lake=self.lake,
                    published=published,
                    quality=self.settings.quality,
                    run_id=self.run_id,
                    computed_at=self.started_at,
                    full_refresh=self.full_refresh,
                    all_patient_keys=keys,
                    spill=folder if len(buckets) > 1 else None,
                )
                results = tuple(steps.process_bucket(work, b, self.timer) for b in buckets)
                with self.timer.step("audit"):
                    accounts = steps.reconcile(pending, results)
                    aside = _set_aside(results)
                    checks = (
                        *row_check_results(_by_reason(aside)),
                        *combine([r.checks for r in results]),
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
        finally:
            engine.close()
        return _Staged(results, accounts, quality, tuple(pending), tuple(rejections), aside)

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
            steps=self.timer.timings(),
            duration_ms=round((time.perf_counter() - self.started) * 1000),
            **counts,  # type: ignore[arg-type]
        )
        self.meta.finish_run(
            self.run_id,
            status=status,
            finished_at=self.now(),
            report=asdict(report),
            checks=report.checks,
            published=snapshots,
            loaded_batch_ids=[b.batch_id for b in staged.pending] if snapshots and staged else [],
            devices=[d for r in staged.results for d in r.devices] if snapshots and staged else [],
            set_aside_rows=_set_aside_rows(staged.results) if snapshots and staged else [],
        )
        self.open = False
        log.info(
            "run run_id=%s status=%s batches=%d rows_in=%d rows_new=%d duplicates=%d "
            "set_aside=%d patient_days=%d rejected=%d duration_ms=%d",
            self.run_id, status, report.batches, report.readings_in, report.readings_new,
            report.duplicates, report.readings_set_aside, report.patient_days,
            len(report.rejected), report.duration_ms,
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
        "patient_days": sum(r.days for r in staged.results) if published else 0,
        "checks": staged.quality.checks,
        "rejected": staged.rejections,
        "set_aside": staged.set_aside,
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


def _set_aside(results: tuple[steps.BucketResult, ...]) -> tuple[SetAside, ...]:
    """Readings set aside over the buckets, per batch and reason."""
    counts: dict[tuple[str, str], int] = {}
    for result in results:
        table = result.set_aside.load()
        if table.num_rows == 0:
            continue
        for key, n in count_set_aside(table).items():
            counts[key] = counts.get(key, 0) + n
    return tuple(SetAside(b, r, n) for (b, r), n in sorted(counts.items()))


def _by_reason(aside: tuple[SetAside, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in aside:
        out[s.reason] = out.get(s.reason, 0) + s.rows
    return out


def _set_aside_rows(results: tuple[steps.BucketResult, ...]) -> list[dict[str, object]]:
    return [row for r in results if r.set_aside.rows for row in r.set_aside.load().to_pylist()]


def _reason(quality: QualityReport, batch_id: str) -> str:
    return "; ".join(
        f"{c.name}: {c.detail}" for c in quality.checks if not c.passed and batch_id in c.batch_ids
    )
