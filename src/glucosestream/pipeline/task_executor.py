"""Executors: run one task function over a list of tasks, in this process, in a local process
pool, or on a Ray cluster (``pipeline.ray_cluster``). No I/O of its own beyond the processes.

A task is a pure, picklable call ``fn(task) -> result`` of a module-level function (the bucket
task of a run). Every executor returns the results in task order and calls ``on_result(index,
result)`` in the caller's thread as each task finishes (for progress). A task that raises an
ordinary exception is not retried: the other tasks are cancelled and that exception reaches the
caller with its type and message. A task whose worker process dies (SIGKILL, the out-of-memory
killer) is tried again on a fresh worker, at most ``TASK_ATTEMPTS`` times in all, then
``WorkerLost`` names it.

The process pool forks its workers from a ``forkserver``, started when the pool executor is
made, that has imported the package once (in the background while the caller plans): a worker
starts in milliseconds, with nothing of the caller's state (DuckDB, pyiceberg and numba threads,
open connections) that a plain ``fork`` would copy, locks held and all.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import forkserver
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Protocol, Self, TypeVar

from glucosestream.errors import ConfigError, WorkerLost
from glucosestream.metrics.kernel_columns import usable_cores

__all__ = [
    "TASK_ATTEMPTS",
    "ClosesOnExit",
    "InlineExecutor",
    "ProcessPoolTaskExecutor",
    "TaskExecutor",
    "describe_task",
    "open_executor",
]

T = TypeVar("T")
R = TypeVar("R")

# How many times a task is tried when its worker process dies, on every executor (Ray:
# max_retries = TASK_ATTEMPTS - 1). A task that raises is tried once.
TASK_ATTEMPTS = 3
START_METHOD = "forkserver"
# What the forkserver imports before it forks any worker: the package, and with it every
# module a bucket task needs.
FORKSERVER_PRELOAD = ("glucosestream",)


class TaskExecutor(Protocol):
    """Runs ``fn`` over ``tasks``: results in task order, ``on_result(index, result)`` in the
    caller's thread as each task finishes; a task's own exception stops the run and reaches the
    caller; ``WorkerLost`` when a task's worker died on each of its ``TASK_ATTEMPTS``."""

    name: str  # "inline", "processes" or "ray"
    workers: int  # tasks that run at once
    threads_per_task: int  # cores each task may use

    def run(
        self,
        fn: Callable[[T], R],
        tasks: Sequence[T],
        on_result: Callable[[int, R], None] | None = None,
    ) -> list[R]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None: ...


def open_executor(*, workers: int | None = None, cluster: str | None = None) -> TaskExecutor:
    """The executor for ``--workers`` and ``--cluster``.

    ``cluster``: Ray core tasks on the running cluster at that address (never started here);
    ``workers`` then caps how many tasks run at once (default: as many as the cluster's CPUs).
    Else ``workers`` None: every core this process may use; 1: inline, in this process; more:
    a local process pool of that many workers.
    """
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers} is not a number of workers; give 1 or more")
    if cluster is not None:
        from glucosestream.pipeline.ray_cluster import RayExecutor

        return RayExecutor(cluster, max_workers=workers)
    count = usable_cores() if workers is None else workers
    if count == 1:
        return InlineExecutor()
    return ProcessPoolTaskExecutor(count)


class ClosesOnExit:
    """``with`` support for the executors: leaving the block closes."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


class InlineExecutor(ClosesOnExit):
    """Each task in the caller's process, one after another, with every core."""

    def __init__(self) -> None:
        self.name = "inline"
        self.workers = 1
        self.threads_per_task = usable_cores()

    def run(
        self,
        fn: Callable[[T], R],
        tasks: Sequence[T],
        on_result: Callable[[int, R], None] | None = None,
    ) -> list[R]:
        results: list[R] = []
        for index, task in enumerate(tasks):
            results.append(fn(task))
            if on_result is not None:
                on_result(index, results[-1])
        return results

    def close(self) -> None:
        pass


class ProcessPoolTaskExecutor(ClosesOnExit):
    """A local pool of ``workers`` processes, reused from task to task, each task with
    ``cores // workers`` cores. A worker's death breaks the whole pool (every unfinished future
    fails): the pool is rebuilt and the tasks that were running are tried again.

    At most ``workers`` tasks are handed to the pool at a time, so when it breaks the tasks in
    flight are exactly those that were running; only they use up an attempt.
    """

    def __init__(self, workers: int) -> None:
        self.name = "processes"
        self.workers = workers
        self.threads_per_task = max(1, usable_cores() // workers)
        self._pool: ProcessPoolExecutor | None = None
        self._lifeline: Connection | None = None  # the workers' reader ends at its closing
        _start_forkserver()

    def run(
        self,
        fn: Callable[[T], R],
        tasks: Sequence[T],
        on_result: Callable[[int, R], None] | None = None,
    ) -> list[R]:
        attempts = [0] * len(tasks)
        done: dict[int, R] = {}
        waiting = deque(range(len(tasks)))  # not yet handed to the pool, in task order
        in_flight: dict[Future[R], int] = {}
        try:
            while waiting or in_flight:
                try:
                    self._hand_over(fn, tasks, waiting, in_flight, attempts)
                    finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    self._collect(finished, in_flight, done, on_result)
                except BrokenProcessPool:
                    self._after_break(tasks, in_flight, done, attempts, waiting, on_result)
        except BaseException:
            self._stop_workers()
            raise
        return [done[index] for index in range(len(tasks))]

    def _hand_over(
        self,
        fn: Callable[[T], R],
        tasks: Sequence[T],
        waiting: deque[int],
        in_flight: dict[Future[R], int],
        attempts: list[int],
    ) -> None:
        """Gives the pool the next tasks while fewer than ``workers`` are in flight."""
        pool = self._open_pool()
        while waiting and len(in_flight) < self.workers:
            in_flight[pool.submit(fn, tasks[waiting[0]])] = waiting[0]
            attempts[waiting.popleft()] += 1

    def _collect(
        self,
        finished: set[Future[R]],
        in_flight: dict[Future[R], int],
        done: dict[int, R],
        on_result: Callable[[int, R], None] | None,
    ) -> None:
        """Takes the finished futures' results, in task order; a task's own exception (or the
        pool's breaking) propagates from ``Future.result``."""
        for future in sorted(finished, key=in_flight.__getitem__):
            result = future.result()
            index = in_flight.pop(future)
            done[index] = result
            if on_result is not None:
                on_result(index, result)

    def _after_break(
        self,
        tasks: Sequence[T],
        in_flight: dict[Future[R], int],
        done: dict[int, R],
        attempts: list[int],
        waiting: deque[int],
        on_result: Callable[[int, R], None] | None,
    ) -> None:
        """A worker died: keep what finished before (a task's own exception still stops the
        run), give up on a task out of attempts, and put the others back at the head of the
        queue for a new pool."""
        self._discard_pool()
        finished = {f for f in in_flight if not isinstance(f.exception(), BrokenProcessPool)}
        self._collect(finished, in_flight, done, on_result)
        lost = sorted(in_flight.values())
        in_flight.clear()
        for index in lost:
            if attempts[index] >= TASK_ATTEMPTS:
                raise WorkerLost(
                    task_index=index,
                    task=describe_task(tasks[index]),
                    attempts=attempts[index],
                    executor=f"process pool of {self.workers}",
                )
        waiting.extendleft(reversed(lost))

    def _open_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context(START_METHOD)
            reader, self._lifeline = context.Pipe(duplex=False)
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=context,
                initializer=_watch_coordinator,
                initargs=(reader,),
            )
        return self._pool

    def _discard_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._lifeline is not None:
            self._lifeline.close()
            self._lifeline = None

    def _stop_workers(self) -> None:
        """Stops the workers now, running tasks and all (a task failed, or Ctrl-C)."""
        if self._pool is None:
            return
        terminate = getattr(self._pool, "terminate_workers", None)  # Python 3.14
        if terminate is not None:
            terminate()
        else:
            for process in _pool_processes(self._pool):
                process.terminate()
        self._discard_pool()

    def close(self) -> None:
        self._discard_pool()


def _start_forkserver() -> None:
    """Starts this process's forkserver, if it has none yet, importing FORKSERVER_PRELOAD in
    the background while the caller goes on (plans the run)."""
    multiprocessing.get_context(START_METHOD).set_forkserver_preload(list(FORKSERVER_PRELOAD))
    forkserver.ensure_running()


def _watch_coordinator(lifeline: Connection) -> None:
    """A pool worker's initializer: the worker ends when the coordinator is gone (the write end
    of ``lifeline``, which only the coordinator holds, is closed), even mid-task. Otherwise a
    killed coordinator leaves its workers running their task, then waiting for ever."""

    def watch() -> None:
        with contextlib.suppress(OSError, EOFError):
            lifeline.poll(None)  # returns at end of file: no data is ever sent
        os._exit(1)

    threading.Thread(target=watch, name="coordinator-watch", daemon=True).start()


def _pool_processes(pool: ProcessPoolExecutor) -> list[multiprocessing.process.BaseProcess]:
    # Before Python 3.14 (terminate_workers), ProcessPoolExecutor cannot stop a running worker;
    # its worker table is the one handle on them.
    processes = getattr(pool, "_processes", None) or {}
    return list(processes.values())


def describe_task(task: object) -> str:
    """A task as an error message names it: its repr, cut short."""
    text = repr(task)
    return text if len(text) <= 120 else text[:117] + "..."
