"""Variable-length per-patient outputs, compiled: AGP percentile curves and episode lists.
PURE.

Both run in two passes over the cohort (sizes, then values) so every patient writes its own
slice of one flat output, in parallel. The grid and episode rules are those of ``patients``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import prange

from glucosestream.metrics.kernels import compiled_parallel
from glucosestream.metrics.kernels.grid_fill import dt0_min_of, fill_grid, grid_days
from glucosestream.metrics.kernels.grid_scan import scan_grid
from glucosestream.metrics.kernels.numeric import quantile_sorted
from glucosestream.metrics.kernels.patients import episode_sets
from glucosestream.metrics.thresholds import MINUTES_PER_DAY, SECONDS_PER_DAY

__all__ = ["agp_percentiles", "episode_list", "grid_steps"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
N_BASE_KINDS = 6  # hypo lv1, lv2, extended; hyper lv1, lv2, extended (not the "excl" views)


@compiled_parallel
def grid_steps(offsets: IntArray, t: IntArray) -> IntArray:
    """Each patient's grid step in minutes (0 for a patient without readings)."""
    n = offsets.size - 1
    out = np.zeros(n, dtype=np.int64)
    for p in prange(n):
        if offsets[p + 1] > offsets[p]:
            out[p] = dt0_min_of(t[offsets[p] : offsets[p + 1]])
    return out


@compiled_parallel
def agp_percentiles(
    offsets: IntArray,
    t: IntArray,
    g: FloatArray,
    dt0: IntArray,
    probs: FloatArray,
    max_gap_s: float,
) -> FloatArray:
    """Rows of (percentiles at each grid time of day), ``1440 // dt0[p]`` rows per patient:
    quantile type 7 across the days that have a value there (NaN where none has)."""
    n = offsets.size - 1
    per_day = np.where(dt0 > 0, MINUTES_PER_DAY // np.maximum(dt0, 1), 0)
    starts = np.zeros(n + 1, dtype=np.int64)
    starts[1:] = np.cumsum(per_day)
    out = np.full((starts[n], probs.size), np.nan)
    for p in prange(n):
        lo, hi = offsets[p], offsets[p + 1]
        if hi == lo:
            continue
        first_day, n_days = grid_days(t[lo:hi])
        x = np.empty(n_days * per_day[p])
        fill_grid(t[lo:hi], g[lo:hi], dt0[p], first_day, max_gap_s, x)
        v = x.reshape(n_days, per_day[p])
        for k in range(per_day[p]):
            column = v[:, k]
            values = np.sort(column[~np.isnan(column)])
            for j in range(probs.size):
                out[starts[p] + k, j] = quantile_sorted(values, probs[j])
    return out


@compiled_parallel
def episode_list(
    offsets: IntArray, t: IntArray, g: FloatArray, dt0: IntArray, max_gap_s: float
) -> tuple[IntArray, FloatArray]:
    """One row per episode: ints (patient, kind, start s, stop s) and floats (mean, min, max
    glucose over the episode's grid points). Times are wall-clock seconds of grid points; the
    stop is the first point of the run that ended the episode (or the end of its stretch)."""
    n = offsets.size - 1
    counts = np.zeros(n + 1, dtype=np.int64)
    for p in prange(n):
        lo, hi = offsets[p], offsets[p + 1]
        if hi > lo:
            first_day, n_days = grid_days(t[lo:hi])
            x = np.empty(n_days * (MINUTES_PER_DAY // dt0[p]))
            fill_grid(t[lo:hi], g[lo:hi], dt0[p], first_day, max_gap_s, x)
            counts[p + 1] = episode_sets(x, scan_grid(x), dt0[p], False)[2][:N_BASE_KINDS].sum()
    starts = np.cumsum(counts)
    ints = np.zeros((starts[n], 4), dtype=np.int64)
    floats = np.zeros((starts[n], 3))
    for p in prange(n):
        lo, hi = offsets[p], offsets[p + 1]
        if hi == lo:
            continue
        first_day, n_days = grid_days(t[lo:hi])
        x = np.empty(n_days * (MINUTES_PER_DAY // dt0[p]))
        fill_grid(t[lo:hi], g[lo:hi], dt0[p], first_day, max_gap_s, x)
        s, e, c = episode_sets(x, scan_grid(x), dt0[p], False)
        r = starts[p]
        step = dt0[p] * 60
        for kind in range(N_BASE_KINDS):
            for i in range(c[kind]):
                seg = x[s[kind, i] : e[kind, i]]
                base = first_day * SECONDS_PER_DAY
                ints[r, 0], ints[r, 1] = p, kind
                ints[r, 2] = base + (s[kind, i] + 1) * step
                ints[r, 3] = base + (e[kind, i] + 1) * step
                floats[r, 0] = seg.sum() / seg.size
                floats[r, 1], floats[r, 2] = seg.min(), seg.max()
                r += 1
    return ints, floats
