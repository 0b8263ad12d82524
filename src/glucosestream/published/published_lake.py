"""The published lake: which run was published last, asked once per request.

``current()`` makes one metadata-store query; when it names the run already cached, that
``PublishedRun`` (and all it has cached) is returned, else a new one is pinned to the new run
(and opens the lake afresh, once, on its first read). ``adopt_newest(warm)`` (``serve``, after
its run published) pins the new run and fills its caches before any request gets it: requests
meanwhile keep the run they had, so the first read of each followed patient after a publish
is not an Iceberg scan in a request.
A run is published by one metadata transaction (docs/decisions.md, "Atomic publish"), so a
reader sees the old run or the new one, never half of one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from glucosestream.config import Settings
from glucosestream.lake import Lakehouse, MetadataStore, open_lakehouse, open_metadata
from glucosestream.pipeline.table_registry import TABLES
from glucosestream.published.pinned_run import PublishedRun

__all__ = ["PublishedLake"]

log = logging.getLogger(__name__)


class PublishedLake:
    """One per app or command: the lake handles and the current run's pinned reads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._run: PublishedRun | None = None
        self._warming: str | None = None  # the run adopt_newest is filling, not yet current
        self._metadata: MetadataStore | None = None

    @property
    def metadata(self) -> MetadataStore:
        if self._metadata is None:
            self._metadata = open_metadata(self.settings.lake)
        return self._metadata

    def _open_lake(self) -> Lakehouse:
        return open_lakehouse(self.settings.lake, TABLES)

    def current(self) -> PublishedRun:
        """The last published run (one metadata query); before the first run, an empty one."""
        snapshots = self.metadata.published()
        run_id = snapshots.run_id if snapshots is not None else None
        with self._lock:
            run = self._run
            if run is None or (run.run_id != run_id and run_id != self._warming):
                run = self._run = PublishedRun(self._open_lake, snapshots)
            return run

    def adopt_newest(self, warm: Callable[[PublishedRun | None, PublishedRun], object]) -> None:
        """Pin the last published run, let ``warm(previous, new)`` fill its caches, then make it
        the current one; requests meanwhile keep the run they had. A failing ``warm`` only
        leaves the caches cold."""
        snapshots = self.metadata.published()
        run_id = snapshots.run_id if snapshots is not None else None
        with self._lock:
            previous = self._run
            if run_id is None or (previous is not None and previous.run_id == run_id):
                return
            self._warming = run_id
        run = PublishedRun(self._open_lake, snapshots)
        try:
            warm(previous, run)
        except Exception:  # the requests will read what is missing themselves
            log.exception("warming the caches of run %s failed", run_id)
        finally:
            with self._lock:
                self._warming = None
                if self._run is previous:  # no request moved to a newer run meanwhile
                    self._run = run
