"""The numbers the metric definitions share, each named once with its source. PURE.

The per-patient reference (``reference``), the compiled kernels (``kernels``, which compile these
in as constants), the daily SQL model (``daily_metrics.sql``, given them as parameters) and the
spec (``spec``) all read them from here, so a threshold lives in one place.

Range edges follow the consensus and iglu: "below X" is < X, "above X" is > X, and a range
"X-Y" includes both ends.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "AGP_PERCENTILES",
    "DEFAULT_INTER_GAP_MIN",
    "GRADE_HYPER_ABOVE_MG_DL",
    "GRADE_HYPO_BELOW_MG_DL",
    "MINUTES_PER_DAY",
    "MIN_ACTIVE_PCT",
    "MIN_DAYS",
    "RANGE_63_140_LOW_MG_DL",
    "RODBARD_LLTR_MG_DL",
    "RODBARD_ULTR_MG_DL",
    "SECONDS_PER_DAY",
    "TAR_LEVEL1_MG_DL",
    "TAR_LEVEL2_MG_DL",
    "TBR_LEVEL1_MG_DL",
    "TBR_LEVEL2_MG_DL",
    "TIGHT_RANGE_HIGH_MG_DL",
    "TIR_TARGET_PCT",
]

# Battelino 2019 (Diabetes Care 42:1593) and 2023 (Lancet Diabetes Endocrinol 11:42).
TBR_LEVEL2_MG_DL: Final = 54.0  # level 2 hypoglycaemia, < 54 mg/dL
TBR_LEVEL1_MG_DL: Final = 70.0  # below range, < 70 mg/dL; the target range starts here
TAR_LEVEL1_MG_DL: Final = 180.0  # above range, > 180 mg/dL; the target range ends here
TAR_LEVEL2_MG_DL: Final = 250.0  # level 2 hyperglycaemia, > 250 mg/dL
TIGHT_RANGE_HIGH_MG_DL: Final = 140.0  # time in tight range 70-140 (iglu in_range_70_140)
RANGE_63_140_LOW_MG_DL: Final = 63.0  # iglu all_metrics' in_range_63_140
AGP_PERCENTILES: Final = (5.0, 25.0, 50.0, 75.0, 95.0)  # Battelino 2019, the AGP report
MIN_DAYS: Final = 14  # Battelino 2019: 14 days of data ...
MIN_ACTIVE_PCT: Final = 70.0  # ... with >= 70 % of the possible readings
TIR_TARGET_PCT: Final = 70.0  # time in range 70-180 over 70 % (most adults, Battelino 2019)

# Rodbard 2009 (Diabetes Technol Ther 11:S55) hyper- and hypoglycaemic indices, iglu defaults.
RODBARD_ULTR_MG_DL: Final = 140.0  # upper limit of the target range
RODBARD_LLTR_MG_DL: Final = 80.0  # lower limit of the target range
# GRADE's hypo-, eu- and hyperglycaemic shares (Hill 2007, iglu defaults): < 80, 70-140, > 140.
GRADE_HYPO_BELOW_MG_DL: Final = 80.0
GRADE_HYPER_ABOVE_MG_DL: Final = 140.0

# The clock: days, and iglu's gap that is not interpolated across (Broll 2021).
MINUTES_PER_DAY: Final = 1440
SECONDS_PER_DAY: Final = 86_400
DEFAULT_INTER_GAP_MIN: Final = 45  # iglu's default: longer gaps are not interpolated across
