"""Daily metrics: the SQL model against the pure reference, and the reference against iglu."""

from __future__ import annotations

import csv
import datetime as dt
from collections import defaultdict

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from glucosestream.metrics import compute_daily_metrics, touched_days
from glucosestream.metrics.glycemic import gmi_pct, summarise_day
from glucosestream.readings import READING_SCHEMA

from .conftest import DATA, SHARED

IGLU = SHARED / "validation" / "iglu-4.3.0"
DAY = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)


def readings_table(values: list[float], minutes: list[int], tz: str = "UTC") -> pa.Table:
    n = len(values)
    ts = [DAY + dt.timedelta(minutes=m) for m in minutes]
    return pa.table(
        {
            "patient_key": ["k"] * n,
            "device_id": ["d"] * n,
            "source": ["test"] * n,
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "glucose_mg_dl": values,
            "original_value": values,
            "original_unit": ["mg/dL"] * n,
            "flags": pa.array([0] * n, pa.int32()),
            "tz": [tz] * n,
            "batch_id": ["b"] * n,
            "ingested_at": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "direction": pa.nulls(n, pa.string()),
            "rate_mg_dl_min": pa.nulls(n, pa.float64()),
        },
        schema=READING_SCHEMA,
    )


glucose = st.floats(min_value=39.0, max_value=401.0, allow_nan=False)


# The engine is stateless between examples: each query registers and drops its own tables.
@hsettings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(glucose, min_size=2, max_size=288))
def test_sql_daily_metrics_equal_the_reference_implementation(duck, values):
    table = readings_table(values, [5 * i for i in range(len(values))])
    days = touched_days(duck, table)
    [row] = compute_daily_metrics(duck, table, days, run_id="r", computed_at=DAY).to_pylist()
    want = summarise_day(values)
    assert row["readings"] == want.readings
    for name in (
        "mean_mg_dl",
        "sd_mg_dl",
        "cv_pct",
        "gmi_pct",
        "pct_below_54",
        "pct_below_70",
        "pct_70_180",
        "pct_above_180",
        "pct_above_250",
    ):
        assert row[name] == pytest.approx(getattr(want, name), rel=1e-9, abs=1e-9), name
    bands = row["pct_below_70"] + row["pct_70_180"] + row["pct_above_180"]
    assert bands == pytest.approx(100.0, abs=1e-9)
    assert row["pct_active"] == pytest.approx(min(100.0, 100 * 5 * len(values) / 1440))


def test_band_edges_follow_the_consensus(duck):
    values = [53.0, 54.0, 69.0, 70.0, 180.0, 181.0, 250.0, 251.0]
    s = summarise_day(values)
    assert s.pct_below_54 == pytest.approx(100 / 8)
    assert s.pct_below_70 == pytest.approx(300 / 8)
    assert s.pct_70_180 == pytest.approx(200 / 8)
    assert s.pct_above_180 == pytest.approx(300 / 8)
    assert s.pct_above_250 == pytest.approx(100 / 8)


def test_days_are_local_and_active_time_uses_the_real_day_length(duck):
    # 2026-03-29 is 23 hours long in Europe/London (clocks go forward at 01:00 UTC).
    start = dt.datetime(2026, 3, 29, 0, 0, tzinfo=dt.UTC)
    minutes = list(range(0, 23 * 60, 5))
    values = [100.0] * len(minutes)
    table = readings_table(
        values, [int((start - DAY).total_seconds() // 60) + m for m in minutes], "Europe/London"
    )
    days = touched_days(duck, table)
    rows = compute_daily_metrics(duck, table, days, run_id="r", computed_at=DAY).to_pylist()
    assert [r["date"] for r in rows] == [dt.date(2026, 3, 29)]
    assert rows[0]["pct_active"] == pytest.approx(100.0)


@given(glucose, glucose)
def test_gmi_rises_with_the_mean(a, b):
    """Every pair is checked (ordered first): a higher mean never gives a lower GMI, and a
    clearly higher one a higher GMI."""
    low, high = sorted((a, b))
    assert gmi_pct(low) <= gmi_pct(high)  # equal only when high - low is below float resolution
    if low + 1e-6 < high:
        assert gmi_pct(low) < gmi_pct(high)


def _cohort_by_subject() -> dict[str, list[float]]:
    groups: dict[str, list[float]] = defaultdict(list)
    with (DATA / "validation" / "cohort.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            if row["gl"]:
                groups[row["id"]].append(float(row["gl"]))
    return groups


def _iglu(name: str) -> dict[str, dict[str, float]]:
    if not IGLU.is_dir():
        pytest.skip(f"iglu reference numbers not found at {IGLU} (comparison data, not shipped)")
    with (IGLU / name).open(newline="") as f:
        return {
            r["id"]: {k: float(v) for k, v in r.items() if k != "id"} for r in csv.DictReader(f)
        }


@pytest.mark.parametrize(
    ("file", "column", "field"),
    [
        ("mean_glu.csv", "mean", "mean_mg_dl"),
        ("sd_glu.csv", "SD", "sd_mg_dl"),
        ("cv_glu.csv", "CV", "cv_pct"),
        ("gmi.csv", "GMI", "gmi_pct"),
        ("below_percent.csv", "below_54", "pct_below_54"),
        ("below_percent.csv", "below_70", "pct_below_70"),
        ("in_range_percent.csv", "in_range_70_180", "pct_70_180"),
        ("above_percent.csv", "above_180", "pct_above_180"),
        ("above_percent.csv", "above_250", "pct_above_250"),
    ],
)
def test_reference_metrics_equal_iglu_on_the_validation_cohort(file, column, field):
    reference = _iglu(file)
    cohort = _cohort_by_subject()
    assert set(reference) == set(cohort)
    for subject, values in cohort.items():
        got = getattr(summarise_day(values), field)
        assert got == pytest.approx(reference[subject][column], rel=1e-6, abs=1e-12), subject
