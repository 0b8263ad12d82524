"""Hypo- and hyperglycaemia episodes on the interpolation grid. PURE.

Battelino T. et al., "Continuous glucose monitoring and metrics for clinical trials: an
international consensus statement", Lancet Diabetes Endocrinol 2023;11:42-57 (table 2):

* an episode starts when glucose is beyond the threshold for at least 15 consecutive minutes;
* it ends when glucose is back for at least 15 consecutive minutes;
* level 1 hypo < 70, level 2 hypo < 54, level 1 hyper > 180, level 2 hyper > 250 mg/dL;
* extended hypoglycaemia: < 70 mg/dL for more than 120 consecutive minutes;
* extended hyperglycaemia: > 250 mg/dL for at least 120 consecutive minutes, ending when glucose
  is at or below 180 mg/dL for at least 15 minutes.

On the grid of ``dt0`` minutes, "at least D minutes" is ``ceil(D / dt0)`` consecutive points. A
missing grid point (a gap longer than the interpolation limit) ends a run and an episode. An
episode runs from its first point beyond the threshold up to the first point of the run that
ends it; its duration is that number of points times ``dt0`` and its glucose the mean over those
points, as in iglu's ``episode_calculation`` (Chun et al., Diabetes Technol Ther
2024;26:939-950).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from glucosestream.metrics.reference.interpolation_grid import Grid
from glucosestream.metrics.thresholds import MINUTES_PER_DAY

__all__ = [
    "EPISODE_MIN_DURATION_MIN",
    "EXTENDED_MIN_DURATION_MIN",
    "Episode",
    "EpisodeSummary",
    "find_episodes",
    "summarise_episodes",
]

EPISODE_MIN_DURATION_MIN: Final = 15  # Battelino 2023: start after >= 15 min beyond
EPISODE_END_DURATION_MIN: Final = 15  # Battelino 2023: end after >= 15 min back
EXTENDED_MIN_DURATION_MIN: Final = 120  # Battelino 2023: extended episodes

Direction = Literal["hypo", "hyper"]


@dataclass(frozen=True, slots=True)
class Episode:
    """One episode: grid indices ``[start, stop)`` into ``Grid.flat``."""

    start: int
    stop: int
    points: int
    mean_mg_dl: float


@dataclass(frozen=True, slots=True)
class EpisodeSummary:
    """Counts and averages of one kind of episode for one patient (iglu's columns)."""

    total_episodes: int
    avg_ep_per_day: float
    avg_ep_duration_min: float
    avg_ep_gl_mg_dl: float


def _beyond(
    values: npt.NDArray[np.float64], direction: Direction, threshold: float
) -> npt.NDArray[np.bool_]:
    with np.errstate(invalid="ignore"):
        return values < threshold if direction == "hypo" else values > threshold


def find_episodes(
    grid: Grid,
    direction: Direction,
    threshold_mg_dl: float,
    *,
    min_duration_min: float = EPISODE_MIN_DURATION_MIN,
    end_duration_min: float = EPISODE_END_DURATION_MIN,
    end_threshold_mg_dl: float | None = None,
) -> list[Episode]:
    """Episodes beyond ``threshold_mg_dl``; ``end_threshold_mg_dl`` (default: the same) is the
    level glucose must be back at for ``end_duration_min`` to end one."""
    values = grid.flat
    start_pts = max(1, math.ceil(min_duration_min / grid.dt0_min))
    end_pts = max(1, math.ceil(end_duration_min / grid.dt0_min))
    beyond = _beyond(values, direction, threshold_mg_dl)
    end_level = threshold_mg_dl if end_threshold_mg_dl is None else end_threshold_mg_dl
    back = ~_beyond(values, direction, end_level) & ~np.isnan(values)
    episodes: list[Episode] = []
    for lo, hi in _pieces(values):
        episodes.extend(_episodes_in(values, beyond, back, lo, hi, start_pts, end_pts))
    return episodes


def _pieces(values: npt.NDArray[np.float64]) -> list[tuple[int, int]]:
    """Half-open index ranges of the runs of non-missing grid points."""
    ok = np.concatenate(([False], ~np.isnan(values), [False]))
    edges = np.flatnonzero(ok[1:] != ok[:-1])
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def _run_starts(mask: npt.NDArray[np.bool_], min_len: int) -> npt.NDArray[np.int64]:
    """Index at which each run of ``min_len`` consecutive True values is first complete."""
    c = np.concatenate(([0], np.cumsum(mask, dtype=np.int64)))
    n = mask.size
    if n < min_len:
        return np.zeros(0, dtype=np.int64)
    window = c[min_len:] - c[: n - min_len + 1]
    return np.flatnonzero(window == min_len).astype(np.int64)


def _episodes_in(
    values: npt.NDArray[np.float64],
    beyond: npt.NDArray[np.bool_],
    back: npt.NDArray[np.bool_],
    lo: int,
    hi: int,
    start_pts: int,
    end_pts: int,
) -> list[Episode]:
    b, k = beyond[lo:hi], back[lo:hi]
    starts = _run_starts(b, start_pts)
    ends = _run_starts(k, end_pts)
    out: list[Episode] = []
    pos = 0
    while True:
        i = int(np.searchsorted(starts, pos))
        if i == starts.size:
            break
        s = int(starts[i])
        j = int(np.searchsorted(ends, s + start_pts))
        e = int(ends[j]) if j < ends.size else hi - lo  # recovery run starts at e
        seg = values[lo + s : lo + e]
        out.append(Episode(lo + s, lo + e, e - s, float(seg.mean())))
        pos = e + end_pts if j < ends.size else hi - lo
    return out


def summarise_episodes(episodes: list[Episode], grid: Grid) -> EpisodeSummary:
    """Counts, episodes per day of non-missing grid, mean duration and mean glucose."""
    observed_days = float(np.count_nonzero(~np.isnan(grid.flat))) * grid.dt0_min / MINUTES_PER_DAY
    n = len(episodes)
    per_day = n / observed_days if observed_days > 0 else float("nan")
    if n == 0:
        return EpisodeSummary(0, per_day, 0.0, float("nan"))
    duration = float(np.mean([e.points for e in episodes])) * grid.dt0_min
    glucose = float(np.mean([e.mean_mg_dl for e in episodes]))
    return EpisodeSummary(n, per_day, duration, glucose)
