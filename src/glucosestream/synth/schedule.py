"""What patients do, on the simulation grid: meals, bolus announcements, exercise. PURE.

Behaviour is scheduled in each patient's local time, one set of draws per local day, so days
differ (meal times and sizes, skipped breakfasts, missed or late boluses, exercise) and the
daily insulin sensitivity varies around the patient's own.

Meal pattern (local hours, typical carbohydrates) follows the usual three meals and snacks of
adult diet surveys; carbohydrate counting errors in type 1 diabetes are typically 20-40% per meal
(Brazeau AS et al., Diabetes Res Clin Pract 2013;99:19).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from glucosestream.synth.grid import MINUTES_PER_DAY, Grid, window_cells
from glucosestream.synth.profiles import PatientParams

__all__ = ["DAY_NORMALS", "DAY_UNIFORMS", "INTENSITY_EDGES", "Inputs", "build_inputs"]

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]

# (local hour, sd of the hour, median carbohydrates g, probability of eating it; None: snack)
_MEALS: Final[tuple[tuple[float, float, float, float | None], ...]] = (
    (7.5, 0.75, 45.0, 0.85),
    (12.75, 0.75, 60.0, 0.95),
    (18.75, 0.9, 75.0, 0.98),
    (15.5, 1.0, 20.0, None),
    (21.5, 0.75, 20.0, None),
)
_MEAL_SIZE_LOG_SD: Final = 0.3
_LATE_BOLUS_MIN: Final = (20.0, 60.0)
_EXERCISE_HOURS: Final = (7.0, 19.5)  # start uniformly between these local hours
_EXERCISE_MIN: Final = (25.0, 75.0)
# Exercise intensity is 0.3-0.8 of full effort; logs report it as low below the first edge,
# medium below the second, high above (Clarity Light/Medium/Heavy, Tidepool reportedIntensity).
INTENSITY_EDGES: Final = (0.45, 0.65)
_DAWN_HOUR: Final = 6.5  # peak of the dawn phenomenon (Bolli GB et al., Diabetes 1984;33:1150)
_DAWN_SD_H: Final = 1.25
_SI_DAY_LOG_SD: Final = (0.08, 0.12, 0.12, 0.14, 0.16, 0.22)  # by sub-population

# Columns of the per-day draws: 4 uniforms and 3 normals per meal, 4 uniforms for exercise,
# 1 normal for the day's insulin sensitivity.
DAY_UNIFORMS: Final = 4 * len(_MEALS) + 4
DAY_NORMALS: Final = 3 * len(_MEALS) + 1


@dataclass(frozen=True, slots=True)
class Inputs:
    """Per step (rows) and patient (columns): carbohydrates eaten and announced (g), exercise
    intensity (0-1); per step and zone, the dawn shape; per UTC day and patient, the insulin
    sensitivity multiplier."""

    carbs_g: Float32Array
    announced_g: Float32Array
    exercise: Float32Array
    dawn: FloatArray
    si_day: FloatArray


def build_inputs(params: PatientParams, grid: Grid, day_u: FloatArray, day_z: FloatArray) -> Inputs:
    """Schedule a chunk's behaviour. ``day_u``/``day_z``: (P, local days, DAY_*) draws."""
    shape = (grid.n, params.size)
    carbs = np.zeros(shape, dtype=np.float32)
    announced = np.zeros(shape, dtype=np.float32)
    exercise = np.zeros(shape, dtype=np.float32)
    for m in range(len(_MEALS)):
        _schedule_meal(params, grid, m, day_u, day_z, carbs, announced)
    _schedule_exercise(params, grid, day_u[:, :, 4 * len(_MEALS) :], exercise)
    n_days = -(-grid.n // grid.steps_per_day)
    sd = np.asarray(_SI_DAY_LOG_SD)[params.subtype]
    si_day = np.exp(sd[None, :] * day_z[:, :n_days, -1].T - 0.5 * sd[None, :] ** 2)
    return Inputs(carbs, announced, exercise, _dawn_shape(grid), si_day)


def _local_minutes(
    params: PatientParams, grid: Grid, hours: FloatArray
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Local minute of each (patient, local day) event at ``hours``, and its grid step."""
    n_days = hours.shape[1]
    first = np.array([grid.first_local_day(int(z)) for z in params.zone], dtype=np.float64)
    day = first[:, None] - 1.0 + np.arange(n_days, dtype=np.float64)[None, :]
    minute = day * MINUTES_PER_DAY + hours * 60.0
    step = np.full(minute.shape, grid.n, dtype=np.int64)
    for z in np.unique(params.zone):
        rows = params.zone == z
        step[rows] = grid.step_of_local_minute(int(z), minute[rows])
    return minute, step


def _schedule_meal(
    params: PatientParams,
    grid: Grid,
    meal: int,
    day_u: FloatArray,
    day_z: FloatArray,
    carbs: Float32Array,
    announced: Float32Array,
) -> None:
    hour, hour_sd, median_g, probability = _MEALS[meal]
    u = day_u[:, :, 4 * meal : 4 * meal + 4]
    z = day_z[:, :, 3 * meal : 3 * meal + 3]
    p_eat = (
        np.full(params.size, probability)
        if probability is not None
        else np.clip(params["snacks_per_day"] / 2.0, 0.0, 1.0)
    )
    eaten = u[:, :, 0] < p_eat[:, None]
    grams = median_g * params["meal_scale"][:, None] * np.exp(_MEAL_SIZE_LOG_SD * z[:, :, 1])
    _, step = _local_minutes(params, grid, hour + hour_sd * np.clip(z[:, :, 0], -2.5, 2.5))
    patient = np.broadcast_to(np.arange(params.size)[:, None], step.shape)
    ok = eaten & (step < grid.n)
    np.add.at(carbs, (step[ok], patient[ok]), grams[ok].astype(np.float32))
    # Bolus: counted carbohydrates, sometimes late, sometimes forgotten.
    # Counted carbohydrates, in whole grams as a patient enters them (what the logs show).
    counted = np.rint(grams * np.exp(params["carb_error_sd"][:, None] * z[:, :, 2]))
    missed = u[:, :, 1] < params["miss_bolus_p"][:, None]
    late = u[:, :, 2] < params["late_bolus_p"][:, None]
    delay_min = np.where(late, _LATE_BOLUS_MIN[0] + np.diff(_LATE_BOLUS_MIN)[0] * u[:, :, 3], 0.0)
    bolus_step = step + np.rint(delay_min / grid.dt_min).astype(np.int64)
    treated = params["carb_error_sd"][:, None] > 0
    ok = eaten & treated & ~missed & (bolus_step < grid.n) & (counted > 0)
    np.add.at(announced, (bolus_step[ok], patient[ok]), counted[ok].astype(np.float32))


def _schedule_exercise(
    params: PatientParams, grid: Grid, u: FloatArray, exercise: Float32Array
) -> None:
    lo, hi = _EXERCISE_HOURS
    _, step = _local_minutes(params, grid, lo + (hi - lo) * u[:, :, 1])
    occurs = (u[:, :, 0] < params["exercise_per_day"][:, None]) & (step < grid.n)
    minutes = _EXERCISE_MIN[0] + (_EXERCISE_MIN[1] - _EXERCISE_MIN[0]) * u[:, :, 2]
    length = np.rint(minutes / grid.dt_min).astype(np.int64)
    intensity = 0.3 + 0.5 * u[:, :, 3]
    patient = np.broadcast_to(np.arange(params.size)[:, None], step.shape)
    window, cell_step, _ = window_cells(step[occurs], length[occurs])
    inside = cell_step < grid.n
    exercise[cell_step[inside], patient[occurs][window[inside]]] = intensity[occurs][
        window[inside]
    ].astype(np.float32)


def _dawn_shape(grid: Grid) -> FloatArray:
    """Dawn phenomenon, per step and zone: the shape (peak 1) of extra hepatic glucose output
    around ``_DAWN_HOUR`` local time."""
    hour = (grid.local_min % MINUTES_PER_DAY) / 60.0
    return np.asarray(np.exp(-0.5 * ((hour - _DAWN_HOUR) / _DAWN_SD_H) ** 2))
