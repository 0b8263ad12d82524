"""The merge's new readings (pipeline.first_arrival) equal the window query they replaced
(tests/data/merge_window.sql, the merge before issue 15): same rows, same order."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glucosestream.config import EngineSettings
from glucosestream.engines import DuckDBEngine
from glucosestream.pipeline.first_arrival import new_readings
from glucosestream.readings import READING_SCHEMA

from .conftest import DATA

WINDOW_SQL = (DATA / "merge_window.sql").read_text(encoding="utf-8")
T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def duck_engine():
    engine = DuckDBEngine(EngineSettings())
    yield engine
    engine.close()


def _readings(rows: list[tuple[str, str, int, str, float]]) -> pa.Table:
    """(patient_key, device_id, minute, batch_id, glucose) rows in the canonical schema."""
    n = len(rows)
    return pa.table(
        {
            "patient_key": [r[0] for r in rows],
            "device_id": [r[1] for r in rows],
            "source": ["csv"] * n,
            "ts": [T0 + dt.timedelta(minutes=r[2]) for r in rows],
            "glucose_mg_dl": [r[4] for r in rows],
            "original_value": [r[4] for r in rows],
            "original_unit": ["mg/dL"] * n,
            "flags": pa.array([0] * n, pa.int32()),
            "tz": ["Europe/Paris"] * n,
            "batch_id": [r[3] for r in rows],
            "ingested_at": [T0 + dt.timedelta(days=int(r[3][1:])) for r in rows],
            "direction": pa.nulls(n, pa.string()),
            "rate_mg_dl_min": pa.nulls(n, pa.float64()),
        },
        schema=READING_SCHEMA,
    )


def _by_window(duck, incoming: pa.Table, curated: pa.Table) -> pa.Table:
    return duck.query(WINDOW_SQL, {"incoming": incoming, "curated": curated}).cast(READING_SCHEMA)


def test_first_arrival_across_batches_equals_the_window_query(duck):
    incoming = _readings(
        [
            ("k2", "d1", 5, "b3", 150.0),  # a later batch first in the file ...
            ("k1", "d1", 0, "b2", 100.0),
            ("k1", "d1", 5, "b2", 101.0),
            ("k2", "d1", 5, "b1", 151.0),  # ... and the earlier batch's reading wins
            ("k2", "d1", 5, "b2", 152.0),
            ("k1", "d2", 0, "b1", 110.0),  # the same instant on another device is its own key
            ("k1", "d1", 0, "b1", 102.0),
            ("k3", "d1", 0, "b1", 120.0),  # in curated already: dropped in both batches
            ("k3", "d1", 0, "b2", 121.0),
            ("k3", "d1", 10, "b2", 122.0),
            ("k0", "d9", 15, "b4", 90.0),
        ]
    )
    curated = _readings([("k3", "d1", 0, "b0", 119.0), ("k9", "d1", 0, "b0", 80.0)])
    got = new_readings(incoming, curated)
    assert got.equals(_by_window(duck, incoming, curated))
    assert got.schema == READING_SCHEMA
    keys = [
        f"{k}/{d}"
        for k, d in zip(got["patient_key"].to_pylist(), got["device_id"].to_pylist(), strict=True)
    ]
    assert keys == ["k0/d9", "k1/d1", "k1/d1", "k1/d2", "k2/d1", "k3/d1"]
    assert got["batch_id"].to_pylist() == ["b4", "b1", "b2", "b1", "b1", "b2"]
    assert got["glucose_mg_dl"].to_pylist() == [90.0, 102.0, 101.0, 110.0, 151.0, 122.0]


def test_no_new_readings_when_curated_holds_every_key_or_nothing_comes(duck):
    incoming = _readings([("k1", "d1", 0, "b2", 100.0), ("k1", "d1", 0, "b3", 101.0)])
    curated = _readings([("k1", "d1", 0, "b1", 99.0)])
    assert new_readings(incoming, curated).num_rows == 0
    empty = READING_SCHEMA.empty_table()
    assert new_readings(empty, curated).equals(_by_window(duck, empty, curated))
    one = incoming.slice(0, 1)
    assert new_readings(one, empty).equals(_by_window(duck, one, empty))


_ROW = st.tuples(
    st.sampled_from(["a", "b", "ab", "b\u00e9"]),  # keys that share prefixes, and non-ASCII
    st.sampled_from(["d1", "d2"]),
    st.integers(0, 6),  # few instants, so keys collide often
    st.sampled_from(["b1", "b2", "b3"]),
    st.floats(40, 400),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    incoming=st.lists(_ROW, max_size=40, unique_by=lambda r: (r[0], r[1], r[2], r[3])),
    curated=st.lists(_ROW, max_size=10, unique_by=lambda r: (r[0], r[1], r[2])),
)
def test_new_readings_equal_the_window_query_on_any_batches(duck_engine, incoming, curated):
    """Ingest keeps a key once per batch (unique_by), as in the lake; anything else goes."""
    new, old = _readings(incoming), _readings(curated)
    assert new_readings(new, old).equals(_by_window(duck_engine, new, old))
