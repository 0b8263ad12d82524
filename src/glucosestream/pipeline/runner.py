"""One pipeline run in this process, with write-audit-publish: a plan, bucket tasks, one publish.

recover (undo writes of a run that died before publishing, and remove its staging folder) →
discover (raw batches not yet loaded or rejected; none: nothing to do, and say so) → plan
(choose buckets of patients, split the batches into them, write the plan: ``run_plan``) →
bucket tasks, each merge (set aside the readings the row checks refuse, then each key once,
first arrival wins), transform (the tables' rows for the touched patient-days), check, and
stage its tables (``bucket_task``; in this process, worker processes or a Ray cluster:
``execution``) → audit (every check over the run) → publish (write every table of
``table_registry`` from the staged files, then record their snapshot ids, the loaded batches
and the set-aside readings in one metadata transaction: ``run_publish``). ``run_state`` holds
the steps; ``stepwise`` runs the same steps each in its own process (AWS Step Functions).

A reading the run must not publish (``quality.row_checks``) is set aside alone, with its reason: its
batch, which may hold other clients' requests, is loaded without it. Only reconciliation blames
a whole batch (its file does not hold what it accepted): such a batch is rejected (recorded with
the reason, never loaded) and the run is staged again without it. A failure that blames no
batch publishes nothing and leaves the batches pending. An error anywhere in a run closes its
record as "failed" with the error, and the lock is released; a run killed outright is closed as
"abandoned" by the next one to take the lock (``lake.lock``).
"""

from __future__ import annotations

from glucosestream.clock import Clock, utc_now
from glucosestream.config import Settings
from glucosestream.lake import run_lock
from glucosestream.pipeline.execution import Execution
from glucosestream.pipeline.run_report import RunReport
from glucosestream.pipeline.run_state import Run

__all__ = ["run_pipeline"]


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
    with run_lock(settings.lake, now=now) as lock:
        run = Run(settings, now, execution or Execution(), full_refresh=full_refresh)
        try:
            begun = run.begin()
            if isinstance(begun, RunReport):
                return begun
            return run.conclude(run.stage_until_clean(begun), lock.confirm)
        except BaseException as err:
            run.fail(err)
            raise
        finally:
            run.tasks.close()
            run.staging.remove_run(run.run_id)
