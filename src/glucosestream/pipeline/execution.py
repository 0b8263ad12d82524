"""Where a run's tasks execute, and how it says how far it got.

``Execution`` holds a run's choices: how many local worker processes (default: every core), or
the address of a running Ray cluster, and the memory budget per task (default: a quarter of
RAM). The executor (``pipeline.task_executor``) is opened only when a step has more than one
task: a one-bucket run (a small lake, most tests) runs in the coordinator's process and starts
no worker.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from glucosestream.metrics.kernel_columns import usable_cores
from glucosestream.pipeline.task_executor import InlineExecutor, TaskExecutor, open_executor

__all__ = ["Execution", "RunProgress", "TaskRunner", "default_memory_budget"]

T = TypeVar("T")
R = TypeVar("R")


def default_memory_budget() -> int:
    """A quarter of the machine's RAM, in bytes (2 GiB where the system does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4
    except (ValueError, OSError, AttributeError):
        return 2 * 1024**3


@dataclass(frozen=True, slots=True)
class RunProgress:
    """Sent after each bucket task: buckets done of all, readings read so far, seconds since
    the tasks began."""

    buckets_done: int
    buckets: int
    readings_done: int
    seconds: float


@dataclass(frozen=True, slots=True)
class Execution:
    workers: int | None = None  # local worker processes; None: every core
    cluster: str | None = None  # a running Ray cluster's address (workers then ignored)
    memory_budget: int | None = None  # bytes a task may use; None: a quarter of RAM
    progress: Callable[[RunProgress], None] | None = None
    executor: TaskExecutor | None = None  # an open executor to use (its owner closes it)

    @property
    def budget(self) -> int:
        return self.memory_budget or default_memory_budget()

    @property
    def local_workers(self) -> int:
        return self.workers or usable_cores()


class TaskRunner:
    """Runs a step's tasks: in this process when there is one (or one worker), else on the
    executor, opened on first use and closed with ``close``."""

    def __init__(self, execution: Execution) -> None:
        self.execution = execution
        self._executor = execution.executor
        self._owned = False

    @property
    def threads_per_task(self) -> int:
        """Cores a task may use where it runs; 0 in this process: every core."""
        return 0 if self._executor is None else self._executor.threads_per_task

    @property
    def name(self) -> str:
        return "inline" if self._executor is None else self._executor.name

    def parallel(self, tasks: int) -> bool:
        """Whether ``tasks`` tasks go to worker processes or a cluster."""
        if self.execution.executor is not None or self.execution.cluster is not None:
            return tasks > 0
        return tasks > 1 and self.execution.local_workers > 1

    def open(self) -> None:
        """Start the executor now (before building tasks that carry its threads per task)."""
        if self._executor is None:
            self._executor = open_executor(
                workers=self.execution.workers, cluster=self.execution.cluster
            )
            self._owned = True

    def run(
        self,
        fn: Callable[[T], R],
        tasks: Sequence[T],
        on_result: Callable[[int, R], None] | None = None,
    ) -> list[R]:
        if not self.parallel(len(tasks)):
            return InlineExecutor().run(fn, tasks, on_result)
        self.open()
        assert self._executor is not None
        return self._executor.run(fn, tasks, on_result)

    def close(self) -> None:
        if self._owned and self._executor is not None:
            self._executor.close()
        self._executor = self.execution.executor
        self._owned = False


class ProgressMeter:
    """Counts finished bucket tasks for ``Execution.progress``."""

    def __init__(self, execution: Execution, buckets: int) -> None:
        self.callback = execution.progress
        self.buckets = buckets
        self.done = 0
        self.readings = 0
        self.started = time.perf_counter()

    def finished(self, readings: int) -> None:
        self.done += 1
        self.readings += readings
        if self.callback is not None:
            elapsed = time.perf_counter() - self.started
            self.callback(RunProgress(self.done, self.buckets, self.readings, elapsed))
