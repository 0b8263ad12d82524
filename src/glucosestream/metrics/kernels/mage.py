"""MAGE by the moving-average method on one patient's 5-minute grid, compiled. PURE.

The algorithm, its sources and its constants are those of ``glucosestream.metrics.mage``
(Service 1970; Fernandes 2022): segments cut at more than ``max_gap_points`` missing points in a
row, shorter gaps interpolated, short and long trailing moving averages, one extreme per
crossing interval, a one-SD zig-zag filter, and the duration-weighted mean over segments.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from glucosestream.metrics import mage
from glucosestream.metrics.kernels import compiled
from glucosestream.metrics.kernels.numeric import mean_of, nan_sd

__all__ = ["mage_into"]

FloatArray = npt.NDArray[np.float64]


@compiled
def _filled(seg: FloatArray) -> FloatArray:
    """The segment with inner missing points interpolated linearly (as ``np.interp``)."""
    out = seg.copy()
    left = 0
    for i in range(1, seg.size):
        if math.isnan(seg[i]):
            continue
        if i - left > 1:
            slope = (seg[i] - seg[left]) / (i - left)
            for j in range(left + 1, i):
                out[j] = slope * (j - left) + seg[left]
        left = i
    return out


@compiled
def _moving_average(x: FloatArray, c: FloatArray, window: int) -> FloatArray:
    """Trailing mean of ``window`` points, from ``c``, the running sum of ``x`` (``c[0] = 0``)."""
    out = np.empty(x.size)
    if x.size < window:
        out[:] = c[x.size] / x.size
        return out
    for i in range(window - 1, x.size):
        out[i] = (c[i + 1] - c[i + 1 - window]) / window
    out[: window - 1] = out[window - 1]
    return out


@compiled
def _interval_extremes(
    x: FloatArray, delta: FloatArray, bounds: npt.NDArray[np.int64]
) -> tuple[FloatArray, npt.NDArray[np.int8]]:
    """For each interval ``[bounds[k], bounds[k + 1])``: up (1) if the mean of ``delta`` over
    it is > 0, else down (-1), and the largest ``x`` in it if up, else the smallest (NaN if it
    holds a NaN, as ``np.max`` and ``np.min``). One pass with running sums, maxima and minima
    in index order, so the same numbers as a mean, max and min of each interval's slice."""
    n = bounds.size - 1
    values = np.empty(n)
    kinds = np.empty(n, dtype=np.int8)
    for k in range(n):
        lo, hi = bounds[k], bounds[k + 1]
        total = 0.0
        top = bottom = x[lo]
        missing = False
        for i in range(lo, hi):
            total += delta[i]
            v = x[i]
            missing |= v != v
            top = v if v > top else top
            bottom = v if v < bottom else bottom
        up = total / (hi - lo) > 0
        values[k] = np.nan if missing else (top if up else bottom)
        kinds[k] = 1 if up else -1
    return values, kinds


@compiled
def _extremes(x: FloatArray) -> tuple[FloatArray, npt.NDArray[np.int8]]:
    c = np.zeros(x.size + 1)  # one running sum serves both averages
    for i in range(x.size):
        c[i + 1] = c[i] + x[i]
    short = _moving_average(x, c, mage.SHORT_MA_POINTS)
    delta = short - _moving_average(x, c, mage.LONG_MA_POINTS)
    bounds = np.empty(x.size + 1, dtype=np.int64)
    nb = 1
    bounds[0] = 0
    last = 0.0
    for i in range(x.size):
        s = np.sign(delta[i])
        if s != 0:
            if last != 0 and s != last:
                bounds[nb] = i
                nb += 1
            last = s
    if last == 0:
        return np.empty(0), np.empty(0, dtype=np.int8)
    bounds[nb] = x.size
    return _interval_extremes(x, delta, bounds[: nb + 1])


@compiled
def _turning_points(values: FloatArray, kinds: npt.NDArray[np.int8], sd: float) -> FloatArray:
    """Alternating turning points at least ``sd`` apart, after the first point's kind."""
    points = np.empty(values.size + 2)
    n = 0
    first_kind = 0
    high = low = np.nan
    for i in range(values.size):
        v, k = values[i], kinds[i]
        if n == 0:
            if k == 1 and v - low >= sd:
                points[0], points[1], n, first_kind = low, v, 2, -1
            elif k == -1 and high - v >= sd:
                points[0], points[1], n, first_kind = high, v, 2, 1
            elif k == 1:
                high = v if math.isnan(high) else max(high, v)
            else:
                low = v if math.isnan(low) else min(low, v)
            continue
        last_kind = first_kind if n % 2 == 1 else -first_kind
        if k == last_kind:
            points[n - 1] = max(points[n - 1], v) if k == 1 else min(points[n - 1], v)
        elif abs(v - points[n - 1]) >= sd:
            points[n] = v
            n += 1
    out = np.empty(n + 1 if n else 0)
    if n:
        out[0] = first_kind
        out[1:] = points[:n]
    return out


@compiled
def _segment(seg: FloatArray) -> tuple[float, float, int]:
    """(MAGE+, MAGE-, first excursion: 1 up, -1 down, 0 none) of one segment."""
    sd = nan_sd(seg)  # sd_of of the present values: the same sums in the same order
    values, kinds = _extremes(_filled(seg))
    points = _turning_points(values, kinds, sd)
    if points.size == 0:
        return np.nan, np.nan, 0
    steps = np.diff(points[1:])
    rises = steps[steps > 0]
    falls = -steps[steps < 0]
    first = 1 if points[0] < 0 else -1
    return mean_of(rises), mean_of(falls), first


@compiled
def _weighted(values: FloatArray, weights: FloatArray) -> float:
    total = 0.0
    acc = 0.0
    for i in range(values.size):
        v, w = values[i], weights[i]
        if not math.isnan(v):
            total += w
            acc += v * w
    return acc / total if total > 0 else np.nan


@compiled
def mage_into(row: FloatArray, b: int, x: FloatArray, max_gap_points: int) -> None:
    """MAGE (mean of + and -), MAGE+, MAGE-, MAGE by first excursion, the larger of + and -."""
    present = np.flatnonzero(~np.isnan(x))
    cuts = [0]
    for i in range(1, present.size):
        if present[i] - present[i - 1] - 1 > max_gap_points:
            cuts.append(i)
    cuts.append(present.size)
    m = len(cuts) - 1 if present.size else 0
    plus, minus = np.empty(m), np.empty(m)
    service, larger, weights = np.empty(m), np.empty(m), np.empty(m)
    for s in range(m):
        start, stop = present[cuts[s]], present[cuts[s + 1] - 1] + 1
        p, q, first = _segment(x[start:stop])
        plus[s], minus[s], weights[s] = p, q, stop - start - 1
        service[s] = p if first == 1 else q
        larger[s] = q if q > p else p
    row[b + 1], row[b + 2] = _weighted(plus, weights), _weighted(minus, weights)
    row[b] = (row[b + 1] + row[b + 2]) / 2.0
    row[b + 3], row[b + 4] = _weighted(service, weights), _weighted(larger, weights)
