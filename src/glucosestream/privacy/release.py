"""A cohort release: check the cohort's size, spend the dataset's budget, then draw the noise.

A release is refused, spending nothing, when the cohort has fewer patients with data than the
minimum (``dashboard.privacy_min_patients``, default 20): with few patients the noise that
hides each one is wider than the statistic's whole range, so the figures would say nothing.
The refusal is seen only by the analyst, who may read every patient of the dataset already;
what leaves is the released figures, which are differentially private.

The count of patients is released first (it sizes the means); each asked-for mean follows, and
GMI is derived from the released mean glucose (post-processing: no budget of its own). The
release costs ``epsilon_each x (1 + number of means drawn)`` of the dataset's lifetime budget,
recorded as one ledger entry; a release that would exceed the budget raises ``BudgetExceeded``
before any value is computed. Every value is clamped to its bounds (``privacy.bounds``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from glucosestream.access import Principal
from glucosestream.errors import CohortTooSmall, InvalidInput
from glucosestream.lake import PrivacyLedger
from glucosestream.metrics.glycemic import gmi_pct
from glucosestream.privacy.bounds import COHORT_STATISTICS, CohortStatistic, statistic
from glucosestream.privacy.mechanisms import PrivateValue, private_count, private_mean

__all__ = [
    "DEFAULT_BUDGET_EPSILON",
    "DEFAULT_EPSILON_EACH",
    "MAX_EPSILON_EACH",
    "MIN_EPSILON_EACH",
    "CohortRelease",
    "margin_95",
    "release_cohort",
    "release_cost",
]

# Total epsilon per dataset over its lifetime. 1.0 is a common, conservative total budget for
# statistics shared outside the data holder (Dwork & Roth 2014 discuss epsilon of order 1).
DEFAULT_BUDGET_EPSILON: Final = 1.0
# The default epsilon per drawn value: a full release (count, mean glucose, time in range, time
# below 70; GMI is derived) spends 4 x 0.025 = 0.1, a tenth of the default lifetime budget, so
# a dataset allows ten full releases rather than two (issue 18: one release spent half).
DEFAULT_EPSILON_EACH: Final = 0.025
MAX_EPSILON_EACH: Final = 1.0
# Below this the noise of a count alone has a scale over 1,000 patients: the release says
# nothing, and a tiny epsilon such as 1e-300 overflows OpenDP's scale (issue 13, finding 6).
MIN_EPSILON_EACH: Final = 0.001
_Z_95: Final = math.log(20.0)  # P(|Laplace(b)| > b ln 20) = 5 %


@dataclass(frozen=True, slots=True)
class CohortRelease:
    dataset: str
    patients: PrivateValue
    means: dict[str, PrivateValue]  # every asked statistic, in bounds (GMI derived)
    epsilon_spent: float
    budget_left: float
    budget: float


def margin_95(value: PrivateValue) -> float:
    """Half-width of the 95 % interval of the value's Laplace noise (before clamping)."""
    return value.scale * _Z_95


def _drawn(statistics: Sequence[str]) -> list[CohortStatistic]:
    """The statistics whose means are drawn with noise (a derived one draws its source)."""
    names = [statistic(n).derived_from or n for n in statistics]
    return [statistic(n) for n in dict.fromkeys(names)]


def release_cost(statistics: Sequence[str], epsilon_each: float) -> float:
    """The epsilon a release of ``statistics`` spends: the count plus each drawn mean."""
    return epsilon_each * (1 + len(_drawn(statistics)))


def _check(statistics: Sequence[str], epsilon_each: float) -> None:
    known = {s.name for s in COHORT_STATISTICS}
    unknown = [s for s in statistics if s not in known]
    if unknown or not statistics:
        raise InvalidInput(f"unknown statistics {unknown}; choose from {sorted(known)}")
    if not MIN_EPSILON_EACH <= epsilon_each <= MAX_EPSILON_EACH:
        raise InvalidInput(
            f"epsilon per statistic must be in [{MIN_EPSILON_EACH:g}, {MAX_EPSILON_EACH:g}], "
            f"got {epsilon_each:g}; nothing was spent"
        )


def _derive(stat: CohortStatistic, source: PrivateValue) -> PrivateValue:
    """GMI from the released mean glucose: its formula, clamped (post-processing)."""
    value = stat.clamp(gmi_pct(source.value))
    slope = gmi_pct(1.0) - gmi_pct(0.0)
    return PrivateValue(
        value, 0.0, source.scale * slope, "derived:" + str(stat.derived_from), source.at_bound
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
    min_patients: int,
) -> CohortRelease:
    """Release the patient count and the means of ``statistics`` (names in COHORT_STATISTICS)
    over ``values`` (column → one value per patient, the same patients for every column), if
    they are ``min_patients`` at least (``dashboard.privacy_min_patients``: 20 follows the
    small-cell rules of health statistics, which suppress cells under 10-20 people)."""
    statistics = list(dict.fromkeys(statistics))
    _check(statistics, epsilon_each)
    drawn = _drawn(statistics)
    patients = max(len(values.get(s.column, ())) for s in drawn)
    if patients < min_patients:
        raise CohortTooSmall(dataset, patients, min_patients)
    total = release_cost(statistics, epsilon_each)
    left = ledger.spend(
        dataset,
        total,
        budget,
        mechanism="opendp:count-laplace+clamp-resize-mean-laplace",
        query="count," + ",".join(statistics),
        token_id=principal.token_id,
        at=at,
    )
    count = private_count([0.0] * patients, epsilon=epsilon_each)
    size = max(1, round(count.value))
    means = {
        s.name: private_mean(
            values.get(s.column, []), s.lower, s.upper, size=size, epsilon=epsilon_each
        )
        for s in drawn
    }
    for name in statistics:
        stat = statistic(name)
        if stat.derived_from is not None:
            means[name] = _derive(stat, means[stat.derived_from])
    ordered = {n: means[n] for n in [*statistics, *means] if n in means}
    return CohortRelease(dataset, count, ordered, total, left, budget)
