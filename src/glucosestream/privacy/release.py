"""A cohort release: spend the dataset's budget in the ledger first, then draw the noise.

The count of patients is released first (it sizes the means); each asked-for mean follows. The
whole release costs ``epsilon_each x (1 + number of means)`` of the dataset's budget, recorded
as one ledger entry; a release that would exceed the budget raises ``BudgetExceeded`` before
any value is computed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from glucosestream.access import Principal
from glucosestream.errors import InvalidInput
from glucosestream.lake import PrivacyLedger
from glucosestream.privacy.mechanisms import (
    COHORT_STATISTICS,
    PrivateValue,
    private_count,
    private_mean,
)

__all__ = [
    "DEFAULT_BUDGET_EPSILON",
    "MAX_EPSILON_EACH",
    "MIN_EPSILON_EACH",
    "CohortRelease",
    "release_cohort",
]

# Total epsilon per dataset. 1.0 is a common, conservative total budget for statistics shared
# outside the data holder (Dwork & Roth 2014 discuss epsilon of order 1).
DEFAULT_BUDGET_EPSILON: Final = 1.0
MAX_EPSILON_EACH: Final = 1.0
# Below this the noise of a count alone has a scale over 1,000 patients: the release says
# nothing, and a tiny epsilon such as 1e-300 overflows OpenDP's scale (issue 13, finding 6).
MIN_EPSILON_EACH: Final = 0.001
_BY_NAME: Final = {s.name: s for s in COHORT_STATISTICS}


@dataclass(frozen=True, slots=True)
class CohortRelease:
    dataset: str
    patients: PrivateValue
    means: dict[str, PrivateValue]
    epsilon_spent: float
    budget_left: float


def _check(statistics: Sequence[str], epsilon_each: float) -> None:
    unknown = [s for s in statistics if s not in _BY_NAME]
    if unknown:
        raise InvalidInput(f"unknown statistics {unknown}; choose from {sorted(_BY_NAME)}")
    if not MIN_EPSILON_EACH <= epsilon_each <= MAX_EPSILON_EACH:
        raise InvalidInput(
            f"epsilon per statistic must be in [{MIN_EPSILON_EACH:g}, {MAX_EPSILON_EACH:g}], "
            f"got {epsilon_each:g}; nothing was spent"
        )


def release_cohort(
    ledger: PrivacyLedger,
    principal: Principal,
    *,
    dataset: str,
    values: Mapping[str, Sequence[float]],
    statistics: Sequence[str],
    epsilon_each: float,
    budget: float,
    at: dt.datetime,
) -> CohortRelease:
    """Release the patient count and the means of ``statistics`` (names in COHORT_STATISTICS)
    over ``values`` (column → one value per patient, the same patients for every column)."""
    statistics = list(dict.fromkeys(statistics))
    _check(statistics, epsilon_each)
    total = epsilon_each * (1 + len(statistics))
    left = ledger.spend(
        dataset,
        total,
        budget,
        mechanism="opendp:count-laplace+clamp-resize-mean-laplace",
        query="count," + ",".join(statistics),
        token_id=principal.token_id,
        at=at,
    )
    first = _BY_NAME[statistics[0]].column if statistics else "mean_mg_dl"
    patients = private_count(values.get(first, []), epsilon=epsilon_each)
    size = max(1, round(patients.value))
    means = {}
    for name in statistics:
        stat = _BY_NAME[name]
        means[name] = private_mean(
            values.get(stat.column, []), stat.lower, stat.upper, size=size, epsilon=epsilon_each
        )
    return CohortRelease(dataset, patients, means, total, left)
