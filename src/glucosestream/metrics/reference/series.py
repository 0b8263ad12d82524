"""One patient's readings, cleaned for the metric kernels. PURE.

A ``PatientSeries`` holds one patient's readings sorted by time (a stable sort, so readings that
share a timestamp keep their input order) with missing glucose values removed. Metrics need three
views of the same readings, which differ only in how readings that share a timestamp are treated:

* ``rows``: every reading (exact duplicates included), for iglu-compatible plain summaries;
* ``mean_per_instant``: one reading per timestamp, the mean of those that share it;
* ``last_per_instant``: one reading per timestamp, the last in input order (iglu's grid).

Times are integer seconds of *wall-clock* time (seconds since 1970-01-01 in the zone whose
calendar days the metrics use), so a calendar day is ``time_s // 86_400``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["PatientSeries", "prepare_series"]


FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class PatientSeries:
    """One patient's non-missing readings, sorted by wall-clock time (stable)."""

    time_s: IntArray
    glucose_mg_dl: FloatArray

    @property
    def size(self) -> int:
        return int(self.time_s.size)

    def mean_per_instant(self) -> PatientSeries:
        """One reading per timestamp: the mean of the readings that share it."""
        starts = _instant_starts(self.time_s)
        if starts.size == self.size:
            return self
        sums = np.add.reduceat(self.glucose_mg_dl, starts)
        counts = np.diff(np.append(starts, self.size))
        return PatientSeries(self.time_s[starts], sums / counts)

    def last_per_instant(self) -> PatientSeries:
        """One reading per timestamp: the last one in input order."""
        starts = _instant_starts(self.time_s)
        if starts.size == self.size:
            return self
        last = np.append(starts[1:], self.size) - 1
        return PatientSeries(self.time_s[last], self.glucose_mg_dl[last])


def _instant_starts(time_s: IntArray) -> IntArray:
    if time_s.size == 0:
        return np.zeros(0, dtype=np.int64)
    new = np.empty(time_s.size, dtype=np.bool_)
    new[0] = True
    np.not_equal(time_s[1:], time_s[:-1], out=new[1:])
    return np.flatnonzero(new).astype(np.int64)


def prepare_series(time_s: npt.ArrayLike, glucose_mg_dl: npt.ArrayLike) -> PatientSeries:
    """Drop missing glucose values and sort by time, keeping input order within a timestamp."""
    t = np.asarray(time_s, dtype=np.int64)
    g = np.asarray(glucose_mg_dl, dtype=np.float64)
    keep = ~np.isnan(g)
    t, g = t[keep], g[keep]
    if t.size > 1 and bool(np.any(t[1:] < t[:-1])):
        order = np.argsort(t, kind="stable")
        t, g = t[order], g[order]
    return PatientSeries(t, g)
