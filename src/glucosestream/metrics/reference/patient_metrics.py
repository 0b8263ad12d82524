"""The per-patient reference: every metric of ``metrics.spec``, group by group. PURE.

``compute_patient(series, names, options)`` returns ``{metric name: value}`` for one patient.
Metrics are computed in the spec's groups, which share work (the grid, the episodes); asking
for one metric of a group costs the group. This is the readable definition the compiled
kernels are held equal to (tests/test_metrics_cohort.py); production code computes with the
kernels and takes metric names from the spec, never from here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Final

import numpy as np
import numpy.typing as npt

from glucosestream.metrics.metric_options import MetricOptions
from glucosestream.metrics.reference import agp, consensus, episodes, mage, risk, variability
from glucosestream.metrics.reference.interpolation_grid import Grid, build_grid
from glucosestream.metrics.reference.series import PatientSeries
from glucosestream.metrics.reference.sufficiency import data_sufficiency
from glucosestream.metrics.spec import GROUPS
from glucosestream.metrics.thresholds import (
    GRADE_HYPER_ABOVE_MG_DL,
    MINUTES_PER_DAY,
    RANGE_63_140_LOW_MG_DL,
    SECONDS_PER_DAY,
    TAR_LEVEL1_MG_DL,
    TAR_LEVEL2_MG_DL,
    TBR_LEVEL1_MG_DL,
    TBR_LEVEL2_MG_DL,
    TIGHT_RANGE_HIGH_MG_DL,
)

__all__ = ["GROUP_FUNCTIONS", "Value", "compute_patient", "episode_sets"]

Value = float | str | None
_PUBLISHED: Final = MetricOptions()


class _Patient:
    """Lazily computed views of one patient's readings, shared by the metric groups."""

    def __init__(self, series: PatientSeries, options: MetricOptions) -> None:
        self.series = series
        self.options = options
        self.iglu = options.compat == "iglu"

    @functools.cached_property
    def instants(self) -> PatientSeries:
        return self.series.mean_per_instant()

    @functools.cached_property
    def readings(self) -> PatientSeries:
        """What plain summaries count: every row for iglu, one value per instant otherwise."""
        return self.series if self.iglu else self.instants

    @functools.cached_property
    def grid(self) -> Grid:
        source = self.series.last_per_instant() if self.iglu else self.instants
        return build_grid(source, inter_gap_min=self.options.inter_gap_min)

    @functools.cached_property
    def mage_grid(self) -> Grid:
        if self.grid.dt0_min == mage.MAGE_GRID_MIN:
            return self.grid
        source = self.series.last_per_instant() if self.iglu else self.instants
        return build_grid(
            source, dt0_min=mage.MAGE_GRID_MIN, inter_gap_min=self.options.inter_gap_min
        )

    @functools.cached_property
    def g(self) -> npt.NDArray[np.float64]:
        return self.readings.glucose_mg_dl


Group = Callable[[_Patient], dict[str, Value]]


def _coverage(p: _Patient) -> dict[str, Value]:
    s = data_sufficiency(p.instants, p.grid, iglu=p.iglu)
    return {
        "readings": float(p.readings.size),
        "days": s.days,
        "active_pct": s.active_pct,
        "grid_coverage_pct": s.grid_coverage_pct,
        "longest_gap_min": s.longest_gap_min,
        "gaps_over_inter_gap": float(s.gaps_over_inter_gap),
        "sufficient_14d": float(s.sufficient_14d),
        "start_time": s.start_time,
        "end_time": s.end_time,
    }


def _core(p: _Patient) -> dict[str, Value]:
    g = p.g
    mean = float(g.mean())
    sd = float(np.std(g, ddof=1)) if g.size > 1 else float("nan")
    return {
        "mean_mg_dl": mean,
        "sd_mg_dl": sd,
        "cv_pct": 100.0 * sd / mean,
        "gmi_pct": consensus.gmi_pct(mean),
    }


def _bands(prefix: str, values: npt.NDArray[np.float64]) -> dict[str, Value]:
    b = consensus.range_bands(values)
    v = values[~np.isnan(values)]
    n = v.size
    return {
        f"{prefix}pct_below_54": b.very_low_pct,
        f"{prefix}pct_54_69": b.low_pct,
        f"{prefix}pct_70_180": b.in_range_pct,
        f"{prefix}pct_181_250": b.high_pct,
        f"{prefix}pct_above_250": b.very_high_pct,
        f"{prefix}pct_below_70": b.below_70_pct,
        f"{prefix}pct_above_180": b.above_180_pct,
        f"{prefix}pct_70_140": 100.0
        * float(np.count_nonzero((v >= TBR_LEVEL1_MG_DL) & (v <= TIGHT_RANGE_HIGH_MG_DL)))
        / n
        if n
        else float("nan"),
    }


def _ranges(p: _Patient) -> dict[str, Value]:
    out = _bands("", p.g)
    out.update(_bands("tw_", p.grid.flat))
    return out


def _gri(p: _Patient) -> dict[str, Value]:
    gri, hypo, hyper = consensus.glycemia_risk_index(
        consensus.range_bands(p.instants.glucose_mg_dl)
    )
    return {"gri": gri, "gri_hypo": hypo, "gri_hyper": hyper, "gri_zone": consensus.gri_zone(gri)}


def _episode_columns(name: str, found: list[episodes.Episode], grid: Grid) -> dict[str, Value]:
    s = episodes.summarise_episodes(found, grid)
    return {
        f"{name}_episodes": float(s.total_episodes),
        f"{name}_per_day": s.avg_ep_per_day,
        f"{name}_duration_min": s.avg_ep_duration_min,
        f"{name}_mean_mg_dl": s.avg_ep_gl_mg_dl,
    }


def episode_sets(p: _Patient) -> dict[str, list[episodes.Episode]]:
    grid, find = p.grid, episodes.find_episodes
    ext = episodes.EXTENDED_MIN_DURATION_MIN
    hypo1, hypo2 = find(grid, "hypo", TBR_LEVEL1_MG_DL), find(grid, "hypo", TBR_LEVEL2_MG_DL)
    hyper1 = find(grid, "hyper", TAR_LEVEL1_MG_DL)
    hyper2 = find(grid, "hyper", TAR_LEVEL2_MG_DL)
    if p.iglu:  # iglu: lv1 episodes longer than 120 min; dur_length = 120 lv2 hyper episodes
        hypo_ext = [e for e in hypo1 if e.points * grid.dt0_min > ext]
        hyper_ext = find(grid, "hyper", TAR_LEVEL2_MG_DL, min_duration_min=ext)
    else:  # Battelino 2023
        hypo_ext = find(grid, "hypo", TBR_LEVEL1_MG_DL, min_duration_min=ext)
        hyper_ext = find(
            grid,
            "hyper",
            TAR_LEVEL2_MG_DL,
            min_duration_min=ext,
            end_threshold_mg_dl=TAR_LEVEL1_MG_DL,
        )
    return {
        "hypo_lv1": hypo1,
        "hypo_lv2": hypo2,
        "hypo_extended": hypo_ext,
        "hyper_lv1": hyper1,
        "hyper_lv2": hyper2,
        "hyper_extended": hyper_ext,
        "hypo_lv1_excl": _excluding(hypo1, hypo2),
        "hyper_lv1_excl": _excluding(hyper1, hyper2),
    }


def _excluding(lv1: list[episodes.Episode], lv2: list[episodes.Episode]) -> list[episodes.Episode]:
    """Level 1 episodes that overlap no level 2 episode."""
    return [e for e in lv1 if not any(f.start < e.stop and f.stop > e.start for f in lv2)]


def _episodes(p: _Patient) -> dict[str, Value]:
    out: dict[str, Value] = {}
    for name, found in episode_sets(p).items():
        out.update(_episode_columns(name, found, p.grid))
    return out


def _distribution(p: _Patient) -> dict[str, Value]:
    g = p.g
    q = risk.quantiles_type7(g, (0.0, 5.0, 25.0, 50.0, 75.0, 95.0, 100.0))
    n = g.size
    return {
        "min_mg_dl": q[0],
        "p05_mg_dl": q[1],
        "q1_mg_dl": q[2],
        "median_mg_dl": q[3],
        "q3_mg_dl": q[4],
        "p95_mg_dl": q[5],
        "max_mg_dl": q[6],
        "iqr_mg_dl": q[4] - q[2],
        "range_mg_dl": q[6] - q[0],
        "mad_mg_dl": risk.mad_mg_dl(g),
        "pct_above_140": 100.0 * float(np.count_nonzero(g > TIGHT_RANGE_HIGH_MG_DL)) / n,
        "pct_63_140": 100.0
        * float(np.count_nonzero((g >= RANGE_63_140_LOW_MG_DL) & (g <= TIGHT_RANGE_HIGH_MG_DL)))
        / n,
    }


def _risk(p: _Patient) -> dict[str, Value]:
    g = p.g
    grade, hypo, _, hyper = risk.grade_parts(g)
    eugly = risk.grade_parts(g, TBR_LEVEL1_MG_DL, GRADE_HYPER_ABOVE_MG_DL)[2]
    bands = consensus.range_bands(g)
    hyper_i, hypo_i = risk.hyper_index(g), risk.hypo_index(g)
    days = p.readings.time_s // SECONDS_PER_DAY
    return {
        "lbgi": risk.lbgi(g),
        "hbgi": risk.hbgi(g),
        "adrr": risk.adrr(g, days),
        "grade": grade,
        "grade_hypo_pct": hypo,
        "grade_eugly_pct": eugly,
        "grade_hyper_pct": hyper,
        "hyper_index": hyper_i,
        "hypo_index": hypo_i,
        "igc": hyper_i + hypo_i,
        "j_index": risk.j_index(g),
        "m_value": risk.m_value(g),
        "ea1c_pct": risk.ea1c_pct(float(g.mean())),
        "cogi": risk.cogi(bands.in_range_pct, bands.below_70_pct, float(np.std(g, ddof=1))),
    }


def _variability(p: _Patient) -> dict[str, Value]:
    grid = p.grid
    cv_mean, cv_sd = variability.cv_measures(grid)
    sd = variability.sd_measures(p.grid)
    return {
        "conga_24h": variability.conga(grid, 24.0),
        "conga_1h": variability.conga(grid, 1.0),
        "modd": variability.modd(grid),
        "gvp_pct": variability.gvp_pct(grid),
        "mag_mg_dl_per_h": variability.mag_mg_dl_per_h(grid),
        "mag_iglu_all_metrics": variability.mag_iglu_all_metrics(grid),
        "sd_roc_mg_dl_per_min": variability.sd_rate_of_change(grid),
        "cv_mean_pct": cv_mean,
        "cv_sd_pct": cv_sd,
        "sd_w": sd.sd_w,
        "sd_hhmm": sd.sd_hhmm,
        "sd_wsh": sd.sd_wsh,
        "sd_dm": sd.sd_dm,
        "sd_b": sd.sd_b,
        "sd_bdm": sd.sd_bdm,
        "auc_hourly_mg_dl": variability.hourly_auc_mg_dl(grid),
    }


def _mage(p: _Patient) -> dict[str, Value]:
    m = mage.mage_moving_average(p.mage_grid, iglu=p.iglu)
    return {
        "mage_mg_dl": m.avg_mg_dl,
        "mage_plus_mg_dl": m.plus_mg_dl,
        "mage_minus_mg_dl": m.minus_mg_dl,
        "mage_service_mg_dl": m.service_mg_dl,
        "mage_max_mg_dl": m.max_mg_dl,
        "mage_naive_mg_dl": mage.mage_naive(p.g),
    }


def _pgs(p: _Patient) -> dict[str, Value]:
    grid, find = p.grid, episodes.find_episodes
    rule = {"min_duration_min": risk.PGS_START_MIN, "end_duration_min": risk.PGS_END_MIN}
    lv1 = find(grid, "hypo", TBR_LEVEL1_MG_DL, **rule)
    lv2 = find(grid, "hypo", TBR_LEVEL2_MG_DL, **rule)
    days = float(np.count_nonzero(~np.isnan(grid.flat))) * grid.dt0_min / MINUTES_PER_DAY
    if days == 0:
        return {"pgs": float("nan")}
    g = p.g
    value = risk.personal_glycemic_state(
        gvp_pct=variability.gvp_pct(grid),
        mean_mg_dl=float(g.mean()),
        tir_pct=consensus.range_bands(g).in_range_pct,
        n54_per_week=7.0 * len(lv2) / days,
        n70_per_week=7.0 * len(_excluding(lv1, lv2)) / days,
    )
    return {"pgs": value}


def _day_night(p: _Patient) -> dict[str, Value]:
    night = agp.night_mask(p.readings.time_s)
    out: dict[str, Value] = {}
    for label, mask in (("night", night), ("day", ~night)):
        g = p.g[mask]
        n = g.size
        out[f"mean_mg_dl_{label}"] = float(g.mean()) if n else float("nan")
        inside = np.count_nonzero((g >= TBR_LEVEL1_MG_DL) & (g <= TAR_LEVEL1_MG_DL))
        out[f"pct_70_180_{label}"] = 100.0 * float(inside) / n if n else float("nan")
    return out


# The function computing each group of ``spec.GROUPS`` (tests/test_metrics_spec.py checks
# that each returns exactly its group's names, in order).
GROUP_FUNCTIONS: Final[Mapping[str, Group]] = {
    "coverage": _coverage,
    "core": _core,
    "ranges": _ranges,
    "gri": _gri,
    "episodes": _episodes,
    "distribution": _distribution,
    "risk": _risk,
    "variability": _variability,
    "mage": _mage,
    "pgs": _pgs,
    "day_night": _day_night,
}


def compute_patient(
    series: PatientSeries, names: Iterable[str], options: MetricOptions = _PUBLISHED
) -> Mapping[str, Value]:
    """The named metrics for one patient (NaN where a metric is undefined for the data)."""
    wanted = set(names)
    patient = _Patient(series, options)
    out: dict[str, Value] = {}
    for group, group_names in GROUPS:
        if wanted.intersection(group_names):
            if series.size == 0:
                out.update(dict.fromkeys(group_names, float("nan")))
            else:
                out.update(GROUP_FUNCTIONS[group](patient))
    return {n: out[n] for n in names}
