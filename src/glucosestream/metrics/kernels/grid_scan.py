"""One pass over a patient's grid for what several metric groups need of it, compiled. PURE.

Coverage needs the number of grid points present, the time-weighted ranges their band counts,
and episodes (and PGS) the runs of points below 70 and above 180 mg/dL, inside which every
episode of the 2023 consensus starts (``kernels.episodes``). ``scan_grid`` finds them all once
per grid, while the grid is in the cache, for every group that uses them: they had been found
by each group on its own (six passes over the grid).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from glucosestream.metrics.kernels import compiled
from glucosestream.metrics.kernels.reading_groups import band_counts
from glucosestream.metrics.thresholds import TAR_LEVEL1_MG_DL, TBR_LEVEL1_MG_DL

__all__ = ["BandCounts", "GridScan", "Runs", "scan_grid"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
# (present, < 54, < 70, > 180, > 250, 70-140): counts of the non-NaN values.
BandCounts = tuple[int, int, int, int, int, int]
# (edges, runs): run k is the grid points [edges[2k], edges[2k + 1]).
Runs = tuple[IntArray, int]
# (band counts, runs below 70 mg/dL, runs above 180 mg/dL).
GridScan = tuple[BandCounts, Runs, Runs]


@compiled
def _runs(x: FloatArray, hypo: bool) -> Runs:
    """The maximal runs of ``x`` below ``TBR_LEVEL1_MG_DL`` (``hypo``) or above
    ``TAR_LEVEL1_MG_DL``. The branch is taken only where a run starts or stops, so it is
    well predicted: a branchless loop that wrote every index as a possible edge was slower."""
    n = x.size
    edges = np.empty(n + 1, dtype=np.int64)
    count = 0
    inside = False
    for i in range(n):
        v = x[i]
        beyond = v < TBR_LEVEL1_MG_DL if hypo else v > TAR_LEVEL1_MG_DL
        if beyond != inside:
            edges[count] = i
            count += 1
            inside = beyond
    if inside:
        edges[count] = n
        count += 1
    return edges, count // 2


@compiled
def scan_grid(x: FloatArray) -> GridScan:
    """The band counts of the grid ``x`` and its maximal runs below ``TBR_LEVEL1_MG_DL`` and
    above ``TAR_LEVEL1_MG_DL`` (a missing point is in neither)."""
    return band_counts(x), _runs(x, True), _runs(x, False)
