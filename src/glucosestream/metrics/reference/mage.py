"""Mean amplitude of glycaemic excursions (MAGE). PURE.

Service F.J. et al., "Mean amplitude of glycemic excursions, a measure of diabetic
instability", Diabetes 1970;19:644-655 (the excursions that exceed one SD), computed with the
moving-average method of Fernandes N.J. et al., "Open-source algorithm to calculate mean
amplitude of glycemic excursions using short and long moving averages", J Diabetes Sci Technol
2022;16:576-577:

1. glucose is put on a 5-minute grid (``grid.py``), whose points stay missing inside gaps longer
   than ``inter_gap``; the trace is cut into segments at runs of missing points longer than
   ``max_gap_min`` (180). Shorter runs stay missing: nothing is imputed;
2. a short (5-point) and a long (32-point) trailing moving average are taken, each the mean of
   the glucose values present among the last 5 (32) grid points, missing where none is; the
   first points, where a full window is not yet available, take the first complete average;
3. the places where the two averages cross (where the sign of short minus long changes, zeros
   and missing points skipped) split the trace into intervals, each of which holds one peak
   (short above long) or one nadir. The extreme is searched from the previous extreme up to the
   next crossing: the averages lag the glucose, so a turn can come a few points before the
   crossing that reveals it (the lowest point after a peak may precede the upward crossing);
4. peaks and nadirs are reduced to alternating turning points whose successive differences are at
   least one SD of the segment's glucose (a zig-zag filter whose first turning point is the
   first extreme from which a swing of one SD follows);
5. MAGE+ is the mean rise (nadir to peak), MAGE- the mean fall, "service" the direction of the
   first excursion (Service 1970) and "max" the larger of the two; each is the mean over segments
   weighted by segment duration (last minus first time).

Steps 2 and 3 are the readings of the method that reproduce iglu 4.3.0's ``mage(version =
"ma")`` on every segment of the validation cohort and of iglu's example data (docs/metrics.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from glucosestream.metrics.reference.interpolation_grid import Grid

__all__ = [
    "MAGE_GRID_MIN",
    "MageResult",
    "MageSegment",
    "mage_moving_average",
    "mage_naive",
]

MAGE_GRID_MIN: Final = 5  # Fernandes 2022 works on a 5-minute trace
SHORT_MA_POINTS: Final = 5  # Fernandes 2022
LONG_MA_POINTS: Final = 32  # Fernandes 2022
MAX_GAP_MIN: Final = 180  # Fernandes 2022 / iglu: longer gaps start a new segment

FloatArray = npt.NDArray[np.float64]
MageDirection = Literal["avg", "plus", "minus", "service", "max"]


@dataclass(frozen=True, slots=True)
class MageSegment:
    """One segment: grid indices ``[start, stop)``; NaN amplitudes where there are none."""

    start: int
    stop: int
    plus_mg_dl: float
    minus_mg_dl: float
    first_is_plus: bool | None
    crosses: bool = True  # whether the moving averages cross in it at all


@dataclass(frozen=True, slots=True)
class MageResult:
    plus_mg_dl: float
    minus_mg_dl: float
    service_mg_dl: float
    max_mg_dl: float
    segments: tuple[MageSegment, ...]

    @property
    def avg_mg_dl(self) -> float:
        return (self.plus_mg_dl + self.minus_mg_dl) / 2.0

    def value(self, direction: MageDirection = "avg") -> float:
        return {
            "avg": self.avg_mg_dl,
            "plus": self.plus_mg_dl,
            "minus": self.minus_mg_dl,
            "service": self.service_mg_dl,
            "max": self.max_mg_dl,
        }[direction]


def mage_naive(g: FloatArray) -> float:
    """Mean |g - mean| over the readings more than one SD from the mean (the simple version iglu
    keeps for backward compatibility; Service 1970 in its crudest reading)."""
    dev = np.abs(g - g.mean())
    big = dev[dev > np.std(g, ddof=1)]
    return float(big.mean()) if big.size else float("nan")


def _segments(x: FloatArray, max_gap_points: int) -> list[tuple[int, int]]:
    """Non-missing stretches, cut where more than ``max_gap_points`` in a row are missing."""
    present = np.flatnonzero(~np.isnan(x))
    if present.size == 0:
        return []
    jumps = np.flatnonzero(np.diff(present) - 1 > max_gap_points)
    starts = np.concatenate(([present[0]], present[jumps + 1]))
    stops = np.concatenate((present[jumps] + 1, [present[-1] + 1]))
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def _moving_average(x: FloatArray, window: int) -> FloatArray:
    """Trailing mean of the present values among the last ``window`` points (NaN where none is);
    the first ``window - 1`` points take the first complete window's mean."""
    present = ~np.isnan(x)
    c = np.concatenate(([0.0], np.cumsum(np.where(present, x, 0.0))))
    n = np.concatenate(([0], np.cumsum(present)))
    out = np.empty(x.size)
    if x.size < window:
        out[:] = c[-1] / n[-1]
        return out
    counts = n[window:] - n[:-window]
    with np.errstate(invalid="ignore", divide="ignore"):
        out[window - 1 :] = np.where(counts > 0, (c[window:] - c[:-window]) / counts, np.nan)
    out[: window - 1] = out[window - 1]
    return out


def _crossings(delta: FloatArray) -> tuple[int, npt.NDArray[np.intp]]:
    """The sign of the first nonzero, present ``delta`` (0 if there is none) and the indices
    where the sign differs from the last nonzero, present sign before them."""
    signed = np.flatnonzero(np.nan_to_num(np.sign(delta)) != 0)
    if signed.size == 0:
        return 0, signed
    s = np.sign(delta[signed])
    return int(s[0]), signed[1:][s[1:] != s[:-1]]


def _extremes(x: FloatArray) -> tuple[FloatArray, npt.NDArray[np.int8]]:
    """One peak (kind 1) or nadir (-1) per interval between crossings, each searched from the
    previous extreme (its first occurrence) up to the next crossing, missing points skipped."""
    kind, crossings = _crossings(
        _moving_average(x, SHORT_MA_POINTS) - _moving_average(x, LONG_MA_POINTS)
    )
    if kind == 0:
        return np.empty(0), np.empty(0, dtype=np.int8)
    ends = np.concatenate((crossings, [x.size]))
    values = np.empty(ends.size)
    kinds = np.empty(ends.size, dtype=np.int8)
    start = 0
    for i, end in enumerate(ends.tolist()):
        window = x[start:end]
        at = int(np.nanargmax(window) if kind == 1 else np.nanargmin(window))
        values[i], kinds[i] = window[at], kind
        start, kind = start + at, -kind
    return values, kinds


def _turning_points(values: FloatArray, kinds: npt.NDArray[np.int8], sd: float) -> list[float]:
    """Alternating turning points at least ``sd`` apart; the first is a peak or a nadir."""
    points: list[float] = []
    first_kind = 0
    high = low = float("nan")
    for v, k in zip(values.tolist(), kinds.tolist(), strict=True):
        if not points:
            if k == 1 and v - low >= sd:
                points, first_kind = [low, v], -1
            elif k == -1 and high - v >= sd:
                points, first_kind = [high, v], 1
            elif k == 1:
                high = v if np.isnan(high) else max(high, v)
            else:
                low = v if np.isnan(low) else min(low, v)
            continue
        last_kind = first_kind if len(points) % 2 == 1 else -first_kind
        if k == last_kind:
            points[-1] = max(points[-1], v) if k == 1 else min(points[-1], v)
        elif abs(v - points[-1]) >= sd:
            points.append(v)
    if points:
        points.insert(0, float(first_kind))  # first element: the kind of the first point
    return points


def _segment_mage(x: FloatArray, start: int, stop: int) -> MageSegment:
    seg = x[start:stop]
    present = ~np.isnan(seg)
    sd = float(np.std(seg[present], ddof=1)) if int(present.sum()) > 1 else float("nan")
    values, kinds = _extremes(seg)
    points = _turning_points(values, kinds, sd)
    if not points:
        return MageSegment(start, stop, float("nan"), float("nan"), None, values.size > 1)
    first_kind, turns = points[0], np.asarray(points[1:])
    steps = np.diff(turns)
    rises = steps[steps > 0]
    falls = -steps[steps < 0]
    plus = float(rises.mean()) if rises.size else float("nan")
    minus = float(falls.mean()) if falls.size else float("nan")
    return MageSegment(start, stop, plus, minus, first_kind < 0)


def _weighted(values: list[float], weights: list[int]) -> float:
    v, w = np.asarray(values), np.asarray(weights, dtype=np.float64)
    ok = ~np.isnan(v)
    total = float(np.sum(w[ok]))
    return float(np.sum(v[ok] * w[ok])) / total if total > 0 else float("nan")


def mage_moving_average(
    grid: Grid, *, max_gap_min: float = MAX_GAP_MIN, iglu: bool = False
) -> MageResult:
    """MAGE by the moving-average method (Fernandes 2022) on a 5-minute grid. With ``iglu``, a
    trace whose moving averages never cross (in none of its segments, so it has no excursion by
    this method) has max - min as every MAGE, as iglu 4.3.0 gives; otherwise it has none."""
    x = grid.flat
    cuts = _segments(x, int(max_gap_min // grid.dt0_min))
    segments = [_segment_mage(x, a, b) for a, b in cuts]
    if iglu and segments and not any(s.crosses for s in segments):
        spread = float(np.nanmax(x) - np.nanmin(x))
        return MageResult(spread, spread, spread, spread, tuple(segments))
    weights = [s.stop - s.start - 1 for s in segments]
    service = [s.plus_mg_dl if s.first_is_plus else s.minus_mg_dl for s in segments]
    return MageResult(
        plus_mg_dl=_weighted([s.plus_mg_dl for s in segments], weights),
        minus_mg_dl=_weighted([s.minus_mg_dl for s in segments], weights),
        service_mg_dl=_weighted(service, weights),
        max_mg_dl=_weighted([max(s.plus_mg_dl, s.minus_mg_dl) for s in segments], weights),
        segments=tuple(segments),
    )
