"""A patient's readings as Nightscout entries, and the ``find[...]`` bounds of a GET. PURE.

Entries are ``sgv`` entries, newest first: ``date`` (epoch ms), ``dateString``, ``direction``
(the uploader's, else the arrow of the uploader's rate, else computed from the device's
previous reading: ``live.direction_of``), ``trend`` (Nightscout's number of that direction,
cgm-remote-monitor ``lib/server/pebble.js``) and ``delta`` (mg/dL since the device's previous
reading, when at most 15 minutes before; absent otherwise). ``find[date][$op]``
(epoch ms) and ``find[dateString][$op]`` (ISO 8601) with ``$gte``, ``$gt``, ``$lte``, ``$lt``
narrow them; a bound past year 9999 or before year 1 is held there; any other value (``inf``,
text) is 422.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

from glucosestream.errors import InvalidInput
from glucosestream.live import LiveReading, delta_between, direction_of, trend_number

__all__ = [
    "DEFAULT_COUNT",
    "ENTRY_BOUNDS",
    "MAX_COUNT",
    "OPERATORS",
    "BoundKind",
    "date_range",
    "entries_from_readings",
    "epoch_ms_of",
    "iso_utc",
]

# How a find[...] bound is written: epoch ms, an ISO 8601 time, or either (a number is ms).
BoundKind = Literal["ms", "iso", "either"]

# cgm-remote-monitor lib/api/entries: a GET without count returns 10 entries.
DEFAULT_COUNT: Final = 10
MAX_COUNT: Final = 10_000  # entries one GET returns at most (as many as one POST may carry)
OPERATORS: Final = ("$gte", "$gt", "$lte", "$lt")
ENTRY_BOUNDS: Final[Mapping[str, BoundKind]] = {"date": "ms", "dateString": "iso"}
_NUMBER: Final = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|[-+]?(inf|nan)", re.I)
# find[...] bounds are held within the instants Python has: year 1 to the end of year 9999.
EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MIN_EPOCH_MS: Final = -62_135_596_800_000
_MAX_EPOCH_MS: Final = 253_402_300_799_999
# "…T08:30:00 01:00": a time, a space, an offset at the end
_PLUS_AS_SPACE: Final = re.compile(r"(\d\d:\d\d(?::\d\d(?:[.,]\d+)?)?) (\d\d:?\d\d)$")
_LEAP_SECOND: Final = re.compile(r"(?<=\d\d:\d\d):60(?=[.,+-]|$)")


def date_range(
    params: Mapping[str, str], fields: Mapping[str, BoundKind] = ENTRY_BOUNDS
) -> tuple[int | None, int | None]:
    """The ``find[<field>][$op]`` bounds of ``fields`` (by default entries' ``date``, epoch ms,
    and ``dateString``, ISO 8601) as [since, until] epoch ms, both included."""
    since: int | None = None
    until: int | None = None
    for field, kind in fields.items():
        for op in OPERATORS:
            value = params.get(f"find[{field}][{op}]")
            if value is None:
                continue
            ms = _epoch_ms(value, field, kind)
            if op in ("$gte", "$gt"):
                bound = min(ms + (1 if op == "$gt" else 0), _MAX_EPOCH_MS)
                since = bound if since is None else max(since, bound)
            else:
                bound = max(ms - (1 if op == "$lt" else 0), _MIN_EPOCH_MS)
                until = bound if until is None else min(until, bound)
    return since, until


def _epoch_ms(value: str, field: str, kind: BoundKind) -> int:
    """Epoch ms of a bound, held within the instants Python has (years 1 to 9999: a bound past
    them selects what the furthest one would); a value that is no number or time (inf, nan,
    1e400, text) is 422 naming it. ``kind`` "either": a number is epoch ms, else ISO 8601."""
    try:
        if kind == "ms" or (kind == "either" and _NUMBER.fullmatch(value.strip())):
            number = float(value)
            if not math.isfinite(number):
                raise ValueError("not a finite number")
            ms = number
        else:
            instant = _instant(value)
            ms = (instant - EPOCH) // dt.timedelta(milliseconds=1)
    except (ValueError, OverflowError) as err:
        shown = value if len(value) <= 40 else value[:40] + "…"
        expected = {
            "ms": "epoch milliseconds",
            "iso": "an ISO 8601 time",
            "either": "an ISO 8601 time or epoch milliseconds",
        }[kind]
        raise InvalidInput(
            f"find[{field}] has {shown!r}; expected {expected}", source="request"
        ) from err
    return int(min(max(ms, _MIN_EPOCH_MS), _MAX_EPOCH_MS))


def _instant(value: str) -> dt.datetime:
    """An ISO 8601 / RFC 3339 time (``Z`` or ``z``, a leap second read as :59); UTC without an
    offset. A ``+`` offset sent unescaped in a query arrives as a space, and is read back as
    ``+`` (as cgm-remote-monitor ``lib/server/query.js`` does)."""
    text = _PLUS_AS_SPACE.sub(r"\1+\2", value.strip().upper().replace("Z", "+00:00"))
    try:
        instant = dt.datetime.fromisoformat(text)
    except ValueError:
        instant = dt.datetime.fromisoformat(_LEAP_SECOND.sub(":59", text))
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=dt.UTC)


def entries_from_readings(
    readings: Iterable[LiveReading],
    *,
    count: int,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> list[dict[str, Any]]:
    """Readings (any order) as Nightscout ``sgv`` entries, newest first, at most ``count``,
    those dated ``since_ms`` to ``until_ms``: readings before ``since_ms`` only give the first
    entries' trend and delta (pass those of the ``live.MAX_GAP_MIN`` before it)."""
    ordered = sorted(readings, key=lambda r: (r.device_id, r.ts))
    previous = {
        id(r): ordered[i - 1]
        for i, r in enumerate(ordered)
        if i and ordered[i - 1].device_id == r.device_id
    }
    dated = [(epoch_ms_of(r.ts), r) for r in ordered]
    wanted = [
        (ms, r)
        for ms, r in dated
        if (until_ms is None or ms <= until_ms) and (since_ms is None or ms >= since_ms)
    ]
    wanted.sort(key=lambda e: e[0], reverse=True)  # stable: ties stay in device order
    return [_entry(r, previous.get(id(r)), ms) for ms, r in wanted[:count]]


def epoch_ms_of(ts: dt.datetime) -> int:
    """Epoch milliseconds of an aware instant."""
    return (ts - EPOCH) // dt.timedelta(milliseconds=1)


def iso_utc(ts: dt.datetime) -> str:
    """An aware instant as Nightscout writes times: ISO 8601 in UTC, milliseconds, ``Z``."""
    return ts.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _entry(reading: LiveReading, before: LiveReading | None, date_ms: int) -> dict[str, Any]:
    direction = direction_of(reading, before)
    entry: dict[str, Any] = {
        "_id": f"{reading.device_id}-{date_ms}",
        "type": "sgv",
        "sgv": round(reading.glucose_mg_dl),
        "date": date_ms,
        "dateString": iso_utc(reading.ts),
        "direction": direction,
        "trend": trend_number(direction),
        "device": reading.device_id,
        "utcOffset": 0,
    }
    delta = None if before is None else delta_between(before, reading)
    if delta is not None:
        entry["delta"] = round(delta, 3)
    return entry
