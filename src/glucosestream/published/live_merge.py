"""A patient's readings as a follower sees them: the published run's, plus those accepted since.

``merged_readings`` merges the published readings of the run a request pinned with the live
window's (``live.LiveWindow``), one reading per (device_id, ts), newest first. The published
copy of a key wins (it is the first arrival a run kept; the live copy holds the same values by
construction, and a later copy of a key never reaches the lake).

Which live readings are merged. An unsettled one (no run has published its batch yet) always.
A settled one (a run loaded or rejected its batch, ``LiveWindow.settle``) only while the request
reads a run older than the one that settled it: from that run on, the published copy stands
for it, and a reading that run set aside (the quality gate) or whose batch it rejected stops
showing. So a reading never disappears between being live and being published: a request that
pinned the previous run just before the publish still gets it from the window. Run ids are
ordered by start time (``run-<UTC time>-<hex>``) and runs publish one at a time, so "older" is
a string comparison. A reading settled by an unknown run (seeded after a restart) is taken from
the published run only: the app reads the newest run by then.

The published part is the last ``TAIL`` (24 h) of the patient's readings, read once per
published run and patient (``PublishedRun.cached``): a follower polling every few seconds does
not scan Iceberg each time. A request that needs more (older bounds, more entries than the tail
and window hold) reads the published run as before. Reads no clock: ``now`` is passed.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Final

from glucosestream.live import LiveReading, LiveWindow, readings_of
from glucosestream.published.pinned_run import PublishedRun

__all__ = ["TAIL", "merged_readings", "published_tail", "warm_tails"]

# How much of a patient's published readings is cached per run (the follower's usual view).
TAIL: Final = dt.timedelta(hours=24)


def merged_readings(
    run: PublishedRun,
    live: LiveWindow | None,
    patient_key: str,
    *,
    now: dt.datetime,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    at_least: int | None = None,
) -> list[LiveReading]:
    """The patient's readings from ``since`` to ``until`` (both included), newest first: the
    published run's and the live window's (module docstring). ``at_least``: how many the
    caller wants at most; the published readings before the cached tail are read only when
    the tail and the window hold fewer (None: whenever ``since`` is before the tail). All that
    was read is returned, so the oldest of those wanted still has its previous reading."""
    fresh = [] if live is None else _live_part(run, live.recent(patient_key, since))
    tail_start = now - TAIL
    published = _from(published_tail(run, patient_key, tail_start), since)
    merged = _merge(published, fresh, until)
    covered = since is not None and since >= tail_start
    if not covered and (at_least is None or len(merged) < at_least):
        older = _published(run, patient_key, since)  # past the cached tail: read as before
        merged = _merge(older, fresh, until)
    return merged


def published_tail(run: PublishedRun, patient_key: str, start: dt.datetime) -> list[LiveReading]:
    """The patient's published readings from ``start`` on, ascending, read once per run (the
    first request's ``start`` stands for the run: later ones ask a little later still)."""
    return run.cached(f"tail:{patient_key}", lambda: _published(run, patient_key, start))


def warm_tails(previous: PublishedRun | None, run: PublishedRun, *, now: dt.datetime) -> int:
    """Fill ``run``'s cached tails of the patients whose tails ``previous`` cached (those being
    followed) with one read of the lake, before requests get ``run``
    (``PublishedLake.adopt_newest``); how many were filled."""
    prefix = "tail:"
    keys = [] if previous is None else [n[len(prefix) :] for n in previous.cached_names(prefix)]
    if not keys or not run.is_published:
        return 0
    order = [("patient_key", "ascending"), ("ts", "ascending")]
    table = run.readings(keys, now - TAIL).sort_by(order)
    column = table.column("patient_key").to_pylist()
    start = 0
    tails: dict[str, list[LiveReading]] = {key: [] for key in keys}
    for end in range(1, len(column) + 1):
        if end == len(column) or column[end] != column[start]:
            part = table.slice(start, end - start)
            tails[column[start]] = readings_of(None, part, settled_run_id=run.run_id)
            start = end
    for key, readings in tails.items():
        run.cached(f"{prefix}{key}", functools.partial(list, readings))
    return len(tails)


def _published(run: PublishedRun, patient_key: str, since: dt.datetime | None) -> list[LiveReading]:
    """The patient's published readings from ``since`` on, ascending (none before a run)."""
    if not run.is_published:
        return []
    table = run.readings([patient_key], since).sort_by([("ts", "ascending")])
    return readings_of(None, table, settled_run_id=run.run_id)


def _live_part(run: PublishedRun, readings: list[LiveReading]) -> list[LiveReading]:
    """The window's readings the request's run does not stand for (module docstring)."""
    return [r for r in readings if not r.settled or _settled_after(r, run.run_id)]


def _settled_after(reading: LiveReading, run_id: str | None) -> bool:
    """Whether the run that settled ``reading`` is later than ``run_id`` (the request's)."""
    if reading.settled_run_id is None:
        return False
    return run_id is None or _started(reading.settled_run_id) > _started(run_id)


def _started(run_id: str) -> str:
    """The start time a run id carries (``run-20261206T013000123456Z-ab12cd``; maintenance's
    ids begin ``maint-``), which orders runs of either kind."""
    return run_id.partition("-")[2]


def _from(readings: list[LiveReading], since: dt.datetime | None) -> list[LiveReading]:
    return readings if since is None else [r for r in readings if r.ts >= since]


def _merge(
    published: list[LiveReading], fresh: list[LiveReading], until: dt.datetime | None
) -> list[LiveReading]:
    """One reading per (device_id, ts), the published copy first; newest first."""
    merged: dict[tuple[str, dt.datetime], LiveReading] = {}
    for reading in (*published, *fresh):
        if until is None or reading.ts <= until:
            merged.setdefault((reading.device_id, reading.ts), reading)
    return sorted(merged.values(), key=lambda r: (r.ts, r.device_id), reverse=True)
