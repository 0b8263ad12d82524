"""The per-patient pass over a whole cohort, compiled and spread over the cores. PURE.

``patient_metrics`` walks every patient of the flat, (patient, time)-sorted arrays once: it
builds the patient's grid in a scratch buffer and writes each asked-for group of metrics into
that patient's row of one output matrix. Groups are numbered as in ``GROUPS``; ``bases[k]`` is
the first column of group ``k`` (``-1``: not asked for). Three views of the readings come in
with their own offsets: ``rows`` (what plain summaries count), ``inst`` (one value per timestamp,
the mean) and ``src`` (what the grid interpolates); see ``glucosestream.metrics.cohort``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import prange

from glucosestream.metrics import episodes as episode_rules
from glucosestream.metrics import mage as mage_rules
from glucosestream.metrics.kernels import compiled, compiled_parallel
from glucosestream.metrics.kernels.episodes import find_episodes, overlap_free, points_for
from glucosestream.metrics.kernels.grid import count_present, dt0_min_of, fill_grid, grid_days
from glucosestream.metrics.kernels.mage import mage_into
from glucosestream.metrics.kernels.numeric import mean_of, round_half_even
from glucosestream.metrics.kernels.readings import (
    band_pcts,
    bands_into,
    core_into,
    day_night_into,
    distribution_into,
    gri_into,
    mage_naive,
    risk_into,
    risk_table,
)
from glucosestream.metrics.kernels.variability import gvp_pct, variability_into

__all__ = ["GROUPS", "episode_sets", "patient_metrics"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

GROUPS = (  # (name, columns written); the order of catalog._GROUPS
    ("coverage", 9),
    ("core", 4),
    ("ranges", 16),
    ("gri", 4),
    ("episodes", 32),
    ("distribution", 12),
    ("risk", 14),
    ("variability", 16),
    ("mage", 6),
    ("pgs", 5),  # its inputs: GVP, mean, TIR, episodes/week < 54 and 54-69
    ("day_night", 4),
)
COVERAGE, CORE, RANGES, GRI, EPISODES, DISTRIBUTION, RISK, VARIABILITY, MAGE, PGS, DAY_NIGHT = (
    range(11)
)
N_KINDS = 8  # hypo lv1, lv2, extended; hyper lv1, lv2, extended; hypo lv1 excl; hyper lv1 excl
EXT_MIN = float(episode_rules.EXTENDED_MIN_DURATION_MIN)
START_MIN = float(episode_rules.EPISODE_MIN_DURATION_MIN)
END_MIN = float(episode_rules.EPISODE_END_DURATION_MIN)
MAGE_GRID_MIN = mage_rules.MAGE_GRID_MIN
PGS_START_MIN, PGS_END_MIN = 20.0, 30.0  # catalog._pgs: Hirsch 2017 episodes


@compiled
def _coverage_into(
    row: FloatArray,
    b: int,
    rows: int,
    t: IntArray,
    x: FloatArray,
    dt0: int,
    first_day: int,
    inter_gap_min: float,
) -> None:
    """The ``sufficiency.data_sufficiency`` report (start and end as wall-clock seconds)."""
    span_min = float(t[-1] - t[0]) / 60.0
    expected = round_half_even(span_min / dt0) + 1
    active = min(100.0, 100.0 * t.size / expected)
    longest = 0.0
    over = 0
    for i in range(t.size - 1):
        gap = (t[i + 1] - t[i]) / 60.0
        longest = max(longest, gap)
        over += gap > inter_gap_min
    first = math.ceil((t[0] - first_day * 86_400) / (dt0 * 60)) - 1
    last = (t[-1] - first_day * 86_400) // (dt0 * 60) - 1
    inside = x[max(first, 0) : last + 1]
    days = span_min / 1440.0
    row[b], row[b + 1], row[b + 2] = rows, days, active
    row[b + 3] = 100.0 * count_present(inside) / max(inside.size, 1)
    row[b + 4], row[b + 5] = longest, over
    row[b + 6] = 1.0 if days + dt0 / 1440.0 >= 14 and active >= 70.0 else 0.0
    row[b + 7], row[b + 8] = t[0], t[-1]


@compiled
def episode_sets(x: FloatArray, dt0: int, iglu: bool) -> tuple[IntArray, IntArray, IntArray]:
    """(starts, stops, counts) of the eight episode kinds of ``catalog.episode_sets``."""
    cap = x.size // points_for(START_MIN, dt0) + 2
    starts = np.zeros((N_KINDS, cap), dtype=np.int64)
    stops = np.zeros((N_KINDS, cap), dtype=np.int64)
    counts = np.zeros(N_KINDS, dtype=np.int64)
    sp, ep, xp = points_for(START_MIN, dt0), points_for(END_MIN, dt0), points_for(EXT_MIN, dt0)
    counts[0] = find_episodes(x, True, 70.0, 70.0, sp, ep, starts[0], stops[0])
    counts[1] = find_episodes(x, True, 54.0, 54.0, sp, ep, starts[1], stops[1])
    counts[3] = find_episodes(x, False, 180.0, 180.0, sp, ep, starts[3], stops[3])
    counts[4] = find_episodes(x, False, 250.0, 250.0, sp, ep, starts[4], stops[4])
    if iglu:  # level 1 episodes longer than 120 min; iglu's dur_length = 120 level 2 row
        for i in range(counts[0]):
            if (stops[0, i] - starts[0, i]) * dt0 > EXT_MIN:
                starts[2, counts[2]], stops[2, counts[2]] = starts[0, i], stops[0, i]
                counts[2] += 1
        counts[5] = find_episodes(x, False, 250.0, 250.0, xp, ep, starts[5], stops[5])
    else:  # Battelino 2023
        counts[2] = find_episodes(x, True, 70.0, 70.0, xp, ep, starts[2], stops[2])
        counts[5] = find_episodes(x, False, 250.0, 180.0, xp, ep, starts[5], stops[5])
    for kind, lv1, lv2 in ((6, 0, 1), (7, 3, 4)):
        keep = overlap_free(
            starts[lv1], stops[lv1], counts[lv1], starts[lv2], stops[lv2], counts[lv2]
        )
        for i in range(counts[lv1]):
            if keep[i]:
                starts[kind, counts[kind]], stops[kind, counts[kind]] = (
                    starts[lv1, i],
                    stops[lv1, i],
                )
                counts[kind] += 1
    return starts, stops, counts


@compiled
def _episodes_into(row: FloatArray, b: int, x: FloatArray, dt0: int, iglu: bool) -> None:
    """Per kind: count, per day of present grid, mean duration (min), mean glucose."""
    starts, stops, counts = episode_sets(x, dt0, iglu)
    observed_days = count_present(x) * dt0 / 1440.0
    for k in range(N_KINDS):
        n = counts[k]
        points = 0
        means = np.empty(n)
        for i in range(n):
            points += stops[k, i] - starts[k, i]
            means[i] = mean_of(x[starts[k, i] : stops[k, i]])
        c = b + 4 * k
        row[c] = n
        row[c + 1] = n / observed_days if observed_days > 0 else np.nan
        row[c + 2] = points / n * dt0 if n else 0.0
        row[c + 3] = mean_of(means)


@compiled
def _pgs_inputs_into(row: FloatArray, b: int, x: FloatArray, dt0: int, g: FloatArray) -> None:
    cap = x.size + 2
    s1, e1 = np.zeros(cap, dtype=np.int64), np.zeros(cap, dtype=np.int64)
    s2, e2 = np.zeros(cap, dtype=np.int64), np.zeros(cap, dtype=np.int64)
    sp, ep = points_for(PGS_START_MIN, dt0), points_for(PGS_END_MIN, dt0)
    n1 = find_episodes(x, True, 70.0, 70.0, sp, ep, s1, e1)
    n2 = find_episodes(x, True, 54.0, 54.0, sp, ep, s2, e2)
    days = count_present(x) * dt0 / 1440.0
    if days == 0:
        return
    row[b], row[b + 1], row[b + 2] = gvp_pct(x, dt0), mean_of(g), band_pcts(g)[2]
    row[b + 3] = 7.0 * n2 / days
    row[b + 4] = 7.0 * np.count_nonzero(overlap_free(s1, e1, n1, s2, e2, n2)) / days


@compiled
def _grid_of(t: IntArray, g: FloatArray, dt0: int, max_gap_s: float) -> tuple[FloatArray, int]:
    first_day, n_days = grid_days(t)
    x = np.empty(n_days * (1440 // dt0))
    fill_grid(t, g, dt0, first_day, max_gap_s, x)
    return x, first_day


@compiled_parallel
def patient_metrics(
    rows: tuple[IntArray, IntArray, FloatArray],
    inst: tuple[IntArray, IntArray, FloatArray],
    src: tuple[IntArray, IntArray, FloatArray],
    bases: IntArray,
    n_out: int,
    iglu: bool,
    inter_gap_min: float,
) -> FloatArray:
    """One row of ``n_out`` metrics per patient (NaN for a patient without readings)."""
    rows_off, rows_t, rows_g = rows
    inst_off, inst_t, inst_g = inst
    src_off, src_t, src_g = src
    n = rows_off.size - 1
    out = np.full((n, n_out), np.nan)
    max_gap_s = inter_gap_min * 60.0
    table = risk_table()
    for p in prange(n):
        lo, hi = rows_off[p], rows_off[p + 1]
        if hi == lo:
            continue
        row = out[p]
        t, g = rows_t[lo:hi], rows_g[lo:hi]
        st, sg = src_t[src_off[p] : src_off[p + 1]], src_g[src_off[p] : src_off[p + 1]]
        dt0 = dt0_min_of(st)
        x, first_day = _grid_of(st, sg, dt0, max_gap_s)
        if bases[COVERAGE] >= 0:
            it = inst_t[inst_off[p] : inst_off[p + 1]]
            _coverage_into(row, bases[COVERAGE], hi - lo, it, x, dt0, first_day, inter_gap_min)
        if bases[CORE] >= 0:
            core_into(row, bases[CORE], g)
        if bases[RANGES] >= 0:
            bands_into(row, bases[RANGES], g)
            bands_into(row, bases[RANGES] + 8, x)
        if bases[GRI] >= 0:
            gri_into(row, bases[GRI], inst_g[inst_off[p] : inst_off[p + 1]])
        if bases[EPISODES] >= 0:
            _episodes_into(row, bases[EPISODES], x, dt0, iglu)
        if bases[DISTRIBUTION] >= 0:
            distribution_into(row, bases[DISTRIBUTION], g)
        if bases[RISK] >= 0:
            risk_into(row, bases[RISK], g, t, table)
        if bases[VARIABILITY] >= 0:
            variability_into(row, bases[VARIABILITY], x, dt0)
        if bases[MAGE] >= 0:
            x5 = x if dt0 == MAGE_GRID_MIN else _grid_of(st, sg, MAGE_GRID_MIN, max_gap_s)[0]
            mage_into(row, bases[MAGE], x5, int(mage_rules.MAX_GAP_MIN // MAGE_GRID_MIN))
            row[bases[MAGE] + 5] = mage_naive(g)
        if bases[PGS] >= 0:
            _pgs_inputs_into(row, bases[PGS], x, dt0, g)
        if bases[DAY_NIGHT] >= 0:
            day_night_into(row, bases[DAY_NIGHT], g, t)
    return out
