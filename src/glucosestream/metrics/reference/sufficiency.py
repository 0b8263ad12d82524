"""A gap-aware data-sufficiency report for one patient. PURE.

Battelino T. et al., Diabetes Care 2019;42:1593-1603 recommend 14 days of CGM data with at
least 70% of the possible readings before the consensus metrics are interpreted; Danne T. et
al., Diabetes Care 2017;40:1631-1640 define the percentage of time the CGM was active. Here:

* ``active_pct``: distinct reading times as a percentage of the readings expected at one per
  ``dt0`` over the span from the first to the last reading (capped at 100). iglu 4.3.0's
  ``active_percent`` counts instead the readings that fit in the span less its gaps: an interval
  is a gap when it rounds to more than ``dt0`` whole minutes, and only its excess over ``dt0``
  is lost, so jittered intervals of ``dt0`` + 30-60 s lose their excess and others keep their
  length (``iglu_active_count``; it equals the distinct count when nothing jitters);
* ``grid_coverage_pct``: the share of the interpolation grid between the first and last reading
  that has a value, i.e. time not inside a gap longer than the interpolation limit;
* ``longest_gap_min`` and ``gaps_over_inter_gap``: the longest interval between readings and the
  number of intervals longer than the interpolation limit;
* ``sufficient_14d``: at least 14 days spanned (to within two reading intervals: 14 whole days
  read every ``dt0`` minutes have their first reading up to one interval after the first
  midnight and their last up to one before the last, so they span 14 days less up to two
  intervals) and ``active_pct`` >= 70.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from glucosestream.metrics.reference.interpolation_grid import Grid
from glucosestream.metrics.reference.series import PatientSeries
from glucosestream.metrics.thresholds import (
    DEFAULT_INTER_GAP_MIN,
    MIN_ACTIVE_PCT,
    MIN_DAYS,
    MINUTES_PER_DAY,
    SECONDS_PER_DAY,
)

__all__ = [
    "MIN_ACTIVE_PCT",
    "SufficiencyReport",
    "data_sufficiency",
    "iglu_active_count",
]


@dataclass(frozen=True, slots=True)
class SufficiencyReport:
    days: float
    active_pct: float
    grid_coverage_pct: float
    longest_gap_min: float
    gaps_over_inter_gap: int
    sufficient_14d: bool
    start_time: str
    end_time: str


def _wall_clock(time_s: int) -> str:
    return dt.datetime.fromtimestamp(time_s, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def iglu_active_count(time_s: npt.NDArray[np.int64], dt0_min: int) -> float:
    """iglu 4.3.0's count of active readings over distinct, sorted ``time_s``: one per ``dt0``
    over the span less the gaps' excess over ``dt0``, where a gap is an interval that rounds
    (halves to even, as R) to more than ``dt0`` whole minutes."""
    step_s = dt0_min * 60
    intervals = np.diff(time_s)
    gaps = intervals[np.round(intervals / 60.0) > dt0_min]
    span_s = float(time_s[-1] - time_s[0])
    return float(round((span_s - float(np.sum(gaps - step_s))) / step_s) + 1)


def data_sufficiency(
    instants: PatientSeries,
    grid: Grid,
    inter_gap_min: float = DEFAULT_INTER_GAP_MIN,
    iglu: bool = False,
) -> SufficiencyReport:
    """The sufficiency report of one patient's readings (one value per timestamp); ``iglu``
    counts active readings as iglu 4.3.0 does (``iglu_active_count``)."""
    t = instants.time_s
    span_min = float(t[-1] - t[0]) / 60.0
    expected = round(span_min / grid.dt0_min) + 1
    active_count = iglu_active_count(t, grid.dt0_min) if iglu else float(t.size)
    active = min(100.0, 100.0 * active_count / expected)
    gaps_min = np.diff(t) / 60.0
    first = int(np.ceil((t[0] - grid.first_day * SECONDS_PER_DAY) / (grid.dt0_min * 60))) - 1
    last = int((t[-1] - grid.first_day * SECONDS_PER_DAY) // (grid.dt0_min * 60)) - 1
    inside = grid.flat[max(first, 0) : last + 1]
    coverage = 100.0 * float(np.count_nonzero(~np.isnan(inside))) / max(inside.size, 1)
    days = span_min / MINUTES_PER_DAY
    return SufficiencyReport(
        days=days,
        active_pct=active,
        grid_coverage_pct=coverage,
        longest_gap_min=float(gaps_min.max()) if gaps_min.size else 0.0,
        gaps_over_inter_gap=int(np.count_nonzero(gaps_min > inter_gap_min)),
        sufficient_14d=days + 2 * grid.dt0_min / MINUTES_PER_DAY >= MIN_DAYS
        and active >= MIN_ACTIVE_PCT,
        start_time=_wall_clock(int(t[0])),
        end_time=_wall_clock(int(t[-1])),
    )
