"""The run lock: at most one pipeline run per lake at a time.

Two runs at once would both read the same published snapshot and both publish, the second
silently undoing the first. With a PostgreSQL metadata store the lock is a session advisory lock
there (so runs on different machines exclude each other); otherwise it is an exclusive,
non-blocking ``flock`` on ``<state>/run.lock``. Either way the lock dies with its holder (the
kernel drops the flock, PostgreSQL ends the session), so a killed run never leaves the lake
locked.

A killed run does leave its record "running" in the metadata store. Whoever takes the lock next
proves that no run is alive, so it closes each such record as "abandoned", with a message,
before it starts its own work (``glucosestream runs`` shows them).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from glucosestream.clock import Clock, utc_now
from glucosestream.config import LakeSettings
from glucosestream.errors import RunInProgress
from glucosestream.lake.database import private_state_path
from glucosestream.lake.metadata import open_metadata

__all__ = ["ABANDONED_MESSAGE", "run_lock"]

log = logging.getLogger(__name__)


ABANDONED_MESSAGE = (
    "the run did not finish: its process ended without closing it (killed, out of memory or a "
    "power cut); closed when the run lock was next taken. Nothing it did not publish is "
    "visible, and the next run undoes its unpublished writes and loads its batches"
)


@contextmanager
def run_lock(settings: LakeSettings, *, now: Clock = utc_now) -> Iterator[None]:
    """Hold the lake's run lock; on taking it, close the runs left "running" as "abandoned"."""
    lock = _advisory_lock if settings.metadata_url.startswith("postgresql") else _file_lock
    with lock(settings):
        _abandon_running(settings, now)
        yield


def _abandon_running(settings: LakeSettings, now: Clock) -> None:
    abandoned = open_metadata(settings).abandon_running_runs(now(), ABANDONED_MESSAGE)
    for run_id in abandoned:
        log.warning("run run_id=%s status=abandoned (left running by a process that died)", run_id)


@contextmanager
def _file_lock(settings: LakeSettings) -> Iterator[None]:
    fd = os.open(private_state_path(settings) / "run.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            raise RunInProgress(settings.location) from err
        yield
    finally:
        os.close(fd)


@contextmanager
def _advisory_lock(settings: LakeSettings) -> Iterator[None]:
    digest = hashlib.sha256(("glucosestream-run:" + settings.location).encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)
    engine = sa.create_engine(settings.metadata_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as con:
            got = con.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            if not got:
                raise RunInProgress(settings.location)
            try:
                yield
            finally:
                con.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    finally:
        engine.dispose()
