"""TableSpec.prepare sorts rows into the table's write order only when they are not in it, and
gives exactly what the stable sort gives either way."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from glucosestream.lake import TableSpec
from glucosestream.pipeline.table_registry import TABLES

READINGS = TABLES["readings"]  # write order: patient_key, device_id, ts
DAYS = TableSpec(  # a daily-like table: write order patient_key, date
    identifier=("t", "days"),
    schema=pa.schema([("patient_key", pa.string()), ("date", pa.date32()), ("n", pa.int32())]),
    partition=(),
    sort_by=("patient_key", "date"),
    short="days",
)
T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def _readings(keys: list[tuple[str | None, str, int]], glucose: list[float] | None = None):
    n = len(keys)
    glucose = glucose or [float(100 + i) for i in range(n)]
    return pa.table(
        {
            "patient_key": [k[0] for k in keys],
            "device_id": [k[1] for k in keys],
            "source": ["csv"] * n,
            "ts": pa.array([T0 + dt.timedelta(minutes=k[2]) for k in keys]),
            "glucose_mg_dl": glucose,
            "original_value": glucose,
            "original_unit": ["mg/dL"] * n,
            "flags": pa.array([0] * n, pa.int32()),
            "tz": ["UTC"] * n,
            "batch_id": ["b1"] * n,
            "ingested_at": [T0] * n,
        }
    )


def _sorted(spec, rows: pa.Table) -> pa.Table:
    return spec.conform(rows).sort_by([(c, "ascending") for c in spec.sort_by])


def test_rows_in_write_order_keep_their_order_and_others_are_sorted():
    in_order = _readings([("a", "d1", 0), ("a", "d1", 5), ("a", "d2", 0), ("b", "d1", 0)])
    assert READINGS.prepare(in_order).equals(READINGS.conform(in_order))
    shuffled = in_order.take([3, 1, 0, 2])
    assert READINGS.prepare(shuffled).equals(READINGS.conform(in_order))
    # Ordered on the first column but not within it: a later column decides.
    late = _readings([("a", "d2", 0), ("a", "d1", 5), ("b", "d1", 0)])
    assert READINGS.prepare(late)["device_id"].to_pylist() == ["d1", "d2", "d1"]


def test_ties_keep_their_order_as_the_stable_sort_does():
    ties = _readings([("a", "d1", 0), ("a", "d1", 0), ("b", "d1", 0)], [120.0, 80.0, 90.0])
    assert READINGS.prepare(ties)["glucose_mg_dl"].to_pylist() == [120.0, 80.0, 90.0]
    assert READINGS.prepare(ties).equals(_sorted(READINGS, ties))


def test_a_null_or_nan_in_a_sort_column_is_left_to_the_sort():
    spec = TableSpec(
        identifier=("t", "x"),
        schema=pa.schema([("k", pa.string()), ("v", pa.float64())]),
        partition=(),
        sort_by=("k", "v"),
        short="x",
    )
    nulls = pa.table({"k": [None, "a"], "v": [1.0, 2.0]})
    assert spec.prepare(nulls)["k"].to_pylist() == ["a", None]
    nan = pa.table({"k": ["a", "a", "b"], "v": [float("nan"), 1.0, 0.0]})
    assert str(spec.prepare(nan)["v"].to_pylist()) == "[1.0, nan, 0.0]"  # NaN after 1.0


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "ab", "b", "\u00e9"]), st.sampled_from(["d1", "d2"])),
        max_size=12,
    ),
    st.randoms(use_true_random=False),
)
def test_prepare_equals_the_stable_sort_on_any_daily_rows(keys, random):
    """Rows by (patient_key, date), drawn from few values: often in order, with ties."""
    days = [dt.date(2026, 3, 1) + dt.timedelta(days=random.randint(0, 2)) for _ in keys]
    rows = pa.table(
        {
            "patient_key": [k for k, _ in keys],
            "date": pa.array(days, pa.date32()),
            "n": pa.array(list(range(len(keys))), pa.int32()),
        }
    )
    for candidate in (rows, _sorted(DAYS, rows)):
        assert DAYS.prepare(candidate).equals(_sorted(DAYS, candidate))
