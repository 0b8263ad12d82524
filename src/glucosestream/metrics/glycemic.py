"""Reference implementations of the daily consensus metrics over one array of readings. PURE.

Definitions: Battelino T. et al., "Clinical Targets for Continuous Glucose Monitoring Data
Interpretation: Recommendations From the International Consensus on Time in Range", Diabetes Care
2019;42:1593-1603 (ranges <54, <70, 70-180, >180, >250 mg/dL; CV = SD/mean; the SD is the sample
SD). GMI: Bergenstal R.M. et al., "Glucose Management Indicator (GMI)", Diabetes Care
2018;41:2275-2280: GMI (%) = 3.31 + 0.02392 x mean glucose (mg/dL).

Range edges follow the consensus and iglu: "below X" is < X, "above X" is > X, and the target
range 70-180 includes both ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from glucosestream.metrics.thresholds import (
    TAR_LEVEL1_MG_DL,
    TAR_LEVEL2_MG_DL,
    TBR_LEVEL1_MG_DL,
    TBR_LEVEL2_MG_DL,
)

__all__ = [
    "GMI_INTERCEPT_PCT",
    "GMI_SLOPE_PCT_PER_MG_DL",
    "DailySummary",
    "gmi_pct",
    "summarise_day",
]

GMI_INTERCEPT_PCT: Final = 3.31  # Bergenstal 2018
GMI_SLOPE_PCT_PER_MG_DL: Final = 0.02392  # Bergenstal 2018


@dataclass(frozen=True, slots=True)
class DailySummary:
    readings: int
    mean_mg_dl: float
    sd_mg_dl: float | None
    cv_pct: float | None
    gmi_pct: float
    pct_below_54: float
    pct_below_70: float
    pct_70_180: float
    pct_above_180: float
    pct_above_250: float


def gmi_pct(mean_mg_dl: float) -> float:
    """Glucose management indicator (%) from mean glucose in mg/dL (Bergenstal 2018)."""
    return GMI_INTERCEPT_PCT + GMI_SLOPE_PCT_PER_MG_DL * mean_mg_dl


def summarise_day(glucose_mg_dl: npt.ArrayLike) -> DailySummary:
    """The reading-count metrics of one patient-day. Needs at least one reading."""
    g = np.asarray(glucose_mg_dl, dtype=np.float64)
    if g.size == 0:
        raise ValueError("summarise_day needs at least one reading")
    mean = float(g.mean())
    sd = float(g.std(ddof=1)) if g.size > 1 else None

    def pct(mask: npt.NDArray[np.bool_]) -> float:
        return 100.0 * float(mask.sum()) / g.size

    return DailySummary(
        readings=int(g.size),
        mean_mg_dl=mean,
        sd_mg_dl=sd,
        cv_pct=None if sd is None else 100.0 * sd / mean,
        gmi_pct=gmi_pct(mean),
        pct_below_54=pct(g < TBR_LEVEL2_MG_DL),
        pct_below_70=pct(g < TBR_LEVEL1_MG_DL),
        pct_70_180=pct((g >= TBR_LEVEL1_MG_DL) & (g <= TAR_LEVEL1_MG_DL)),
        pct_above_180=pct(g > TAR_LEVEL1_MG_DL),
        pct_above_250=pct(g > TAR_LEVEL2_MG_DL),
    )
