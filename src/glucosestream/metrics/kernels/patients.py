"""The per-patient pass over a cohort, compiled. PURE.

``patient_metrics_into`` walks every patient of the flat, (patient, time)-sorted arrays once: it
builds the patient's grid in a scratch buffer and writes each asked-for group of metrics into
that patient's row of an output matrix. It holds no lock (``nogil``), so ``kernel_columns`` runs
it on several threads at once, each over its own range of patients and rows. Groups are
numbered as in ``GROUPS``; ``bases[k]`` is the first column of group ``k`` (``-1``: not asked
for). Three views of the readings come in with their own offsets: ``rows`` (what plain
summaries count), ``inst`` (one value per timestamp, the mean) and ``src`` (what the grid
interpolates); see ``glucosestream.metrics.cohort_layout``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from glucosestream.metrics.kernels import compiled
from glucosestream.metrics.kernels.episode_runs import find_episodes, overlap_free, points_for
from glucosestream.metrics.kernels.grid_fill import dt0_min_of, fill_grid, grid_days
from glucosestream.metrics.kernels.grid_scan import GridScan, Runs, scan_grid
from glucosestream.metrics.kernels.grid_variability import (
    VARIABILITY_COLUMNS,
    gvp_pct,
    variability_into,
)
from glucosestream.metrics.kernels.mage_pass import MAGE_COLUMNS, mage_into
from glucosestream.metrics.kernels.numeric import mean_of, mean_sd, round_half_even
from glucosestream.metrics.kernels.reading_groups import (
    BAND_COLUMNS,
    CORE_COLUMNS,
    DAY_NIGHT_COLUMNS,
    DISTRIBUTION_COLUMNS,
    GRI_COLUMNS,
    RISK_COLUMNS,
    band_pcts,
    bands_into,
    core_into,
    day_night_into,
    distribution_into,
    gri_into,
    mage_naive,
    pcts_of,
    risk_into,
    risk_table,
)
from glucosestream.metrics.reference import episodes as episode_rules
from glucosestream.metrics.reference import mage as mage_rules
from glucosestream.metrics.reference import risk as risk_rules
from glucosestream.metrics.thresholds import (
    MIN_ACTIVE_PCT,
    MIN_DAYS,
    MINUTES_PER_DAY,
    SECONDS_PER_DAY,
    TAR_LEVEL1_MG_DL,
    TAR_LEVEL2_MG_DL,
    TBR_LEVEL1_MG_DL,
    TBR_LEVEL2_MG_DL,
)

__all__ = [
    "EPISODE_KINDS",
    "EPISODE_STATS",
    "GROUPS",
    "PGS_INPUT_COLUMNS",
    "episode_sets",
    "patient_metrics_into",
]

EPISODE_STATS = ("episodes", "per_day", "duration_min", "mean_mg_dl")  # _episodes_into, per kind

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

COVERAGE_COLUMNS = (  # _coverage_into
    "readings",
    "days",
    "active_pct",
    "grid_coverage_pct",
    "longest_gap_min",
    "gaps_over_inter_gap",
    "sufficient_14d",
    "start_time",
    "end_time",
)
EPISODE_KINDS = (  # episode_sets' kinds, in order
    "hypo_lv1",
    "hypo_lv2",
    "hypo_extended",
    "hyper_lv1",
    "hyper_lv2",
    "hyper_extended",
    "hypo_lv1_excl",
    "hyper_lv1_excl",
)
EPISODE_COLUMNS = tuple(  # _episodes_into
    f"{kind}_{stat}" for kind in EPISODE_KINDS for stat in EPISODE_STATS
)
# _pgs_inputs_into: PGS's inputs; kernel_columns turns them into the one metric "pgs".
PGS_INPUT_COLUMNS = ("gvp_pct", "mean_mg_dl", "pct_70_180", "n54_per_week", "n70_per_week")
# (group, the columns its writers fill in the row, in order). ``bases[k]`` is the first
# column of group k; kernel_columns reads them back by these names, and
# tests/test_metrics_spec.py holds them equal to metrics.spec's groups.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("coverage", COVERAGE_COLUMNS),
    ("core", CORE_COLUMNS),
    ("ranges", (*BAND_COLUMNS, *(f"tw_{name}" for name in BAND_COLUMNS))),
    ("gri", GRI_COLUMNS),
    ("episodes", EPISODE_COLUMNS),
    ("distribution", DISTRIBUTION_COLUMNS),
    ("risk", RISK_COLUMNS),
    ("variability", VARIABILITY_COLUMNS),
    ("mage", (*MAGE_COLUMNS, "mage_naive_mg_dl")),
    ("pgs", PGS_INPUT_COLUMNS),
    ("day_night", DAY_NIGHT_COLUMNS),
)
COVERAGE, CORE, RANGES, GRI, EPISODES, DISTRIBUTION, RISK, VARIABILITY, MAGE, PGS, DAY_NIGHT = (
    range(11)
)
N_KINDS = len(EPISODE_KINDS)
EXT_MIN = float(episode_rules.EXTENDED_MIN_DURATION_MIN)
START_MIN = float(episode_rules.EPISODE_MIN_DURATION_MIN)
END_MIN = float(episode_rules.EPISODE_END_DURATION_MIN)
MAGE_GRID_MIN = mage_rules.MAGE_GRID_MIN
LV1_LOW, LV2_LOW = TBR_LEVEL1_MG_DL, TBR_LEVEL2_MG_DL  # episode thresholds, short names
LV1_HIGH, LV2_HIGH = TAR_LEVEL1_MG_DL, TAR_LEVEL2_MG_DL
PGS_START_MIN, PGS_END_MIN = risk_rules.PGS_START_MIN, risk_rules.PGS_END_MIN  # Hirsch 2017


@compiled
def _gaps_min(t: IntArray, inter_gap_min: float) -> tuple[float, int]:
    """(longest gap, gaps longer than ``inter_gap_min``) between sorted times, in minutes.
    ``seconds / 60.0`` never decreases as the seconds grow, so the longest gap is the widest
    one divided once, and the long gaps are those of at least ``least`` seconds, the first
    whole number whose quotient exceeds the limit: integer comparisons, no division each."""
    widest = 0
    for i in range(t.size - 1):
        widest = max(widest, t[i + 1] - t[i])
    if not abs(inter_gap_min) < 1e12:  # NaN or out of any clock's range: compare as before
        over = 0
        for i in range(t.size - 1):
            over += (t[i + 1] - t[i]) / 60.0 > inter_gap_min
        return widest / 60.0, over
    least = math.floor(inter_gap_min * 60.0) - 2
    while not least / 60.0 > inter_gap_min:
        least += 1
    over = 0
    for i in range(t.size - 1):
        over += int(t[i + 1] - t[i] >= least)
    return widest / 60.0, over


@compiled
def _iglu_active_count(t: IntArray, dt0: int) -> float:
    """``sufficiency.iglu_active_count``: the span less the gaps' excess, in ``dt0`` steps."""
    step = dt0 * 60
    excess = 0
    for i in range(t.size - 1):
        d = t[i + 1] - t[i]
        if round_half_even(d / 60.0) > dt0:
            excess += d - step
    return round_half_even((float(t[-1] - t[0]) - float(excess)) / step) + 1.0


@compiled
def _coverage_into(
    row: FloatArray,
    b: int,
    rows: int,
    t: IntArray,
    present: int,
    dt0: int,
    first_day: int,
    inter_gap_min: float,
    iglu: bool,
) -> None:
    """The ``sufficiency.data_sufficiency`` report (start and end as wall-clock seconds);
    ``present`` counts the points of the grid (from ``first_day``) that have a value. Those
    all lie between the first and the last reading, as the grid does not extrapolate, so they
    are the present points of the readings' span, whose share the report gives."""
    span_min = float(t[-1] - t[0]) / 60.0
    expected = round_half_even(span_min / dt0) + 1
    active_count = _iglu_active_count(t, dt0) if iglu else float(t.size)
    active = min(100.0, 100.0 * active_count / expected)
    longest, over = _gaps_min(t, inter_gap_min)
    first = math.ceil((t[0] - first_day * SECONDS_PER_DAY) / (dt0 * 60)) - 1
    last = (t[-1] - first_day * SECONDS_PER_DAY) // (dt0 * 60) - 1
    inside = last + 1 - max(first, 0)  # grid points in the span: the last is inside the grid
    days = span_min / MINUTES_PER_DAY
    row[b], row[b + 1], row[b + 2] = rows, days, active
    row[b + 3] = 100.0 * present / max(inside, 1)
    row[b + 4], row[b + 5] = longest, over
    enough = days + 2 * dt0 / MINUTES_PER_DAY >= MIN_DAYS and active >= MIN_ACTIVE_PCT
    row[b + 6] = 1.0 if enough else 0.0
    row[b + 7], row[b + 8] = t[0], t[-1]


@compiled
def _find(
    x: FloatArray,
    hypo: bool,
    levels: tuple[float, float],
    points: tuple[int, int],
    beyond: int,
    runs: Runs,
    starts: IntArray,
    stops: IntArray,
) -> int:
    """``find_episodes`` with ``levels`` (start, end threshold) and ``points`` (start, end
    run lengths) over ``runs`` (``scan_grid``'s below 70 or above 180), skipping the search
    when ``beyond`` (the grid points beyond the start threshold) is 0."""
    if beyond == 0:
        return 0
    start, end = levels
    return find_episodes(x, runs, hypo, start, end, points[0], points[1], starts, stops)


@compiled
def _keep_overlap_free(
    starts: IntArray, stops: IntArray, counts: IntArray, kind: int, lv1: int, lv2: int
) -> None:
    """Kind ``kind``: the episodes of kind ``lv1`` that overlap none of kind ``lv2``."""
    keep = overlap_free(starts[lv1], stops[lv1], counts[lv1], starts[lv2], stops[lv2], counts[lv2])
    for i in range(counts[lv1]):
        if keep[i]:
            starts[kind, counts[kind]], stops[kind, counts[kind]] = starts[lv1, i], stops[lv1, i]
            counts[kind] += 1


@compiled
def episode_sets(
    x: FloatArray, scan: GridScan, dt0: int, iglu: bool
) -> tuple[IntArray, IntArray, IntArray]:
    """(starts, stops, counts) of the eight episode kinds of
    ``reference.patient_metrics.episode_sets`` on the
    grid ``x`` (``scan`` is ``scan_grid(x)``); only the first ``counts[k]`` entries of
    ``starts[k]`` and ``stops[k]`` are written."""
    cap = x.size // points_for(START_MIN, dt0) + 2
    starts = np.empty((N_KINDS, cap), dtype=np.int64)
    stops = np.empty((N_KINDS, cap), dtype=np.int64)
    counts = np.zeros(N_KINDS, dtype=np.int64)
    sp, ep, xp = points_for(START_MIN, dt0), points_for(END_MIN, dt0), points_for(EXT_MIN, dt0)
    # Every hypo start threshold below is at or under 70 mg/dL and every hyper one at or over
    # 180, so scan_grid's runs below 70 and above 180 hold every episode start.
    (_, b54, b70, a180, a250, _), low, high = scan
    counts[0] = _find(x, True, (LV1_LOW, LV1_LOW), (sp, ep), b70, low, starts[0], stops[0])
    counts[1] = _find(x, True, (LV2_LOW, LV2_LOW), (sp, ep), b54, low, starts[1], stops[1])
    counts[3] = _find(x, False, (LV1_HIGH, LV1_HIGH), (sp, ep), a180, high, starts[3], stops[3])
    counts[4] = _find(x, False, (LV2_HIGH, LV2_HIGH), (sp, ep), a250, high, starts[4], stops[4])
    if iglu:  # level 1 episodes longer than 120 min
        for i in range(counts[0]):
            if (stops[0, i] - starts[0, i]) * dt0 > EXT_MIN:
                starts[2, counts[2]], stops[2, counts[2]] = starts[0, i], stops[0, i]
                counts[2] += 1
    else:  # Battelino 2023
        counts[2] = _find(x, True, (LV1_LOW, LV1_LOW), (xp, ep), b70, low, starts[2], stops[2])
    # Extended hyper: Battelino 2023 ends it at <= 180; iglu's dur_length = 120 row at <= 250.
    levels = (LV2_HIGH, LV2_HIGH if iglu else LV1_HIGH)
    counts[5] = _find(x, False, levels, (xp, ep), a250, high, starts[5], stops[5])
    _keep_overlap_free(starts, stops, counts, 6, 0, 1)
    _keep_overlap_free(starts, stops, counts, 7, 3, 4)
    return starts, stops, counts


@compiled
def _episodes_into(
    row: FloatArray, b: int, x: FloatArray, scan: GridScan, dt0: int, iglu: bool
) -> None:
    """Per kind: count, per day of present grid, mean duration (min), mean glucose."""
    starts, stops, counts = episode_sets(x, scan, dt0, iglu)
    observed_days = scan[0][0] * dt0 / MINUTES_PER_DAY
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
def _pgs_inputs_into(
    row: FloatArray,
    b: int,
    x: FloatArray,
    scan: GridScan,
    dt0: int,
    summary: tuple[float, float, float],
) -> None:
    """GVP, mean, TIR (``summary``) and episodes per week < 54 and 54-69 (Hirsch 2017
    durations)."""
    gvp, mean, tir = summary
    cap = x.size // points_for(PGS_START_MIN, dt0) + 2
    s1, e1 = np.empty(cap, dtype=np.int64), np.empty(cap, dtype=np.int64)
    s2, e2 = np.empty(cap, dtype=np.int64), np.empty(cap, dtype=np.int64)
    points = (points_for(PGS_START_MIN, dt0), points_for(PGS_END_MIN, dt0))
    (present, b54, b70, _, _, _), low, _ = scan
    n1 = _find(x, True, (LV1_LOW, LV1_LOW), points, b70, low, s1, e1)
    n2 = _find(x, True, (LV2_LOW, LV2_LOW), points, b54, low, s2, e2)
    days = present * dt0 / MINUTES_PER_DAY
    if days == 0:
        return
    row[b], row[b + 1], row[b + 2] = gvp, mean, tir
    row[b + 3] = 7.0 * n2 / days
    row[b + 4] = 7.0 * np.count_nonzero(overlap_free(s1, e1, n1, s2, e2, n2)) / days


@compiled
def _grid_of(t: IntArray, g: FloatArray, dt0: int, max_gap_s: float) -> tuple[FloatArray, int]:
    first_day, n_days = grid_days(t)
    x = np.empty(n_days * (MINUTES_PER_DAY // dt0))
    fill_grid(t, g, dt0, first_day, max_gap_s, x)
    return x, first_day


@compiled
def _readings_into(
    row: FloatArray, bases: IntArray, g: FloatArray, t: IntArray, gi: FloatArray, table: FloatArray
) -> tuple[float, float]:
    """The groups over the readings ``t, g`` (and ``gi``, one per instant, for GRI); the mean
    and SD and the bands are computed once for all groups that use them. Returns the mean and
    % 70-180 (PGS's inputs)."""
    mean = sd = np.nan
    if bases[CORE] >= 0 or bases[RISK] >= 0 or bases[MAGE] >= 0 or bases[PGS] >= 0:
        mean, sd = mean_sd(g)
    nan6 = (np.nan, np.nan, np.nan, np.nan, np.nan, np.nan)
    use_bands = bases[RANGES] >= 0 or bases[RISK] >= 0 or bases[PGS] >= 0
    same = gi.size == g.size  # as many instants as readings: no time repeats, the same values
    bands = band_pcts(g) if use_bands or (bases[GRI] >= 0 and same) else nan6
    if bases[CORE] >= 0:
        core_into(row, bases[CORE], mean, sd)
    if bases[RANGES] >= 0:
        bands_into(row, bases[RANGES], bands)
    if bases[GRI] >= 0:
        gri_into(row, bases[GRI], bands if same else band_pcts(gi))
    if bases[DISTRIBUTION] >= 0:
        distribution_into(row, bases[DISTRIBUTION], g)
    if bases[RISK] >= 0:
        risk_into(row, bases[RISK], g, t, table, (mean, sd, bands[0], bands[1], bands[2]))
    if bases[MAGE] >= 0:
        row[bases[MAGE] + 5] = mage_naive(g, mean, sd)
    if bases[DAY_NIGHT] >= 0:
        day_night_into(row, bases[DAY_NIGHT], g, t)
    return mean, bands[2]


@compiled
def _grid_into(
    row: FloatArray,
    bases: IntArray,
    st: IntArray,
    sg: FloatArray,
    x: FloatArray,
    counts: tuple[int, int, int, int, int, int],
    dt0: int,
    max_gap_s: float,
    iglu: bool,
) -> float:
    """The groups over the grid ``x`` (``counts``: its band counts) of the readings ``st, sg``;
    returns GVP if computed."""
    if bases[RANGES] >= 0:
        bands_into(row, bases[RANGES] + 8, pcts_of(counts))
    if bases[VARIABILITY] >= 0:
        variability_into(row, bases[VARIABILITY], x, dt0)
    if bases[MAGE] >= 0:
        x5 = x if dt0 == MAGE_GRID_MIN else _grid_of(st, sg, MAGE_GRID_MIN, max_gap_s)[0]
        mage_into(row, bases[MAGE], x5, int(mage_rules.MAX_GAP_MIN // MAGE_GRID_MIN), iglu)
    return row[bases[VARIABILITY] + 3] if bases[VARIABILITY] >= 0 else np.nan


@compiled
def patient_metrics_into(
    out: FloatArray,
    rows: tuple[IntArray, IntArray, FloatArray],
    inst: tuple[IntArray, IntArray, FloatArray],
    src: tuple[IntArray, IntArray, FloatArray],
    bases: IntArray,
    iglu: bool,
    inter_gap_min: float,
) -> None:
    """Row ``p`` of ``out`` (filled with NaN by the caller) gets patient ``p``'s metrics; a
    patient without readings keeps its NaN."""
    rows_off, rows_t, rows_g = rows
    inst_off, inst_t, inst_g = inst
    src_off, src_t, src_g = src
    max_gap_s = inter_gap_min * 60.0
    table = risk_table()
    for p in range(rows_off.size - 1):
        lo, hi = rows_off[p], rows_off[p + 1]
        if hi == lo:
            continue
        row = out[p]
        t, g = rows_t[lo:hi], rows_g[lo:hi]
        it, ig = inst_t[inst_off[p] : inst_off[p + 1]], inst_g[inst_off[p] : inst_off[p + 1]]
        st, sg = src_t[src_off[p] : src_off[p + 1]], src_g[src_off[p] : src_off[p + 1]]
        dt0 = dt0_min_of(st)
        x, first_day = _grid_of(st, sg, dt0, max_gap_s)
        used = bases[COVERAGE] >= 0 or bases[RANGES] >= 0 or bases[EPISODES] >= 0
        scan = scan_grid(x if used or bases[PGS] >= 0 else x[:0])  # only for groups using it
        if bases[COVERAGE] >= 0:
            present = scan[0][0]
            _coverage_into(
                row, bases[COVERAGE], hi - lo, it, present, dt0, first_day, inter_gap_min, iglu
            )
        mean, tir = _readings_into(row, bases, g, t, ig, table)
        if bases[EPISODES] >= 0:
            _episodes_into(row, bases[EPISODES], x, scan, dt0, iglu)
        gvp = _grid_into(row, bases, st, sg, x, scan[0], dt0, max_gap_s, iglu)
        if bases[PGS] >= 0:
            gvp = gvp_pct(x, dt0) if bases[VARIABILITY] < 0 else gvp
            _pgs_inputs_into(row, bases[PGS], x, scan, dt0, (gvp, mean, tir))
