"""The plausible bounds of every cohort statistic, in one table (PURE).

A released statistic is the mean over patients of one per-patient value. Each per-patient value
is clamped to its statistic's bounds *before* the mechanism (so the mean's sensitivity,
(upper - lower) / n, is what OpenDP calibrates the noise to), and the noisy mean is clamped to
the same bounds *after* it (post-processing, which keeps differential privacy: Dwork & Roth
2014, Proposition 2.1). A release therefore never shows a value no cohort could have.

- Glucose: 40-400 mg/dL, the reporting range of the sensors GlucoseStream reads (Dexcom G6/G7
  and Medtronic Guardian user guides); ingest stores a sensor's LOW/HIGH at these limits
  (``formats.dexcom``, ``formats.carelink``), so no per-patient mean lies outside them.
- Percentages of time: 0-100 %.
- GMI: derived from the released mean glucose by its formula, GMI (%) = 3.31 + 0.02392 x mean
  glucose (Bergenstal 2018; ``metrics.glycemic.gmi_pct``), so its bounds are the formula at
  40 and 400 mg/dL (4.27-12.88 %) and it costs no budget of its own (post-processing).
docs/privacy.md prints this table (a cog block calls ``bounds_table``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from glucosestream.metrics.glycemic import gmi_pct

__all__ = [
    "COHORT_STATISTICS",
    "GLUCOSE_LOWER_MG_DL",
    "GLUCOSE_UPPER_MG_DL",
    "CohortStatistic",
    "bounds_table",
    "statistic",
]

GLUCOSE_LOWER_MG_DL: Final = 40.0  # sensors' lowest reported value (Dexcom G6/G7, Guardian)
GLUCOSE_UPPER_MG_DL: Final = 400.0  # sensors' highest reported value


@dataclass(frozen=True, slots=True)
class CohortStatistic:
    """A per-patient value whose cohort mean can be released, with its plausible bounds."""

    name: str
    column: str  # column of the triage aggregate (one value per patient)
    label: str
    unit: str
    lower: float
    upper: float
    source: str  # where the bounds come from
    derived_from: str | None = None  # computed from that statistic's release (no budget)

    def clamp(self, value: float) -> float:
        """``value`` within [lower, upper]; NaN has no place in a release and becomes the
        midpoint (callers drop NaN inputs first; this keeps a released value in bounds)."""
        if math.isnan(value):
            return (self.lower + self.upper) / 2.0
        return min(self.upper, max(self.lower, value))


COHORT_STATISTICS: Final = (
    CohortStatistic(
        "mean_glucose",
        "mean_mg_dl",
        "Mean of patients' mean glucose",
        "mg/dL",
        GLUCOSE_LOWER_MG_DL,
        GLUCOSE_UPPER_MG_DL,
        "sensor reporting range (Dexcom G6/G7, Medtronic Guardian)",
    ),
    CohortStatistic(
        "time_in_range",
        "pct_70_180",
        "Mean time in range 70-180 mg/dL",
        "%",
        0.0,
        100.0,
        "a percentage of time",
    ),
    CohortStatistic(
        "time_below_70",
        "pct_below_70",
        "Mean time below 70 mg/dL",
        "%",
        0.0,
        100.0,
        "a percentage of time",
    ),
    CohortStatistic(
        "gmi",
        "gmi_pct",
        "Mean GMI (from the released mean glucose)",
        "%",
        gmi_pct(GLUCOSE_LOWER_MG_DL),
        gmi_pct(GLUCOSE_UPPER_MG_DL),
        "GMI = 3.31 + 0.02392 x mean glucose (Bergenstal 2018) at the glucose bounds",
        derived_from="mean_glucose",
    ),
)
_BY_NAME: Final = {s.name: s for s in COHORT_STATISTICS}


def statistic(name: str) -> CohortStatistic:
    """The statistic called ``name`` (KeyError for an unknown one: callers check names first)."""
    return _BY_NAME[name]


def bounds_table() -> str:
    """The bounds as a Markdown table, for docs/privacy.md."""
    rows = [
        "| Statistic | Per-patient column | Lower | Upper | Unit | Bounds from |",
        "|---|---|---|---|---|---|",
    ]
    for s in COHORT_STATISTICS:
        rows.append(
            f"| `{s.name}` | `{s.column}` | {s.lower:.2f} | {s.upper:.2f} | {s.unit} | {s.source} |"
        )
    return "\n".join(rows)
