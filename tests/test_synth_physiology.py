"""The glucose-insulin model responds to meals, insulin, exercise, lows and the dawn as the
physiology it models does. One median patient per test, noise switched off, UTC clock."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest

from glucosestream.synth.grid import make_grid
from glucosestream.synth.physiology import simulate
from glucosestream.synth.profiles import SUBTYPES, draw_params, n_param_draws
from glucosestream.synth.schedule import Inputs

GRID = make_grid(dt.date(2026, 1, 5), 1, 5, ("UTC",))
STEP_MIN = 5


def median_patient(profile: str, **values: float):
    """The median patient of a profile: every standard draw 0, except the sub-population draw
    (-1 picks the first sub-population of the profile's mixture)."""
    draws = np.zeros((1, n_param_draws()))
    draws[0, 0] = -1.0
    params = draw_params(profile, np.array([0]), draws)
    params = dataclasses.replace(params, zone=np.array([0]))
    params.values.update({k: np.array([v]) for k, v in values.items()})
    return params


def run(params, *, carbs=(), bolus_g=(), exercise=(), dawn=False) -> np.ndarray:
    """Interstitial glucose every 5 minutes over one day; events are (hour, amount)."""
    shape = (GRID.n, 1)
    inputs = Inputs(
        carbs_g=np.zeros(shape, np.float32),
        announced_g=np.zeros(shape, np.float32),
        exercise=np.zeros(shape, np.float32),
        dawn=GRID.local_min[:, :1] * 0.0 + (_dawn_shape() if dawn else 0.0),
        si_day=np.ones((1, 1)),
    )
    for hour, grams in carbs:
        inputs.carbs_g[int(hour * 60 / STEP_MIN), 0] = grams
    for hour, grams in bolus_g:
        inputs.announced_g[int(hour * 60 / STEP_MIN), 0] = grams
    for start, end, intensity in exercise:
        inputs.exercise[int(start * 60 / STEP_MIN) : int(end * 60 / STEP_MIN), 0] = intensity
    noise = np.zeros((2, GRID.n, 1), np.float32)
    ig, _ = simulate(params, GRID, inputs, noise)
    return ig[:, 0].astype(float)


def _dawn_shape() -> np.ndarray:
    hour = (GRID.local_min[:, :1] % 1440) / 60.0
    return np.exp(-0.5 * ((hour - 6.5) / 1.25) ** 2)


def at(trace: np.ndarray, hour: float) -> float:
    return float(trace[int(hour * 60 / STEP_MIN)])


def test_the_median_patients_are_who_the_tests_think():
    assert SUBTYPES[int(median_patient("healthy").subtype[0])] == "healthy"
    assert SUBTYPES[int(median_patient("t1d").subtype[0])] == "t1d_well"
    assert SUBTYPES[int(median_patient("t2d").subtype[0])] == "t2d_oral"


def test_without_food_or_dawn_glucose_rests_at_the_basal_level():
    params = median_patient("healthy", dawn_mg_dl_per_min=0.0)
    trace = run(params)
    assert np.ptp(trace) < 1.0
    assert trace.mean() == pytest.approx(params["gb_mg_dl"][0], abs=1.0)


def test_healthy_meal_rises_and_returns_within_hours():
    params = median_patient("healthy", dawn_mg_dl_per_min=0.0)
    trace = run(params, carbs=[(8.0, 60.0)])
    base = at(trace, 7.9)
    peak_hour = np.argmax(trace) * STEP_MIN / 60.0
    assert 8.3 <= peak_hour <= 9.5
    assert 25.0 <= trace.max() - base <= 70.0
    assert abs(at(trace, 11.0) - base) < 12.0


def test_type1_meal_needs_its_bolus():
    params = median_patient("t1d", dawn_mg_dl_per_min=0.0, ratio_factor=1.0, basal_factor=1.0)
    unbolused = run(params, carbs=[(8.0, 60.0)])
    bolused = run(params, carbs=[(8.0, 60.0)], bolus_g=[(8.0, 60.0)])
    base = at(bolused, 7.9)
    assert unbolused.max() - base > 120.0  # no insulin: a large rise ...
    assert at(unbolused, 12.0) - base > 60.0  # ... that lasts
    assert abs(at(bolused, 13.0) - base) < 40.0  # a right-sized bolus brings it back
    assert bolused.max() < unbolused.max() - 60.0


def test_counter_regulation_and_rescue_carbohydrate_end_an_insulin_low():
    params = median_patient("t1d", dawn_mg_dl_per_min=0.0, ratio_factor=1.0, basal_factor=1.0)
    overdose = run(params, bolus_g=[(8.0, 60.0)])  # a meal bolus, and no meal
    nadir = int(np.argmin(overdose))
    assert overdose[nadir] < 70.0
    assert overdose[nadir] > 30.0
    assert overdose[nadir:].max() > 70.0  # it ends
    alone = run(dataclasses.replace(params), bolus_g=[(8.0, 60.0)])
    assert np.array_equal(alone, overdose)  # deterministic
    no_rescue = median_patient(
        "t1d", dawn_mg_dl_per_min=0.0, ratio_factor=1.0, basal_factor=1.0,
        rescue_threshold_mg_dl=0.0,
    )  # fmt: skip
    untreated = run(no_rescue, bolus_g=[(8.0, 60.0)])
    assert untreated.min() < overdose.min()  # without rescue carbohydrate it goes lower ...
    assert untreated.min() > 20.0  # ... but counter-regulation still stops the fall


def test_dawn_phenomenon_raises_early_morning_glucose():
    params = median_patient("t2d")
    trace = run(params, dawn=True)
    assert at(trace, 7.5) - at(trace, 3.0) > 5.0
    flat = run(median_patient("t2d", dawn_mg_dl_per_min=0.0), dawn=True)
    assert abs(at(flat, 7.5) - at(flat, 3.0)) < 1.0


def test_exercise_lowers_glucose_more_in_type1_than_in_healthy():
    t1 = median_patient("t1d", dawn_mg_dl_per_min=0.0, ratio_factor=1.0, basal_factor=1.0)
    healthy = median_patient("healthy", dawn_mg_dl_per_min=0.0)
    drop_t1 = at(run(t1), 17.0) - at(run(t1, exercise=[(16.0, 17.0, 0.7)]), 17.0)
    drop_h = at(run(healthy), 17.0) - at(run(healthy, exercise=[(16.0, 17.0, 0.7)]), 17.0)
    assert drop_t1 > 20.0
    assert 0.0 <= drop_h < drop_t1 / 2
