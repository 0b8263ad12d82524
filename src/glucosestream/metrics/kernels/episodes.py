"""Hypo- and hyperglycaemia episodes on one patient's grid, compiled. PURE.

The rules and sources are those of ``glucosestream.metrics.episodes``: an episode starts at the
first of ``start_pts`` consecutive grid points beyond the threshold, ends at the first of
``end_pts`` consecutive points back (at the end threshold), and a missing grid point ends both a
run and an episode. Episodes are written as ``[start, stop)`` grid indices. The runs of points
beyond 70 (and above 180) are found once per grid and shared by every threshold at or beyond
them, so each kind's start is looked for only where the grid is beyond its base.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from glucosestream.metrics.kernels import compiled

__all__ = ["beyond_runs", "find_episodes", "overlap_free", "points_for"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@compiled
def points_for(minutes: float, dt0_min: int) -> int:
    """Grid points for "at least ``minutes``": ceil(minutes / dt0), at least 1."""
    return max(1, math.ceil(minutes / dt0_min))


@compiled
def _beyond(v: float, hypo: bool, threshold: float) -> bool:
    return v < threshold if hypo else v > threshold


@compiled
def _first_run(
    x: FloatArray, lo: int, hi: int, length: int, hypo: bool, threshold: float, beyond: bool
) -> int:
    """Start of the first ``length`` points in a row in [lo, hi) that are beyond ``threshold``
    (or, with ``beyond=False``, back from it); -1 if there is none."""
    run = 0
    part = x[lo:hi]  # indices from 0: numba then checks no index for being negative
    for i in range(part.size):
        if _beyond(part[i], hypo, threshold) == beyond:
            run += 1
            if run == length:
                return lo + i - length + 1
        else:
            run = 0
    return -1


@compiled
def beyond_runs(x: FloatArray, hypo: bool, base: float) -> tuple[IntArray, IntArray, int]:
    """(starts, stops, count): the maximal runs ``[start, stop)`` of grid points beyond ``base``
    (below it for ``hypo``, above it otherwise; a missing point is beyond nothing). Every
    episode of a threshold at or beyond ``base`` starts inside one of them, so one pass finds
    where all of them may start."""
    starts = np.empty(x.size // 2 + 1, dtype=np.int64)
    stops = np.empty(x.size // 2 + 1, dtype=np.int64)
    count = 0
    inside = False
    for i in range(x.size):
        beyond = _beyond(x[i], hypo, base)
        if beyond and not inside:
            starts[count] = i
        elif inside and not beyond:
            stops[count] = i
            count += 1
        inside = beyond
    if inside:
        stops[count] = x.size
        count += 1
    return starts, stops, count


@compiled
def find_episodes(
    x: FloatArray,
    runs: tuple[IntArray, IntArray, int],
    hypo: bool,
    threshold: float,
    end_threshold: float,
    start_pts: int,
    end_pts: int,
    starts: IntArray,
    stops: IntArray,
) -> int:
    """Write the episodes of grid ``x`` into ``starts``/``stops``; return how many. ``runs``
    is ``beyond_runs(x, hypo, base)`` for a ``base`` that ``threshold`` is at or beyond: a start
    (``start_pts`` points beyond ``threshold``) is looked for only inside those runs, and the end
    from the start on, up to the next missing point, which ends an episode."""
    run_starts, run_stops, n_runs = runs
    n = x.size
    count = 0
    pos = 0  # where the next episode may start
    k = 0
    while k < n_runs:
        if run_stops[k] <= pos:
            k += 1
            continue
        s = _first_run(x, max(run_starts[k], pos), run_stops[k], start_pts, hypo, threshold, True)
        if s < 0:
            k += 1
            continue
        i = s + start_pts
        back = 0
        e = -1
        while i < n and not math.isnan(x[i]):
            if _beyond(x[i], hypo, end_threshold):
                back = 0
            else:
                back += 1
                if back == end_pts:
                    e = i - end_pts + 1
                    break
            i += 1
        starts[count] = s
        stops[count] = e if e >= 0 else i
        count += 1
        pos = e + end_pts if e >= 0 else i
    return count


@compiled
def overlap_free(
    starts: IntArray, stops: IntArray, n: int, other_starts: IntArray, other_stops: IntArray, m: int
) -> npt.NDArray[np.bool_]:
    """Which of the first ``n`` episodes overlap none of the first ``m`` other episodes."""
    keep = np.ones(n, dtype=np.bool_)
    for a in range(n):
        for b in range(m):
            if other_starts[b] < stops[a] and other_stops[b] > starts[a]:
                keep[a] = False
                break
    return keep
