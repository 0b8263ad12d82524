"""Intervals of time cut at local midnight: which part of each falls on which local day. PURE.

Insulin delivered over time (a basal segment, an extended bolus) belongs to the local calendar
days it was delivered on, so an interval is cut at each midnight of its zone: the piece before
midnight counts on one day, the rest on the next. A local day is the span from its midnight to
the next one, read with Arrow's zone rules, as ``glucosestream.localclock`` reads local days:
23 hours on the day clocks go forward, 25 on the day they go back. Where midnight itself does
not exist (a zone that moves its clocks forward at 00:00), the day begins at the transition,
the first instant whose local date is that day.

Times are integer microseconds since the epoch (UTC), days whole days since the epoch, zones
given as one code per interval into a list of names (a null or unknown zone is UTC, the rule of
``localclock``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.localclock import local_days, usable_zone
from glucosestream.metrics.thresholds import SECONDS_PER_DAY

__all__ = ["DayPieces", "cut_at_midnight", "local_midnights"]

IntArray = npt.NDArray[np.int64]
_US_PER_DAY: Final = SECONDS_PER_DAY * 1_000_000


def local_midnights(days: IntArray, zone_codes: IntArray, zones: Sequence[str | None]) -> IntArray:
    """The UTC instant (us) at which each local day ``days[i]`` begins in zone
    ``zones[zone_codes[i]]``: its midnight, or the transition when midnight does not exist;
    an ambiguous midnight (clocks going back over it) is its first occurrence."""
    key = zone_codes.astype(np.int64) * (1 << 32) + (days - np.int64(np.iinfo(np.int32).min))
    distinct, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    day, code = days[first].astype(np.int64), zone_codes[first]
    out = np.empty(distinct.size, np.int64)
    for c, zone in enumerate(zones):
        rows = np.flatnonzero(code == c)
        if rows.size == 0:
            continue
        wall = pa.array(day[rows] * _US_PER_DAY, pa.timestamp("us"))
        instants = pc.assume_timezone(
            wall, timezone=usable_zone(zone), ambiguous="earliest", nonexistent="latest"
        )
        out[rows] = pc.cast(instants, pa.int64()).to_numpy()
    return out[inverse.reshape(-1)]


@dataclass(frozen=True, slots=True)
class DayPieces:
    """The pieces of intervals, one per (interval, local day it touches), interval by interval
    in day order. ``source`` is the interval's index, ``day`` the local day (days since the
    epoch), ``start_us``/``end_us`` the piece, ``day_us`` the length of that local day."""

    source: IntArray
    day: IntArray
    start_us: IntArray
    end_us: IntArray
    day_us: IntArray


def cut_at_midnight(
    start_us: IntArray, end_us: IntArray, zone_codes: IntArray, zones: Sequence[str | None]
) -> DayPieces:
    """Cut each interval [start, end) at the local midnights of its zone; empty intervals
    (end <= start) give no piece."""
    keep = np.flatnonzero(end_us > start_us)
    start, end, codes = start_us[keep], end_us[keep], zone_codes[keep]
    zone_of_row = pc.take(pa.array(list(zones), pa.string()), pa.array(codes))
    first = pc.cast(
        local_days(pa.array(start, pa.timestamp("us", tz="UTC")), zone_of_row), pa.int32()
    )
    day = first.to_numpy().astype(np.int64)
    pieces: list[tuple[IntArray, ...]] = []
    live = np.arange(start.size)
    while live.size:
        begin = local_midnights(day[live], codes[live], zones)
        after = local_midnights(day[live] + 1, codes[live], zones)
        piece_start = np.maximum(start[live], begin)
        piece_end = np.minimum(end[live], after)
        has = piece_end > piece_start
        pieces.append(
            (
                keep[live][has],
                day[live][has],
                piece_start[has],
                piece_end[has],
                (after - begin)[has],
            )
        )
        live = live[end[live] > after]
        day[live] += 1
    if not pieces:
        empty = np.empty(0, np.int64)
        return DayPieces(empty, empty, empty, empty, empty)
    columns = [np.concatenate(parts) for parts in zip(*pieces, strict=True)]
    order = np.argsort(columns[0], kind="stable")  # each pass adds the next day
    return DayPieces(*(c[order] for c in columns))
