"""wall_clock_times converts each distinct zone once, finding its rows by dictionary code: any
mix of zones, null and unknown ones (UTC), plain or dictionary-typed, equals a per-row
zoneinfo conversion."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from glucosestream.localclock import wall_clock_times

ZONES = ["Europe/Paris", "America/New_York", "Australia/Lord_Howe", "UTC", "Mars/Olympus", None]
START = dt.datetime(2026, 3, 28, tzinfo=dt.UTC)  # hours on from here cross Europe's and
# the USA's DST changes


def _by_row(instant: dt.datetime | None, zone: str | None) -> dt.datetime | None:
    if instant is None:
        return None
    known = zone is not None and zone != "Mars/Olympus"
    local = instant.astimezone(ZoneInfo(zone)) if known else instant
    return local.replace(tzinfo=None)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.one_of(st.none(), st.integers(0, 24 * 60)), st.sampled_from(ZONES)),
        max_size=30,
    ),
    st.booleans(),
)
def test_wall_clock_times_equal_a_per_row_conversion(rows, as_dictionary):
    instants = [None if m is None else START + dt.timedelta(minutes=15 * m) for m, _ in rows]
    zones = pa.array([z for _, z in rows], pa.string())
    if as_dictionary:
        zones = zones.dictionary_encode()
    got = wall_clock_times(pa.array(instants, pa.timestamp("us", tz="UTC")), zones)
    assert got.to_pylist() == [_by_row(i, z) for i, (_, z) in zip(instants, rows, strict=True)]
