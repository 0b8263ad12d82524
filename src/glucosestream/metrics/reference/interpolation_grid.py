"""The interpolation grid every time-dependent metric is computed on. PURE.

Readings are put on an equally spaced grid of ``dt0`` minutes, day by day, the way the grid of
iglu's ``CGMS2DayByDay`` is described (Broll et al., "Interpreting blood glucose data with R
package iglu", PLoS One 2021;16:e0248560; conventions in ../shared/validation/README.md,
section 3), written here from that description:

* ``dt0`` is the median interval between consecutive readings, rounded to whole minutes (half
  to even, as R rounds); a value that does not divide 1440 becomes the nearest divisor of 1440.
* Grid points are midnight + dt0, + 2 dt0, ... up to 24:00 of every calendar day from the day
  of the first reading to the day of the last.
* A grid point takes the linear interpolation of the readings on either side of it. Points
  before the first or after the last reading, and points inside an interval between consecutive
  readings longer than ``inter_gap_min`` (strictly), stay missing (NaN).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from glucosestream.metrics.reference.series import PatientSeries
from glucosestream.metrics.thresholds import DEFAULT_INTER_GAP_MIN, MINUTES_PER_DAY, SECONDS_PER_DAY

__all__ = [
    "DEFAULT_INTER_GAP_MIN",
    "MINUTES_PER_DAY",
    "Grid",
    "build_grid",
    "sampling_interval_min",
]

_DIVISORS_OF_DAY: Final = np.array(
    [d for d in range(1, MINUTES_PER_DAY + 1) if MINUTES_PER_DAY % d == 0]
)


@dataclass(frozen=True, slots=True)
class Grid:
    """Glucose on an equally spaced grid: ``values_mg_dl[day, k]`` is at day start + (k+1) dt0.

    ``first_day`` is the wall-clock day number (days since 1970-01-01) of row 0.
    """

    dt0_min: int
    first_day: int
    values_mg_dl: npt.NDArray[np.float64]

    @property
    def points_per_day(self) -> int:
        return MINUTES_PER_DAY // self.dt0_min

    @property
    def n_days(self) -> int:
        return int(self.values_mg_dl.shape[0])

    @property
    def flat(self) -> npt.NDArray[np.float64]:
        """The grid as one time-ordered vector."""
        return self.values_mg_dl.reshape(-1)

    def time_s(self) -> npt.NDArray[np.int64]:
        """Wall-clock seconds of each point of ``flat``."""
        step = self.dt0_min * 60
        k = np.arange(1, self.n_days * self.points_per_day + 1, dtype=np.int64)
        return self.first_day * SECONDS_PER_DAY + k * step


def sampling_interval_min(time_s: npt.NDArray[np.int64]) -> int:
    """The grid step: the median reading interval in whole minutes, dividing 1440."""
    if time_s.size < 2:
        return 5
    median_min = float(np.median(np.diff(time_s))) / 60.0
    dt0 = max(1, int(np.round(median_min)))
    if MINUTES_PER_DAY % dt0 == 0:
        return dt0
    return int(_DIVISORS_OF_DAY[np.argmin(np.abs(_DIVISORS_OF_DAY - dt0))])


def build_grid(
    series: PatientSeries,
    *,
    dt0_min: int | None = None,
    inter_gap_min: float = DEFAULT_INTER_GAP_MIN,
) -> Grid:
    """Interpolate one patient's readings (one value per timestamp) onto the day-by-day grid."""
    t, g = series.time_s, series.glucose_mg_dl
    dt0 = sampling_interval_min(t) if dt0_min is None else dt0_min
    if t.size == 0:
        return Grid(dt0, 0, np.empty((0, MINUTES_PER_DAY // dt0)))
    first_day = int(t[0] // SECONDS_PER_DAY)
    last_day = int(t[-1] // SECONDS_PER_DAY)
    n_days = last_day - first_day + 1
    per_day = MINUTES_PER_DAY // dt0
    step = dt0 * 60
    x = first_day * SECONDS_PER_DAY + np.arange(1, n_days * per_day + 1, dtype=np.int64) * step
    values = _interpolate(t, g, x, inter_gap_min * 60.0)
    return Grid(dt0, first_day, values.reshape(n_days, per_day))


def _interpolate(
    t: npt.NDArray[np.int64],
    g: npt.NDArray[np.float64],
    x: npt.NDArray[np.int64],
    max_gap_s: float,
) -> npt.NDArray[np.float64]:
    right = np.searchsorted(t, x, side="left")
    inside = (right > 0) & (right < t.size)
    exact = np.zeros(x.size, dtype=np.bool_)
    exact[right < t.size] = t[right[right < t.size]] == x[right < t.size]
    r = np.clip(right, 1, max(1, t.size - 1))
    left_t = t[r - 1]
    right_t = t[r] if t.size > 1 else t[r - 1]
    span = (right_t - left_t).astype(np.float64)
    ok = (inside & (span <= max_gap_s)) | exact
    safe_span = np.where(span > 0, span, 1.0)
    frac = (x - left_t) / safe_span
    out = g[r - 1] + frac * ((g[r] if t.size > 1 else g[r - 1]) - g[r - 1])
    out = np.where(exact, g[np.minimum(right, t.size - 1)], out)
    return np.where(ok, out, np.nan)
