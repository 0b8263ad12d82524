"""Ambulatory glucose profile (AGP) percentile curves and day/night splits. PURE.

AGP: Mazze R.S. et al., "Characterizing glucose exposure for individuals with normal glucose
tolerance using continuous glucose monitoring and ambulatory glucose profile analysis", Diabetes
Technol Ther 2008;10:149-159, and Battelino 2019 (the 5th/25th/50th/75th/95th percentile curves
by time of day). Here the percentiles are taken, at each time of day of the interpolation grid,
across the days that have a value there (quantile type 7), as iglu's ``plot_agp`` does before
smoothing. Sleep/wake: readings whose wall-clock hour is in [0, 6) are "night".
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from glucosestream.metrics.agp_loess import AGP_LOESS_SPAN, loess
from glucosestream.metrics.reference.interpolation_grid import Grid
from glucosestream.metrics.thresholds import AGP_PERCENTILES, SECONDS_PER_DAY

__all__ = [
    "NIGHT_END_HOUR",
    "NIGHT_START_HOUR",
    "AgpCurves",
    "agp_curves",
    "smooth_curves",
]

NIGHT_START_HOUR: Final = 0  # iglu calculate_sleep_wake default sleep window [0, 6)
NIGHT_END_HOUR: Final = 6


@dataclass(frozen=True, slots=True)
class AgpCurves:
    """``percentiles_mg_dl[i, k]`` is percentile ``AGP_PERCENTILES[i]`` at ``seconds[k]``."""

    seconds: npt.NDArray[np.int64]
    percentiles_mg_dl: npt.NDArray[np.float64]


def agp_curves(grid: Grid) -> AgpCurves:
    """Percentile curves by time of day (seconds after midnight: dt0 x 60 ... 86400)."""
    seconds = np.arange(1, grid.points_per_day + 1, dtype=np.int64) * grid.dt0_min * 60
    q = np.asarray(AGP_PERCENTILES) / 100.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a time of day with no value at all
        curves = np.nanquantile(grid.values_mg_dl, q, axis=0, method="linear")
    return AgpCurves(seconds, np.asarray(curves, dtype=np.float64))


def night_mask(time_s: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """True for wall-clock times in the night window [00:00, 06:00)."""
    hour = (time_s % SECONDS_PER_DAY) // 3600
    return (hour >= NIGHT_START_HOUR) & (hour < NIGHT_END_HOUR)


def smooth_curves(curves: AgpCurves, span: float = AGP_LOESS_SPAN) -> AgpCurves:
    """Each percentile curve smoothed by ``loess`` over the time of day."""
    x = curves.seconds.astype(np.float64)
    smoothed = np.vstack([loess(x, row, span=span) for row in curves.percentiles_mg_dl])
    return AgpCurves(curves.seconds, smoothed)
