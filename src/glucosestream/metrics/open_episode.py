"""Whether an episode is open at the newest reading of a short series. PURE.

The episodes' one definition (Battelino 2023: ``reference.episodes``, on the interpolation grid
the metrics build, ``reference.interpolation_grid``) for callers outside the metric catalog
that ask about *now* rather than a period: the level 2 hypoglycaemia alert. The series is small
(an alert window of hours), so the readable definition is used as it is; the cohort kernels
are held equal to it by the metric tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from glucosestream.metrics.reference.episodes import Direction, find_episodes
from glucosestream.metrics.reference.interpolation_grid import build_grid
from glucosestream.metrics.reference.series import prepare_series

__all__ = ["OpenEpisode", "open_episode"]


@dataclass(frozen=True, slots=True)
class OpenEpisode:
    """``open``: an episode runs up to the newest grid point (None: the grid has no point);
    ``grid_min``: the grid's step in minutes."""

    open: bool | None
    grid_min: int


def open_episode(
    wall_clock_s: npt.ArrayLike,
    glucose_mg_dl: npt.ArrayLike,
    direction: Direction,
    threshold_mg_dl: float,
    *,
    min_duration_min: float,
) -> OpenEpisode:
    """Whether an episode beyond ``threshold_mg_dl`` (``direction`` "hypo": below) of at least
    ``min_duration_min`` is open at the newest point of the series' grid (times in local
    wall-clock seconds, as the metrics grid them)."""
    grid = build_grid(prepare_series(wall_clock_s, glucose_mg_dl).mean_per_instant())
    known = np.flatnonzero(~np.isnan(grid.flat))
    if known.size == 0:
        return OpenEpisode(None, grid.dt0_min)
    episodes = find_episodes(grid, direction, threshold_mg_dl, min_duration_min=min_duration_min)
    is_open = bool(episodes) and episodes[-1].stop == int(known[-1]) + 1
    return OpenEpisode(is_open, grid.dt0_min)
