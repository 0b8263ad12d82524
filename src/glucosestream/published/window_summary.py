"""One patient's summary of any window of local days: the consensus set, the research catalog
and the data sufficiency, read from the published run.

Without dates the window is the patient's whole data: the first local day with a reading to the
last *complete* one (``metrics.report_window.last_complete_day`` of the newest reading's wall
clock). The newest day, when partial, is named (``partial_day``) and never counted, whatever
``end`` asks for, so a fresh export's summary does not end on a nearly empty day. A window that
is exactly a closed fixed fortnight takes its consensus set from the audited results row
(``period_results.catalog_results``); any other is computed from the published readings as one
series and marked not audited.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.errors import InvalidInput, NotFound
from glucosestream.localclock import wall_clock_times
from glucosestream.metrics import EVENT_COLUMNS, PERIOD_EVENT_COLUMNS, period_event_totals
from glucosestream.metrics.report_window import last_complete_day
from glucosestream.published.period_results import catalog_results
from glucosestream.published.pinned_run import PublishedRun

__all__ = ["WindowSummary", "window_summary"]

# A local day starts at most 14 hours before or 12 after the UTC day of the same date (UTC+14,
# UTC-12): reading from the day before the window's first in UTC covers all its readings.
_ZONE_MARGIN = dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class WindowSummary:
    """The catalog of one patient's local days ``start``..``end`` (both counted);
    ``partial_day``: the newest day of data when the window reached it but it was not complete
    (shown apart, not counted). ``audited``: the consensus set is the published row of run
    ``audited_by`` (the window is a closed fixed fortnight); ``metrics``: every metric of
    ``metrics.spec.ALL`` by name, JSON-ready (None where undefined)."""

    patient_key: str
    start: dt.date
    end: dt.date
    partial_day: dt.date | None
    audited: bool
    audited_by: str | None
    metrics: dict[str, Any]
    computed_at: dt.datetime
    # The window's insulin and carbohydrate means per known day and the days known
    # (``metrics.PERIOD_EVENT_COLUMNS``, as period_metrics has them; None: nothing recorded).
    event_means: dict[str, Any] = field(default_factory=dict)

    @property
    def days(self) -> int:
        """The local days the window counts."""
        return (self.end - self.start).days + 1

    def as_json(self) -> dict[str, Any]:
        """The summary as the JSON API and ``metrics --json`` give it."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "partial_day": self.partial_day.isoformat() if self.partial_day else None,
            "days": self.days,
            "audited": self.audited,
            "audited_by": self.audited_by,
            "computed_at": self.computed_at.isoformat(),
            "metrics": dict(self.metrics),
            "event_means": dict(self.event_means),
            "sufficiency": {
                "active_pct": self.metrics.get("active_pct"),
                "days": self.metrics.get("days"),
                "sufficient_14d": self.metrics.get("sufficient_14d"),
            },
        }


def window_summary(
    run: PublishedRun,
    patient_key: str,
    start: dt.date | None,
    end: dt.date | None,
    *,
    now: dt.datetime,
    readings: pa.Table | None = None,
) -> WindowSummary:
    """The summary of ``start``..``end`` (either None: from the first day of data, to the last
    complete one), narrowed to the patient's data: it starts on the first day with a reading
    at the earliest and ends on the last complete day at the latest. Raises ``InvalidInput``
    when ``start`` is after ``end``, ``NotFound`` when the run has no data of the patient or
    none in the window (saying which days it has). ``readings``: the patient's published
    readings when the caller holds them already (all of them from the day before ``start``, or
    all, on: the newest included), else they are read."""
    if start is not None and end is not None and start > end:
        raise InvalidInput(
            f"the window starts on {start} after it ends on {end}; pass a first day on or "
            "before the last"
        )
    index = run.daily_index()
    if patient_key not in index:
        raise NotFound(
            "no published data for that patient; check the id (as ingested), or run "
            "`glucosestream run` after ingesting their files"
        )
    first, last = index.first_reading_day(patient_key), index.last_day(patient_key)
    read_from = min(max(start or first, first), last)  # the newest day's readings always read
    since = dt.datetime.combine(read_from - _ZONE_MARGIN, dt.time(), dt.UTC)
    if readings is None:
        readings = run.readings([patient_key], since)
    newest = _newest_wall_clock(readings) if readings.num_rows else None
    # Without readings (days of insulin or carbs only), the daily rows' days all count.
    complete = last if newest is None else last_complete_day(newest)
    partial = None if newest is None or complete >= newest.date() else newest.date()
    window_start, window_end = max(start or first, first), min(end or complete, complete)
    has_days = index.patient_days(patient_key, window_start, window_end).num_rows > 0
    if window_start > window_end or not has_days:
        raise NotFound(_no_data_message(start, end, first, complete, partial))
    catalog = catalog_results(run, patient_key, window_start, window_end, readings=readings)
    return WindowSummary(
        patient_key=patient_key,
        start=window_start,
        end=window_end,
        partial_day=partial if end is None or end > complete else None,
        audited=catalog.audited,
        audited_by=catalog.audited_by,
        metrics=catalog.metrics,
        computed_at=now,
        event_means=_event_means(index.patient_days(patient_key, window_start, window_end)),
    )


def _event_means(days: pa.Table) -> dict[str, Any]:
    """The insulin and carbohydrate means of the window's daily rows (one patient's), by
    ``metrics.period_event_totals``, the definition period_metrics and summaries use."""
    if not set(EVENT_COLUMNS) <= set(days.column_names):  # a lake before the event columns
        return dict.fromkeys(PERIOD_EVENT_COLUMNS)
    period = pa.table(
        {
            "patient_key": days["patient_key"].slice(0, 1),
            "period_start": days["date"].slice(0, 1),
            "period_end": days["date"].slice(days.num_rows - 1, 1),
        }
    )
    row = period_event_totals(days, period).to_pylist()[0]
    return {name: row[name] for name in PERIOD_EVENT_COLUMNS}


def _newest_wall_clock(readings: pa.Table) -> dt.datetime:
    """The wall-clock time (naive, the patient's own zone) of the newest reading."""
    newest: dt.datetime = pc.max(wall_clock_times(readings["ts"], readings["tz"])).as_py()
    return newest


def _no_data_message(
    start: dt.date | None,
    end: dt.date | None,
    first: dt.date,
    complete: dt.date,
    partial: dt.date | None,
) -> str:
    asked = f"{start or 'the first day'} to {end or 'the last complete day'}"
    if complete < first:
        has = f"only the partial day {partial}, which is not counted until it is complete"
    else:
        has = f"complete days {first} to {complete}"
        if partial is not None:
            has += f" (and the partial day {partial}, not counted)"
    return f"no published data of that patient from {asked}; the patient has {has}"
