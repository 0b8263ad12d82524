"""The Ray executor: tasks as Ray core tasks on a running cluster (``glucosestream run --cluster
ADDRESS``), never a cluster started here. The only module that imports ``ray``, inside its
functions, so the package works without the optional ``ray`` extra.

A task asks Ray for ``threads_per_task`` CPUs (one), so Ray fills every core of every node with
one task each. A worker that dies is Ray's to retry (``max_retries``), on a fresh worker; a task
that raises is not retried, and its exception reaches the caller with its own type. Opening
checks that a worker on every node runs the driver's version of glucosestream. Closing
disconnects this process and leaves the cluster running.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections import deque
from collections.abc import Callable, Sequence
from importlib import metadata
from types import ModuleType
from typing import Any, TypeVar

from glucosestream.config import ray_loopback_mode
from glucosestream.errors import ClusterUnavailable, WorkerLost
from glucosestream.pipeline.task_executor import TASK_ATTEMPTS, ClosesOnExit, describe_task

__all__ = ["RayExecutor"]

T = TypeVar("T")
R = TypeVar("R")

RAY_EXTRA = "pip install 'glucosestream[ray]'"
CONNECT_TIMEOUT_S = 5.0  # for the address to accept a connection (ray.init alone waits for ever)
PROBE_TIMEOUT_S = 120.0  # for a worker on each node to start and report its version
# Ray's errors for a task whose worker or node went away, once its retries are spent.
_LOST = ("WorkerCrashedError", "NodeDiedError", "OutOfMemoryError", "LocalRayletDiedError")


class RayExecutor(ClosesOnExit):
    """Ray core tasks on the cluster at ``address``; at most ``max_workers`` at once (default:
    as many as the cluster has CPUs for)."""

    def __init__(self, address: str, *, max_workers: int | None = None) -> None:
        self.name = "ray"
        self.address = address
        self.threads_per_task = 1
        self._ray, self._owns_connection = _connect(address)
        try:
            _check_versions(self._ray, address)
            cpus = int(self._ray.cluster_resources().get("CPU", 1))
        except BaseException:
            self.close()
            raise
        self.workers = max(1, cpus // self.threads_per_task)
        if max_workers is not None:
            self.workers = min(self.workers, max_workers)
        self._max_in_flight = max_workers

    def run(
        self,
        fn: Callable[[T], R],
        tasks: Sequence[T],
        on_result: Callable[[int, R], None] | None = None,
    ) -> list[R]:
        ray = self._ray
        remote = ray.remote(fn).options(
            num_cpus=self.threads_per_task, max_retries=TASK_ATTEMPTS - 1, retry_exceptions=False
        )
        limit = self._max_in_flight or len(tasks)
        waiting = deque(range(len(tasks)))
        index_of: dict[Any, int] = {}  # ObjectRef -> task index
        done: dict[int, R] = {}
        try:
            while waiting or index_of:
                while waiting and len(index_of) < limit:
                    index = waiting.popleft()
                    index_of[remote.remote(tasks[index])] = index
                ready, _ = ray.wait(list(index_of), num_returns=1)
                for ref in ready:
                    index = index_of.pop(ref)
                    done[index] = self._result(ref, index, tasks[index])
                    if on_result is not None:
                        on_result(index, done[index])
        except BaseException:
            for ref in index_of:  # queued ones are dropped, running ones interrupted
                with contextlib.suppress(Exception):  # the error in hand is the one to report
                    ray.cancel(ref)
            raise
        return [done[index] for index in range(len(tasks))]

    def _result(self, ref: Any, index: int, task: object) -> Any:
        """The task's result; its own exception re-raised with its type, ``WorkerLost`` when its
        worker died on every attempt."""
        ray = self._ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as err:
            cause = getattr(err, "cause", None)
            if isinstance(cause, Exception) and not isinstance(cause, ray.exceptions.RayError):
                raise cause from err
            raise
        except tuple(getattr(ray.exceptions, name) for name in _LOST) as err:
            raise WorkerLost(
                task_index=index,
                task=describe_task(task),
                attempts=TASK_ATTEMPTS,
                executor=f"Ray cluster at {self.address}",
            ) from err

    def close(self) -> None:
        """Disconnects this process (if this executor connected it); the cluster runs on."""
        if self._owns_connection and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns_connection = False


def _connect(address: str) -> tuple[ModuleType, bool]:
    """``ray``, connected to the cluster at ``address``, and whether this call connected it
    (a process already connected, by another executor or its own code, keeps its connection)."""
    loopback = ray_loopback_mode(address)  # before the first `import ray` of this process
    try:
        import ray
    except ImportError as err:
        raise ClusterUnavailable(
            address, "ray is not installed in this environment", f"install it: {RAY_EXTRA}"
        ) from err
    _check_loopback_mode(ray, address, loopback)
    _check_answers(address)
    if ray.is_initialized():
        _check_same_cluster(ray, address)
        return ray, False
    try:
        ray.init(
            address=address,
            logging_level=logging.ERROR,
            log_to_driver=False,
            configure_logging=False,
        )
    except Exception as err:
        raise ClusterUnavailable(
            address,
            f"ray.init failed ({type(err).__name__}: {err})",
            "check that the cluster runs the same Ray version (pip show ray) and its address "
            "(`ray status` on the head node)",
        ) from err
    return ray, True


def _check_loopback_mode(ray: ModuleType, address: str, loopback: bool) -> None:
    """Ray took its loopback setting when first imported: a driver of a loopback cluster that
    imported ray before the setting would wait for ever on the network interface's address."""
    from ray._private import ray_constants

    if loopback and getattr(ray_constants, "ENABLE_RAY_CLUSTER", False):
        raise ClusterUnavailable(
            address,
            "ray was imported in this process before RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 was set",
            "start the process with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 in its environment",
        )


def _check_same_cluster(ray: ModuleType, address: str) -> None:
    """A process already connected uses that connection, if it is to the same cluster."""
    connected = str(ray.get_runtime_context().gcs_address)
    if connected != address:
        raise ClusterUnavailable(
            address,
            f"this process is already connected to the Ray cluster at {connected}",
            "close the executor (or call ray.shutdown()) before opening another cluster",
        )


def _check_answers(address: str) -> None:
    """Something accepts connections at the address (``auto`` is left to Ray)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if address == "auto" or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        raise ClusterUnavailable(
            address,
            f"nothing answers there ({err.strerror or err})",
            "start the cluster (`ray start --head --port PORT` on the head node) or correct "
            "--cluster HOST:PORT",
        ) from err


def _check_versions(ray: ModuleType, address: str) -> None:
    """A worker on every live node runs this process's version of glucosestream."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(installed_version)
    refs = [
        probe.options(
            num_cpus=0,
            max_retries=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
        ).remote()
        for node in ray.nodes()
        if node["Alive"]
    ]
    try:
        versions = ray.get(refs, timeout=PROBE_TIMEOUT_S)
    except Exception as err:
        raise ClusterUnavailable(
            address,
            f"its workers cannot run glucosestream ({type(err).__name__})",
            "install glucosestream, with the ray extra, in the environment `ray start` runs "
            "on every node",
        ) from err
    mine = installed_version()
    others = sorted({v for v in versions if v != mine})
    if others:
        raise ClusterUnavailable(
            address,
            f"its workers run glucosestream {', '.join(others)} and this process {mine}",
            f"install glucosestream {mine} on every node (or this process's version there)",
        )


def installed_version() -> str:
    """The version of glucosestream installed where this runs (a worker, or the driver)."""
    return metadata.version("glucosestream")
