"""Glycaemic variability on one patient's grid, compiled. PURE.

The same definitions (and sources) as ``metrics.reference.variability``: missing grid points
are skipped, so a pair or window that touches one does not count. ``variability_into`` writes
the 16 values of ``reference.patient_metrics._variability`` in order.

Every sum adds the same values in the same order as the per-patient reference (``nan_mean``,
``nan_sd``: mean first, then the squared deviations), so the numbers are the same to the last
bit; what changed for speed is only how the sums are scheduled. Independent sums share one loop
(the lagged differences), and sums over many short runs (time-of-day columns, the one-hour
windows of SD_wsh) run side by side, one accumulator per run, which the compiler vectorises.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from glucosestream.metrics.kernels import compiled
from glucosestream.metrics.kernels.numeric import nan_mean, nan_sd, round_half_even
from glucosestream.metrics.thresholds import MINUTES_PER_DAY

__all__ = ["VARIABILITY_COLUMNS", "gvp_pct", "variability_into"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
N_LAGS = 4  # CONGA(24 h), CONGA(1 h), MODD (absolute), rate of change (scaled)
WINDOW_BLOCK = 256  # SD_wsh windows computed side by side at a time
LAG_BLOCK = 512  # terms of the lagged sums computed at a time (they stay in the fastest cache)


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
def _lags(x: FloatArray, dt0_min: int) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """(lag in points, divisor) of CONGA(24), CONGA(1), MODD and the rate of change; a lag of
    0 means "no pairs" (as an empty difference array in the reference)."""
    per_day = MINUTES_PER_DAY // dt0_min
    roc_lag = max(1, int(round_half_even(15.0 / dt0_min)))
    lags = np.array(
        [
            int(round_half_even(24.0 * 60.0 / dt0_min)),
            int(round_half_even(60.0 / dt0_min)),
            per_day,
            roc_lag,
        ]
    )
    for k in range(N_LAGS):
        if lags[k] <= 0 or lags[k] >= x.size:
            lags[k] = 0
    scale = np.array([1.0, 1.0, 1.0, float(roc_lag * dt0_min)])
    return lags, scale


@compiled
def _terms_block(
    x: FloatArray, lo: int, lags: IntArray, scale: FloatArray, dt: float, out: FloatArray
) -> npt.NDArray[np.int64]:
    """Terms ``lo ... lo + out.shape[1] - 1`` of the six sums of ``_lagged_into`` into ``out``
    (rows: the four lagged differences, MODD's absolute; GVP's arc length; MAG's absolute step),
    NaN and terms past the end written as 0.0 (adding 0.0 to a sum that starts at 0.0 leaves it
    bit for bit as skipping would; dividing by a scale of 1.0 changes no bit). Returns how many
    of each are not NaN. No branch in the loops, so the compiler vectorises them."""
    size = out.shape[1]
    present = np.zeros(6, dtype=np.int64)
    for k in range(N_LAGS):
        lag, divisor = lags[k], scale[k]
        valid = max(0, min(size, x.size - lag - lo)) if lag > 0 else 0
        head, tail = x[lo + lag : lo + lag + valid], x[lo : lo + valid]
        seen = 0
        for c in range(valid):
            d = (head[c] - tail[c]) / divisor
            d = abs(d) if k == 2 else d
            out[k, c] = d if d == d else 0.0
            seen += int(d == d)
        out[k, valid:] = 0.0
        present[k] = seen
    seen = 0
    valid = max(0, min(size, x.size - 1 - lo))
    head, tail = x[lo + 1 : lo + 1 + valid], x[lo : lo + valid]
    for c in range(valid):
        dg = head[c] - tail[c]
        out[4, c] = math.sqrt(dt * dt + dg * dg) if dg == dg else 0.0
        out[5, c] = abs(dg) if dg == dg else 0.0
        seen += int(dg == dg)
    out[4:, valid:] = 0.0
    present[4] = seen
    return present


@compiled
def _squares_block(
    x: FloatArray, lo: int, lags: IntArray, scale: FloatArray, means: FloatArray, out: FloatArray
) -> None:
    """``(d - mean) ** 2`` of the lagged differences of ``_terms_block`` (rows 0, 1 and 3), 0.0
    where d is NaN or past the end."""
    size = out.shape[1]
    for k in (0, 1, 3):
        lag, divisor, mean = lags[k], scale[k], means[k]
        valid = max(0, min(size, x.size - lag - lo)) if lag > 0 else 0
        head, tail = x[lo + lag : lo + lag + valid], x[lo : lo + valid]
        for c in range(valid):
            d = (head[c] - tail[c]) / divisor
            out[k, c] = (d - mean) * (d - mean) if d == d else 0.0
        out[k, valid:] = 0.0


@compiled
def _add_rows(terms: FloatArray, sums: FloatArray) -> None:
    """Add each of the first six rows of ``terms`` to its running sum in ``sums``, in index
    order; the six sums run side by side."""
    a0, a1, a2, a3, a4, a5 = sums[0], sums[1], sums[2], sums[3], sums[4], sums[5]
    for i in range(terms.shape[1]):
        a0 += terms[0, i]
        a1 += terms[1, i]
        a2 += terms[2, i]
        a3 += terms[3, i]
        a4 += terms[4, i]
        a5 += terms[5, i]
    sums[0], sums[1], sums[2], sums[3], sums[4], sums[5] = a0, a1, a2, a3, a4, a5


@compiled
def _lagged_into(row: FloatArray, b: int, x: FloatArray, dt0_min: int) -> None:
    """CONGA(24), CONGA(1), MODD, GVP, MAG (row[b : b + 5]) and SD of ROC (row[b + 6]): the
    six sums run side by side, ``LAG_BLOCK`` terms at a time, each over its terms in order."""
    n = x.size - 1
    lags, scale = _lags(x, dt0_min)
    dt = float(dt0_min)
    block = np.empty((6, LAG_BLOCK))
    sums, squares = np.zeros(6), np.zeros(6)
    counts = np.zeros(6, dtype=np.int64)
    for lo in range(0, n, LAG_BLOCK):  # a last block past the end adds only 0.0 terms
        counts += _terms_block(x, lo, lags, scale, dt, block)
        _add_rows(block, sums)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    for lo in range(0, n, LAG_BLOCK):
        _squares_block(x, lo, lags, scale, means, block)
        _add_rows(block, squares)
    for k, c in ((0, 0), (1, 1), (3, 6)):
        row[b + c] = math.sqrt(squares[k] / (counts[k] - 1)) if counts[k] > 1 else np.nan
    steps = counts[4]
    row[b + 2] = means[2]
    row[b + 3] = 100.0 * (sums[4] / (dt * steps) - 1.0) if steps else np.nan
    row[b + 4] = sums[5] / (steps * dt0_min / 60.0) if steps else np.nan


@compiled
def _mag_iglu(x: FloatArray, dt0_min: int) -> float:
    """iglu's all_metrics MAG column: hourly samples of the grid, a missing step counts 0."""
    step = max(1, int(round_half_even(60.0 / dt0_min)))
    sampled = x[::step]
    present = 0
    total = 0.0
    for i in range(sampled.size):
        present += not math.isnan(sampled[i])
        if i > 0:
            dg = abs(sampled[i] - sampled[i - 1])
            total += 0.0 if math.isnan(dg) else dg
    return total / present if present else np.nan


@compiled
def _days(v: FloatArray) -> tuple[FloatArray, FloatArray, float]:
    """Per-day mean and SD ignoring NaN, and the hourly AUC (``variability.hourly_auc_mg_dl``);
    the days' sums run side by side, each in time order."""
    n_days, per_day = v.shape
    sums, counts, areas, pairs = (
        np.zeros(n_days),
        np.zeros(n_days),
        np.zeros(n_days),
        np.zeros(n_days),
    )
    for k in range(per_day):
        for d in range(n_days):
            w = v[d, k]
            present = not math.isnan(w)
            sums[d] += w if present else 0.0
            counts[d] += 1.0 if present else 0.0
            if k + 1 < per_day:
                a = (v[d, k + 1] + w) / 2.0
                present = not math.isnan(a)
                areas[d] += a if present else 0.0
                pairs[d] += 1.0 if present else 0.0
    means = sums / counts  # 0 / 0 is NaN, as nan_mean of nothing
    squares = np.zeros(n_days)
    for k in range(per_day):
        for d in range(n_days):
            w = v[d, k]
            squares[d] += (w - means[d]) * (w - means[d]) if not math.isnan(w) else 0.0
    sds = np.empty(n_days)
    total = 0.0
    days = 0
    for d in range(n_days):
        sds[d] = math.sqrt(squares[d] / (counts[d] - 1.0)) if counts[d] > 1.0 else np.nan
        if pairs[d]:
            total += areas[d] / pairs[d]
            days += 1
    return means, sds, (total / days if days else np.nan)


@compiled
def _column_stats(v: FloatArray, shift: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Mean and sample SD ignoring NaN of each column of ``v - shift[:, None]``, each summed
    down its column in row order (one accumulator per column, side by side)."""
    rows, cols = v.shape
    sums, counts, squares = np.zeros(cols), np.zeros(cols), np.zeros(cols)
    for r in range(rows):
        for k in range(cols):
            w = v[r, k] - shift[r]
            present = not math.isnan(w)
            sums[k] += w if present else 0.0
            counts[k] += 1.0 if present else 0.0
    means = sums / counts  # 0 / 0 is NaN, as nan_mean of nothing
    for r in range(rows):
        for k in range(cols):
            w = v[r, k] - shift[r]
            squares[k] += (w - means[k]) * (w - means[k]) if not math.isnan(w) else 0.0
    sds = np.empty(cols)
    for k in range(cols):
        sds[k] = math.sqrt(squares[k] / (counts[k] - 1.0)) if counts[k] > 1.0 else np.nan
    return means, sds


@compiled
def _window_block_sds(
    zeroed: FloatArray, present: FloatArray, lo: int, window: int, sds: FloatArray
) -> None:
    """The SD ignoring NaN of the ``sds.size`` windows starting at ``lo``, into ``sds``: each
    window's sums run in point order (NaN read as 0.0, which adds nothing to a sum that starts
    at 0.0), the windows side by side, so the compiler vectorises across windows."""
    size = sds.size
    sums, counts, squares = np.zeros(size), np.zeros(size), np.zeros(size)
    for j in range(window):
        zs, ps = zeroed[lo + j : lo + j + size], present[lo + j : lo + j + size]
        for i in range(size):
            sums[i] += zs[i]
            counts[i] += ps[i]
    for i in range(size):
        sums[i] = sums[i] / counts[i]  # the means; 0 / 0 is NaN, as nan_mean of nothing
    for j in range(window):
        zs, ps = zeroed[lo + j : lo + j + size], present[lo + j : lo + j + size]
        for i in range(size):
            d = zs[i] - sums[i]
            squares[i] += d * d if ps[i] != 0.0 else 0.0
    for i in range(size):
        sds[i] = math.sqrt(squares[i] / (counts[i] - 1.0)) if counts[i] > 1.0 else np.nan


@compiled
def _window_sd_mean(x: FloatArray, window: int) -> float:
    """Mean over every ``window``-point run of ``x`` of its SD ignoring NaN (SD_wsh), taken
    ``WINDOW_BLOCK`` windows at a time so their sums stay in the fastest cache."""
    m = x.size - window + 1
    if m <= 0:
        return np.nan
    zeroed, present = np.empty(x.size), np.empty(x.size)
    for i in range(x.size):
        zeroed[i] = x[i] if x[i] == x[i] else 0.0
        present[i] = 1.0 if x[i] == x[i] else 0.0
    sds = np.empty(WINDOW_BLOCK)
    total = 0.0
    n = 0
    for lo in range(0, m, WINDOW_BLOCK):
        block = sds[: min(WINDOW_BLOCK, m - lo)]
        _window_block_sds(zeroed, present, lo, window, block)
        for sd in block:
            total += sd if sd == sd else 0.0
            n += int(sd == sd)
    return total / n if n > 0 else np.nan


VARIABILITY_COLUMNS = (  # variability_into fills these, in this order
    "conga_24h",
    "conga_1h",
    "modd",
    "gvp_pct",
    "mag_mg_dl_per_h",
    "mag_iglu_all_metrics",
    "sd_roc_mg_dl_per_min",
    "cv_mean_pct",
    "cv_sd_pct",
    "sd_w",
    "sd_hhmm",
    "sd_wsh",
    "sd_dm",
    "sd_b",
    "sd_bdm",
    "auc_hourly_mg_dl",
)


@compiled
def variability_into(row: FloatArray, b: int, x: FloatArray, dt0_min: int) -> None:
    """CONGA(24), CONGA(1), MODD, GVP, MAG, iglu MAG, SD of ROC, CV mean/SD, SD measures, AUC."""
    per_day = MINUTES_PER_DAY // dt0_min
    v = x.reshape(x.size // per_day, per_day)
    _lagged_into(row, b, x, dt0_min)
    row[b + 5] = _mag_iglu(x, dt0_min)
    day_mean, day_sd, auc = _days(v)
    cv = 100.0 * day_sd / day_mean
    row[b + 7], row[b + 8] = nan_mean(cv), nan_sd(cv)
    time_mean, time_sd = _column_stats(v, np.zeros(v.shape[0]))
    _, bdm_sd = _column_stats(v, day_mean)
    row[b + 9] = nan_mean(day_sd)
    row[b + 10] = nan_sd(time_mean)
    row[b + 11] = _window_sd_mean(x, max(1, 60 // dt0_min))
    row[b + 12] = nan_sd(day_mean)
    row[b + 13] = nan_mean(time_sd)
    row[b + 14] = nan_mean(bdm_sd)
    row[b + 15] = auc
