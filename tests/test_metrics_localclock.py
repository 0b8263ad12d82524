"""One rule for UTC -> local day (glucosestream.localclock), used by the daily model, the
per-period results and the cohort calculator."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from glucosestream.localclock import FALLBACK_ZONE, local_days, usable_zone, wall_clock_times
from glucosestream.metrics import local_dates

UTC = dt.UTC


def _wall(*fields: int) -> dt.datetime:
    return dt.datetime(*fields, tzinfo=UTC).replace(tzinfo=None)


def _ts(*stamps: dt.datetime) -> pa.Array:
    return pa.array(list(stamps), pa.timestamp("us", "UTC"))


def test_each_reading_is_placed_on_its_own_zones_clock_across_a_dst_change():
    ts = _ts(
        dt.datetime(2026, 3, 29, 0, 30, tzinfo=UTC), dt.datetime(2026, 3, 29, 23, 30, tzinfo=UTC)
    )
    local = wall_clock_times(ts, pa.array(["Europe/Paris", "Europe/Paris"]))
    assert local.to_pylist() == [_wall(2026, 3, 29, 1, 30), _wall(2026, 3, 30, 1, 30)]


def test_a_null_or_unknown_zone_is_read_as_utc():
    assert FALLBACK_ZONE == "UTC"
    assert usable_zone(None) == usable_zone("Mars/Olympus") == "UTC"
    assert usable_zone("America/New_York") == "America/New_York"
    stamp = dt.datetime(2026, 1, 1, 23, 0, tzinfo=UTC)
    zones = pa.array([None, "Mars/Olympus", "America/New_York"])
    days = local_days(_ts(stamp, stamp, stamp), zones).to_pylist()
    assert days == [dt.date(2026, 1, 1), dt.date(2026, 1, 1), dt.date(2026, 1, 1)]
    later = dt.datetime(2026, 1, 2, 3, 0, tzinfo=UTC)
    days = local_days(_ts(later, later, later), zones).to_pylist()
    assert days == [dt.date(2026, 1, 2), dt.date(2026, 1, 2), dt.date(2026, 1, 1)]


def test_a_column_typed_with_a_zone_uses_that_zone_and_keeps_its_chunks():
    ts = pa.chunked_array([_ts(dt.datetime(2026, 7, 1, 22, 0, tzinfo=UTC))]).cast(
        pa.timestamp("us", "Asia/Tokyo")
    )
    local = wall_clock_times(ts)
    assert isinstance(local, pa.ChunkedArray)
    assert local.to_pylist() == [_wall(2026, 7, 2, 7, 0)]


def test_the_daily_model_uses_the_same_rule():
    stamp = dt.datetime(2026, 1, 2, 3, 0, tzinfo=UTC)
    readings = pa.table({"ts": _ts(stamp, stamp), "tz": pa.array([None, "America/New_York"])})
    assert local_dates(readings).to_pylist() == [dt.date(2026, 1, 2), dt.date(2026, 1, 1)]
