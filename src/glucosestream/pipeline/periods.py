"""Which 14-day periods a run computes. PURE.

Periods are fixed fortnights of local days, starting on Mondays every 14 days from
``PERIOD_EPOCH`` (the consensus reporting window is 14 days; fixed boundaries make a day belong
to exactly one period, so late data touches one period and reruns agree). A period is written
once it is *closed*: the patient has data on a later day. The open period (the current
fortnight) is not stored: the pages show a closed period from the results tables and compute
any other window, labelled not yet audited (``published.period_results``).

An incremental run recomputes, for the patients with new readings, every closed period from the
one holding the earliest of (the first new day, the last day published before the run): that
covers periods late data falls in and periods that closed because newer data arrived.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Final

import pyarrow as pa

__all__ = ["PERIOD_DAYS", "PERIOD_EPOCH", "closed_periods", "first_period", "period_start"]

PERIOD_DAYS: Final = 14
PERIOD_EPOCH: Final = dt.date(2024, 1, 1)  # a Monday


def period_start(day: dt.date) -> dt.date:
    """The first day of the fixed fortnight holding ``day``."""
    offset = (day - PERIOD_EPOCH).days
    return PERIOD_EPOCH + dt.timedelta(days=offset - offset % PERIOD_DAYS)


def first_period(
    new_days: Mapping[str, tuple[dt.date, dt.date]], published_last_day: Mapping[str, dt.date]
) -> dt.date | None:
    """The start of the earliest period an incremental run must recompute, or None when every
    period it touches stays open (then no older history needs reading).

    ``new_days`` gives each patient's first and last day with new readings. A patient's
    periods to redo start with the one holding the earlier of its first new day and its last
    day published before the run; they matter only if that period is now closed.
    """
    span = dt.timedelta(days=PERIOD_DAYS - 1)
    starts = []
    for key, (first_new, last_new) in new_days.items():
        published = published_last_day.get(key)
        low = first_new if published is None else min(first_new, published)
        high = last_new if published is None else max(last_new, published)
        start = period_start(low)
        if start + span < high:  # that period is closed now
            starts.append(start)
    return min(starts) if starts else None


def closed_periods(
    days: pa.Table, patient_keys: frozenset[str] | None, since: dt.date | None
) -> pa.Table:
    """(patient_key, period_start, period_end) of every closed period with data among ``days``
    (patient_key, date), for ``patient_keys`` (None: all) and from ``since`` on (None: all)."""
    last: dict[str, dt.date] = {}
    starts: dict[str, set[dt.date]] = {}
    for key, day in zip(days["patient_key"].to_pylist(), days["date"].to_pylist(), strict=True):
        if patient_keys is not None and key not in patient_keys:
            continue
        last[key] = max(day, last.get(key, day))
        starts.setdefault(key, set()).add(period_start(day))
    span = dt.timedelta(days=PERIOD_DAYS - 1)
    rows = [
        (key, start, start + span)
        for key in sorted(starts)
        for start in sorted(starts[key])
        if start + span < last[key] and (since is None or start >= since)
    ]
    return pa.table(
        {
            "patient_key": pa.array([r[0] for r in rows], pa.string()),
            "period_start": pa.array([r[1] for r in rows], pa.date32()),
            "period_end": pa.array([r[2] for r in rows], pa.date32()),
        }
    )
