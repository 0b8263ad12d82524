"""Hypo- and hyperglycaemia episodes on one patient's grid, compiled. PURE.

The rules and sources are those of ``metrics.reference.episodes``: an episode starts at the
first of ``start_pts`` consecutive grid points beyond the threshold, ends at the first of
``end_pts`` consecutive points back (at the end threshold), and a missing grid point ends both a
run and an episode. Episodes are written as ``[start, stop)`` grid indices. The runs of points
below 70 (and above 180) are found once per grid (``kernels.grid_scan``) and shared by every
threshold at or beyond them, so each kind's start is looked for only where the grid is beyond
its base.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from glucosestream.metrics.kernels import compiled
from glucosestream.metrics.kernels.grid_scan import Runs

__all__ = ["find_episodes", "overlap_free", "points_for"]

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
def find_episodes(
    x: FloatArray,
    runs: Runs,
    hypo: bool,
    threshold: float,
    end_threshold: float,
    start_pts: int,
    end_pts: int,
    starts: IntArray,
    stops: IntArray,
) -> int:
    """Write the episodes of grid ``x`` into ``starts``/``stops``; return how many. ``runs``
    are the runs of ``x`` below 70 (``hypo``) or above 180 mg/dL (``grid_scan.scan_grid``), and
    ``threshold`` is at or beyond that base: a start (``start_pts`` points beyond ``threshold``)
    is looked for only inside those runs, and the end from the start on, up to the next missing
    point, which ends an episode."""
    edges, n_runs = runs
    n = x.size
    count = 0
    pos = 0  # where the next episode may start
    k = 0
    while k < n_runs:
        run_start, run_stop = edges[2 * k], edges[2 * k + 1]
        if run_stop <= pos:
            k += 1
            continue
        s = _first_run(x, max(run_start, pos), run_stop, start_pts, hypo, threshold, True)
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
