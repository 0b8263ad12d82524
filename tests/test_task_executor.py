"""The executors run a task function over tasks inline, in a local process pool and on a real
Ray cluster (a head node on 127.0.0.1 started for this module): results in task order, progress
once per task, a task's own exception with its type, a killed worker's task tried again, and
WorkerLost once its attempts are spent. No process of this module outlives it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from glucosestream.config import ray_loopback_mode
from glucosestream.errors import ClusterUnavailable, ConfigError, WorkerLost
from glucosestream.metrics.kernel_columns import usable_cores
from glucosestream.pipeline.task_executor import (
    TASK_ATTEMPTS,
    InlineExecutor,
    ProcessPoolTaskExecutor,
    TaskExecutor,
    open_executor,
)
from tests import ray_head
from tests.executor_tasks import Job, ToyError, attempts, toy_task, worker_pid

HELPERS = ("forkserver", "resource_tracker")  # multiprocessing's, one each per process


@pytest.fixture(scope="module", autouse=True)
def no_process_left() -> Iterator[None]:
    """Every process this module starts (pool workers, the Ray head and its workers) is gone at
    its end; multiprocessing's forkserver (the pools fork from it) and resource tracker live as
    long as this process, by design."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    deadline = time.monotonic() + 10.0
    while (left := _new_processes(before)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == [], left


def _new_processes(before: set[int]) -> list[str]:
    left = []
    for process in psutil.Process().children(recursive=True):
        try:
            if process.pid in before or process.status() == psutil.STATUS_ZOMBIE:
                continue
            command = " ".join(process.cmdline())
        except psutil.NoSuchProcess:
            continue
        if not any(f"multiprocessing.{helper}" in command for helper in HELPERS):
            left.append(f"{process.pid} {command}")
    return left


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[ray_head.RayHead]:
    yield from ray_head.running_head()


@pytest.fixture(scope="module")
def ray_executor(ray_cluster: ray_head.RayHead) -> Iterator[TaskExecutor]:
    with open_executor(cluster=ray_cluster.address) as executor:
        yield executor


@pytest.fixture(params=["inline", "processes", "ray"])
def executor(request: pytest.FixtureRequest) -> Iterator[TaskExecutor]:
    if request.param == "ray":
        yield request.getfixturevalue("ray_executor")
    elif request.param == "inline":
        with InlineExecutor() as inline:
            yield inline
    else:
        with ProcessPoolTaskExecutor(2) as pool:
            yield pool


def test_results_come_in_task_order_and_progress_once_per_task(executor, tmp_path):
    # the first task takes longest: where two run at once, the others finish before it
    jobs = [Job(value, str(tmp_path), delay_s=1.0 if value == 0 else 0.0) for value in range(6)]
    seen: list[tuple[int, int]] = []
    results = executor.run(toy_task, jobs, on_result=lambda i, r: seen.append((i, r)))
    assert results == [value * value for value in range(6)]
    assert sorted(seen) == [(value, value * value) for value in range(6)]
    assert seen[-1][0] == (5 if executor.name == "inline" else 0)  # as each task finishes
    assert [attempts(tmp_path, value) for value in range(6)] == [1] * 6
    assert executor.run(toy_task, []) == []


def test_a_tasks_own_exception_reaches_the_caller_with_its_type(executor, tmp_path):
    jobs = [Job(value, str(tmp_path), fail=value == 1) for value in range(3)]
    with pytest.raises(ToyError, match="job 1 failed on purpose"):
        executor.run(toy_task, jobs)
    assert attempts(tmp_path, 1) == 1  # not retried
    # the executor is usable again after a failed run
    assert executor.run(toy_task, [Job(5, str(tmp_path))]) == [25]


@pytest.mark.parametrize("name", ["processes", "ray"])
def test_a_failed_task_does_not_wait_for_the_others(name, request, tmp_path):
    if name == "ray":  # the module's executor: left open
        executor = contextlib.nullcontext(request.getfixturevalue("ray_executor"))
    else:
        executor = ProcessPoolTaskExecutor(2)
    jobs = [Job(0, str(tmp_path), delay_s=20.0), Job(1, str(tmp_path), delay_s=0.5, fail=True)]
    started = time.monotonic()
    with executor as running, pytest.raises(ToyError):
        running.run(toy_task, jobs)
    assert time.monotonic() - started < 10
    if name == "processes":  # the worker still running job 0 was stopped
        (pid,) = _attempt_pids(tmp_path, 0)
        assert _gone(int(pid))


def test_open_executor_chooses_by_workers():
    with open_executor(workers=1) as inline:
        assert (inline.name, inline.workers, inline.threads_per_task) == (
            "inline",
            1,
            usable_cores(),
        )
    with open_executor(workers=3) as pool:
        assert (pool.name, pool.workers) == ("processes", 3)
        assert pool.threads_per_task == max(1, usable_cores() // 3)
    with open_executor() as default:
        assert default.workers == usable_cores()
    with pytest.raises(ConfigError, match="--workers 0"):
        open_executor(workers=0)


def test_the_pool_reuses_its_workers(tmp_path):
    with ProcessPoolTaskExecutor(2) as pool:
        pids = pool.run(worker_pid, [Job(value, str(tmp_path), delay_s=0.05) for value in range(8)])
    assert len(set(pids)) <= 2
    assert os.getpid() not in pids


def test_the_pool_tries_a_task_again_when_its_worker_is_killed(tmp_path):
    jobs = [Job(value, str(tmp_path), kill="once" if value == 2 else "") for value in range(5)]
    seen: list[int] = []
    with ProcessPoolTaskExecutor(2) as pool:
        results = pool.run(toy_task, jobs, on_result=lambda i, r: seen.append(i))
        assert results == [value * value for value in range(5)]
        assert pool.run(toy_task, [Job(7, str(tmp_path))]) == [49]  # a new pool after the break
    assert sorted(seen) == list(range(5))  # each result once, none lost in the break
    assert attempts(tmp_path, 2) == 2
    assert all(attempts(tmp_path, value) <= 2 for value in range(5))


def test_the_pool_gives_up_on_a_task_that_always_kills_its_worker(tmp_path):
    jobs = [Job(0, str(tmp_path)), Job(1, str(tmp_path), kill="always")]
    started = time.monotonic()
    with ProcessPoolTaskExecutor(2) as pool, pytest.raises(WorkerLost) as lost:
        pool.run(toy_task, jobs)
    assert time.monotonic() - started < 30
    assert (lost.value.task_index, lost.value.attempts) == (1, TASK_ATTEMPTS)
    assert "Job(value=1" in str(lost.value)
    assert "--memory-budget" in str(lost.value)
    assert attempts(tmp_path, 1) == TASK_ATTEMPTS


@pytest.fixture
def python_ctrl_c():
    """Python's own Ctrl-C handler, SIGINT unblocked, for the test, whatever an earlier test in
    the process left (the tiers run in random order; CI once saw the SIGINT come to nothing)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # nor blocked in this thread
    yield
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_stops_the_pools_workers(tmp_path, python_ctrl_c):
    jobs = [Job(value, str(tmp_path), delay_s=30.0) for value in range(2)]

    def interrupt_when_both_run() -> None:
        while sum(attempts(tmp_path, value) for value in range(2)) < 2:
            time.sleep(0.02)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # as Ctrl-C would

    interrupter = threading.Thread(target=interrupt_when_both_run)
    interrupter.start()
    started = time.monotonic()
    with ProcessPoolTaskExecutor(2) as pool, pytest.raises(KeyboardInterrupt):
        pool.run(toy_task, jobs)
    interrupter.join()
    assert time.monotonic() - started < 10  # the 30 s tasks were stopped, not awaited
    workers = {int(pid) for value in range(2) for pid in _attempt_pids(tmp_path, value)}
    assert all(_gone(pid) for pid in workers)


def _attempt_pids(folder: Path, value: int) -> list[str]:
    return (folder / f"attempts-{value}").read_text().split()


def _gone(pid: int, within_s: float = 5.0) -> bool:
    """The process has exited (a zombie not yet reaped counts as gone)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


# A coordinator that runs two tasks on a pool: 60 s long ("running"), or done at once and then
# 60 s of waiting with the pool open ("idle").
COORDINATOR = """
import pathlib, sys, time
from glucosestream.pipeline.task_executor import ProcessPoolTaskExecutor
from tests.executor_tasks import Job, toy_task

folder, state = sys.argv[1], sys.argv[2]
with ProcessPoolTaskExecutor(2) as pool:
    delay_s = 60.0 if state == "running" else 0.0
    pool.run(toy_task, [Job(value, folder, delay_s=delay_s) for value in range(2)])
    pathlib.Path(folder, "idle").touch()
    time.sleep(60)
"""


@pytest.mark.parametrize("state", ["running", "idle"])
def test_the_pools_workers_end_with_a_killed_coordinator(state, tmp_path):
    coordinator = subprocess.Popen(
        [sys.executable, "-c", COORDINATOR, str(tmp_path), state],
        cwd=ray_head.REPO,
        start_new_session=True,
    )
    try:
        marker = tmp_path / ("attempts-1" if state == "running" else "idle")
        deadline = time.monotonic() + 60
        while not (marker.exists() and attempts(tmp_path, 0)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(ray_head.group_processes(coordinator.pid)) >= 4  # + forkserver, 2 workers
        coordinator.kill()
        coordinator.wait()
        deadline = time.monotonic() + 10
        while ray_head.group_processes(coordinator.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ray_head.group_processes(coordinator.pid) == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(coordinator.pid, signal.SIGKILL)
        coordinator.wait()


def test_ray_loopback_mode_is_switched_on_for_loopback_addresses_only():
    for address in ("127.0.0.1:6379", "localhost:6379", "[::1]:6379", "ray://127.0.0.1:10001"):
        env: dict[str, str] = {}
        assert ray_loopback_mode(address, env)
        assert env == {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    for address in ("10.0.0.5:6379", "head.example.org:6379", "auto"):
        env = {}
        assert not ray_loopback_mode(address, env)
        assert env == {}
    kept = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}  # the user's own setting wins
    assert not ray_loopback_mode("127.0.0.1:6379", kept)
    assert kept == {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}


def test_without_ray_a_cluster_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as when it is not installed
    with pytest.raises(ClusterUnavailable, match=r"pip install 'glucosestream\[ray\]'"):
        open_executor(cluster="127.0.0.1:6379")


@pytest.mark.skipif(not ray_head.HAS_RAY, reason=ray_head.NO_RAY)
def test_a_cluster_address_where_nothing_answers_fails_at_once():
    (port,) = ray_head.free_ports(1)
    started = time.monotonic()
    with pytest.raises(ClusterUnavailable, match="nothing answers there") as error:
        open_executor(cluster=f"127.0.0.1:{port}")
    assert time.monotonic() - started < 10
    assert "ray start --head" in str(error.value)


def test_a_process_connected_to_one_cluster_does_not_open_another(ray_executor, tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as elsewhere:  # answers, but is not our head
        address = f"127.0.0.1:{elsewhere.getsockname()[1]}"
        with pytest.raises(ClusterUnavailable, match="already connected to the Ray cluster at"):
            open_executor(cluster=address)
    assert ray_executor.run(toy_task, [Job(3, str(tmp_path))]) == [9]  # still connected


def test_the_ray_cluster_listens_on_loopback_only(ray_cluster, ray_executor, tmp_path):
    # a driver (this process) and workers are up while the sockets are listed
    assert ray_executor.run(worker_pid, [Job(value, str(tmp_path)) for value in range(2)])
    processes = ray_cluster.processes()
    names = {process.name() for process in processes}
    assert {"gcs_server", "raylet"} <= names, names
    listening = ray_head.listening_addresses([*processes, psutil.Process()])
    assert len(listening) >= 5, listening
    assert [entry for entry in listening if not ray_head.is_loopback(entry[0])] == []


def test_ray_reports_its_cluster_and_threads(ray_executor, ray_cluster):
    assert (ray_executor.name, ray_executor.workers, ray_executor.threads_per_task) == (
        "ray",
        2,
        1,
    )


def test_ray_tries_a_task_again_when_its_worker_is_killed(ray_executor, tmp_path):
    jobs = [Job(value, str(tmp_path), kill="once" if value == 1 else "") for value in range(4)]
    seen: list[int] = []
    results = ray_executor.run(toy_task, jobs, on_result=lambda i, r: seen.append(i))
    assert results == [value * value for value in range(4)]
    assert sorted(seen) == list(range(4))
    assert attempts(tmp_path, 1) == 2


def test_ray_gives_up_on_a_task_that_always_kills_its_worker(ray_executor, tmp_path):
    with pytest.raises(WorkerLost) as lost:
        ray_executor.run(toy_task, [Job(0, str(tmp_path)), Job(1, str(tmp_path), kill="always")])
    assert lost.value.task_index == 1
    assert attempts(tmp_path, 1) == TASK_ATTEMPTS


def test_ray_refuses_a_cluster_running_another_version(ray_cluster, monkeypatch):
    from glucosestream.pipeline import ray_cluster as ray_module

    class Elsewhere:  # this process "has" another version; the workers report the real one
        @staticmethod
        def version(name: str) -> str:
            return "0.0.0-test"

    monkeypatch.setattr(ray_module, "metadata", Elsewhere)
    with pytest.raises(ClusterUnavailable, match=r"workers run glucosestream \S+ and this"):
        ray_module.RayExecutor(ray_cluster.address)
