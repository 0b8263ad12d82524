"""The run lock: at most one pipeline run per lake at a time.

Two runs at once would both read the same published snapshot and both publish, the second
silently undoing the first. An exclusive, non-blocking ``flock`` on ``<lake>/_state/run.lock``
prevents it on one machine; the kernel drops the lock when its process dies (even by SIGKILL),
so a crashed run never leaves the lake locked.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

from glucosestream.config import LakeSettings
from glucosestream.errors import LakeError

__all__ = ["RunInProgress", "run_lock"]


class RunInProgress(LakeError):
    """Another run holds the lake's run lock."""


@contextmanager
def run_lock(settings: LakeSettings) -> Iterator[None]:
    settings.state_path.mkdir(parents=True, exist_ok=True)
    path = settings.state_path / "run.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            raise RunInProgress(
                f"another `glucosestream run` is working on {settings.root_path}; "
                "wait for it to finish (runs hold the lock only while they work)"
            ) from err
        yield
    finally:
        os.close(fd)
