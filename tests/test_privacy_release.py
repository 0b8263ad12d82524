"""Private releases: random, calibrated to their epsilon (Laplace variance 2 b^2 with
b = (upper - lower) / (n * epsilon)), and refused once the dataset's budget would be exceeded."""

from __future__ import annotations

import datetime as dt
import statistics

import pytest

from glucosestream.access import Principal
from glucosestream.config import LakeSettings
from glucosestream.errors import BudgetExceeded
from glucosestream.lake import open_access
from glucosestream.privacy import (
    laplace_scale_for_mean,
    private_count,
    private_mean,
    release_cohort,
)

from .test_dashboard_lake import demo_lake  # noqa: F401  (fixture)


def small_cohort_settings(settings):
    """The demo lake's patients are under the minimum cohort; these tests lower it to 1."""
    from dataclasses import replace

    return replace(settings, dashboard=replace(settings.dashboard, privacy_min_patients=1))


AT = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
ADMIN = Principal("tok123", "admin", frozenset(), None, "t")
VALUES = [60.0 + (i * 7.3) % 300 for i in range(100)]  # some clamp at 400? none; below 40? none


@pytest.mark.parametrize("epsilon", [0.1, 1.0])
def test_mean_noise_is_laplace_calibrated_to_epsilon(epsilon):
    """Over 1,000 patients the noise (scale 3.6 at epsilon 0.1) never reaches the bounds, so
    the released values are the mechanism's draws, unclamped."""
    values = VALUES * 10
    lower, upper, n = 40.0, 400.0, len(values)
    expected_scale = (upper - lower) / (n * epsilon)  # sensitivity of a sized mean / epsilon
    assert laplace_scale_for_mean(lower, upper, n, epsilon) == pytest.approx(
        expected_scale, rel=1e-6
    )
    draws = [private_mean(values, lower, upper, size=n, epsilon=epsilon).value for _ in range(3000)]
    true_mean = statistics.fmean(values)
    # Laplace(b): mean 0, variance 2 b^2. With 3000 draws the sample variance has a relative
    # standard error of sqrt((kurtosis - 1) / n) = sqrt(5 / 3000) = 4 %; allow 15 % (3.7 SE).
    assert statistics.fmean(draws) == pytest.approx(true_mean, abs=5 * expected_scale / 30)
    assert statistics.variance(draws) == pytest.approx(2 * expected_scale**2, rel=0.15)
    assert len(set(draws)) == len(draws)  # really random: no two releases alike


def test_mean_clamps_to_public_bounds():
    wild = [1e6] * 50 + [-1e6] * 50
    draws = [private_mean(wild, 0.0, 100.0, size=100, epsilon=1.0).value for _ in range(400)]
    assert statistics.fmean(draws) == pytest.approx(50.0, abs=0.5)


def test_count_noise_scale_is_one_over_epsilon():
    counts = [private_count(VALUES, epsilon=0.5).value for _ in range(3000)]
    assert statistics.fmean(counts) == pytest.approx(100, abs=0.4)
    # discrete Laplace with scale 2: variance 2 cosh... close to 2 b^2 = 8 for b = 2
    assert statistics.variance(counts) == pytest.approx(8.0, rel=0.2)
    assert all(c == int(c) for c in counts)


def test_budget_is_spent_in_the_ledger_and_enforced(tmp_path):
    ledger = open_access(LakeSettings(root=str(tmp_path / "lake"))).ledger
    values = {"mean_mg_dl": VALUES, "pct_70_180": [50.0] * 100}
    ask = {"dataset": "cohort:all", "values": values, "budget": 1.0, "at": AT, "min_patients": 20}
    first = release_cohort(
        ledger, ADMIN, statistics=["mean_glucose", "time_in_range"], epsilon_each=0.2, **ask
    )
    assert first.epsilon_spent == pytest.approx(0.6)  # count + two means
    assert first.budget_left == pytest.approx(0.4)
    assert ledger.spent("cohort:all") == pytest.approx(0.6)
    with pytest.raises(BudgetExceeded, match=r"has 0\.4 of its budget 1 left"):
        release_cohort(
            ledger, ADMIN, statistics=["mean_glucose", "time_in_range"], epsilon_each=0.2, **ask
        )
    assert ledger.spent("cohort:all") == pytest.approx(0.6)  # the refused release spent nothing
    other = release_cohort(
        ledger,
        ADMIN,
        statistics=["time_in_range"],
        epsilon_each=0.2,
        **{**ask, "dataset": "cohort:clinic:north"},
    )
    assert other.budget_left == pytest.approx(0.6)  # budgets are per dataset


def test_release_route_refuses_over_budget_with_the_error_shape(demo_lake):  # noqa: F811
    from fastapi.testclient import TestClient

    from glucosestream.app import create_app

    headers = {"Authorization": "Bearer gs_clinician"}  # clinic north: P1 and P2 have data
    body = {"statistics": ["mean_glucose", "time_in_range"], "epsilon_each": 0.3}
    app = create_app(small_cohort_settings(demo_lake.settings))
    with TestClient(app) as client:
        ok = client.post("/v1/cohort/releases", json=body, headers=headers)
        assert ok.status_code == 200, ok.text
        assert ok.json()["budget_left"] == pytest.approx(0.1)
        refused = client.post("/v1/cohort/releases", json=body, headers=headers)
        assert refused.status_code == 409
        assert "nothing was released" in refused.json()["error"]
        patient = client.post(
            "/v1/cohort/releases", json=body, headers={"Authorization": "Bearer gs_patient_p1"}
        )
        assert patient.status_code == 403


@pytest.mark.parametrize("epsilon", [1e-300, 0.0, -1.0, 1.5, float("nan"), float("inf")])
def test_finding6_an_epsilon_outside_its_bounds_is_refused_and_spends_nothing(tmp_path, epsilon):
    """Issue 13, finding 6: epsilon_each=1e-300 gave an OpenDP error after the ledger spent."""
    from glucosestream.errors import InvalidInput

    ledger = open_access(LakeSettings(root=str(tmp_path / "lake"))).ledger
    with pytest.raises(InvalidInput, match="epsilon per statistic must be in"):
        release_cohort(
            ledger,
            ADMIN,
            dataset="cohort:all",
            values={"mean_mg_dl": VALUES},
            statistics=["mean_glucose"],
            epsilon_each=epsilon,
            budget=1.0,
            at=AT,
            min_patients=1,
        )
    assert ledger.spent("cohort:all") == 0.0


def test_finding6_the_release_route_documents_and_refuses_bad_requests(demo_lake):  # noqa: F811
    """The request model lists the statistics (the document says what the route takes) and
    bounds epsilon: 422 in the error shape, and the budget untouched."""
    from fastapi.testclient import TestClient

    from glucosestream.app import create_app
    from glucosestream.dashboard.cohort_release import STATISTIC_NAMES
    from glucosestream.privacy import COHORT_STATISTICS

    assert sorted(STATISTIC_NAMES) == sorted(s.name for s in COHORT_STATISTICS)
    headers = {"Authorization": "Bearer gs_other_clinician"}
    ledger = open_access(demo_lake.settings.lake).ledger
    spent = {d: ledger.spent(d) for d in ("cohort:all", "cohort:clinic:south")}
    with TestClient(create_app(demo_lake.settings)) as client:
        schema = client.get("/openapi.json").json()["components"]["schemas"]["ReleaseRequest"]
        assert sorted(schema["properties"]["statistics"]["items"]["enum"]) == sorted(
            STATISTIC_NAMES
        )
        for body in (
            {"statistics": [""]},
            {"statistics": ["mean_glucose"], "epsilon_each": 1e-300},
        ):
            refused = client.post("/v1/cohort/releases", json=body, headers=headers)
            assert refused.status_code == 422, refused.text
            assert refused.json()["ok"] is False
    assert {d: ledger.spent(d) for d in spent} == spent  # the refusals spent nothing


def test_a_cohort_under_the_minimum_is_refused_by_route_and_page(demo_lake):  # noqa: F811
    """Issue 18: the demo's 2 patients with data in the window are under the minimum cohort
    (20): the JSON route and the page refuse, say why and what to do, and spend nothing; the
    page explains the budget."""
    from fastapi.testclient import TestClient

    from glucosestream.app import create_app

    from .test_dashboard_lake import csrf_of, login

    ledger = open_access(demo_lake.settings.lake).ledger
    spent = ledger.spent("cohort:all")
    with TestClient(create_app(demo_lake.settings)) as client:
        refused = client.post(
            "/v1/cohort/releases",
            json={"statistics": ["mean_glucose"]},
            headers={"Authorization": "Bearer gs_admin"},
        )
        assert refused.status_code == 409, refused.text
        assert refused.json()["ok"] is False
        assert (
            "has 2 patient(s) with data; a cohort release needs at least 20"
            in (refused.json()["error"])
        )
        page = login(client, "gs_admin").get("/cohort").text
        for said in ("Per analyst and per lifetime", "When it runs out", "Minimum cohort"):
            assert said in page
        assert "spends ε = 0.100, a 10 % share of the lifetime budget" in page
        assert 'id="bounds"' in page
        assert "400.00 mg/dL" in page
        form = {"csrf_token": csrf_of(page), "mean_glucose": "on", "epsilon": "0.025"}
        answer = client.post("/cohort", data=form)
        assert answer.status_code == 409
        assert "needs at least 20" in answer.text
        assert 'id="release"' not in answer.text
    assert ledger.spent("cohort:all") == spent


def test_the_page_shows_a_release_in_bounds_with_its_margin(demo_lake):  # noqa: F811
    from fastapi.testclient import TestClient

    from glucosestream.app import create_app

    from .test_dashboard_lake import csrf_of, login

    app = create_app(small_cohort_settings(demo_lake.settings))
    with TestClient(app) as client:
        page = login(client, "gs_admin").get("/cohort").text
        form = {"csrf_token": csrf_of(page), "time_below_70": "on", "epsilon": "0.05"}
        answer = client.post("/cohort", data=form)
        assert answer.status_code == 200, answer.text
        assert 'id="release"' in answer.text
        assert "95 % margin" in answer.text
        assert "this figure says little" in answer.text  # 2 patients: the noise is wide
        assert "This release spent ε = 0.100" in answer.text
