"""The reporting window: which local days a summary or an AGP report counts. PURE.

A local day counts only when it is **complete**: the patient's data had the chance to cover all
of it. The newest day of a patient's data is usually not: an export made at 10:00, or an uploader
that sent its last reading a minute ago, leaves that day partly empty, and counting it plots a
false dip and a short day (issue 18: "CV 2.6 %, mean 73" for the demo's last day). So:

- the newest local day is complete when its newest reading falls in the day's last
  ``COMPLETE_DAY_TAIL`` (a sensor's last slot before midnight: a 15-minute sensor's 23:45
  reading), otherwise it is *partial*: shown, marked partial, never counted;
- the window is the ``days`` local days ending on the last complete day (``REPORT_DAYS``, 14, as
  the AGP standard asks: Battelino 2019, Diabetes Care 42:1593).

The days are calendar days on the patient's own clock (``glucosestream.localclock``); whether
the window holds enough data (>= 70 % of it) is the sufficiency metric's concern, not this one's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

__all__ = ["COMPLETE_DAY_TAIL", "REPORT_DAYS", "ReportWindow", "last_complete_day", "report_window"]

REPORT_DAYS: Final = 14
COMPLETE_DAY_TAIL: Final = dt.timedelta(minutes=20)


@dataclass(frozen=True, slots=True)
class ReportWindow:
    """Local days ``start``..``end`` (both counted); ``partial_day``: the newest day of data
    when it is not complete (shown apart, never counted), else None."""

    start: dt.date
    end: dt.date
    partial_day: dt.date | None

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def last_complete_day(newest_local: dt.datetime) -> dt.date:
    """The last complete local day, given the wall-clock time of the patient's newest reading."""
    day = newest_local.date()
    midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), newest_local.tzinfo)
    return day if midnight - newest_local <= COMPLETE_DAY_TAIL else day - dt.timedelta(days=1)


def report_window(newest_local: dt.datetime, days: int = REPORT_DAYS) -> ReportWindow:
    """The ``days`` local days ending on the last complete day before or on the newest
    reading's day; the newest day is named as partial when it does not count."""
    if days < 1:
        raise ValueError(f"a report window has at least one day, not {days}")
    end = last_complete_day(newest_local)
    partial = newest_local.date() if end < newest_local.date() else None
    return ReportWindow(end - dt.timedelta(days=days - 1), end, partial)
