"""period_results: the three period tables from one period cohort equal the three calls that
each build their own; the run columns are repeated values equal to the lists they replaced."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from glucosestream.metrics import PeriodResults, period_results
from glucosestream.metrics.period_tables import (
    _run,
    agp_profile,
    compute_period_metrics,
    episode_rows,
)

from .test_metrics_periods import RUN, _periods, _readings


def test_period_results_equal_the_three_tables_computed_apart():
    readings = _readings(days=6)
    periods = _periods(
        [
            ("a", dt.date(2026, 3, 26), dt.date(2026, 3, 29)),  # over Europe's DST change
            ("b", dt.date(2026, 3, 27), dt.date(2026, 3, 31)),
            ("a", dt.date(2026, 3, 30), dt.date(2026, 4, 12)),
            ("z", dt.date(2026, 3, 26), dt.date(2026, 4, 8)),  # a patient without readings
        ]
    )
    got = period_results(readings, periods, **RUN)
    assert isinstance(got, PeriodResults)
    assert got.periods.equals(compute_period_metrics(readings, periods, **RUN))
    assert got.episodes.equals(episode_rows(readings, periods, **RUN))
    assert got.agp.equals(agp_profile(readings, periods, **RUN))
    one_thread = period_results(readings, periods, **RUN, threads=1)  # a worker's share
    for table in ("periods", "episodes", "agp"):
        assert getattr(one_thread, table).equals(getattr(got, table))
    assert got.periods.num_rows == 4
    assert got.episodes.num_rows > 0
    assert got.agp.num_rows > 0


@pytest.mark.parametrize(
    "at",
    [
        dt.datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 1, 13, tzinfo=dt.timezone(dt.timedelta(hours=1))),  # not UTC
    ],
)
@pytest.mark.parametrize("n", [0, 1, 3])
def test_run_columns_equal_one_value_per_row(n, at):
    columns = _run(n, "run-1", at)
    assert columns["run_id"].equals(pa.array(["run-1"] * n, pa.string()))
    assert columns["computed_at"].equals(pa.array([at] * n, pa.timestamp("us", tz="UTC")))
