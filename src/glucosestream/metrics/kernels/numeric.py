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
