"""A run whose steps each run in a process of their own: AWS Step Functions calls them as
Lambda functions (``glucosestream.aws``), in the order ``STAGES`` gives.

``begin`` (recover, discover, plan) → ``bucket`` once per bucket, in parallel (merge, transform,
stage) → ``conclude`` (audit, then publish, or plan the next attempt without the batches the
audit or a failed bucket blamed, whose buckets then run again) → … ; ``abandon`` closes a run
whose step failed for good. They are the same steps as a run in one process (``run_state``):
only where the run's memory lives between them differs (its staging folder: ``run.json``, each
bucket's outcome) and the lock, which must span processes: the lake's lease
(``lake.lock_url = dynamodb://TABLE``), taken by ``begin`` and renewed by every step as it
starts for ``LEASE_SECONDS`` (twice a Lambda function's 15-minute limit: there is always a step
running or starting within it), released by the last step. An execution that dies without its
catch running (timed out, stopped) leaves the lake locked until the lease ends.

A bucket that failed after its retries rejects the batches with readings in it (recorded with
the error), and the run plans again without them: never a partial publish. Each step answers a
small JSON document, which is what the state machine passes on: ``{"run_id", "attempt",
"buckets": [0, …]}`` while there is work, ``{"run_id", "status", "message"}`` when done.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import Any, Final

from glucosestream.clock import Clock, utc_now
from glucosestream.config import Settings
from glucosestream.lake import (
    RunLease,
    StagingZone,
    open_storage,
    spanning_lease,
    take_run_lease,
)
from glucosestream.pipeline.bucket_task import BucketOutcome, BucketTask, run_bucket_task
from glucosestream.pipeline.execution import Execution
from glucosestream.pipeline.run_plan import RunPlan, read_plan
from glucosestream.pipeline.run_report import RunReport
from glucosestream.pipeline.run_state import Run, RunMemory, Staged, all_rejected, blamed

__all__ = ["LEASE_SECONDS", "STAGES", "abandon", "begin", "bucket", "conclude"]

# The run lock's lease, renewed by every step as it starts (see the module's docstring).
LEASE_SECONDS: Final = 30 * 60
EXECUTOR: Final = "stepwise"
# Each stage, in order, with the steps of ``steps.STEPS`` it runs (the state machine's states).
STAGES: Final = (
    ("begin", ("recover", "discover", "plan")),
    ("bucket", ("merge", "transform", "stage")),
    ("conclude", ("audit", "publish")),
)


def begin(settings: Settings, *, now: Clock = utc_now) -> dict[str, Any]:
    """Take the lock, open the run, recover and discover, and plan its first attempt."""
    run = _run(settings, now)
    lease = take_run_lease(settings.lake, run.run_id, LEASE_SECONDS, now)
    try:
        begun = run.begin()
        if isinstance(begun, RunReport):
            return _done(run, lease, begun)
        return _next(run, lease, run.plan(begun, 0))
    except BaseException as err:
        _close(run, lease, err)
        raise


def bucket(settings: Settings, run_id: str, attempt: int, number: int) -> dict[str, Any]:
    """Run one bucket's task of an attempt; its outcome is saved for ``conclude``."""
    _lease(settings).renew(run_id, LEASE_SECONDS)
    outcome = run_bucket_task(BucketTask(settings, run_id, attempt, number))
    staging = StagingZone(open_storage(settings.lake))
    staging.write_bytes(_outcome_path(staging, run_id, attempt, number), pickle.dumps(outcome))
    return {"bucket": number}


def conclude(
    settings: Settings,
    run_id: str,
    attempt: int,
    results: Sequence[dict[str, Any]],
    *,
    now: Clock = utc_now,
) -> dict[str, Any]:
    """Audit an attempt's buckets (``results``: the Map's answers, ``{"bucket": n}`` or
    ``{"bucket": n, "error": …}``); publish, or plan again without the batches to blame."""
    lease = _lease(settings)
    lease.renew(run_id, LEASE_SECONDS)
    run = _run(settings, now, _memory(settings, run_id))
    try:
        plan = read_plan(run.staging, run_id, attempt)
        pending = run.pending()
        failed = _failed_buckets(plan, results)
        if failed:
            pending = run.reject(failed, pending)
        else:
            outcomes = _outcomes(run, plan)
            run.add_task_seconds(outcomes)
            audit = run.audit(pending, outcomes)
            culprits = blamed(audit.quality)
            if not culprits:
                staged = Staged(plan, audit, tuple(pending), run.memory.rejections)
                confirm = lambda: lease.renew(run_id, LEASE_SECONDS)  # noqa: E731
                return _done(run, lease, run.conclude(staged, confirm))
            pending = run.reject(culprits, pending)
        if not pending:
            rejected = len(run.memory.rejections) + len(run.memory.unreadable)
            return _done(run, lease, run.finish("rejected", all_rejected(rejected)))
        return _next(run, lease, run.plan(pending, attempt + 1))
    except BaseException as err:
        _close(run, lease, err)
        raise


def abandon(settings: Settings, run_id: str, error: str, *, now: Clock = utc_now) -> dict[str, Any]:
    """Close a run a step of which failed for good (the state machine's catch): its record as
    "failed" with ``error``, its staging folder removed, the lock released. A run whose memory
    is gone (its last step ended it) only has the lock released, if it still holds it."""
    lease = _lease(settings)
    try:
        memory = _memory(settings, run_id)
    except OSError:
        lease.release(run_id)
        return {"run_id": run_id, "status": "failed", "message": error}
    _close(_run(settings, now, memory), lease, error)
    return {"run_id": run_id, "status": "failed", "message": error}


def _run(settings: Settings, now: Clock, memory: RunMemory | None = None) -> Run:
    execution = Execution(workers=1, memory_budget=settings.pipeline.task_memory_mb * 1024**2)
    run = Run(settings, now, execution, memory)
    run.executor_name = EXECUTOR
    return run


def _lease(settings: Settings) -> RunLease:
    return spanning_lease(settings.lake)


def _memory(settings: Settings, run_id: str) -> RunMemory:
    staging = StagingZone(open_storage(settings.lake))
    return RunMemory.from_json(staging.read_json(staging.run_path(run_id, "run.json")))


def _save(run: Run) -> None:
    run.staging.write_json(run.staging.run_path(run.run_id, "run.json"), run.remember().to_json())


def _next(run: Run, lease: RunLease, plan: RunPlan) -> dict[str, Any]:
    """Save the run's memory; the next attempt's buckets for the state machine's Map."""
    _save(run)
    lease.renew(run.run_id, LEASE_SECONDS)
    return {
        "run_id": run.run_id,
        "attempt": plan.attempt,
        "buckets": list(range(len(plan.buckets))),
    }


def _done(run: Run, lease: RunLease, report: RunReport) -> dict[str, Any]:
    run.staging.remove_run(run.run_id)
    lease.release(run.run_id)
    return {"run_id": run.run_id, "status": report.status, "message": report.message}


def _close(run: Run, lease: RunLease, err: BaseException | str) -> None:
    try:
        run.fail(err)
        run.staging.remove_run(run.run_id)
    finally:
        lease.release(run.run_id)


def _outcome_path(staging: StagingZone, run_id: str, attempt: int, number: int) -> str:
    return staging.run_path(run_id, f"attempt-{attempt}", "outcomes", f"{number}.pickle")


def _outcomes(run: Run, plan: RunPlan) -> tuple[BucketOutcome, ...]:
    """The attempt's bucket outcomes, each as its task saved it."""
    outcomes = []
    for number in range(len(plan.buckets)):
        # Written by this run's own bucket tasks, into the run's folder of the lake's own
        # storage, which only the pipeline's functions may write.
        path = _outcome_path(run.staging, run.run_id, plan.attempt, number)
        outcome = pickle.loads(run.staging.read_bytes(path))
        outcomes.append(outcome)
    return tuple(outcomes)


def _failed_buckets(plan: RunPlan, results: Sequence[dict[str, Any]]) -> dict[str, str]:
    """The batches of every bucket whose task failed after its retries, with the reason."""
    reasons: dict[str, str] = {}
    for result in results:
        if "error" not in result:
            continue
        number = int(result["bucket"])
        why = f"bucket task {number} of attempt {plan.attempt} failed: {result['error']}"
        for batch_id in plan.buckets[number].batch_ids:
            reasons.setdefault(batch_id, why)
    return reasons
