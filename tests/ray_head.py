"""A real single-node Ray cluster on 127.0.0.1 for the tests (the Ray executor's fixture).

``start_head`` runs ``ray start --head --block`` in a session of its own, on free ports, with a
short temp dir (Ray's unix socket paths must fit 107 bytes) and Ray's loopback mode
(``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``: without it Ray rewrites 127.0.0.1 to the first network
interface's address and binds its servers to every interface). ``RayHead.stop`` sends SIGTERM to
that one process, which takes the cluster down, and waits until no process of its group is
left. Never ``ray stop``: it stops every Ray process on the machine, other people's included.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
REPO = Path(__file__).resolve().parents[1]  # on the workers' path: they import tests.*


@dataclass
class RayHead:
    process: subprocess.Popen[bytes]
    address: str  # 127.0.0.1:GCS_PORT
    temp_dir: Path

    @property
    def log(self) -> Path:
        return self.temp_dir / "head.log"

    def processes(self) -> list[psutil.Process]:
        """Every process of the cluster (its session's process group): GCS, raylet, agents,
        workers."""
        return group_processes(self.process.pid)

    def stop(self) -> None:
        """SIGTERM to the ``ray start --block`` process (the whole group at once leaves the GCS
        and raylet running), then SIGKILL for anything of the group still alive."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                _kill_group(self.process.pid)
                self.process.wait(STOP_TIMEOUT_S)
        deadline = time.monotonic() + 10.0
        while group_processes(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        _kill_group(self.process.pid)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


HAS_RAY = importlib.util.find_spec("ray") is not None  # not imported: see ray_loopback_mode
NO_RAY = "ray is not installed (pip install 'glucosestream[ray]')"


def running_head(cpus: int = 2) -> Iterator[RayHead]:
    """A module fixture's body: a head for the module (skipped without ray), stopped after it
    with nothing left running."""
    if not HAS_RAY:
        pytest.skip(NO_RAY)
    head = start_head(cpus=cpus)
    try:
        yield head
    finally:
        head.stop()
    assert head.processes() == []


def start_head(*, cpus: int = 2) -> RayHead:
    """A running head node on 127.0.0.1; raises RuntimeError with the end of its log if it does
    not answer within START_TIMEOUT_S."""
    ray = Path(sys.executable).with_name("ray")
    temp_dir = Path(tempfile.mkdtemp(prefix="gs-ray-", dir="/tmp"))
    gcs, client, dashboard, agent, metrics, autoscaler = free_ports(6)
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))
    env = {
        **os.environ,
        "PYTHONPATH": path,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_SCHEDULER_EVENTS": "0",
        "DASHBOARD_METRIC_PORT": str(metrics),  # fixed by default: two clusters would collide
        "AUTOSCALER_METRIC_PORT": str(autoscaler),
    }
    command = [
        str(ray), "start", "--head", "--block",
        "--node-ip-address", "127.0.0.1", "--port", str(gcs),
        "--ray-client-server-port", str(client),
        "--include-dashboard", "false", "--dashboard-host", "127.0.0.1",
        "--dashboard-port", str(dashboard), "--dashboard-agent-listen-port", str(agent),
        "--temp-dir", str(temp_dir), "--num-cpus", str(cpus),
        "--object-store-memory", str(100 * 1024 * 1024), "--disable-usage-stats",
    ]  # fmt: skip
    with open(temp_dir / "head.log", "wb") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    head = RayHead(process=process, address=f"127.0.0.1:{gcs}", temp_dir=temp_dir)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _answers("127.0.0.1", gcs):
        if process.poll() is not None or time.monotonic() > deadline:
            tail = head.log.read_text(errors="replace")[-2000:]
            head.stop()
            raise RuntimeError(f"the Ray head did not start ({command}):\n{tail}")
        time.sleep(0.2)
    return head


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 just now."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def group_processes(pgid: int) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
    return found


def listening_addresses(processes: list[psutil.Process]) -> list[tuple[str, int, str]]:
    """(address, port, process name) of every TCP socket those processes listen on."""
    found = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            name = process.name()
            for conn in process.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    found.append((conn.laddr.ip, conn.laddr.port, name))
    return found


def is_loopback(address: str) -> bool:
    """127.0.0.1, ::1, or 127.0.0.1 written as IPv6 (::ffff:127.0.0.1, how gRPC listens)."""
    ip = ipaddress.ip_address(address.split("%")[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
