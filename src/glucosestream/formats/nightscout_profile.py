"""Nightscout profiles: a basal schedule as scheduled basal segments, over a bounded window. PURE.

A profile document (``GET /api/v1/profile.json``, or a POST of one) holds the pump's settings:

    {"startDate": "2026-04-05T08:33:12.213Z", "defaultProfile": "default", "enteredBy": "iAPS",
     "store": {"default": {"timezone": "Europe/Moscow",
                           "basal": [{"time": "00:00", "timeAsSeconds": 0, "value": 1},
                                     {"time": "03:00", "timeAsSeconds": 10800, "value": 1.3}]}}}

A schedule says what the pump delivers every day, so it has no end of its own; this module
turns it into events only over a window the caller gives (the span of the same input's, or
batch's, readings and treatments for the patient), and at most ``MAX_PROFILE_DAYS`` of it (the
newest). A profile with no window (a profile file ingested alone) gives no segments.

Each document's ``store[defaultProfile]`` schedule holds from its ``startDate`` (else ``mills``,
``created_at``) until the next document's. Each schedule entry becomes, on each local day of
the window in the store's ``timezone``, one ``basal`` ``scheduled`` row at the instant the
clocks show its time (DST-aware: in a spring-forward gap, the first instant after it), with its
``value`` as the rate (U/h) and no duration: an *open* segment, which lasts until the device's
next open one and which a temporary basal overrides while it runs (``docs/metrics.md``, pump
basal). A segment already running at the window's start keeps its own start time, so the same
schedule read over overlapping windows gives the same rows (duplicates, not new events); the
first segment of a document starts at the document's start. The device is ``enteredBy``, the
same as its Temp Basal treatments. A ``Profile Switch`` treatment (percentage, time shift) is
not applied: the profile's own schedule is used.

A document whose schedule cannot be read (no default store, an unknown zone, more than
``MAX_SCHEDULE_ENTRIES`` entries, an entry without a time of day) gives one row with that
problem, when its time falls in the window; a record that is no profile document is ignored.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa

from glucosestream.formats.event_rows import EventBuilder
from glucosestream.formats.jsontext import field_text

__all__ = ["MAX_PROFILE_DAYS", "MAX_SCHEDULE_ENTRIES", "looks_like_profiles", "scheduled_basal"]

# The newest days of a window a profile's schedule is laid over (a month of pump data).
MAX_PROFILE_DAYS: Final = 31
# Nightscout's profile editor sets basal in 30-minute steps: at most 48 entries a day.
MAX_SCHEDULE_ENTRIES: Final = 48
_DAY_S: Final = 24 * 3600
_CLOCK: Final = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
_RATE_CHARS: Final = 32


def looks_like_profiles(document: object) -> bool:
    """Whether a parsed JSON document is Nightscout profiles: its first object has a ``store``."""
    items = document if isinstance(document, list) else [document]
    first = next((item for item in items[:16] if isinstance(item, Mapping)), None)
    return first is not None and "store" in first and "sgv" not in first


@dataclass(frozen=True, slots=True)
class _Schedule:
    line: int
    starts_at: dt.datetime
    device_id: str | None
    zone_name: str | None = None
    zone: dt.tzinfo | None = None
    entries: tuple[tuple[int, str | None], ...] = ()  # (seconds after local midnight, rate)
    problem: str | None = None


def scheduled_basal(
    profiles: Sequence[object], start: dt.datetime, end: dt.datetime, first_line: int = 1
) -> pa.Table:
    """The scheduled basal segments (``event_rows.RAW_EVENT_SCHEMA``) of profile documents over
    ``[start, end)`` (aware instants; only its newest ``MAX_PROFILE_DAYS`` days), in time
    order. A document's line is its index from ``first_line``."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("scheduled_basal needs aware instants (UTC) for its window")
    start = max(start, end - dt.timedelta(days=MAX_PROFILE_DAYS))
    read = (_schedule(line, p) for line, p in enumerate(profiles, start=first_line))
    schedules = sorted((s for s in read if s is not None), key=lambda s: s.starts_at)
    events = EventBuilder()
    for i, schedule in enumerate(schedules):
        until = schedules[i + 1].starts_at if i + 1 < len(schedules) else end
        low, high = max(schedule.starts_at, start), min(until, end)
        if low >= high:
            continue
        if schedule.problem is not None or schedule.zone is None:
            when = schedule.starts_at.isoformat()
            events.add(
                schedule.line, kind="basal", subtype="scheduled", time=when,
                device_id=schedule.device_id, problem=schedule.problem,
            )  # fmt: skip
            continue
        _add_segments(events, schedule, schedule.zone, (low, high))
    return events.table()


def _add_segments(
    events: EventBuilder,
    schedule: _Schedule,
    zone: dt.tzinfo,
    window: tuple[dt.datetime, dt.datetime],
) -> None:
    """The schedule's segments that run in the ``window`` [low, high): each starts at its
    entry's instant (the schedule's own start for one begun before it), and runs until the
    next entry's."""
    low, high = window
    first_day = low.astimezone(zone).date() - dt.timedelta(days=1)
    days = (high.astimezone(zone).date() - first_day).days + 1
    starts = [
        (_instant(first_day + dt.timedelta(days=d), seconds, zone), rate)
        for d in range(days)
        for seconds, rate in schedule.entries
    ]
    for i, (at, rate) in enumerate(starts):
        ends = starts[i + 1][0] if i + 1 < len(starts) else high
        if at >= high or ends <= low:
            continue
        events.add(
            schedule.line,
            kind="basal",
            subtype="scheduled",
            time=max(at, schedule.starts_at).astimezone(dt.UTC).isoformat(),
            tz=schedule.zone_name,
            device_id=schedule.device_id,
            rate_u_h=rate,
        )


def _instant(day: dt.date, seconds: int, zone: dt.tzinfo) -> dt.datetime:
    """The instant a clock in ``zone`` shows ``seconds`` after midnight of ``day``: for a time
    the clocks skip, the jump itself (the first instant they show a later time); for a time
    they show twice, the first."""
    wall = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=seconds)
    instant = wall.replace(tzinfo=zone).astimezone(dt.UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    # In a gap, fold 1 reads the wall time before the jump and fold 0 after it: search between.
    before = int(wall.replace(tzinfo=zone, fold=1).astimezone(dt.UTC).timestamp())
    after = int(instant.timestamp())
    offset = _offset(before, zone)
    while after - before > 1:
        middle = (before + after) // 2
        before, after = (middle, after) if _offset(middle, zone) == offset else (before, middle)
    return dt.datetime.fromtimestamp(after, dt.UTC)


def _offset(epoch_s: int, zone: dt.tzinfo) -> dt.timedelta | None:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).astimezone(zone).utcoffset()


def _schedule(line: int, record: object) -> _Schedule | None:
    if not isinstance(record, Mapping) or not isinstance(record.get("store"), Mapping):
        return None
    starts_at = _starts_at(record)
    if starts_at is None:
        return None
    device_id = field_text(record.get("enteredBy"))
    name = record.get("defaultProfile")
    store = record["store"].get(name) if isinstance(name, str) else None
    if not isinstance(store, Mapping) or not isinstance(store.get("basal"), list):
        missing = "the profile has no default store with a basal schedule"
        return _Schedule(line, starts_at, device_id, problem=missing)
    zone_name = field_text(store.get("timezone"))
    zone = _zone(zone_name)
    if zone is None:
        unknown = f"the profile's timezone {zone_name!s:.64} is not a known zone"
        return _Schedule(line, starts_at, device_id, problem=unknown)
    entries, problem = _entries(store["basal"])
    return _Schedule(line, starts_at, device_id, zone_name, zone, entries, problem)


def _starts_at(record: Mapping[str, Any]) -> dt.datetime | None:
    for name in ("startDate", "created_at"):
        value = record.get(name)
        if isinstance(value, str) and len(value) <= 64:
            try:
                parsed = dt.datetime.fromisoformat(value)
            except ValueError:
                continue
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)
    mills = record.get("mills")
    if isinstance(mills, int | float) and not isinstance(mills, bool):
        try:
            return dt.datetime.fromtimestamp(mills / 1000, dt.UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _zone(name: str | None) -> dt.tzinfo | None:
    if not name or len(name) > 64:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _entries(basal: list[Any]) -> tuple[tuple[tuple[int, str | None], ...], str | None]:
    """The schedule's (seconds after midnight, rate text) in order, or the problem that makes it
    unreadable."""
    if not basal:
        return (), "the profile's basal schedule is empty"
    if len(basal) > MAX_SCHEDULE_ENTRIES:
        return (), f"a basal schedule of {len(basal)} entries (at most {MAX_SCHEDULE_ENTRIES})"
    entries = []
    for number, entry in enumerate(basal, start=1):
        seconds = _seconds(entry) if isinstance(entry, Mapping) else None
        if seconds is None:
            return (), f"basal schedule entry {number} has no time of day"
        rate = field_text(entry.get("value"))
        entries.append(
            (seconds, rate if rate is None or len(rate) <= _RATE_CHARS else "(too long)")
        )
    return tuple(sorted(entries, key=lambda e: e[0])), None


def _seconds(entry: Mapping[str, Any]) -> int | None:
    """``timeAsSeconds``, else ``time`` (``HH:MM``), within the day."""
    seconds = entry.get("timeAsSeconds")
    if isinstance(seconds, int) and not isinstance(seconds, bool) and 0 <= seconds < _DAY_S:
        return seconds
    match = _CLOCK.fullmatch(str(entry.get("time")))
    return int(match.group(1)) * 3600 + int(match.group(2)) * 60 if match else None
