"""Risk and summary indices over one patient's readings (no grid). PURE.

Each function takes the readings in mg/dL (a 1-D float array without missing values) and returns
one number. Sources are cited per function; constants are named once with their source.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from glucosestream.metrics.thresholds import (
    GRADE_HYPER_ABOVE_MG_DL,
    GRADE_HYPO_BELOW_MG_DL,
    RODBARD_LLTR_MG_DL,
    RODBARD_ULTR_MG_DL,
)

__all__ = [
    "adrr",
    "cogi",
    "ea1c_pct",
    "grade_parts",
    "hbgi",
    "hyper_index",
    "hypo_index",
    "j_index",
    "lbgi",
    "m_value",
    "mad_mg_dl",
    "personal_glycemic_state",
    "personal_glycemic_states",
    "quantiles_type7",
    "risk_values",
]

FloatArray = npt.NDArray[np.float64]

# Kovatchev B.P. et al., "Symmetrization of the blood glucose measurement scale and its
# applications", Diabetes Care 1997;20:1655-1658: f(g) = 1.509 (ln(g)^1.084 - 5.381), g in mg/dL,
# and risk r(g) = 10 f(g)^2, which Kovatchev B.P. et al., "Evaluation of a new measure of blood
# glucose variability in diabetes", Diabetes Care 2006;29:2433-2438 writes with the constants
# multiplied out: r(g) = 22.77 (ln(g)^1.084 - 5.381)^2. The 2006 form is used (as iglu does).
BG_RISK_EXPONENT: Final = 1.084
BG_RISK_SHIFT: Final = 5.381
BG_RISK_FACTOR: Final = 22.77
# Nathan D.M. et al., "Translating the A1C assay into estimated average glucose values", Diabetes
# Care 2008;31:1473-1478: mean glucose = 28.7 A1c - 46.7.
EA1C_SLOPE_MG_DL_PER_PCT: Final = 28.7
EA1C_INTERCEPT_MG_DL: Final = 46.7
# Wojcicki J.M., "J-index. A new proposition of the assessment of current glucose control in
# diabetic patients", Horm Metab Res 1995;27:41-42: J = 0.001 (mean + SD)^2, mg/dL.
J_INDEX_FACTOR: Final = 0.001
# Hill N.R. et al., "A method for assessing quality of control from glucose profiles", Diabet Med
# 2007;24:753-758: GRADE(g) = 425 (log10(log10(g)) + 0.16)^2 with g in mmol/L, capped at 50.
GRADE_FACTOR: Final = 425.0
GRADE_SHIFT: Final = 0.16
GRADE_CAP: Final = 50.0
GRADE_MG_DL_PER_MMOL_L: Final = 18.0  # the conversion Hill 2007 and iglu use
# Leelarathna L. et al., "Evaluating glucose control with a novel composite continuous glucose
# monitoring index", J Diabetes Sci Technol 2020;14:277-283: COGI weights and scales.
COGI_WEIGHTS: Final = (0.5, 0.35, 0.15)  # time in range, time below range, glucose variability
COGI_TBR_ZERO_PCT: Final = 15.0  # the below-range score falls linearly from 100 at 0% to 0 at 15%
COGI_SD_BEST_MG_DL: Final = 18.0  # the SD score is 100 up to 18 mg/dL ...
COGI_SD_WORST_MG_DL: Final = 108.0  # ... and falls linearly to 0 at 108 mg/dL
MAD_NORMAL_CONSTANT: Final = 1.4826  # scales the median absolute deviation to the normal SD
PGS_START_MIN: Final = 20.0  # Hirsch 2017: PGS counts episodes of >= 20 min beyond ...
PGS_END_MIN: Final = 30.0  # ... that end after >= 30 min back
PGS_N70_CAP_PER_WEEK: Final = 7.65  # Hirsch 2017: above this the 54-69 episode score is 5


def risk_values(g: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per-reading low and high risk values rl, rh (Kovatchev 1997, 2006)."""
    f = np.log(g) ** BG_RISK_EXPONENT - BG_RISK_SHIFT
    r = BG_RISK_FACTOR * f * f
    return np.where(f < 0, r, 0.0), np.where(f > 0, r, 0.0)


def adrr(g: FloatArray, day: npt.NDArray[np.int64]) -> float:
    """Average daily risk range: the mean over calendar days of max rl + max rh (Kovatchev 2006).

    ``day`` is each reading's calendar day number, sorted ascending.
    """
    rl, rh = risk_values(g)
    starts = np.flatnonzero(np.concatenate(([True], day[1:] != day[:-1])))
    return float(np.mean(np.maximum.reduceat(rl, starts) + np.maximum.reduceat(rh, starts)))


def lbgi(g: FloatArray) -> float:
    """Low blood glucose index: mean of rl (Kovatchev B.P. et al., Diabetes Care 1998;21:1870)."""
    return float(np.mean(risk_values(g)[0]))


def hbgi(g: FloatArray) -> float:
    """High blood glucose index: mean of rh (Kovatchev B.P. et al., Diabetes Care 1998;21:1870)."""
    return float(np.mean(risk_values(g)[1]))


def ea1c_pct(mean_mg_dl: float) -> float:
    """Estimated A1c (%) from mean glucose (Nathan 2008)."""
    return (EA1C_INTERCEPT_MG_DL + mean_mg_dl) / EA1C_SLOPE_MG_DL_PER_PCT


def j_index(g: FloatArray) -> float:
    """J-index = 0.001 (mean + SD)^2 (Wojcicki 1995)."""
    return J_INDEX_FACTOR * (float(np.mean(g)) + float(np.std(g, ddof=1))) ** 2


def m_value(g: FloatArray, reference_mg_dl: float = 90.0) -> float:
    """M-value: 1000 x mean |log10(g / r)|^3 (Schlichtkrull J. et al., Acta Med Scand
    1965;177:95-102, with iglu's reference r = 90 mg/dL)."""
    return 1000.0 * float(np.mean(np.abs(np.log10(g / reference_mg_dl)) ** 3))


def grade_parts(
    g: FloatArray,
    hypo_below_mg_dl: float = GRADE_HYPO_BELOW_MG_DL,
    hyper_above_mg_dl: float = GRADE_HYPER_ABOVE_MG_DL,
) -> tuple[float, float, float, float]:
    """GRADE and the % of it from hypo (< 80), eugly (80-140) and hyper (> 140) (Hill 2007).

    Returns ``(grade, hypo_pct, eugly_pct, hyper_pct)``.
    """
    mmol = g / GRADE_MG_DL_PER_MMOL_L
    score = np.minimum(GRADE_CAP, GRADE_FACTOR * (np.log10(np.log10(mmol)) + GRADE_SHIFT) ** 2)
    total = float(score.sum())
    hypo = float(score[g < hypo_below_mg_dl].sum())
    hyper = float(score[g > hyper_above_mg_dl].sum())
    eugly = float(score[(g >= hypo_below_mg_dl) & (g <= hyper_above_mg_dl)].sum())
    return float(score.mean()), 100 * hypo / total, 100 * eugly / total, 100 * hyper / total


def hyper_index(
    g: FloatArray, ultr: float = RODBARD_ULTR_MG_DL, a: float = 1.1, c: float = 30.0
) -> float:
    """Hyperglycaemia index: sum((g - ULTR)^a over g > ULTR) / (n c) (Rodbard D., "Interpretation
    of continuous glucose monitoring data: glycemic variability and quality of glycemic control",
    Diabetes Technol Ther 2009;11 Suppl 1:S55-67)."""
    over = g[g > ultr] - ultr
    return float(np.sum(over**a)) / (g.size * c)


def hypo_index(
    g: FloatArray, lltr: float = RODBARD_LLTR_MG_DL, b: float = 2.0, d: float = 30.0
) -> float:
    """Hypoglycaemia index: sum((LLTR - g)^b over g < LLTR) / (n d) (Rodbard 2009)."""
    under = lltr - g[g < lltr]
    return float(np.sum(under**b)) / (g.size * d)


def cogi(tir_pct: float, tbr_pct: float, sd_mg_dl: float) -> float:
    """Continuous glucose monitoring index (Leelarathna 2020)."""
    tbr_score = max(0.0, 100.0 - tbr_pct * 100.0 / COGI_TBR_ZERO_PCT)
    span = COGI_SD_WORST_MG_DL - COGI_SD_BEST_MG_DL
    sd_score = min(100.0, max(0.0, 100.0 * (COGI_SD_WORST_MG_DL - sd_mg_dl) / span))
    w_tir, w_tbr, w_sd = COGI_WEIGHTS
    return w_tir * tir_pct + w_tbr * tbr_score + w_sd * sd_score


def mad_mg_dl(g: FloatArray) -> float:
    """Median absolute deviation x 1.4826 (Hampel F.R., J Am Stat Assoc 1974;69:383-393)."""
    return MAD_NORMAL_CONSTANT * float(np.median(np.abs(g - np.median(g))))


def quantiles_type7(g: FloatArray, probs_pct: tuple[float, ...]) -> list[float]:
    """Sample quantiles, Hyndman-Fan type 7 (linear; R's default and numpy's ``linear``)."""
    return [float(v) for v in np.quantile(g, np.asarray(probs_pct) / 100.0, method="linear")]


def personal_glycemic_state(
    *,
    gvp_pct: float,
    mean_mg_dl: float,
    tir_pct: float,
    n54_per_week: float,
    n70_per_week: float,
) -> float:
    """Personal glycemic state: the sum of four scores of 1-10 (GVP, mean glucose, time in
    range, hypoglycaemia), where hypoglycaemia is scored from episodes per week below 54 and of
    54-69 mg/dL (Hirsch I.B. et al., "Glycemic Variability and Diabetes Complications: Does It
    Matter? Of Course It Does!", Diabetes Care 2015;38:1610-1614, and Hirsch I.B. et al.,
    Diabetes Technol Ther 2017;19:S38-S48)."""
    return float(
        personal_glycemic_states(
            gvp_pct=np.asarray(gvp_pct),
            mean_mg_dl=np.asarray(mean_mg_dl),
            tir_pct=np.asarray(tir_pct),
            n54_per_week=np.asarray(n54_per_week),
            n70_per_week=np.asarray(n70_per_week),
        )
    )


def personal_glycemic_states(
    *,
    gvp_pct: FloatArray,
    mean_mg_dl: FloatArray,
    tir_pct: FloatArray,
    n54_per_week: FloatArray,
    n70_per_week: FloatArray,
) -> FloatArray:
    """``personal_glycemic_state`` of many patients at once (the same operations, element by
    element, so the same numbers)."""
    f_gvp = 1.0 + 9.0 / (1.0 + np.exp(-0.049 * (gvp_pct - 65.47)))
    f_mg = 1.0 + 9.0 * (
        1.0 / (1.0 + np.exp(0.1139 * (mean_mg_dl - 72.08)))
        + 1.0 / (1.0 + np.exp(-0.09195 * (mean_mg_dl - 157.57)))
    )
    f_tir = 1.0 + 9.0 / (1.0 + np.exp(0.0833 * (tir_pct - 55.04)))
    f_54 = 0.5 + 4.5 * (1.0 - np.exp(-0.81093 * n54_per_week))
    f_70 = np.where(n70_per_week <= PGS_N70_CAP_PER_WEEK, 0.5714 * n70_per_week + 0.625, 5.0)
    total: FloatArray = f_gvp + f_mg + f_tir + f_54 + f_70
    return total
