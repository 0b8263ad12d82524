"""The run lock: at most one pipeline run per lake at a time.

Two runs at once would both read the same published snapshot and both publish, the second
silently undoing the first. With a PostgreSQL metadata store the lock is a session advisory lock
there (so runs on different machines exclude each other); otherwise it is an exclusive,
non-blocking ``flock`` on ``<state>/run.lock``. Either way the lock dies with its holder (the
kernel drops the flock, PostgreSQL ends the session), so a killed run never leaves the lake
locked.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from glucosestream.config import LakeSettings
from glucosestream.errors import LakeError

__all__ = ["RunInProgress", "run_lock"]


class RunInProgress(LakeError):
    """Another run holds the lake's run lock."""

    def __init__(self, location: str) -> None:
        super().__init__(
            f"another `glucosestream run` is working on {location}; "
            "wait for it to finish (runs hold the lock only while they work)"
        )


@contextmanager
def run_lock(settings: LakeSettings) -> Iterator[None]:
    if settings.metadata_url.startswith("postgresql"):
        with _advisory_lock(settings):
            yield
    else:
        with _file_lock(settings):
            yield


@contextmanager
def _file_lock(settings: LakeSettings) -> Iterator[None]:
    settings.state_path.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.state_path / "run.lock", os.O_RDWR | os.O_CREAT, 0o600)
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
