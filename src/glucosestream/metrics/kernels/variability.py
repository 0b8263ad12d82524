"""Glycaemic variability on one patient's grid, compiled. PURE.

The same definitions (and sources) as ``glucosestream.metrics.variability``: missing grid points
are skipped, so a pair or window that touches one does not count. ``variability_into`` writes
the 16 values of ``catalog._variability`` in order.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from glucosestream.metrics.kernels import compiled
from glucosestream.metrics.kernels.numeric import nan_mean, nan_sd, round_half_even

__all__ = ["gvp_pct", "variability_into"]

FloatArray = npt.NDArray[np.float64]


@compiled
def _lag_diffs(x: FloatArray, lag: int) -> FloatArray:
    if lag <= 0 or lag >= x.size:
        return np.empty(0)
    return x[lag:] - x[: x.size - lag]


@compiled
def gvp_pct(x: FloatArray, dt0_min: int) -> float:
    """Glucose variability percentage over consecutive present grid points (Peyser 2018)."""
    dt = float(dt0_min)
    length = 0.0
    n = 0
    for i in range(x.size - 1):
        dg = x[i + 1] - x[i]
        if not math.isnan(dg):
            length += math.sqrt(dt * dt + dg * dg)
            n += 1
    return 100.0 * (length / (dt * n) - 1.0) if n else np.nan


@compiled
def _mags(x: FloatArray, dt0_min: int) -> tuple[float, float]:
    """(Hermanides MAG on the grid, iglu's all_metrics MAG column)."""
    total = 0.0
    n = 0
    for i in range(x.size - 1):
        dg = abs(x[i + 1] - x[i])
        if not math.isnan(dg):
            total += dg
            n += 1
    mag = total / (n * dt0_min / 60.0) if n else np.nan
    step = max(1, int(round_half_even(60.0 / dt0_min)))
    sampled = x[::step]
    present = 0
    total = 0.0
    for i in range(sampled.size):
        present += not math.isnan(sampled[i])
        if i > 0:
            dg = abs(sampled[i] - sampled[i - 1])
            total += 0.0 if math.isnan(dg) else dg
    return mag, (total / present if present else np.nan)


@compiled
def _row_stats(v: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per-row mean and sample SD ignoring NaN (NaN where a row has too few values)."""
    means = np.empty(v.shape[0])
    sds = np.empty(v.shape[0])
    for r in range(v.shape[0]):
        means[r] = nan_mean(v[r])
        sds[r] = nan_sd(v[r])
    return means, sds


@compiled
def _auc(v: FloatArray) -> float:
    total = 0.0
    days = 0
    for d in range(v.shape[0]):
        area = 0.0
        pairs = 0
        for k in range(v.shape[1] - 1):
            a = (v[d, k + 1] + v[d, k]) / 2.0
            if not math.isnan(a):
                area += a
                pairs += 1
        if pairs:
            total += area / pairs
            days += 1
    return total / days if days else np.nan


@compiled
def _window_sd_mean(x: FloatArray, window: int) -> float:
    if x.size < window:
        return np.nan
    sds = np.empty(x.size - window + 1)
    for i in range(sds.size):
        sds[i] = nan_sd(x[i : i + window])
    return nan_mean(sds)


@compiled
def variability_into(row: FloatArray, b: int, x: FloatArray, dt0_min: int) -> None:
    """CONGA(24), CONGA(1), MODD, GVP, MAG, iglu MAG, SD of ROC, CV mean/SD, SD measures, AUC."""
    per_day = 1440 // dt0_min
    v = x.reshape(x.size // per_day, per_day)
    row[b] = nan_sd(_lag_diffs(x, int(round_half_even(24.0 * 60.0 / dt0_min))))
    row[b + 1] = nan_sd(_lag_diffs(x, int(round_half_even(60.0 / dt0_min))))
    row[b + 2] = nan_mean(np.abs(_lag_diffs(x, per_day)))
    row[b + 3] = gvp_pct(x, dt0_min)
    row[b + 4], row[b + 5] = _mags(x, dt0_min)
    roc_lag = max(1, int(round_half_even(15.0 / dt0_min)))
    row[b + 6] = nan_sd(_lag_diffs(x, roc_lag) / (roc_lag * dt0_min))
    day_mean, day_sd = _row_stats(v)
    cv = 100.0 * day_sd / day_mean
    row[b + 7], row[b + 8] = nan_mean(cv), nan_sd(cv)
    vt = np.ascontiguousarray(v.T)
    time_mean, time_sd = _row_stats(vt)
    _, bdm_sd = _row_stats(np.ascontiguousarray((v - day_mean.reshape(-1, 1)).T))
    row[b + 9] = nan_mean(day_sd)
    row[b + 10] = nan_sd(time_mean)
    row[b + 11] = _window_sd_mean(x, max(1, 60 // dt0_min))
    row[b + 12] = nan_sd(day_mean)
    row[b + 13] = nan_mean(time_sd)
    row[b + 14] = nan_mean(bdm_sd)
    row[b + 15] = _auc(v)
