"""Differential privacy, only through OpenDP, and the budget spent on it.

``mechanisms`` builds OpenDP measurements (clamp → resize → mean → Laplace; count → Laplace)
calibrated to an epsilon; ``release`` spends a dataset's budget in the ledger
(``lake.privacy_ledger``) *before* any noisy value is computed, so a release that would exceed
the budget is refused whole and nothing leaves. No noise is drawn anywhere else in GlucoseStream.
"""

from __future__ import annotations

from glucosestream.privacy.mechanisms import (
    COHORT_STATISTICS,
    CohortStatistic,
    PrivateValue,
    laplace_scale_for_mean,
    private_count,
    private_mean,
)
from glucosestream.privacy.release import DEFAULT_BUDGET_EPSILON, CohortRelease, release_cohort

__all__ = [
    "COHORT_STATISTICS",
    "DEFAULT_BUDGET_EPSILON",
    "CohortRelease",
    "CohortStatistic",
    "PrivateValue",
    "laplace_scale_for_mean",
    "private_count",
    "private_mean",
    "release_cohort",
]
