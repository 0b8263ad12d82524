"""The simulation time grid: steps, UTC instants, each zone's local clock, event windows. PURE.

The physiology is simulated on a regular grid (1-minute steps for 1-minute sampling, 5-minute
steps otherwise). Behaviour (meals, exercise, sleep) is scheduled in each patient's local time,
so the grid carries, for every home zone, the local wall-clock minute of every step.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["MINUTES_PER_DAY", "Grid", "make_grid", "window_cells"]

MINUTES_PER_DAY: Final = 1440
_US_PER_MIN: Final = 60_000_000

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Grid:
    """``n`` simulation steps of ``dt_min`` minutes from ``start_us`` (UTC epoch microseconds).

    ``local_min[k, z]`` is the local wall-clock minute (since 1970-01-01 local) of step ``k`` in
    zone ``zones[z]``; ``local_min_sorted`` is its running maximum, searchable when a DST
    fall-back repeats an hour. ``sample_every`` steps make one sensor reading.
    """

    start_us: int
    dt_min: int
    n: int
    sample_every: int
    zones: tuple[str, ...]
    local_min: FloatArray
    local_min_sorted: FloatArray

    @property
    def steps_per_day(self) -> int:
        return MINUTES_PER_DAY // self.dt_min

    def first_local_day(self, zone: int) -> int:
        """Local day number (days since 1970-01-01 local) of the first step in ``zone``."""
        return int(self.local_min[0, zone] // MINUTES_PER_DAY)

    def step_of_local_minute(self, zone: int, minute: FloatArray) -> IntArray:
        """The first step at or after each local ``minute`` in ``zone``; ``n`` (off the grid)
        for minutes before the grid's first step or after its last."""
        clock = self.local_min_sorted[:, zone]
        step = np.searchsorted(clock, minute).astype(np.int64)
        return np.where(minute < clock[0], self.n, step)


def make_grid(start: dt.date, days: int, interval_min: int, zones: tuple[str, ...]) -> Grid:
    """The grid for a cohort starting at ``start`` 00:00 UTC, sampled every ``interval_min``."""
    dt_min = 1 if interval_min == 1 else 5
    n = days * MINUTES_PER_DAY // dt_min
    start_at = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    start_us = int(start_at.timestamp()) * 1_000_000
    utc_us = start_us + np.arange(n, dtype=np.int64) * (dt_min * _US_PER_MIN)
    local = np.empty((n, len(zones)), dtype=np.float64)
    for z, zone in enumerate(zones):
        stamps = pa.array(utc_us, type=pa.timestamp("us", tz=zone))
        wall_us = pc.local_timestamp(stamps).cast(pa.int64()).to_numpy()
        local[:, z] = wall_us / _US_PER_MIN
    return Grid(
        start_us=start_us,
        dt_min=dt_min,
        n=n,
        sample_every=interval_min // dt_min,
        zones=zones,
        local_min=local,
        local_min_sorted=np.maximum.accumulate(local, axis=0),
    )


def window_cells(starts: IntArray, lengths: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    """Expand windows ``[start, start + length)`` into (window number, step, position) cells.

    Vectorised: no loop over windows. Lengths of zero give no cells.
    """
    lengths = np.maximum(lengths, 0)
    total = int(lengths.sum())
    window = np.repeat(np.arange(starts.size, dtype=np.int64), lengths)
    begin = np.cumsum(lengths) - lengths
    position = np.arange(total, dtype=np.int64) - np.repeat(begin, lengths)
    return window, starts[window] + position, position
