"""Sufficiency of 14 days (Battelino 2019): whole days read every dt0 minutes count as 14 days
even when their first reading is minutes after the first midnight and their last minutes before
the last one (found by the clinic's triage: 00:04 to 23:57 read as 13.9987 days)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from glucosestream.metrics import compute_metrics
from glucosestream.metrics.reference.patient_metrics import compute_patient
from glucosestream.metrics.reference.series import prepare_series


def _fortnight(first: dt.datetime, last: dt.datetime) -> pa.Table:
    times = []
    at = first
    while at <= last:
        times.append(at)
        at += dt.timedelta(minutes=5)
    return pa.table(
        {
            "id": pa.array(["P"] * len(times)),
            "time": pa.array(times, pa.timestamp("s")),
            "gl": pa.array([120.0 + (i % 7) for i in range(len(times))]),
        }
    )


@pytest.mark.parametrize(
    ("first", "last", "sufficient"),
    [
        ("2026-01-01T00:04", "2026-01-14T23:57", True),  # offset grid: 13.995 days spanned
        ("2026-01-01T00:00", "2026-01-14T23:55", True),
        ("2026-01-01T00:09", "2026-01-14T23:54", False),  # three intervals short
        ("2026-01-01T00:00", "2026-01-13T23:55", False),  # 13 days
    ],
)
def test_fourteen_whole_days_are_sufficient_to_within_two_intervals(first, last, sufficient):
    readings = _fortnight(dt.datetime.fromisoformat(first), dt.datetime.fromisoformat(last))
    kernels = compute_metrics(readings, "consensus").to_pylist()[0]
    assert bool(kernels["sufficient_14d"]) is sufficient
    series = prepare_series(readings["time"].cast(pa.int64()).to_numpy(), readings["gl"].to_numpy())
    reference = compute_patient(series, ["sufficient_14d"])
    assert bool(reference["sufficient_14d"]) is sufficient
