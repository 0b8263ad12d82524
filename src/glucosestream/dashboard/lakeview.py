"""The published lake as the pages see it: the daily metrics of the published run, read once
per published snapshot and indexed by patient, and the triage aggregate made from them.

A new published run is noticed on the next request (one metadata-store query) and the cache is
rebuilt; readers never see a half-published run (docs/decisions.md, "Atomic publish").
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from importlib import resources

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.config import Settings
from glucosestream.engines import DuckDBEngine
from glucosestream.lake import Lakehouse, MetadataStore, open_lakehouse, open_metadata
from glucosestream.metrics import DAILY_METRICS_SCHEMA

__all__ = ["LakeView", "PublishedDaily"]


@dataclass(frozen=True, slots=True)
class PublishedDaily:
    """The published daily metrics, sorted by (patient_key, date), with each patient's rows."""

    run_id: str | None
    readings_snapshot_id: int | None
    daily_snapshot_id: int | None
    table: pa.Table
    rows: dict[str, tuple[int, int]]  # patient_key -> (first row, row count)
    triage: pa.Table

    def patient_days(
        self, patient_key: str, date_from: dt.date | None = None, date_to: dt.date | None = None
    ) -> pa.Table:
        start, length = self.rows.get(patient_key, (0, 0))
        days = self.table.slice(start, length)
        if date_from is not None:
            days = days.filter(pc.greater_equal(days["date"], pa.scalar(date_from)))
        if date_to is not None:
            days = days.filter(pc.less_equal(days["date"], pa.scalar(date_to)))
        return days


def _index(table: pa.Table) -> dict[str, tuple[int, int]]:
    if table.num_rows == 0:
        return {}
    runs = pc.run_end_encode(table["patient_key"].combine_chunks())
    ends = runs.run_ends.to_pylist()
    starts = [0, *ends[:-1]]
    keys = runs.values.to_pylist()
    return {k: (s, e - s) for k, s, e in zip(keys, starts, ends, strict=True)}


class LakeView:
    """One per app: the lake handles and the cache of the published daily metrics."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._cached: PublishedDaily | None = None
        self._metadata: MetadataStore | None = None
        self._lake: Lakehouse | None = None

    @property
    def metadata(self) -> MetadataStore:
        if self._metadata is None:
            self._metadata = open_metadata(self.settings.lake)
        return self._metadata

    @property
    def lake(self) -> Lakehouse:
        if self._lake is None:
            self._lake = open_lakehouse(self.settings.lake)
        return self._lake

    def published(self) -> PublishedDaily:
        """The daily metrics of the last published run (empty before the first run)."""
        snapshots = self.metadata.published()
        run_id = snapshots.run_id if snapshots else None
        with self._lock:
            if self._cached is not None and self._cached.run_id == run_id:
                return self._cached
            table = DAILY_METRICS_SCHEMA.empty_table()
            if snapshots is not None:
                table = self.lake.read_daily(snapshots.daily_snapshot_id)
            self._cached = PublishedDaily(
                run_id,
                snapshots.readings_snapshot_id if snapshots else None,
                snapshots.daily_snapshot_id if snapshots else None,
                table,
                _index(table),
                self._triage(table),
            )
            return self._cached

    def _triage(self, daily: pa.Table) -> pa.Table:
        sql = (resources.files("glucosestream.dashboard") / "triage.sql").read_text("utf-8")
        engine = DuckDBEngine(self.settings.engine)
        try:
            return engine.query(sql, {"daily": daily})
        finally:
            engine.close()
