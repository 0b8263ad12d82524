"""Cohort releases cannot print nonsense (issue 18): every released value lies within its
statistic's plausible bounds for any cohort, tiny and adversarial ones included; a cohort under
the minimum size is refused before anything is spent; the default release spends a tenth of
the lifetime budget, not half."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glucosestream.access import Principal
from glucosestream.config import DashboardSettings, LakeSettings
from glucosestream.errors import CohortTooSmall
from glucosestream.lake import open_access
from glucosestream.metrics.glycemic import gmi_pct
from glucosestream.privacy import (
    COHORT_STATISTICS,
    DEFAULT_BUDGET_EPSILON,
    DEFAULT_EPSILON_EACH,
    MAX_EPSILON_EACH,
    MIN_EPSILON_EACH,
    bounds_table,
    private_count,
    private_mean,
    release_cohort,
    release_cost,
)

AT = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
ADMIN = Principal("tok123", "admin", frozenset(), None, "t")
NAMES = [s.name for s in COHORT_STATISTICS]
MIN_COHORT_PATIENTS = DashboardSettings().privacy_min_patients  # 20
BOUNDS = {s.name: (s.lower, s.upper) for s in COHORT_STATISTICS}

# Per-patient values as hostile as a float can be: far outside every bound, infinite, NaN.
wild = st.floats(allow_nan=True, allow_infinity=True)
epsilons = st.sampled_from([MIN_EPSILON_EACH, DEFAULT_EPSILON_EACH, 0.1, 0.5, MAX_EPSILON_EACH])


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    return open_access(LakeSettings(root=str(tmp_path_factory.mktemp("bounds") / "lake"))).ledger


def test_the_bounds_are_the_documented_plausible_ranges():
    assert BOUNDS["mean_glucose"] == (40.0, 400.0)  # the sensors' reporting range
    assert BOUNDS["time_in_range"] == BOUNDS["time_below_70"] == (0.0, 100.0)
    assert BOUNDS["gmi"] == pytest.approx((gmi_pct(40.0), gmi_pct(400.0)))
    assert BOUNDS["gmi"] == pytest.approx((4.2668, 12.878))
    table = bounds_table()
    assert all(f"`{name}`" in table for name in NAMES)


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(wild, max_size=8),
    stat=st.sampled_from([s for s in COHORT_STATISTICS if s.derived_from is None]),
    size=st.integers(1, 8),
    epsilon=epsilons,
)
def test_a_private_mean_lies_in_its_bounds_whatever_the_values(values, stat, size, epsilon):
    released = private_mean(values, stat.lower, stat.upper, size=size, epsilon=epsilon)
    assert stat.lower <= released.value <= stat.upper
    assert released.at_bound == (released.value in (stat.lower, stat.upper))


@settings(max_examples=50, deadline=None)
@given(patients=st.integers(0, 5), epsilon=epsilons)
def test_a_private_count_is_never_negative(patients, epsilon):
    assert private_count([1.0] * patients, epsilon=epsilon).value >= 0


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    patients=st.lists(st.tuples(wild, wild, wild, wild), min_size=1, max_size=6),
    chosen=st.lists(st.sampled_from(NAMES), min_size=1, max_size=4),
    epsilon=epsilons,
)
def test_every_released_value_lies_in_its_bounds_for_any_cohort(ledger, patients, chosen, epsilon):
    """Tiny cohorts (1-6 patients, the minimum lowered to 1) of hostile values: the noise is
    far wider than any range, and still nothing released leaves its bounds."""
    columns = [s.column for s in COHORT_STATISTICS]
    values = {c: [p[i] for p in patients] for i, c in enumerate(columns)}
    release = release_cohort(
        ledger,
        ADMIN,
        dataset="cohort:any",
        values=values,
        statistics=chosen,
        epsilon_each=epsilon,
        budget=math.inf,
        at=AT,
        min_patients=1,
    )
    assert set(chosen) <= set(release.means)
    for name, value in release.means.items():
        lower, upper = BOUNDS[name]
        assert lower <= value.value <= upper, (name, value)
    assert release.patients.value >= 0
    if "gmi" in release.means:  # derived from the released mean glucose, at no extra cost
        assert release.means["gmi"].value == pytest.approx(
            gmi_pct(release.means["mean_glucose"].value)
        )
        assert release.means["gmi"].epsilon == 0.0


def test_the_issue_cohort_of_six_is_refused_and_spends_nothing(tmp_path):
    """Issue 18: 6 patients at the default epsilon showed a mean glucose of -297.89 mg/dL."""
    ledger = open_access(LakeSettings(root=str(tmp_path / "lake"))).ledger
    values = {s.column: [100.0] * 6 for s in COHORT_STATISTICS}
    with pytest.raises(CohortTooSmall) as refused:
        release_cohort(
            ledger,
            ADMIN,
            dataset="cohort:all",
            values=values,
            statistics=NAMES,
            epsilon_each=DEFAULT_EPSILON_EACH,
            budget=DEFAULT_BUDGET_EPSILON,
            at=AT,
            min_patients=MIN_COHORT_PATIENTS,
        )
    message = str(refused.value)
    assert "has 6 patient(s) with data" in message
    assert f"needs at least {MIN_COHORT_PATIENTS}" in message
    assert "Nothing was released or spent" in message
    assert "PRIVACY_MIN_PATIENTS" in message
    assert refused.value.status == 409
    assert ledger.spent("cohort:all") == 0.0


def test_a_cohort_at_the_minimum_is_released(tmp_path):
    ledger = open_access(LakeSettings(root=str(tmp_path / "lake"))).ledger
    values = {s.column: [120.0] * MIN_COHORT_PATIENTS for s in COHORT_STATISTICS}
    release = release_cohort(
        ledger,
        ADMIN,
        dataset="cohort:all",
        values=values,
        statistics=["time_in_range"],
        epsilon_each=DEFAULT_EPSILON_EACH,
        budget=DEFAULT_BUDGET_EPSILON,
        at=AT,
        min_patients=MIN_COHORT_PATIENTS,
    )
    assert 0.0 <= release.means["time_in_range"].value <= 100.0


def test_the_default_release_spends_a_tenth_of_the_lifetime_budget():
    """Issue 18: one release spent half the lifetime budget (5 x 0.1 of 1.0). Now every
    statistic at the default epsilon costs 4 x 0.025 (GMI is derived): ten full releases."""
    full = release_cost(NAMES, DEFAULT_EPSILON_EACH)
    assert full == pytest.approx(0.1)
    assert full <= DEFAULT_BUDGET_EPSILON / 10 + 1e-12
    assert release_cost(["gmi"], 0.1) == release_cost(["mean_glucose", "gmi"], 0.1) == 0.2
