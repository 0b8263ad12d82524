"""The published lake: which run was published last, asked once per request.

``current()`` makes one metadata-store query; when it names the run already cached, that
``PublishedRun`` (and all it has cached) is returned, else a new one is pinned to the new run
(and opens the lake afresh, once, on its first read).
A run is published by one metadata transaction (docs/decisions.md, "Atomic publish"), so a
reader sees the old run or the new one, never half of one.
"""

from __future__ import annotations

import threading

from glucosestream.config import Settings
from glucosestream.lake import Lakehouse, MetadataStore, open_lakehouse, open_metadata
from glucosestream.pipeline.table_registry import TABLES
from glucosestream.published.pinned_run import PublishedRun

__all__ = ["PublishedLake"]


class PublishedLake:
    """One per app or command: the lake handles and the current run's pinned reads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._run: PublishedRun | None = None
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
            if self._run is None or self._run.run_id != run_id:
                self._run = PublishedRun(self._open_lake, snapshots)
            return self._run
