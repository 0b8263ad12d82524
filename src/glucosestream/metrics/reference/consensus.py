"""The consensus core over one patient's readings. PURE.

Battelino T. et al., "Clinical Targets for Continuous Glucose Monitoring Data Interpretation:
Recommendations From the International Consensus on Time in Range", Diabetes Care
2019;42:1593-1603, and Battelino T. et al., "Continuous glucose monitoring and metrics for
clinical trials: an international consensus statement", Lancet Diabetes Endocrinol
2023;11:42-57: mean, SD (sample), CV = SD / mean, GMI, and five range bands: very low < 54,
low 54-69 (54 <= g < 70), in range 70-180 (both ends included), high 181-250 (180 < g <= 250),
very high > 250 mg/dL. Count-based percentages are of readings; time-weighted ones are of the
non-missing points of the interpolation grid, which are equally spaced in time.

GRI: Klonoff D.C. et al., "A Glycemia Risk Index (GRI) of Hypoglycemia and Hyperglycemia for
Continuous Glucose Monitoring Validated by Clinician Ratings", J Diabetes Sci Technol
2023;17:1226-1242.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from glucosestream.metrics.glycemic import gmi_pct
from glucosestream.metrics.thresholds import (
    TAR_LEVEL1_MG_DL,
    TAR_LEVEL2_MG_DL,
    TBR_LEVEL1_MG_DL,
    TBR_LEVEL2_MG_DL,
)

__all__ = [
    "GRI_MAX",
    "GRI_ZONE_UPPER",
    "RangeBands",
    "coefficient_of_variation_pct",
    "glycemia_risk_index",
    "gmi_pct",
    "gri_zone",
    "range_bands",
]

FloatArray = npt.NDArray[np.float64]

# Klonoff 2023: GRI = 3.0 VLow + 2.4 Low + 1.6 VHigh + 0.8 High = 3 x hypo + 1.6 x hyper, where
# hypo = VLow + 0.8 Low and hyper = VHigh + 0.5 High; values above 100 are reported as 100.
GRI_HYPO_WEIGHT: Final = 3.0
GRI_HYPER_WEIGHT: Final = 1.6
GRI_LOW_IN_HYPO: Final = 0.8
GRI_HIGH_IN_HYPER: Final = 0.5
GRI_MAX: Final = 100.0
# Klonoff 2023: zones A-E are the quintiles of the GRI scale (0-20, 21-40, ..., 81-100).
GriZone = Literal["A", "B", "C", "D", "E"]
GRI_ZONE_UPPER: Final[tuple[tuple[GriZone, float], ...]] = (
    ("A", 20.0),
    ("B", 40.0),
    ("C", 60.0),
    ("D", 80.0),
    ("E", GRI_MAX),
)


@dataclass(frozen=True, slots=True)
class RangeBands:
    """The five consensus bands, in percent; they sum to 100."""

    very_low_pct: float  # < 54
    low_pct: float  # 54 <= g < 70
    in_range_pct: float  # 70 <= g <= 180
    high_pct: float  # 180 < g <= 250
    very_high_pct: float  # > 250

    @property
    def below_70_pct(self) -> float:
        return self.very_low_pct + self.low_pct

    @property
    def above_180_pct(self) -> float:
        return self.high_pct + self.very_high_pct


def range_bands(glucose_mg_dl: FloatArray) -> RangeBands:
    """Percentages of the values (NaN ignored) in each consensus band (Battelino 2019/2023)."""
    g = glucose_mg_dl[~np.isnan(glucose_mg_dl)]
    n = g.size
    if n == 0:
        nan = float("nan")
        return RangeBands(nan, nan, nan, nan, nan)
    below_54 = int(np.count_nonzero(g < TBR_LEVEL2_MG_DL))
    below_70 = int(np.count_nonzero(g < TBR_LEVEL1_MG_DL))
    above_180 = int(np.count_nonzero(g > TAR_LEVEL1_MG_DL))
    above_250 = int(np.count_nonzero(g > TAR_LEVEL2_MG_DL))
    scale = 100.0 / n
    return RangeBands(
        very_low_pct=below_54 * scale,
        low_pct=(below_70 - below_54) * scale,
        in_range_pct=(n - below_70 - above_180) * scale,
        high_pct=(above_180 - above_250) * scale,
        very_high_pct=above_250 * scale,
    )


def coefficient_of_variation_pct(glucose_mg_dl: FloatArray) -> float:
    """CV = 100 x sample SD / mean (Battelino 2019; Danne T. et al., Diabetes Care 2017)."""
    if glucose_mg_dl.size < 2:
        return float("nan")
    return 100.0 * float(np.std(glucose_mg_dl, ddof=1)) / float(np.mean(glucose_mg_dl))


def glycemia_risk_index(bands: RangeBands) -> tuple[float, float, float]:
    """GRI and its hypoglycaemia and hyperglycaemia components (Klonoff 2023).

    Returns ``(gri, hypo_component, hyper_component)``; GRI is capped at 100.
    """
    hypo = bands.very_low_pct + GRI_LOW_IN_HYPO * bands.low_pct
    hyper = bands.very_high_pct + GRI_HIGH_IN_HYPER * bands.high_pct
    gri = min(GRI_MAX, GRI_HYPO_WEIGHT * hypo + GRI_HYPER_WEIGHT * hyper)
    return gri, hypo, hyper


def gri_zone(gri: float) -> GriZone | None:
    """The GRI zone, A (lowest risk, 0-20) to E (highest, 80-100) (Klonoff 2023)."""
    if np.isnan(gri):
        return None
    for zone, upper in GRI_ZONE_UPPER:
        if gri <= upper:
            return zone
    return "E"
