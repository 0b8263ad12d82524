"""MAGE by the moving-average method on one patient's 5-minute grid, compiled. PURE.

The algorithm, its sources and its constants are those of ``glucosestream.metrics.reference.mage``
(Service 1970; Fernandes 2022): segments cut at more than ``max_gap_points`` missing points in a
row, shorter gaps left missing, short and long trailing moving averages of the present values,
one extreme per crossing interval searched from the previous extreme, a one-SD zig-zag filter,
and the duration-weighted mean over segments.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from glucosestream.metrics.kernels import compiled
from glucosestream.metrics.kernels.numeric import mean_of, nan_sd
from glucosestream.metrics.reference import mage

__all__ = ["MAGE_COLUMNS", "mage_into"]

MAGE_COLUMNS = (  # mage_into fills these, in this order
    "mage_mg_dl",
    "mage_plus_mg_dl",
    "mage_minus_mg_dl",
    "mage_service_mg_dl",
    "mage_max_mg_dl",
)

FloatArray = npt.NDArray[np.float64]


@compiled
def _moving_average(c: FloatArray, n: npt.NDArray[np.int64], window: int) -> FloatArray:
    """Trailing mean of the present values among the last ``window`` points (NaN where none is),
    from ``c`` and ``n``, the running sum and count of the present values (``c[0] = n[0] = 0``);
    the first ``window - 1`` points take the first complete window's mean."""
    size = c.size - 1
    out = np.empty(size)
    if size < window:
        out[:] = c[size] / n[size]
        return out
    for i in range(window - 1, size):
        count = n[i + 1] - n[i + 1 - window]
        out[i] = (c[i + 1] - c[i + 1 - window]) / count if count > 0 else np.nan
    out[: window - 1] = out[window - 1]
    return out


@compiled
def _crossings(delta: FloatArray) -> tuple[int, npt.NDArray[np.int64]]:
    """The sign of the first nonzero, present ``delta`` (0 if none) and the indices where the
    sign differs from the last nonzero, present sign before them."""
    out = np.empty(delta.size, dtype=np.int64)
    m = 0
    first = 0
    last = 0.0
    for i in range(delta.size):
        s = np.sign(delta[i])
        if s != 0 and not math.isnan(s):
            if last == 0:
                first = int(s)
            elif s != last:
                out[m] = i
                m += 1
            last = s
    return first, out[:m]


@compiled
def _extremes(x: FloatArray) -> tuple[FloatArray, npt.NDArray[np.int8]]:
    """One peak (1) or nadir (-1) per interval between crossings, each the first largest
    (smallest) present value from the previous extreme up to the next crossing."""
    c = np.zeros(x.size + 1)  # one running sum and count serve both averages
    n = np.zeros(x.size + 1, dtype=np.int64)
    for i in range(x.size):
        present = not math.isnan(x[i])
        c[i + 1] = c[i] + x[i] if present else c[i]
        n[i + 1] = n[i] + 1 if present else n[i]
    short = _moving_average(c, n, mage.SHORT_MA_POINTS)
    kind, crossings = _crossings(short - _moving_average(c, n, mage.LONG_MA_POINTS))
    values = np.empty(crossings.size + 1 if kind else 0)
    kinds = np.empty(values.size, dtype=np.int8)
    start = 0
    for k in range(values.size):
        end = crossings[k] if k < crossings.size else x.size
        at = -1
        for i in range(start, end):
            v = x[i]
            if not math.isnan(v) and (at < 0 or (v > x[at] if kind == 1 else v < x[at])):
                at = i
        values[k], kinds[k] = x[at], kind
        start, kind = at, -kind
    return values, kinds


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
def _segment(seg: FloatArray) -> tuple[float, float, int, bool]:
    """(MAGE+, MAGE-, first excursion: 1 up, -1 down, 0 none, whether the moving averages cross)
    of one segment."""
    sd = nan_sd(seg)  # sd_of of the present values: the same sums in the same order
    values, kinds = _extremes(seg)
    crosses = values.size > 1
    points = _turning_points(values, kinds, sd)
    if points.size == 0:
        return np.nan, np.nan, 0, crosses
    steps = np.diff(points[1:])
    rises = steps[steps > 0]
    falls = -steps[steps < 0]
    first = 1 if points[0] < 0 else -1
    return mean_of(rises), mean_of(falls), first, crosses


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
def mage_into(row: FloatArray, b: int, x: FloatArray, max_gap_points: int, iglu: bool) -> None:
    """MAGE (mean of + and -), MAGE+, MAGE-, MAGE by first excursion, the larger of + and -;
    with ``iglu``, max - min for all five where no segment's averages cross (iglu 4.3.0)."""
    present = np.flatnonzero(~np.isnan(x))
    cuts = [0]
    for i in range(1, present.size):
        if present[i] - present[i - 1] - 1 > max_gap_points:
            cuts.append(i)
    cuts.append(present.size)
    m = len(cuts) - 1 if present.size else 0
    plus, minus = np.empty(m), np.empty(m)
    service, larger, weights = np.empty(m), np.empty(m), np.empty(m)
    crossed = False
    for s in range(m):
        start, stop = present[cuts[s]], present[cuts[s + 1] - 1] + 1
        p, q, first, crosses = _segment(x[start:stop])
        crossed = crossed or crosses
        plus[s], minus[s], weights[s] = p, q, stop - start - 1
        service[s] = p if first == 1 else q
        larger[s] = q if q > p else p
    row[b + 1], row[b + 2] = _weighted(plus, weights), _weighted(minus, weights)
    row[b] = (row[b + 1] + row[b + 2]) / 2.0
    row[b + 3], row[b + 4] = _weighted(service, weights), _weighted(larger, weights)
    if iglu and m > 0 and not crossed:
        row[b : b + 5] = np.nanmax(x) - np.nanmin(x)
