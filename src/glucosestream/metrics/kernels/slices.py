"""Cutting a cohort into reporting periods, compiled. PURE."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from glucosestream.metrics.kernels import compiled

__all__ = ["gather_periods"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@compiled
def gather_periods(
    offsets: IntArray,
    t: IntArray,
    g: FloatArray,
    patient: IntArray,
    start_s: IntArray,
    stop_s: IntArray,
) -> tuple[IntArray, IntArray, FloatArray]:
    """The readings of ``patient[k]`` with ``start_s[k] <= t < stop_s[k]``, one slice per
    period ``k`` (an empty one where ``patient[k]`` is -1), as new (offsets, times, glucose)."""
    n = patient.size
    lo = np.zeros(n, dtype=np.int64)
    hi = np.zeros(n, dtype=np.int64)
    for k in range(n):
        p = patient[k]
        if p >= 0:
            a, b = offsets[p], offsets[p + 1]
            lo[k] = a + np.searchsorted(t[a:b], start_s[k], side="left")
            hi[k] = a + np.searchsorted(t[a:b], stop_s[k], side="left")
    new_off = np.zeros(n + 1, dtype=np.int64)
    new_off[1:] = np.cumsum(hi - lo)
    new_t = np.empty(new_off[n], dtype=np.int64)
    new_g = np.empty(new_off[n])
    for k in range(n):
        new_t[new_off[k] : new_off[k + 1]] = t[lo[k] : hi[k]]
        new_g[new_off[k] : new_off[k + 1]] = g[lo[k] : hi[k]]
    return new_off, new_t, new_g
