"""Published readings as Nightscout entries, and the ``find[...]`` bounds of a GET. PURE.

Entries are ``sgv`` entries, newest first: ``date`` (epoch ms), ``dateString``, and
``direction`` from the rate of change since the device's previous reading. ``find[date][$op]``
(epoch ms) and ``find[dateString][$op]`` (ISO 8601) with ``$gte``, ``$gt``, ``$lte``, ``$lt``
narrow them; a bound past year 9999 or before year 1 is held there; any other value (``inf``,
text) is 422.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any, Final

import pyarrow as pa

from glucosestream.errors import InvalidInput

__all__ = ["DEFAULT_COUNT", "MAX_COUNT", "OPERATORS", "date_range", "entries_from_readings"]

# cgm-remote-monitor lib/api/entries: a GET without count returns 10 entries.
DEFAULT_COUNT: Final = 10
MAX_COUNT: Final = 10_000  # entries one GET returns at most (as many as one POST may carry)
# Dexcom trend arrows by rate of change (mg/dL per minute): flat within ±1, 45° 1-2,
# single 2-3, double above 3 (Dexcom G6 user guide, "Trend arrows").
_TREND_MG_DL_PER_MIN: Final = ((3.0, "DoubleUp"), (2.0, "SingleUp"), (1.0, "FortyFiveUp"))
_TREND_DOWN: Final = ((-3.0, "DoubleDown"), (-2.0, "SingleDown"), (-1.0, "FortyFiveDown"))
# Beyond this gap between readings no trend is shown (Nightscout shows NONE).
_TREND_MAX_GAP_MIN: Final = 15.0
OPERATORS: Final = ("$gte", "$gt", "$lte", "$lt")
# find[...] bounds are held within the instants Python has: year 1 to the end of year 9999.
EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MIN_EPOCH_MS: Final = -62_135_596_800_000
_MAX_EPOCH_MS: Final = 253_402_300_799_999
_LEAP_SECOND: Final = re.compile(r"(?<=\d\d:\d\d):60(?=[.,+-]|$)")


def date_range(params: dict[str, str]) -> tuple[int | None, int | None]:
    """``find[date][$op]`` (epoch ms) or ``find[dateString][$op]`` (ISO) as [since, until] ms."""
    since: int | None = None
    until: int | None = None
    for field in ("date", "dateString"):
        for op in OPERATORS:
            value = params.get(f"find[{field}][{op}]")
            if value is None:
                continue
            ms = _epoch_ms(value, field)
            if op in ("$gte", "$gt"):
                bound = min(ms + (1 if op == "$gt" else 0), _MAX_EPOCH_MS)
                since = bound if since is None else max(since, bound)
            else:
                bound = max(ms - (1 if op == "$lt" else 0), _MIN_EPOCH_MS)
                until = bound if until is None else min(until, bound)
    return since, until


def _epoch_ms(value: str, field: str) -> int:
    """Epoch ms of a bound, held within the instants Python has (years 1 to 9999: a bound past
    them selects what the furthest one would); a value that is no number or time (inf, nan,
    1e400, text) is 422 naming it."""
    try:
        if field == "date":
            number = float(value)
            if not math.isfinite(number):
                raise ValueError("not a finite number")
            ms = number
        else:
            instant = _instant(value)
            ms = (instant - EPOCH) // dt.timedelta(milliseconds=1)
    except (ValueError, OverflowError) as err:
        shown = value if len(value) <= 40 else value[:40] + "…"
        raise InvalidInput(
            f"find[{field}] has {shown!r}; expected "
            + ("epoch milliseconds" if field == "date" else "an ISO 8601 time"),
            source="request",
        ) from err
    return int(min(max(ms, _MIN_EPOCH_MS), _MAX_EPOCH_MS))


def _instant(value: str) -> dt.datetime:
    """An ISO 8601 / RFC 3339 time (``Z`` or ``z``, a leap second read as :59); UTC without an
    offset."""
    text = value.strip().upper().replace("Z", "+00:00")
    try:
        instant = dt.datetime.fromisoformat(text)
    except ValueError:
        instant = dt.datetime.fromisoformat(_LEAP_SECOND.sub(":59", text))
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=dt.UTC)


def entries_from_readings(
    table: pa.Table, *, count: int, until_ms: int | None = None
) -> list[dict[str, Any]]:
    """Curated readings as Nightscout ``sgv`` entries, newest first, at most ``count``."""
    rows = table.select(["device_id", "ts", "glucose_mg_dl"]).sort_by(
        [("device_id", "ascending"), ("ts", "ascending")]
    )
    devices = rows["device_id"].to_pylist()
    times = [ts.astimezone(dt.UTC) for ts in rows["ts"].to_pylist()]
    values = rows["glucose_mg_dl"].to_pylist()
    entries: list[tuple[int, dict[str, Any]]] = []
    for i, (device, ts, value) in enumerate(zip(devices, times, values, strict=True)):
        date_ms = int(ts.timestamp() * 1000)
        if until_ms is not None and date_ms > until_ms:
            continue
        previous = i - 1 if i and devices[i - 1] == device else None
        direction = (
            "NONE" if previous is None else _direction(value, values[previous], ts, times[previous])
        )
        entry = {
            "_id": f"{device}-{date_ms}",
            "type": "sgv",
            "sgv": round(value),
            "date": date_ms,
            "dateString": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "direction": direction,
            "device": device,
            "utcOffset": 0,
        }
        entries.append((date_ms, entry))
    entries.sort(key=lambda e: e[0], reverse=True)
    return [entry for _, entry in entries[:count]]


def _direction(value: float, before: float, ts: dt.datetime, ts_before: dt.datetime) -> str:
    minutes = (ts - ts_before).total_seconds() / 60
    if minutes <= 0 or minutes > _TREND_MAX_GAP_MIN:
        return "NONE"
    rate = (value - before) / minutes
    for threshold, name in _TREND_MG_DL_PER_MIN:
        if rate > threshold:
            return name
    for threshold, name in _TREND_DOWN:
        if rate < threshold:
            return name
    return "Flat"
