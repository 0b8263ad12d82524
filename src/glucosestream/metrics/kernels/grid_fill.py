"""The interpolation grid, compiled, one patient's slice at a time. PURE.

Same rules and the same arithmetic as ``metrics.reference.interpolation_grid`` (its docstring
cites the source): ``dt0`` is the median reading interval rounded half to even, moved to the nearest
divisor of 1440 if it does not divide a day; grid points at midnight + k dt0; linear
interpolation between the readings on either side unless they are more than the gap limit
apart; no extrapolation.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from glucosestream.metrics.kernels import compiled
from glucosestream.metrics.kernels.numeric import round_half_even
from glucosestream.metrics.thresholds import MINUTES_PER_DAY, SECONDS_PER_DAY

__all__ = ["dt0_min_of", "fill_grid", "grid_days"]

DEFAULT_DT0_MIN = 5  # interpolation_grid.sampling_interval_min: fewer than two readings

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@compiled
def _majority_step(t: IntArray) -> int:
    """The interval between consecutive readings that more than half of them share (found by
    Boyer and Moore's majority vote), or -1 if none does. Such a value fills the middle of the
    sorted intervals, so it is their median exactly, with no copy and no selection."""
    candidate, votes = 0, 0
    for i in range(t.size - 1):
        d = t[i + 1] - t[i]
        if votes == 0:
            candidate, votes = d, 1
        else:
            votes += 1 if d == candidate else -1
    count = 0
    for i in range(t.size - 1):
        count += int(t[i + 1] - t[i] == candidate)
    return candidate if 2 * count > t.size - 1 else -1


@compiled
def dt0_min_of(t: IntArray) -> int:
    """The grid step of one patient's (distinct, sorted) reading times, in minutes."""
    n = t.size
    if n < 2:
        return DEFAULT_DT0_MIN
    majority = _majority_step(t)
    if majority >= 0:
        median = float(majority)
    else:
        d = np.empty(n - 1, dtype=np.float64)
        for i in range(n - 1):
            d[i] = t[i + 1] - t[i]
        median = np.median(d)
    dt0 = max(1, int(round_half_even(median / 60.0)))
    if MINUTES_PER_DAY % dt0 == 0:
        return dt0
    best, best_distance = 1, MINUTES_PER_DAY + 1
    for c in range(1, MINUTES_PER_DAY + 1):
        if MINUTES_PER_DAY % c == 0 and abs(c - dt0) < best_distance:
            best, best_distance = c, abs(c - dt0)
    return best


@compiled
def grid_days(t: IntArray) -> tuple[int, int]:
    """(first wall-clock day number, number of days) the grid of ``t`` spans (t not empty)."""
    first = t[0] // SECONDS_PER_DAY
    return first, t[t.size - 1] // SECONDS_PER_DAY - first + 1


@compiled
def fill_grid(
    t: IntArray, g: FloatArray, dt0_min: int, first_day: int, max_gap_s: float, out: FloatArray
) -> None:
    """Write the grid (``out.size`` points from ``first_day``) of readings ``t, g``: reading by
    reading, the grid points after the one before it up to it (one comparison per point when
    the readings fall on the grid, as most do)."""
    step = dt0_min * 60
    x = first_day * SECONDS_PER_DAY + step  # the time of grid point k
    k = 0
    m = out.size
    if t.size == 0:
        out[:] = np.nan
        return
    while k < m and x < t[0]:
        out[k] = np.nan
        k += 1
        x += step
    for j in range(t.size):
        if j > 0 and k < m and x < t[j]:  # points strictly between readings j - 1 and j
            before = t[j - 1]
            span = float(t[j] - before)
            if span <= max_gap_s:
                g0, rise = g[j - 1], g[j] - g[j - 1]
                while k < m and x < t[j]:
                    out[k] = g0 + (x - before) / span * rise
                    k += 1
                    x += step
            else:
                while k < m and x < t[j]:
                    out[k] = np.nan
                    k += 1
                    x += step
        if k < m and x == t[j]:
            out[k] = g[j]
            k += 1
            x += step
    out[k:] = np.nan
