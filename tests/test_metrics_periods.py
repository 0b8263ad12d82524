"""Per-period results tables (``metrics.period_tables``) against ``compute_metrics`` on the same
data."""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pytest

from glucosestream.errors import InvalidInput
from glucosestream.metrics.calculator import agp_table, compute_metrics, episode_table
from glucosestream.metrics.period_tables import (
    AGP_PROFILE_SCHEMA,
    EPISODES_SCHEMA,
    PERIOD_METRICS_SCHEMA,
    agp_profile,
    compute_period_metrics,
    episode_rows,
)
from glucosestream.metrics.spec import CONSENSUS

RUN = {"run_id": "r1", "computed_at": dt.datetime(2026, 3, 1, tzinfo=dt.UTC)}
ZONES = {"a": "Europe/Berlin", "b": "America/New_York"}


def _readings(days: int = 5) -> pa.Table:
    rng = np.random.default_rng(7)
    keys, ts, gl, tz = [], [], [], []
    start = dt.datetime(2026, 3, 26, tzinfo=dt.UTC)  # spans Europe's DST change (29 March)
    for key, zone in ZONES.items():
        n = days * 288
        minutes = np.arange(n) * 5
        g = 150 + 110 * np.sin(minutes / 200.0) + rng.normal(0, 10, n)
        keys += [key] * n
        ts += [start + dt.timedelta(minutes=int(m)) for m in minutes]
        gl += np.clip(g, 40, 400).round().tolist()
        tz += [zone] * n
    return pa.table(
        {
            "patient_key": keys,
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "glucose_mg_dl": pa.array(gl, pa.float64()),
            "tz": tz,
        }
    )


def _periods(rows: list[tuple[str, dt.date, dt.date]]) -> pa.Table:
    keys, starts, ends = zip(*rows, strict=True)
    return pa.table(
        {
            "patient_key": list(keys),
            "period_start": pa.array(starts, pa.date32()),
            "period_end": pa.array(ends, pa.date32()),
        }
    )


def _local_subset(readings: pa.Table, key: str, first: dt.date, last: dt.date) -> pa.Table:
    """The patient's readings as local wall-clock ``id, time, gl``, cut to [first, last]."""
    rows = [r for r in readings.to_pylist() if r["patient_key"] == key]
    local = [r["ts"].astimezone(ZoneInfo(r["tz"])) for r in rows]
    keep = [i for i, t in enumerate(local) if first <= t.date() <= last]
    return pa.table(
        {
            "id": [key] * len(keep),
            "time": pa.array([local[i].replace(tzinfo=None) for i in keep], pa.timestamp("s")),
            "gl": pa.array([rows[i]["glucose_mg_dl"] for i in keep], pa.float64()),
        }
    )


def _same(a: object, b: object) -> bool:
    if isinstance(b, float) and math.isnan(b):
        return a is None
    if isinstance(b, float):
        return a == pytest.approx(b, rel=1e-12)
    return a == b


def test_period_metrics_equal_compute_metrics_on_the_local_days():
    readings = _readings()
    d = dt.date
    periods = _periods(
        [("b", d(2026, 3, 27), d(2026, 3, 29)), ("a", d(2026, 3, 26), d(2026, 3, 30))]
    )
    out = compute_period_metrics(readings, periods, **RUN)
    assert out.schema == PERIOD_METRICS_SCHEMA
    rows = out.to_pylist()
    for row, (key, first, last) in zip(
        rows,
        [("b", d(2026, 3, 27), d(2026, 3, 29)), ("a", d(2026, 3, 26), d(2026, 3, 30))],
        strict=True,
    ):
        [want] = compute_metrics(_local_subset(readings, key, first, last), CONSENSUS).to_pylist()
        assert row["patient_key"] == key
        for name in CONSENSUS:
            if name in ("start_time", "end_time"):
                column = "first_reading_local" if name == "start_time" else "last_reading_local"
                assert row[column].strftime("%Y-%m-%d %H:%M:%S") == want[name]
            elif name == "sufficient_14d":
                assert row[name] is bool(want[name])
            else:
                assert _same(row[name], want[name]), name
        assert row["dt0_min"] == 5


def test_a_period_without_readings_has_a_row_and_no_episodes():
    readings = _readings(2)
    periods = _periods(
        [
            ("a", dt.date(2027, 1, 1), dt.date(2027, 1, 14)),
            ("zz", dt.date(2026, 3, 26), dt.date(2026, 3, 27)),
        ]
    )
    [first, second] = compute_period_metrics(readings, periods, **RUN).to_pylist()
    assert (first["readings"], second["readings"]) == (0, 0)
    assert first["mean_mg_dl"] is None
    assert first["gri_zone"] is None
    assert episode_rows(readings, periods, **RUN).num_rows == 0
    assert agp_profile(readings, periods, **RUN).num_rows == 0


def test_episode_rows_add_up_to_the_episode_table():
    readings = _readings()
    d = dt.date
    periods = _periods([("a", d(2026, 3, 26), d(2026, 3, 31))])
    episodes = episode_rows(readings, periods, **RUN)
    assert episodes.schema == EPISODES_SCHEMA
    summary = episode_table(
        _local_subset(readings, "a", d(2026, 3, 26), d(2026, 3, 31))
    ).to_pylist()
    rows = episodes.to_pylist()
    for s in summary:
        if s["level"].endswith("excl"):
            continue
        mine = [r for r in rows if (r["type"], r["level"]) == (s["type"], s["level"])]
        assert len(mine) == s["total_episodes"], (s["type"], s["level"])
        if mine:
            assert np.mean([r["duration_min"] for r in mine]) == pytest.approx(s["avg_ep_duration"])
            assert np.mean([r["mean_mg_dl"] for r in mine]) == pytest.approx(s["avg_ep_gl"])
    for r in rows:
        assert r["min_mg_dl"] <= r["mean_mg_dl"] <= r["max_mg_dl"]
        assert r["end_local"] - r["start_local"] == dt.timedelta(minutes=r["duration_min"])
    assert any(r["type"] == "hypo" for r in rows)
    assert any(r["type"] == "hyper" for r in rows)


def test_agp_profile_equals_agp_table():
    readings = _readings()
    d = dt.date
    periods = _periods([("b", d(2026, 3, 26), d(2026, 3, 30))])
    profile = agp_profile(readings, periods, **RUN)
    assert profile.schema == AGP_PROFILE_SCHEMA
    want = agp_table(_local_subset(readings, "b", d(2026, 3, 26), d(2026, 3, 30)))
    assert profile["minute_of_day"].to_pylist() == [s // 60 for s in want["seconds"].to_pylist()]
    for p in ("p05", "p25", "p50", "p75", "p95"):
        np.testing.assert_allclose(
            profile[f"{p}_mg_dl"].to_numpy(zero_copy_only=False), want[p].to_numpy(), rtol=1e-12
        )


def test_readings_without_the_canonical_columns_are_refused():
    periods = _periods([("a", dt.date(2026, 3, 26), dt.date(2026, 3, 27))])
    with pytest.raises(InvalidInput, match="canonical"):
        compute_period_metrics(_readings(1).drop_columns(["tz"]), periods, **RUN)
