"""Toy tasks for the executor tests: module-level, picklable, run in worker processes.

Each call of ``toy_task`` appends a line to ``<folder>/attempts-<value>`` (the folder is the
test's tmp_path, shared by every worker on this machine), so a test can count the attempts a
task was given and a task can tell its first attempt from a retry.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal


class ToyError(ValueError):
    """A task's own failure (not a lost worker)."""


@dataclass(frozen=True, slots=True)
class Job:
    value: int
    folder: str
    delay_s: float = 0.0
    fail: bool = False
    kill: Literal["", "once", "always"] = ""


def toy_task(job: Job) -> int:
    """``value`` squared, after ``delay_s``; or ``ToyError``; or the worker SIGKILLed (on the
    first attempt only, or on every attempt)."""
    attempt = _record_attempt(job)
    time.sleep(job.delay_s)
    if job.fail:
        raise ToyError(f"job {job.value} failed on purpose")
    if job.kill == "always" or (job.kill == "once" and attempt == 1):
        os.kill(os.getpid(), signal.SIGKILL)
    return job.value * job.value


def attempts(folder: str | Path, value: int) -> int:
    """How many times ``toy_task`` started the job of ``value``."""
    path = Path(folder) / f"attempts-{value}"
    return len(path.read_text().splitlines()) if path.exists() else 0


def worker_pid(job: Job) -> int:
    """The process that ran the task."""
    time.sleep(job.delay_s)
    return os.getpid()


def _record_attempt(job: Job) -> int:
    with open(Path(job.folder) / f"attempts-{job.value}", "a") as log:
        log.write(f"{os.getpid()}\n")
    return attempts(job.folder, job.value)
