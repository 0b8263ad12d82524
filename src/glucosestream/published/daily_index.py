"""The published daily metrics of every patient, sorted by (patient_key, date) and indexed by
patient, so one patient's days are a slice. PURE."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["DailyIndex", "index_daily"]


@dataclass(frozen=True, slots=True)
class DailyIndex:
    """The daily metrics table and, for each patient, its first row and row count."""

    table: pa.Table
    rows: dict[str, tuple[int, int]]

    def __contains__(self, patient_key: object) -> bool:
        return patient_key in self.rows

    def patient_days(
        self, patient_key: str, date_from: dt.date | None = None, date_to: dt.date | None = None
    ) -> pa.Table:
        """One patient's days, optionally only ``date_from``..``date_to`` (both included)."""
        start, length = self.rows.get(patient_key, (0, 0))
        days = self.table.slice(start, length)
        if date_from is not None:
            days = days.filter(pc.greater_equal(days["date"], pa.scalar(date_from)))
        if date_to is not None:
            days = days.filter(pc.less_equal(days["date"], pa.scalar(date_to)))
        return days

    def first_day(self, patient_key: str) -> dt.date:
        start, _ = self.rows[patient_key]
        day: dt.date = self.table["date"][start].as_py()
        return day

    def first_reading_day(self, patient_key: str) -> dt.date:
        """The first day with readings (days of events only come before it); a patient with
        events only: their first day."""
        days = self.patient_days(patient_key)
        counted = days.filter(pc.greater(days["readings"], 0))
        day: dt.date = (counted if counted.num_rows else days)["date"][0].as_py()
        return day

    def last_day(self, patient_key: str) -> dt.date:
        start, length = self.rows[patient_key]
        day: dt.date = self.table["date"][start + length - 1].as_py()
        return day


def index_daily(table: pa.Table) -> DailyIndex:
    """``table`` (sorted by patient_key, date) with each patient's rows found."""
    if table.num_rows == 0:
        return DailyIndex(table, {})
    runs = pc.run_end_encode(table["patient_key"].combine_chunks())
    ends = runs.run_ends.to_pylist()
    starts = [0, *ends[:-1]]
    keys = runs.values.to_pylist()
    return DailyIndex(table, {k: (s, e - s) for k, s, e in zip(keys, starts, ends, strict=True)})
