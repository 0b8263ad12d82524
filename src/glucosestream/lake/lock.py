"""The run lock: at most one pipeline run per lake at a time.

Two runs at once would both read the same published snapshot and both publish, the second
silently undoing the first. With ``lake.lock_url = dynamodb://TABLE`` the lock is a lease in
that table (``lake.run_lease``: the only kind that spans the processes of a Step Functions run,
and the one the command line takes on such a lake too, renewed from a thread). Else, with a
PostgreSQL metadata store it is a session advisory lock there (so runs on different machines
exclude each other); otherwise an exclusive, non-blocking ``flock`` on ``<state>/run.lock``. The
lock dies with its holder (the kernel drops the flock, PostgreSQL ends the session, a lease
nobody renews ends), so a killed run never leaves the lake locked for long.

A killed run does leave its record "running" in the metadata store. Whoever takes the lock next
proves that no run is alive, so it closes each such record as "abandoned", with a message,
before it starts its own work (``glucosestream runs`` shows them).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from glucosestream.clock import Clock, utc_now
from glucosestream.config import LakeSettings
from glucosestream.errors import ConfigError, RunInProgress
from glucosestream.lake.database import private_state_path
from glucosestream.lake.metadata import open_metadata
from glucosestream.lake.run_lease import LEASE_SECONDS, RunLease, open_lease

__all__ = ["ABANDONED_MESSAGE", "HeldLock", "run_lock", "spanning_lease", "take_run_lease"]

log = logging.getLogger(__name__)


ABANDONED_MESSAGE = (
    "the run did not finish: its process ended without closing it (killed, out of memory or a "
    "power cut); closed when the run lock was next taken. Nothing it did not publish is "
    "visible, and the next run undoes its unpublished writes and loads its batches"
)


class HeldLock:
    """The run lock as its holder sees it: ``confirm`` before publishing."""

    def __init__(self, lease: RunLease | None = None, holder: str = "") -> None:
        self._lease = lease
        self._holder = holder

    def confirm(self) -> None:
        """Raise ``RunLockLost`` if the lock is no longer this run's (only a lease can end
        while its holder lives: a file or advisory lock cannot), else extend it."""
        if self._lease is not None:
            self._lease.renew(self._holder, LEASE_SECONDS)


@contextmanager
def run_lock(settings: LakeSettings, *, now: Clock = utc_now) -> Iterator[HeldLock]:
    """Hold the lake's run lock; on taking it, close the runs left "running" as "abandoned"."""
    lease = open_lease(settings)
    if lease is not None:
        lock = _leased(lease)
    elif settings.metadata_url.startswith("postgresql"):
        lock = _advisory_lock(settings)
    else:
        lock = _file_lock(settings)
    with lock as held:
        _abandon_running(settings, now)
        yield held


def take_run_lease(settings: LakeSettings, run_id: str, seconds: float, now: Clock) -> RunLease:
    """Take the lake's lease for ``run_id`` (a run whose steps run in several processes, which
    renew and release it themselves); close the runs left "running" as "abandoned"."""
    lease = spanning_lease(settings)
    lease.take(run_id, seconds)
    _abandon_running(settings, now)
    return lease


def spanning_lease(settings: LakeSettings) -> RunLease:
    """The lake's lease, which a run whose steps run in separate processes needs."""
    lease = open_lease(settings)
    if lease is None:
        raise ConfigError(
            "a run whose steps run in separate processes (AWS Step Functions) needs a lock "
            "that spans them: set lake.lock_url to dynamodb://TABLE"
        )
    return lease


def _abandon_running(settings: LakeSettings, now: Clock) -> None:
    abandoned = open_metadata(settings).abandon_running_runs(now(), ABANDONED_MESSAGE)
    for run_id in abandoned:
        log.warning("run run_id=%s status=abandoned (left running by a process that died)", run_id)


@contextmanager
def _leased(lease: RunLease) -> Iterator[HeldLock]:
    """Hold the lease while the block runs, renewed from a thread every third of its length."""
    holder = f"cli-{uuid.uuid4().hex}"
    lease.take(holder, LEASE_SECONDS)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(LEASE_SECONDS / 3):
            try:
                lease.renew(holder, LEASE_SECONDS)
            except Exception as err:  # the run's HeldLock.confirm raises it before publishing
                log.error("run lock lease could not be renewed: %s", err)
                return

    renewer = threading.Thread(target=renew, name="run-lease", daemon=True)
    renewer.start()
    try:
        yield HeldLock(lease, holder)
    finally:
        stop.set()
        renewer.join()
        lease.release(holder)


@contextmanager
def _file_lock(settings: LakeSettings) -> Iterator[HeldLock]:
    fd = os.open(private_state_path(settings) / "run.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            raise RunInProgress(settings.location) from err
        yield HeldLock()
    finally:
        os.close(fd)


@contextmanager
def _advisory_lock(settings: LakeSettings) -> Iterator[HeldLock]:
    digest = hashlib.sha256(("glucosestream-run:" + settings.location).encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)
    engine = sa.create_engine(settings.metadata_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as con:
            got = con.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            if not got:
                raise RunInProgress(settings.location)
            try:
                yield HeldLock()
            finally:
                con.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    finally:
        engine.dispose()
