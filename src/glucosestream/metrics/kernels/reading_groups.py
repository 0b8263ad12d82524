"""Metric groups over one patient's readings (no grid), compiled. PURE.

Each ``*_into(row, base, ...)`` writes its group's values into ``row[base:]`` in the order
``*_COLUMNS`` below name them. Definitions and sources: the per-patient reference
(``reference``: ``patient_metrics``, ``consensus``, ``risk``, ``mage.mage_naive``,
``agp.night_mask``).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from glucosestream.metrics.glycemic import GMI_INTERCEPT_PCT, GMI_SLOPE_PCT_PER_MG_DL
from glucosestream.metrics.kernels import compiled
from glucosestream.metrics.kernels.numeric import quantile_sorted
from glucosestream.metrics.kernels.order import (
    count_at_most,
    counted,
    mad_counted,
    median_counted,
    quantile_counted,
)
from glucosestream.metrics.reference import risk
from glucosestream.metrics.thresholds import (
    GRADE_HYPER_ABOVE_MG_DL,
    GRADE_HYPO_BELOW_MG_DL,
    RANGE_63_140_LOW_MG_DL,
    RODBARD_LLTR_MG_DL,
    RODBARD_ULTR_MG_DL,
    SECONDS_PER_DAY,
    TAR_LEVEL1_MG_DL,
    TAR_LEVEL2_MG_DL,
    TBR_LEVEL1_MG_DL,
    TBR_LEVEL2_MG_DL,
    TIGHT_RANGE_HIGH_MG_DL,
)

__all__ = [
    "BAND_COLUMNS",
    "CORE_COLUMNS",
    "DAY_NIGHT_COLUMNS",
    "DISTRIBUTION_COLUMNS",
    "GRI_COLUMNS",
    "RISK_COLUMNS",
    "band_counts",
    "band_pcts",
    "bands_into",
    "core_into",
    "day_night_into",
    "distribution_into",
    "gri_into",
    "pcts_of",
    "risk_into",
    "risk_table",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BandPcts = tuple[float, float, float, float, float, float]  # band_pcts' six values
PROBS = np.array([0.0, 5.0, 25.0, 50.0, 75.0, 95.0, 100.0]) / 100.0
SECONDS_PER_HOUR = 3_600
NIGHT_END_HOUR = 6  # agp.NIGHT_END_HOUR


# The columns each writer fills, in order (kernels.patients.GROUPS names its groups with them).
CORE_COLUMNS = ("mean_mg_dl", "sd_mg_dl", "cv_pct", "gmi_pct")  # core_into
BAND_COLUMNS = (  # bands_into
    "pct_below_54",
    "pct_54_69",
    "pct_70_180",
    "pct_181_250",
    "pct_above_250",
    "pct_below_70",
    "pct_above_180",
    "pct_70_140",
)
GRI_COLUMNS = ("gri", "gri_hypo", "gri_hyper", "gri_zone")  # gri_into; the zone: from gri
DISTRIBUTION_COLUMNS = (  # distribution_into
    "min_mg_dl",
    "p05_mg_dl",
    "q1_mg_dl",
    "median_mg_dl",
    "q3_mg_dl",
    "p95_mg_dl",
    "max_mg_dl",
    "iqr_mg_dl",
    "range_mg_dl",
    "mad_mg_dl",
    "pct_above_140",
    "pct_63_140",
)
RISK_COLUMNS = (  # risk_into
    "lbgi",
    "hbgi",
    "adrr",
    "grade",
    "grade_hypo_pct",
    "grade_eugly_pct",
    "grade_hyper_pct",
    "hyper_index",
    "hypo_index",
    "igc",
    "j_index",
    "m_value",
    "ea1c_pct",
    "cogi",
)
DAY_NIGHT_COLUMNS = (  # day_night_into
    "mean_mg_dl_night",
    "pct_70_180_night",
    "mean_mg_dl_day",
    "pct_70_180_day",
)


@compiled
def core_into(row: FloatArray, b: int, mean: float, sd: float) -> None:
    """mean, SD, CV, GMI, given ``mean_of`` and ``sd_of`` of the readings."""
    row[b], row[b + 1] = mean, sd
    row[b + 2] = 100.0 * sd / mean
    row[b + 3] = GMI_INTERCEPT_PCT + GMI_SLOPE_PCT_PER_MG_DL * mean


@compiled
def band_counts(g: FloatArray) -> tuple[int, int, int, int, int, int]:
    """(present, < 54, < 70, > 180, > 250, 70-140) counts of the non-NaN values (a NaN fails
    every comparison, so only ``present`` tests for it)."""
    n = b54 = b70 = a180 = a250 = r140 = 0
    for i in range(g.size):  # int64 of each test: no branch, so the loop vectorises
        v = g[i]
        n += int(v == v)
        b54 += int(v < TBR_LEVEL2_MG_DL)
        b70 += int(v < TBR_LEVEL1_MG_DL)
        a180 += int(v > TAR_LEVEL1_MG_DL)
        a250 += int(v > TAR_LEVEL2_MG_DL)
        r140 += int((v >= TBR_LEVEL1_MG_DL) & (v <= TIGHT_RANGE_HIGH_MG_DL))
    return n, b54, b70, a180, a250, r140


@compiled
def pcts_of(counts: tuple[int, int, int, int, int, int]) -> BandPcts:
    """(very low, low, in range, high, very high, 70-140) % as ``consensus.range_bands``, from
    ``band_counts`` (or ``grid_scan.scan_grid``'s counts)."""
    n, b54, b70, a180, a250, r140 = counts
    if n == 0:
        return np.nan, np.nan, np.nan, np.nan, np.nan, np.nan
    scale = 100.0 / n
    return (
        b54 * scale,
        (b70 - b54) * scale,
        (n - b70 - a180) * scale,
        (a180 - a250) * scale,
        a250 * scale,
        100.0 * r140 / n,
    )


@compiled
def band_pcts(g: FloatArray) -> BandPcts:
    """``pcts_of(band_counts(g))``."""
    return pcts_of(band_counts(g))


@compiled
def bands_into(row: FloatArray, b: int, pcts: BandPcts) -> None:
    """The eight ``BAND_COLUMNS`` (``patient_metrics._bands``) from ``band_pcts``."""
    vl, lo, ir, hi, vh, r140 = pcts
    row[b : b + 5] = np.array([vl, lo, ir, hi, vh])
    row[b + 5], row[b + 6], row[b + 7] = vl + lo, hi + vh, r140


@compiled
def gri_into(row: FloatArray, b: int, pcts: BandPcts) -> None:
    """GRI, hypo and hyper components (Klonoff 2023; ``consensus.glycemia_risk_index``), given
    ``band_pcts`` of the readings, one per instant."""
    vl, lo, _, hi, vh, _ = pcts
    hypo = vl + 0.8 * lo
    hyper = vh + 0.5 * hi
    row[b], row[b + 1], row[b + 2] = min(100.0, 3.0 * hypo + 1.6 * hyper), hypo, hyper


@compiled
def distribution_into(row: FloatArray, b: int, g: FloatArray) -> None:
    """Quantiles type 7, IQR, range, MAD, % above 140 and 63-140; by counting when the values
    are whole mg/dL (``kernels.order``), else by sorting (the same numbers either way)."""
    cumulative, lowest = counted(g)
    q = np.empty(PROBS.size)
    n = g.size
    if cumulative.size:
        for i in range(PROBS.size):
            q[i] = quantile_counted(cumulative, lowest, PROBS[i])
        med = median_counted(cumulative, lowest)
        mad = mad_counted(cumulative, lowest, med)
        at_most_140 = count_at_most(cumulative, lowest, TIGHT_RANGE_HIGH_MG_DL)
        above_140 = n - at_most_140
        below_63 = count_at_most(cumulative, lowest, RANGE_63_140_LOW_MG_DL - 1.0)
        from_63 = at_most_140 - below_63
    else:
        x = np.sort(g)
        for i in range(PROBS.size):
            q[i] = quantile_sorted(x, PROBS[i])
        med = np.median(x)
        mad = np.median(np.abs(x - med))
        above_140 = int(np.count_nonzero(g > TIGHT_RANGE_HIGH_MG_DL))
        low, high = RANGE_63_140_LOW_MG_DL, TIGHT_RANGE_HIGH_MG_DL
        from_63 = int(np.count_nonzero((g >= low) & (g <= high)))
    row[b : b + 7] = q
    row[b + 7], row[b + 8] = q[4] - q[2], q[6] - q[0]
    row[b + 9] = risk.MAD_NORMAL_CONSTANT * mad
    row[b + 10] = 100.0 * above_140 / n
    row[b + 11] = 100.0 * from_63 / n


TABLE_MAX_MG_DL = 1000  # risk terms of whole mg/dL values up to this are computed once


@compiled
def _terms(v: float) -> tuple[float, float, float, float, float]:
    """Per-reading terms: BG risk f, GRADE score, M-value term, hyper and hypo index terms."""
    f = math.log(v) ** risk.BG_RISK_EXPONENT - risk.BG_RISK_SHIFT
    mmol = v / risk.GRADE_MG_DL_PER_MMOL_L
    grade = min(
        risk.GRADE_CAP,
        risk.GRADE_FACTOR * (math.log10(math.log10(mmol)) + risk.GRADE_SHIFT) ** 2,
    )
    m = abs(math.log10(v / 90.0)) ** 3
    hyper = (v - RODBARD_ULTR_MG_DL) ** 1.1 if v > RODBARD_ULTR_MG_DL else 0.0
    hypo = (RODBARD_LLTR_MG_DL - v) ** 2 if v < RODBARD_LLTR_MG_DL else 0.0
    return f, grade, m, hyper, hypo


@compiled
def risk_table() -> FloatArray:
    """``_terms`` of 0, 1, ..., ``TABLE_MAX_MG_DL`` mg/dL: CGM values are mostly whole mg/dL,
    so the transcendental functions run once per value, not once per reading (same numbers)."""
    table = np.empty((TABLE_MAX_MG_DL + 1, 5))
    for k in range(1, TABLE_MAX_MG_DL + 1):
        for j, term in enumerate(_terms(float(k))):
            table[k, j] = term
    table[0] = np.nan
    return table


@compiled
def _risk_sums(g: FloatArray, t: IntArray, table: FloatArray) -> npt.NDArray[np.float64]:
    """The per-reading sums of ``risk_into``, in reading order: LBGI, HBGI and ADRR terms, days,
    GRADE (all, < 80, 70-140, > 140), M-value, hyper- and hypo-index terms."""
    n = g.size
    lbgi = hbgi = adrr = m_sum = hyper_sum = hypo_sum = 0.0
    grade = grade_hypo = grade_hyper = grade_eugly = 0.0
    days = previous_day = 0
    day_lo = day_hi = 0.0
    for i in range(n):
        v = g[i]
        if v == math.floor(v) and 1.0 <= v <= TABLE_MAX_MG_DL:
            k = int(v)  # scalar reads: no array view (and no reference count) per reading
            f, s, m, hyper, hypo = table[k, 0], table[k, 1], table[k, 2], table[k, 3], table[k, 4]
        else:
            f, s, m, hyper, hypo = _terms(v)
        r = risk.BG_RISK_FACTOR * f * f
        rl, rh = (r if f < 0 else 0.0), (r if f > 0 else 0.0)
        lbgi += rl
        hbgi += rh
        day = t[i] // SECONDS_PER_DAY
        if i > 0 and day != previous_day:
            adrr += day_lo + day_hi
            days += 1
            day_lo = day_hi = 0.0
        previous_day = day
        day_lo, day_hi = max(day_lo, rl), max(day_hi, rh)
        m_sum += m
        hyper_sum += hyper
        hypo_sum += hypo
        grade += s  # the parts below add 0.0 where a reading is not theirs: no bit changes
        grade_hypo += s if v < GRADE_HYPO_BELOW_MG_DL else 0.0
        grade_hyper += s if v > GRADE_HYPER_ABOVE_MG_DL else 0.0
        grade_eugly += s if TBR_LEVEL1_MG_DL <= v <= GRADE_HYPER_ABOVE_MG_DL else 0.0
    adrr += day_lo + day_hi
    days += 1
    return np.array(
        [
            lbgi,
            hbgi,
            adrr,
            float(days),
            grade,
            grade_hypo,
            grade_eugly,
            grade_hyper,
            m_sum,
            hyper_sum,
            hypo_sum,
        ]
    )


@compiled
def risk_into(
    row: FloatArray,
    b: int,
    g: FloatArray,
    t: IntArray,
    table: FloatArray,
    summary: tuple[float, float, float, float, float],
) -> None:
    """LBGI, HBGI, ADRR, GRADE, hyper/hypo index, IGC, J, M, eA1c, COGI (``patient_metrics._risk``);
    ``summary`` is the readings' (mean, SD, % below 54, % 54-69, % 70-180)."""
    n = g.size
    sums = _risk_sums(g, t, table)
    lbgi, hbgi, adrr, days, grade, grade_hypo, grade_eugly, grade_hyper = sums[:8]
    m_sum, hyper_sum, hypo_sum = sums[8], sums[9], sums[10]
    mean, sd, vl, lo, tir = summary
    hyper_i, hypo_i = hyper_sum / (n * 30.0), hypo_sum / (n * 30.0)
    tbr = vl + lo
    tbr_score = max(0.0, 100.0 - tbr * 100.0 / risk.COGI_TBR_ZERO_PCT)
    span = risk.COGI_SD_WORST_MG_DL - risk.COGI_SD_BEST_MG_DL
    sd_score = min(100.0, max(0.0, 100.0 * (risk.COGI_SD_WORST_MG_DL - sd) / span))
    w_tir, w_tbr, w_sd = risk.COGI_WEIGHTS
    row[b : b + 14] = np.array(
        [
            lbgi / n,
            hbgi / n,
            adrr / days,
            grade / n,
            100 * grade_hypo / grade,
            100 * grade_eugly / grade,
            100 * grade_hyper / grade,
            hyper_i,
            hypo_i,
            hyper_i + hypo_i,
            risk.J_INDEX_FACTOR * (mean + sd) ** 2,
            1000.0 * m_sum / n,
            (risk.EA1C_INTERCEPT_MG_DL + mean) / risk.EA1C_SLOPE_MG_DL_PER_PCT,
            w_tir * tir + w_tbr * tbr_score + w_sd * sd_score,
        ]
    )


@compiled
def day_night_into(row: FloatArray, b: int, g: FloatArray, t: IntArray) -> None:
    """Mean and % 70-180 at night ([00:00, 06:00) wall clock) and by day. Each sum adds only
    its own readings in order (adding 0.0 to a sum that starts at 0.0 changes no bit)."""
    night_sum = day_sum = 0.0
    night_n = day_n = night_in = day_in = 0
    for i in range(g.size):
        v = g[i]
        night = t[i] % SECONDS_PER_DAY < NIGHT_END_HOUR * SECONDS_PER_HOUR
        inside = (v >= TBR_LEVEL1_MG_DL) & (v <= TAR_LEVEL1_MG_DL)
        night_sum += v if night else 0.0
        day_sum += 0.0 if night else v
        night_n += int(night)
        day_n += int(not night)
        night_in += int(night & inside)
        day_in += int(inside & (not night))
    for k, (total, n, n_in) in enumerate(
        ((night_sum, night_n, night_in), (day_sum, day_n, day_in))
    ):
        row[b + 2 * k] = total / n if n else np.nan
        row[b + 2 * k + 1] = 100.0 * n_in / n if n else np.nan


@compiled
def mage_naive(g: FloatArray, mean: float, sd: float) -> float:
    """Mean |g - mean| over readings more than one SD from the mean (``mage.mage_naive``),
    given ``mean_of`` and ``sd_of`` of ``g``."""
    total = 0.0
    n = 0
    for v in g:
        if abs(v - mean) > sd:
            total += abs(v - mean)
            n += 1
    return total / n if n else np.nan
