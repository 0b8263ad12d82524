"""A patient's published events (``curated.events``: insulin, carbs, exercise, device events,
finger-sticks, ketones, notes) of a window of local days: what the tidy export writes beside
the readings.

The window is local days ``start``..``end``, each optional, as for readings
(``window_readings``): an event belongs to the local day of its time in its own zone
(``localclock.local_days``), the day the daily totals count it on (a basal segment or an extended
bolus that runs past midnight is one event, on the day it starts).
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.exports.window_readings import Window
from glucosestream.localclock import local_days
from glucosestream.published import PublishedRun

__all__ = ["window_events"]

# A local day starts at most 14 hours before or 12 after the UTC day of the same date (UTC+14,
# UTC-12): a day's margin on each side of the window's UTC days covers all its local days.
_ZONE_MARGIN: Final = dt.timedelta(days=1)


def window_events(run: PublishedRun, patient_key: str, window: Window) -> pa.Table:
    """The patient's published events of the window's local days (EVENT_SCHEMA and
    ``local_date``), in time order."""
    start, end = window
    since = dt.datetime.combine(start - _ZONE_MARGIN, dt.time(), dt.UTC) if start else None
    until = dt.datetime.combine(end + 2 * _ZONE_MARGIN, dt.time(), dt.UTC) if end else None
    events = run.events(patient_key, since, until)
    events = events.append_column("local_date", local_days(events["ts"], events["tz"]))
    if start is not None:
        events = events.filter(pc.greater_equal(events["local_date"], pa.scalar(start)))
    if end is not None:
        events = events.filter(pc.less_equal(events["local_date"], pa.scalar(end)))
    return events
