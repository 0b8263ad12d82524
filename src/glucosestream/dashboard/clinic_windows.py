"""Which local days the clinic's pages count for a patient: the current window (the last 14
complete local days, ``patientdata.window_of``: ``metrics.report_window`` of the newest
published reading's wall-clock time, as the patient page and the AGP report take it) and the
previous window (the 14 days before it)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import partial
from typing import Final, Literal

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.dashboard.patientdata import window_of
from glucosestream.metrics import REPORT_DAYS
from glucosestream.published import PublishedRun

__all__ = [
    "READ_BACK",
    "WINDOWS",
    "ReportWindows",
    "Window",
    "patient_windows",
    "window_readings",
    "windows_of",
]

Window = Literal["current", "previous"]
WINDOWS: Final[tuple[Window, Window]] = ("current", "previous")
# Read back from a patient's last published day: both windows, a partial day and the local
# clock's lead on UTC (a local day starts at most 14 h before its UTC date).
READ_BACK: Final = dt.timedelta(days=2 * REPORT_DAYS + 2)


@dataclass(frozen=True, slots=True)
class ReportWindows:
    """A patient's two windows of local days (both ends counted) and the partial newest day."""

    current: tuple[dt.date, dt.date]
    previous: tuple[dt.date, dt.date]
    partial_day: dt.date | None
    last_reading_at: dt.datetime

    def spans(self) -> dict[Window, tuple[dt.date, dt.date]]:
        return {"current": self.current, "previous": self.previous}


def windows_of(readings: pa.Table) -> ReportWindows | None:
    """The windows of one patient's published readings (``ts`` and ``tz`` are enough); None
    without readings."""
    if not readings.num_rows:
        return None
    newest: dt.datetime = pc.max(readings["ts"]).as_py()
    current = window_of(readings, newest.date())
    previous_end = current.start - dt.timedelta(days=1)
    previous_start = previous_end - dt.timedelta(days=REPORT_DAYS - 1)
    return ReportWindows(
        (current.start, current.end),
        (previous_start, previous_end),
        current.partial_day,
        newest,
    )


def window_readings(run: PublishedRun, patient_key: str) -> pa.Table:
    """The patient's published readings that both windows can need (empty without any)."""
    daily = run.daily_index()
    if patient_key not in daily:
        return pa.table({})
    since = dt.datetime.combine(daily.last_day(patient_key), dt.time(), dt.UTC) - READ_BACK
    return run.readings([patient_key], since)


def patient_windows(run: PublishedRun, patient_key: str) -> ReportWindows | None:
    """``windows_of`` the patient's published readings, cached on the run."""
    return run.cached(f"clinic-windows:{patient_key}", partial(_lake_windows, run, patient_key))


def _lake_windows(run: PublishedRun, patient_key: str) -> ReportWindows | None:
    return windows_of(window_readings(run, patient_key))
