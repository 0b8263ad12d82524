"""The clinic's view of each patient's rolling summary: the consensus metrics of the last 14
complete local days ("current", ``metrics.report_window``) and of the 14 days before
("previous"), as rows shaped like ``results.patient_summaries``; and when each patient last
uploaded.

``rolling_summaries`` is the one place that says where the rows come from: computed here from
the published readings with ``published.period_results`` (audited rows where a window is a
published period), cached on the run, until the rolling summary written at publish
(``PublishedRun.summaries()``) is read instead.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, Literal

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.dashboard.patientdata import window_of
from glucosestream.live import LiveWindow
from glucosestream.metrics import REPORT_DAYS
from glucosestream.published import PublishedLake, PublishedRun, period_results

__all__ = [
    "WINDOWS",
    "ReportWindows",
    "Window",
    "last_uploads",
    "patient_windows",
    "rolling_summaries",
    "summary_rows",
    "window_readings",
    "windows_of",
]

Window = Literal["current", "previous"]
WINDOWS: Final[tuple[Window, Window]] = ("current", "previous")
# Read back from a patient's last published day: both windows, a partial day and the local
# clock's lead on UTC (a local day starts at most 14 h before its UTC date).
_READ_BACK: Final = dt.timedelta(days=2 * REPORT_DAYS + 2)
_HEAD: Final = ("patient_key", "window", "period_start", "period_end", "partial_day")


def rolling_summaries(
    run: PublishedRun, patient_keys: Iterable[str], *, now: dt.datetime
) -> pa.Table:
    """The current and previous window's row of each patient (a patient without published
    readings has none)."""
    return _computed_summaries(run, patient_keys, now=now)


def summary_rows(
    run: PublishedRun, patient_keys: Iterable[str], *, now: dt.datetime
) -> dict[str, dict[Window, dict[str, Any]]]:
    """``rolling_summaries`` as ``{patient_key: {"current": row, "previous": row}}``."""
    out: dict[str, dict[Window, dict[str, Any]]] = {}
    for row in rolling_summaries(run, patient_keys, now=now).to_pylist():
        out.setdefault(row["patient_key"], {})[row["window"]] = row
    return out


def _computed_summaries(
    run: PublishedRun, patient_keys: Iterable[str], *, now: dt.datetime
) -> pa.Table:
    tables = [
        run.cached(f"clinic-summary:{key}", partial(_patient_summary, run, key, now))
        for key in sorted(set(patient_keys))
    ]
    tables = [t for t in tables if t.num_rows]
    return pa.concat_tables(tables, promote_options="default") if tables else pa.table({})


def window_readings(run: PublishedRun, patient_key: str) -> pa.Table:
    daily = run.daily_index()
    if patient_key not in daily:
        return pa.table({})
    last = daily.last_day(patient_key)
    since = dt.datetime.combine(last, dt.time(), dt.UTC) - _READ_BACK
    return run.readings([patient_key], since)


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
    """The windows of a patient's published readings: the current one is
    ``patientdata.window_of`` (``metrics.report_window`` of the newest reading's wall-clock
    time, as the patient page and the AGP report take it); None without readings."""
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


def patient_windows(run: PublishedRun, patient_key: str) -> ReportWindows | None:
    """``windows_of`` the patient's published readings, cached on the run."""
    return run.cached(f"clinic-windows:{patient_key}", partial(_lake_windows, run, patient_key))


def _lake_windows(run: PublishedRun, patient_key: str) -> ReportWindows | None:
    return windows_of(window_readings(run, patient_key))


def _patient_summary(run: PublishedRun, patient_key: str, now: dt.datetime) -> pa.Table:
    """The patient's two rows: each window's period metrics, with the window's head columns
    and the newest reading's instant in front."""
    readings = window_readings(run, patient_key)
    windows = windows_of(readings)
    if windows is None:
        return pa.table({})
    rows = []
    for window, (start, end) in windows.spans().items():
        results = period_results(run, patient_key, start, end, readings=readings, now=now)
        metrics = results.metrics.to_pylist()[0] if results.metrics.num_rows else {}
        values = (patient_key, window, start, end, windows.partial_day)
        head = dict(zip(_HEAD, values, strict=True))
        rows.append(
            {
                **head,
                "last_reading_at": windows.last_reading_at,
                "audited": results.audited,
                **{k: v for k, v in metrics.items() if k not in head},
            }
        )
    return pa.Table.from_pylist(rows)


def last_uploads(
    published: PublishedLake, live: LiveWindow, run: PublishedRun, patient_keys: Iterable[str]
) -> dict[str, dt.datetime]:
    """When each patient's newest batch was received: the batches behind their readings in the
    live window (uploads of the last hours, published or not; ``batches.created_at``), else the
    newest ``ingested_at`` of their published readings of the window. A patient with neither
    is left out."""
    keys = sorted(set(patient_keys))
    recent: dict[str, set[str]] = {}
    for key in keys:
        batch_ids = {r.batch_id for r in live.recent(key)}
        if batch_ids:
            recent[key] = batch_ids
    wanted = sorted(set().union(*recent.values())) if recent else []
    records = published.metadata.batch_records(wanted) if wanted else {}
    out: dict[str, dt.datetime] = {}
    for key in keys:
        received = [_utc(records[b].created_at) for b in recent.get(key, ()) if b in records]
        published_at = run.cached(f"clinic-upload:{key}", partial(_published_upload, run, key))
        candidates = [t for t in [*received, published_at] if t is not None]
        if candidates:
            out[key] = max(candidates)
    return out


def _published_upload(run: PublishedRun, patient_key: str) -> dt.datetime | None:
    readings = window_readings(run, patient_key)
    if not readings.num_rows:
        return None
    newest: dt.datetime = pc.max(readings["ingested_at"]).as_py()
    return newest


def _utc(at: dt.datetime) -> dt.datetime:
    """A stored instant as aware UTC (SQLite returns it naive)."""
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)
