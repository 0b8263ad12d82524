"""Task functions that fail on purpose, for the scale-out fault tests (picklable: module-level).

``killed_once`` runs the real bucket task, then SIGKILLs its own worker process before the
result is returned, the first time only (a marker file beside the lake decides, and only one
task can delete it): the staged files of that attempt exist, and nobody must read them.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from glucosestream.pipeline.bucket_task import BucketOutcome, BucketTask, run_bucket_task


def _marker(lake: Path | str) -> Path:
    return Path(lake).parent / "kill-a-worker"


def arm(lake: Path) -> None:
    _marker(lake).touch()


def armed(lake: Path) -> bool:
    return _marker(lake).exists()


def killed_once(task: BucketTask) -> BucketOutcome:
    outcome = run_bucket_task(task)
    try:
        _marker(task.settings.lake.root).unlink()
    except FileNotFoundError:
        return outcome
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable: the worker was killed")
