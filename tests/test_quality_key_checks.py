"""unique_readings and every_reading_lands: on rows in key order they compare neighbours instead
of hashing, and they still fail on a bad staged run, sorted or not, with the hash path's count."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glucosestream.config import QualitySettings
from glucosestream.quality import StagedRun, in_key_order, repeats_previous_key
from glucosestream.quality.checks import check_every_reading_lands, check_unique_readings
from glucosestream.readings import READING_SCHEMA

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
KEY = ["patient_key", "device_id", "ts"]


def _readings(keys: list[tuple[str, str, int]]) -> pa.Table:
    n = len(keys)
    return pa.table(
        {
            "patient_key": [k[0] for k in keys],
            "device_id": [k[1] for k in keys],
            "source": ["csv"] * n,
            "ts": [T0 + dt.timedelta(minutes=k[2]) for k in keys],
            "glucose_mg_dl": [100.0] * n,
            "original_value": [100.0] * n,
            "original_unit": ["mg/dL"] * n,
            "flags": pa.array([0] * n, pa.int32()),
            "tz": ["UTC"] * n,
            "batch_id": ["b1"] * n,
            "ingested_at": [T0] * n,
            "direction": pa.nulls(n, pa.string()),
            "rate_mg_dl_min": pa.nulls(n, pa.float64()),
        },
        schema=READING_SCHEMA,
    )


def _staged(every: pa.Table, incoming: pa.Table | None = None) -> StagedRun:
    empty = pa.table({"readings": pa.array([], pa.int32())})
    return StagedRun(every, every, empty, empty, incoming)


def _in_order(rows: pa.Table) -> pa.Table:
    return rows.sort_by([(c, "ascending") for c in KEY])


def _hashed_repeats(rows: pa.Table) -> int:
    counts = rows.select(KEY).group_by(KEY).aggregate([([], "count_all")])
    return sum(1 for c in counts["count_all"].to_pylist() if c > 1)


DOUBLED = [("a", "d1", 0), ("a", "d1", 5), ("a", "d1", 5), ("a", "d1", 5), ("b", "d1", 0)]


@pytest.mark.parametrize("order", ["in key order", "shuffled"])
def test_a_repeated_key_fails_unique_readings_once_per_key(order):
    rows = _in_order(_readings([*DOUBLED, ("b", "d1", 0), ("c", "d2", 1)]))
    rows = rows if order == "in key order" else rows.take([6, 2, 0, 5, 1, 4, 3])
    assert in_key_order(rows) is (order == "in key order")
    result = check_unique_readings(_staged(rows), QualitySettings())
    assert not result.passed
    assert result.failed_rows == 2  # ("a", "d1", 5) three times, ("b", "d1", 0) twice
    assert check_unique_readings(_staged(_readings(DOUBLED[:2])), QualitySettings()).passed


@pytest.mark.parametrize("order", ["in key order", "shuffled"])
def test_a_reading_that_does_not_land_fails_every_reading_lands(order):
    incoming = _in_order(
        _readings([("a", "d1", 0), ("a", "d1", 0), ("a", "d2", 0), ("b", "d1", 0)])
    )
    incoming = incoming if order == "in key order" else incoming.take([3, 0, 2, 1])
    landed = _readings([("a", "d1", 0), ("a", "d2", 0), ("b", "d1", 0)])
    assert check_every_reading_lands(_staged(landed, incoming), QualitySettings()).passed
    for lost in range(3):  # the lake misses one key: every row of it is lost
        lake = landed.take([i for i in range(3) if i != lost])
        result = check_every_reading_lands(_staged(lake, incoming), QualitySettings())
        assert not result.passed
        assert result.failed_rows == (2 if lost == 0 else 1)
    # Another key in its place: as many rows, in order, but not the same keys.
    swapped = _readings([("a", "d1", 0), ("a", "d3", 0), ("b", "d1", 0)])
    assert check_every_reading_lands(_staged(swapped, incoming), QualitySettings()).failed_rows == 1


def test_keys_published_before_land_through_the_hash_path():
    incoming = _readings([("a", "d1", 0), ("b", "d1", 0)])
    lake = _readings([("a", "d1", 0), ("a", "d1", 5), ("b", "d1", 0)])  # history and new
    assert check_every_reading_lands(_staged(lake, incoming), QualitySettings()).passed


_KEYS = st.lists(
    st.tuples(
        st.sampled_from(["a", "ab", "b", "\u00e9"]),
        st.sampled_from(["d1", "d2"]),
        st.integers(0, 3),
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None)
@given(_KEYS, st.booleans())
def test_neighbour_counts_equal_the_hash_counts(keys, sort):
    rows = _readings(keys)
    rows = _in_order(rows) if sort else rows
    assert in_key_order(rows) is (rows.equals(_in_order(rows)) or rows.num_rows < 2)
    result = check_unique_readings(_staged(rows), QualitySettings())
    assert result.failed_rows == _hashed_repeats(rows)
    if sort:
        repeats = repeats_previous_key(rows).to_pylist()
        assert (
            sum(repeats)
            == rows.num_rows - _in_order(rows).select(KEY).group_by(KEY).aggregate([]).num_rows
        )
