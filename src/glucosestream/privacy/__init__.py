"""Differential privacy, only through OpenDP, and the budget spent on it.

``bounds`` is the one table of each cohort statistic's plausible bounds (PURE); ``mechanisms``
builds OpenDP measurements (clamp → resize → mean → Laplace; count → Laplace) calibrated to an
epsilon, and clamps each noisy value to its bounds; ``release`` refuses a cohort under the
minimum size, then spends a dataset's budget in the ledger (``lake.privacy_ledger``) *before*
any noisy value is computed, so a release that would exceed the budget is refused whole and
nothing leaves. No noise is drawn anywhere else in GlucoseStream.
"""

from __future__ import annotations

from glucosestream.privacy.bounds import COHORT_STATISTICS, CohortStatistic, bounds_table
from glucosestream.privacy.mechanisms import (
    PrivateValue,
    laplace_scale_for_mean,
    private_count,
    private_mean,
)
from glucosestream.privacy.release import (
    DEFAULT_BUDGET_EPSILON,
    DEFAULT_EPSILON_EACH,
    MAX_EPSILON_EACH,
    MIN_EPSILON_EACH,
    CohortRelease,
    margin_95,
    release_cohort,
    release_cost,
)

__all__ = [
    "COHORT_STATISTICS",
    "DEFAULT_BUDGET_EPSILON",
    "DEFAULT_EPSILON_EACH",
    "MAX_EPSILON_EACH",
    "MIN_EPSILON_EACH",
    "CohortRelease",
    "CohortStatistic",
    "PrivateValue",
    "bounds_table",
    "laplace_scale_for_mean",
    "margin_95",
    "private_count",
    "private_mean",
    "release_cohort",
    "release_cost",
]
