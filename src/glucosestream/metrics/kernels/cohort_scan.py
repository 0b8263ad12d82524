"""Compiled passes that put a cohort's flat arrays in (patient, time) order and collapse
readings that share a timestamp. PURE."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import prange

from glucosestream.metrics.kernels import compiled, compiled_parallel

__all__ = [
    "non_decreasing",
    "per_instant",
    "scan_readings",
    "sort_times_within",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@compiled
def non_decreasing(codes: IntArray) -> bool:
    for i in range(1, codes.size):  # noqa: SIM110 (numba compiles loops, not all())
        if codes[i] < codes[i - 1]:
            return False
    return True


@compiled
def _scan_patient(t: IntArray, g: FloatArray) -> tuple[int, int, int]:
    """(times out of order, times repeated, NaN glucose) of one patient. The loops index from
    0 over slices and have no branch, so they vectorise (an index from a variable start might
    be negative to numba, which then checks it at every step and does not vectorise)."""
    unsorted = repeats = missing = 0
    for i in range(1, t.size):
        step = t[i] - t[i - 1]
        unsorted += int(step < 0)
        repeats += int(step == 0)
    for i in range(g.size):
        missing += int(g[i] != g[i])
    return unsorted, repeats, missing


@compiled
def scan_readings(offsets: IntArray, t: IntArray, g: FloatArray) -> tuple[bool, bool, int]:
    """One pass over every patient's readings: (times non-decreasing within every patient, no
    two neighbouring readings of a patient share a time, how many glucose values are NaN)."""
    unsorted = repeats = missing = 0
    for p in range(offsets.size - 1):
        lo, hi = offsets[p], offsets[p + 1]
        u, r, m = _scan_patient(t[lo:hi], g[lo:hi])
        unsorted += u
        repeats += r
        missing += m
    return unsorted == 0, repeats == 0, missing


@compiled_parallel
def sort_times_within(offsets: IntArray, t: IntArray, g: FloatArray) -> None:
    """Sort each patient's readings by time in place, stably (ties keep their order)."""
    for p in prange(offsets.size - 1):
        lo, hi = offsets[p], offsets[p + 1]
        order = np.argsort(t[lo:hi], kind="mergesort")
        t[lo:hi] = t[lo:hi][order]
        g[lo:hi] = g[lo:hi][order]


@compiled
def per_instant(
    offsets: IntArray, t: IntArray, g: FloatArray, last: bool
) -> tuple[IntArray, IntArray, FloatArray]:
    """One reading per patient and timestamp: the mean of those sharing it, or (``last``) the
    last of them in input order. Returns new (offsets, times, glucose)."""
    n = t.size
    distinct = 0
    for p in range(offsets.size - 1):
        for i in range(offsets[p], offsets[p + 1]):
            distinct += i == offsets[p] or t[i] != t[i - 1]
    if distinct == n:
        return offsets, t, g
    new_off = np.empty_like(offsets)
    new_t = np.empty(distinct, dtype=np.int64)
    new_g = np.empty(distinct)
    k = -1
    count = 0
    for p in range(offsets.size - 1):
        new_off[p] = k + 1
        for i in range(offsets[p], offsets[p + 1]):
            if i == offsets[p] or t[i] != t[i - 1]:
                if k >= 0 and not last:
                    new_g[k] /= count
                k += 1
                new_t[k], new_g[k], count = t[i], g[i], 1
            elif last:
                new_g[k] = g[i]
            else:
                new_g[k] += g[i]
                count += 1
    if k >= 0 and not last:
        new_g[k] /= count
    new_off[offsets.size - 1] = k + 1
    return new_off, new_t, new_g
