"""Exact order statistics of one patient's readings by counting, compiled. PURE.

CGM glucose is nearly always whole mg/dL in a bounded range, so a histogram of the values gives
every order statistic (quantiles, median, the median absolute deviation) without sorting, and
gives the same numbers to the last bit: the k-th smallest value is found by counting, then the
same arithmetic as ``numeric.quantile_sorted`` and ``np.median`` runs on it. ``counted`` returns
an empty histogram when the values are not all whole numbers in ``[1, 1 + HISTOGRAM_SPAN)`` of
one another; the caller then sorts, as before.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from glucosestream.metrics.kernels import compiled

__all__ = [
    "HISTOGRAM_SPAN",
    "count_at_most",
    "counted",
    "kth",
    "mad_counted",
    "median_counted",
    "quantile_counted",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
HISTOGRAM_SPAN = 4096  # distinct whole values a histogram may cover (mg/dL readings span < 600)


@compiled
def counted(g: FloatArray) -> tuple[IntArray, float]:
    """(cumulative counts of ``lowest + i`` for each i, lowest), or an empty array if the
    values are not whole numbers >= 1 spanning fewer than ``HISTOGRAM_SPAN`` (or ``g`` is
    empty)."""
    if g.size == 0:
        return np.zeros(0, dtype=np.int64), 0.0
    lowest = highest = g[0]
    whole = True
    for v in g:
        whole &= v == math.floor(v)
        lowest = min(lowest, v)
        highest = max(highest, v)
    if not whole or not lowest >= 1.0 or not highest - lowest < HISTOGRAM_SPAN:
        return np.zeros(0, dtype=np.int64), 0.0
    cumulative = np.zeros(int(highest - lowest) + 1, dtype=np.int64)
    for v in g:
        cumulative[int(v - lowest)] += 1
    for i in range(1, cumulative.size):
        cumulative[i] += cumulative[i - 1]
    return cumulative, lowest


@compiled
def kth(cumulative: IntArray, lowest: float, k: int) -> float:
    """The ``k``-th smallest value (0-based) of the counted values."""
    return lowest + float(np.searchsorted(cumulative, k, side="right"))


@compiled
def count_at_most(cumulative: IntArray, lowest: float, value: float) -> int:
    """How many counted values are <= ``value``."""
    i = math.floor(value - lowest)
    if i < 0:
        return 0
    return int(cumulative[min(i, cumulative.size - 1)])


@compiled
def quantile_counted(cumulative: IntArray, lowest: float, q: float) -> float:
    """``numeric.quantile_sorted`` of the counted values (type 7, the same arithmetic)."""
    n = int(cumulative[cumulative.size - 1])
    virtual = (n - 1) * q
    prev = math.floor(virtual)
    gamma = virtual - prev
    i = int(prev)
    if virtual >= n - 1:
        return kth(cumulative, lowest, n - 1)
    if virtual < 0:
        return kth(cumulative, lowest, 0)
    a, b = kth(cumulative, lowest, i), kth(cumulative, lowest, i + 1)
    diff = b - a
    if gamma >= 0.5:
        return b - diff * (1.0 - gamma)
    return a + diff * gamma


@compiled
def median_counted(cumulative: IntArray, lowest: float) -> float:
    """``np.median`` of the counted values (the mean of the middle two for an even count)."""
    n = int(cumulative[cumulative.size - 1])
    if n % 2 == 1:
        return kth(cumulative, lowest, n // 2)
    return (kth(cumulative, lowest, n // 2 - 1) + kth(cumulative, lowest, n // 2)) / 2


@compiled
def mad_counted(cumulative: IntArray, lowest: float, med: float) -> float:
    """``np.median(np.abs(x - med))`` of the counted values: the deviations are visited in
    increasing order by walking out from ``med`` on both sides."""
    n = int(cumulative[cumulative.size - 1])
    need_a, need_b = (n - 1) // 2, n // 2
    right = min(max(math.ceil(med - lowest), 0), cumulative.size)
    left = right - 1
    seen = 0
    a = b = np.nan
    while seen <= need_b:
        below = med - (lowest + left) if left >= 0 else np.inf
        above = (lowest + right) - med if right < cumulative.size else np.inf
        if above <= below:
            deviation, i = above, right
            right += 1
        else:
            deviation, i = below, left
            left -= 1
        count = cumulative[i] - (cumulative[i - 1] if i > 0 else 0)
        if seen <= need_a < seen + count:
            a = deviation
        if seen <= need_b < seen + count:
            b = deviation
        seen += count
    return b if n % 2 == 1 else (a + b) / 2
