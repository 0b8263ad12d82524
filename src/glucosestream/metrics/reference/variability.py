"""Glycaemic variability on the interpolation grid. PURE.

Every function takes a ``Grid`` (see ``grid.py``); missing grid points are skipped, so a pair
or window that touches one does not count. Sources are cited per function.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from glucosestream.metrics.reference.interpolation_grid import Grid

__all__ = [
    "SdMeasures",
    "conga",
    "cv_measures",
    "gvp_pct",
    "hourly_auc_mg_dl",
    "mag_iglu_all_metrics",
    "mag_mg_dl_per_h",
    "modd",
    "rate_of_change",
    "sd_measures",
    "sd_rate_of_change",
]

FloatArray = npt.NDArray[np.float64]


def _nan_sd(x: FloatArray) -> float:
    x = x[~np.isnan(x)]
    return float(np.std(x, ddof=1)) if x.size > 1 else float("nan")


def _nan_mean(x: FloatArray) -> float:
    x = x[~np.isnan(x)]
    return float(np.mean(x)) if x.size else float("nan")


def _lagged_difference(x: FloatArray, lag: int) -> FloatArray:
    if lag >= x.size:
        return np.empty(0)
    return x[lag:] - x[:-lag]


def conga(grid: Grid, hours: float = 24.0) -> float:
    """CONGA(n): SD of the differences between glucose and glucose n hours earlier (McDonnell
    C.M. et al., "A novel approach to continuous glucose analysis utilizing glycemic variation",
    Diabetes Technol Ther 2005;7:253-263)."""
    lag = round(hours * 60 / grid.dt0_min)
    return _nan_sd(_lagged_difference(grid.flat, lag))


def modd(grid: Grid, days: int = 1) -> float:
    """MODD: mean absolute difference between glucose at the same time on consecutive days
    (Service F.J., Nelson R.L., "Characteristics of glycemic stability", Diabetes Care
    1980;3:58-62)."""
    lag = days * grid.points_per_day
    return _nan_mean(np.abs(_lagged_difference(grid.flat, lag)))


def gvp_pct(grid: Grid) -> float:
    """Glucose variability percentage: 100 x (trace length / ideal flat length - 1), over
    consecutive grid points (Peyser T.A. et al., "Glycemic Variability Percentage: A Novel
    Method for Assessing Glycemic Variability from Continuous Glucose Monitor Data", Diabetes
    Technol Ther 2018;20:6-16)."""
    dg = np.diff(grid.flat)
    dg = dg[~np.isnan(dg)]
    if dg.size == 0:
        return float("nan")
    dt = float(grid.dt0_min)
    length = float(np.sum(np.sqrt(dt * dt + dg * dg)))
    return 100.0 * (length / (dt * dg.size) - 1.0)


def mag_mg_dl_per_h(grid: Grid, step_min: int | None = None) -> float:
    """Mean absolute glucose change per hour: sum |delta g| / hours, with glucose sampled every
    ``step_min`` minutes (default: the grid step) and hours counted over the pairs of samples
    that are both present (Hermanides J. et al., "Glucose variability is associated with
    intensive care unit mortality", Crit Care Med 2010;38:838-842)."""
    step = max(1, round((step_min or grid.dt0_min) / grid.dt0_min))
    sampled = grid.flat[::step]
    dg = np.abs(np.diff(sampled))
    dg = dg[~np.isnan(dg)]
    if dg.size == 0:
        return float("nan")
    return float(dg.sum()) / (dg.size * step * grid.dt0_min / 60.0)


def mag_iglu_all_metrics(grid: Grid) -> float:
    """The MAG column of iglu's ``all_metrics``: glucose sampled every 60 minutes, sum |delta g|
    divided by the number of present samples (not differences) x 1 hour. Kept only so results can
    be compared with iglu; ``mag_mg_dl_per_h`` is the published definition."""
    step = max(1, round(60 / grid.dt0_min))
    sampled = grid.flat[::step]
    dg = np.abs(np.diff(sampled))
    present = int(np.count_nonzero(~np.isnan(sampled)))
    if present == 0:
        return float("nan")
    return float(np.nansum(dg)) / present


def rate_of_change(grid: Grid, lag_min: int = 15) -> FloatArray:
    """Rate of change in mg/dL per minute over ``lag_min``, one value per grid point (NaN for the
    first points) (Clarke W., Kovatchev B., "Statistical tools to analyze continuous glucose
    monitor data", Diabetes Technol Ther 2009;11 Suppl 1:S45-54)."""
    lag = max(1, round(lag_min / grid.dt0_min))
    roc = np.full(grid.flat.size, np.nan)
    roc[lag:] = _lagged_difference(grid.flat, lag) / (lag * grid.dt0_min)
    return roc


def sd_rate_of_change(grid: Grid, lag_min: int = 15) -> float:
    """SD of the rate of change (Clarke and Kovatchev 2009)."""
    return _nan_sd(rate_of_change(grid, lag_min))


def _day_stats(values: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per-row mean and sample SD ignoring NaN; NaN where a row has < 2 values."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=1), np.nanstd(values, axis=1, ddof=1)


def cv_measures(grid: Grid) -> tuple[float, float]:
    """CVmean and CVsd: the mean and the SD of the daily CVs (Umpierrez G.E., Kovatchev B.P.,
    "Glycemic Variability: How to Measure and Its Clinical Implication for Type 2 Diabetes", Am
    J Med Sci 2018;356:518-527)."""
    mean, sd = _day_stats(grid.values_mg_dl)
    cv = 100.0 * sd / mean
    return _nan_mean(cv), _nan_sd(cv)


@dataclass(frozen=True, slots=True)
class SdMeasures:
    """Rodbard's SD components, mg/dL."""

    sd_w: float  # within days: mean of the daily SDs
    sd_hhmm: float  # between time points: SD of the mean profile by time of day
    sd_wsh: float  # within series: mean SD over every 1-hour window (rolling)
    sd_dm: float  # between day means: SD of the daily means
    sd_b: float  # between days at the same time: mean over times of the SD across days
    sd_bdm: float  # sd_b after subtracting each day's mean


def sd_measures(grid: Grid) -> SdMeasures:
    """SD components of Rodbard D., "New and improved methods to characterize glycemic
    variability using continuous glucose monitoring", Diabetes Technol Ther 2009;11:551-565."""
    v = grid.values_mg_dl
    day_mean, day_sd = _day_stats(v)
    time_mean, time_sd = _day_stats(v.T)
    window = max(1, 60 // grid.dt0_min)
    if grid.flat.size >= window:
        _, window_sd = _day_stats(sliding_window_view(grid.flat, window))
    else:
        window_sd = np.full(1, np.nan)
    _, sd_bdm_by_time = _day_stats((v - day_mean[:, None]).T)
    return SdMeasures(
        sd_w=_nan_mean(day_sd),
        sd_hhmm=_nan_sd(time_mean),
        sd_wsh=_nan_mean(window_sd),
        sd_dm=_nan_sd(day_mean),
        sd_b=_nan_mean(time_sd),
        sd_bdm=_nan_mean(sd_bdm_by_time),
    )


def hourly_auc_mg_dl(grid: Grid) -> float:
    """Hourly average area under the curve: for each calendar day, the trapezoid area (mg/dL x h)
    over the day's present consecutive grid points divided by the hours they span, then the mean
    over days (Danne T. et al., "International Consensus on Use of Continuous Glucose
    Monitoring", Diabetes Care 2017;40:1631-1640, AUC per hour)."""
    v = grid.values_mg_dl
    pair_area = (v[:, 1:] + v[:, :-1]) / 2.0
    present = ~np.isnan(pair_area)
    pairs = present.sum(axis=1)
    area = np.where(present, pair_area, 0.0).sum(axis=1)
    ok = pairs > 0
    if not bool(ok.any()):
        return float("nan")
    return float(np.mean(area[ok] / pairs[ok]))
