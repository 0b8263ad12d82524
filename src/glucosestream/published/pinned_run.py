"""One published run, pinned: its snapshot ids, every read at them, and what is cached per run.

A ``PublishedRun`` is made once per published run (``PublishedLake.current``) and shared by the
requests that see that run; its reads never move to a newer snapshot, so a request that started
before a publish finishes on the run it started with. It opens the lake (its Iceberg table
metadata) on its first read, after the run was published, so it knows the run's snapshots; a
lake opened before would not (another process published them).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar, cast

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import AlwaysTrue, And, BooleanExpression, EqualTo, In

from glucosestream.events import EVENT_SCHEMA
from glucosestream.lake import Lakehouse
from glucosestream.published.daily_index import DailyIndex, index_daily

__all__ = ["PublishedRun", "Snapshots"]

T = TypeVar("T")


class Snapshots(Protocol):
    """What the read side uses of the metadata store's record of a published run."""

    @property
    def run_id(self) -> str: ...

    def of(self, table: str) -> int | None: ...


class PublishedRun:
    """The snapshot ids of one published run (all None before the first run) and reads at them."""

    def __init__(self, open_lake: Callable[[], Lakehouse], snapshots: Snapshots | None) -> None:
        self.run_id: str | None = snapshots.run_id if snapshots is not None else None
        self._snapshots = snapshots
        self._open_lake = open_lake
        self._lake: Lakehouse | None = None
        self._lake_lock = threading.Lock()
        self._cache_lock = threading.RLock()  # a cached view may be made from another (triage)
        self._cache: dict[str, Any] = {}

    @property
    def lake(self) -> Lakehouse:
        """The lake, opened on first use (once per run)."""
        with self._lake_lock:
            if self._lake is None:
                self._lake = self._open_lake()
            return self._lake

    def snapshot_id(self, table: str) -> int | None:
        """The run's snapshot of a table by its registry key (``pipeline.table_registry``:
        readings, daily, periods, episodes, agp, summaries, sessions, events); None before the
        first run (or before the first run that wrote the table)."""
        return self._snapshots.of(table) if self._snapshots is not None else None

    @property
    def is_published(self) -> bool:
        """Whether any run has published yet."""
        return self.run_id is not None

    def readings(self, patient_keys: Iterable[str], since: dt.datetime | None = None) -> pa.Table:
        """The patients' curated readings, optionally only from ``since`` on."""
        return self.lake.read_readings(self.snapshot_id("readings"), patient_keys, since)

    def events(
        self,
        patient_key: str,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
    ) -> pa.Table:
        """The patient's curated events (``curated.events``, EVENT_SCHEMA) with ``start <= ts <
        end`` (None: unbounded), in time order. The patient's events are read once per run
        (they are few: tens a day) and cached on it; a run published before the events table
        existed has none."""
        rows = self.cached(f"events:{patient_key}", lambda: self._patient_events(patient_key))
        if start is not None:
            rows = rows.filter(pc.greater_equal(rows["ts"], pa.scalar(start, rows["ts"].type)))
        if end is not None:
            rows = rows.filter(pc.less(rows["ts"], pa.scalar(end, rows["ts"].type)))
        return rows

    def _patient_events(self, patient_key: str) -> pa.Table:
        snapshot_id = self.snapshot_id("events")
        if snapshot_id is None:
            return EVENT_SCHEMA.empty_table()
        rows = self.lake.read_table("events", snapshot_id, EqualTo("patient_key", patient_key))
        return rows.sort_by(
            [("ts", "ascending"), ("device_id", "ascending"), ("kind", "ascending")]
        )

    def daily(
        self,
        patient_key: str | None = None,
        date_from: dt.date | None = None,
        date_to: dt.date | None = None,
    ) -> pa.Table:
        """Daily metrics read from the lake (one patient's, or all), sorted by key and date."""
        return self.lake.read_daily(self.snapshot_id("daily"), patient_key, date_from, date_to)

    def results(
        self,
        table: str,
        patient_key: str | None = None,
        *,
        period_start: dt.date | None = None,
    ) -> pa.Table:
        """Rows of a table (``periods``, ``episodes``, ``agp``, ...): one patient's, or all;
        optionally one period's only."""
        where: BooleanExpression = AlwaysTrue()
        if patient_key is not None:
            where = EqualTo("patient_key", patient_key)
        if period_start is not None:
            where = And(where, EqualTo("period_start", period_start.isoformat()))
        return self.lake.read_table(table, self.snapshot_id(table), where)

    def summaries(self, patient_keys: Iterable[str] | None = None) -> pa.Table:
        """The rolling summary rows (``results.patient_summaries``: each patient's last 14
        complete days, ``window`` "current", and the 14 before, "previous") of these patients,
        or of all; empty before a run wrote the table."""
        where: BooleanExpression = AlwaysTrue()
        if patient_keys is not None:
            keys = sorted(set(patient_keys))
            if not keys:
                return self.lake.specs["summaries"].schema.empty_table()
            where = In("patient_key", keys)
        return self.lake.read_table("summaries", self.snapshot_id("summaries"), where)

    def daily_index(self) -> DailyIndex:
        """Every patient's daily metrics, read once per run and indexed by patient."""
        return self.cached("daily_index", lambda: index_daily(self.daily()))

    def cached_names(self, prefix: str) -> list[str]:
        """The names cached so far that start with ``prefix``."""
        with self._cache_lock:
            return [name for name in self._cache if name.startswith(prefix)]

    def cached(self, name: str, make: Callable[[], T]) -> T:
        """``make()``, computed once for this run (views derived from the run's tables)."""
        with self._cache_lock:
            if name not in self._cache:
                self._cache[name] = make()
            return cast(T, self._cache[name])
