"""A compartment model of glucose and insulin, stepped for a chunk of patients at once. PURE.

Per patient (all arrays have one entry per patient; the loop runs over time steps only):

    gut (Hovorka 2004):       carbohydrate -> Q1 -> Q2 -> appearance, time constant tmax,G
    subcutaneous insulin:     basal + boluses -> S1 -> S2 -> plasma, tmax,I = 55 min, ke = 0.138
    pancreas (Bergman 1979):  basal secretion suppressed below the patient's level, plus
                              secretion proportional to glucose above it (none in type 1)
    insulin action:           X follows plasma insulin with rate p2 (remote compartment)
    glucose:                  dG/dt = SG (Gb - G) + dawn + flux noise + counter-regulation
                                      - SI (X - Xb) G - exercise uptake - renal excretion
                                      + meal appearance
    counter-regulation:       glucagon/adrenaline output rising below a threshold (lag 20 min),
                              which ends lows; patients on insulin also eat rescue carbohydrate
    interstitial glucose:     first-order lag behind plasma, what the sensor sees

``Xb`` is the insulin level that holds glucose at Gb (the true basal need), so a wrong basal dose,
a miscounted meal or a missed bolus moves glucose away from Gb, as in life. Renal excretion
above 162 mg/dL follows Hovorka 2004 (0.003/min x (G - 9 mmol/L)).

Doses are what a device delivers (``therapy``): a bolus rounded to the pump's or pen's step, the
basal to the pump's rate setting or the pen's whole units. ``simulate`` writes the boluses and
rescue carbohydrate it decides into a ``DoseLog`` when given one (the generator turns them into
the simulated events); recording them does not change the glucose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from glucosestream.synth.grid import Grid
from glucosestream.synth.profiles import PatientParams
from glucosestream.synth.schedule import Inputs
from glucosestream.synth.therapy import bolus_step_u, delivered_basal_u_per_day

__all__ = ["RESCUE_GRAMS", "DoseLog", "basal_u_per_day", "simulate"]

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]

# Hovorka R et al., Physiol Meas 2004;25:905.
_CARB_BIOAVAILABILITY: Final = 0.8
_INSULIN_TMAX_MIN: Final = 55.0
_INSULIN_KE_PER_MIN: Final = 0.138
_INSULIN_VOLUME_L_PER_KG: Final = 0.12
_RENAL_RATE_PER_MIN: Final = 0.003
_RENAL_THRESHOLD_MG_DL: Final = 162.0
# Effective glucose distribution volume: 2.2 dL/kg makes carbohydrate sensitivity (mg/dL per g)
# equal the clinical ratio of the 1800 and 500 rules (ISF/ICR = 3.6 mg/dL/g at 0.8 absorption).
_GLUCOSE_VOLUME_DL_PER_KG: Final = 2.2
# Bergman's remote-insulin rate p2 (about 0.025/min).
_INSULIN_ACTION_RATE_PER_MIN: Final = 0.025
_COUNTER_REGULATION_LAG_MIN: Final = 20.0
_FLUX_NOISE_TAU_MIN: Final = 60.0
_SENSOR_NOISE_TAU_MIN: Final = 20.0
_EXERCISE_UPTAKE_MG_DL_PER_MIN: Final = 2.0  # at full intensity and 100 mg/dL
_EXERCISE_SENSITIVITY_GAIN: Final = 0.6  # SI x 1.6 at most after hard exercise ...
_EXERCISE_SENSITIVITY_RISE_MIN: Final = 30.0  # ... reached during exercise ...
_EXERCISE_SENSITIVITY_TAU_MIN: Final = 240.0  # ... fading over hours
_ISF_RULE_MG_DL_U: Final = 1800.0  # the "1800 rule": ISF = 1800 / total daily dose
_ISF_REFERENCE_MG_DL: Final = 140.0
# Insulin action scales with glucose (X.G), and a meal's insulin acts while glucose is up: the
# true carbohydrate ratio is the one that balances a meal at this typical post-meal level.
_MEAL_REFERENCE_MG_DL: Final = 170.0
_BASAL_FRACTION: Final = (0.0, 0.0, 1.0, 0.5, 0.45, 0.45)  # of the daily dose, by sub-population
_CORRECTION_TARGET_MG_DL: Final = 120.0
_CORRECTION_WAIT_MIN: Final = 180.0
RESCUE_GRAMS: Final = 16.0
_RESCUE_AFTER_MIN: Final = 15.0
_RESCUE_WAIT_MIN: Final = 30.0
_MIN_GLUCOSE_MG_DL: Final = 15.0


@dataclass(frozen=True, slots=True)
class _Patients:
    """Per-patient constants of the model, derived once per chunk."""

    gb: FloatArray
    sg: FloatArray
    si: FloatArray
    xb: FloatArray
    ib_endo: FloatArray
    secretion: FloatArray
    csf: FloatArray
    inv_vi: FloatArray
    basal_mu_per_step: FloatArray
    bolus_step_u: FloatArray
    icr_g_per_u: FloatArray
    isf_mg_dl_per_u: FloatArray
    correction_threshold: FloatArray
    rescue_threshold: FloatArray
    zone: npt.NDArray[np.int64]
    dawn: FloatArray
    cr_threshold: FloatArray
    cr_gain: FloatArray
    exercise_uptake: FloatArray
    flux_noise_sd: FloatArray
    gut_rate: FloatArray
    lag_rate: FloatArray


def _derive(params: PatientParams, dt_min: float) -> _Patients:
    bw = params["bw_kg"]
    vi_l = _INSULIN_VOLUME_L_PER_KG * bw
    auc_per_u = 1000.0 / (_INSULIN_KE_PER_MIN * vi_l)  # mU/L x min of plasma insulin per unit
    tdd = params["tdd_u_per_kg"] * bw
    insulin_treated = tdd > 0
    isf_true = np.where(
        params["si_per_min_per_mu_l"] > 0,
        params["si_per_min_per_mu_l"] * auc_per_u * _ISF_REFERENCE_MG_DL,
        _ISF_RULE_MG_DL_U / np.where(insulin_treated, tdd, 1.0),
    )
    si = isf_true / (auc_per_u * _ISF_REFERENCE_MG_DL)
    basal_mu_per_min = _wanted_basal_u_per_day(params) * 1000.0 / 1440.0
    csf = _CARB_BIOAVAILABILITY * 1000.0 / (_GLUCOSE_VOLUME_DL_PER_KG * bw)
    no_threshold = np.inf
    return _Patients(
        gb=params["gb_mg_dl"],
        sg=params["sg_per_min"],
        si=si,
        xb=params["endogenous_basal_mu_l"] + basal_mu_per_min / (_INSULIN_KE_PER_MIN * vi_l),
        ib_endo=params["endogenous_basal_mu_l"],
        secretion=params["secretion_gain"],
        csf=csf,
        inv_vi=1.0 / vi_l,
        basal_mu_per_step=basal_u_per_day(params) * 1000.0 / 1440.0 * dt_min,
        bolus_step_u=bolus_step_u(params.subtype),
        icr_g_per_u=np.where(
            insulin_treated,
            isf_true
            * (_MEAL_REFERENCE_MG_DL / _ISF_REFERENCE_MG_DL)
            / csf
            * params["ratio_factor"],
            np.inf,
        ),
        isf_mg_dl_per_u=np.where(insulin_treated, isf_true * params["ratio_factor"], np.inf),
        correction_threshold=np.where(
            params["correction_threshold_mg_dl"] > 0,
            params["correction_threshold_mg_dl"],
            no_threshold,
        ),
        rescue_threshold=params["rescue_threshold_mg_dl"],
        zone=params.zone,
        dawn=params["dawn_mg_dl_per_min"],
        cr_threshold=params["cr_threshold_mg_dl"],
        cr_gain=params["cr_gain_per_min"],
        exercise_uptake=_EXERCISE_UPTAKE_MG_DL_PER_MIN
        / 100.0
        * (1.0 - params["exercise_compensation"]),
        flux_noise_sd=params["flux_noise_mg_dl_per_min"],
        gut_rate=1.0 - np.exp(-dt_min / params["meal_tmax_min"]),
        lag_rate=1.0 - np.exp(-dt_min / params["lag_min"]),
    )


def _wanted_basal_u_per_day(params: PatientParams) -> FloatArray:
    """The true basal need (U/day): the sub-population's share of the total daily dose."""
    tdd = params["tdd_u_per_kg"] * params["bw_kg"]
    return np.asarray(tdd * np.asarray(_BASAL_FRACTION)[params.subtype], dtype=np.float64)


def basal_u_per_day(params: PatientParams) -> FloatArray:
    """Per patient, the basal insulin delivered a day (U): the need, off by the patient's own
    dosing bias, rounded to what the pump or pen can deliver (0 without insulin)."""
    wanted = _wanted_basal_u_per_day(params) * params["basal_factor"]
    return delivered_basal_u_per_day(wanted, params.subtype)


@dataclass(slots=True)
class DoseLog:
    """The boluses (U) and rescue carbohydrate the model gave, step by step: for each step
    with any, the step, the patients (chunk rows) and, for boluses, the units."""

    bolus_steps: list[int] = field(default_factory=list)
    bolus_patients: list[npt.NDArray[np.intp]] = field(default_factory=list)
    bolus_units: list[FloatArray] = field(default_factory=list)
    rescue_steps: list[int] = field(default_factory=list)
    rescue_patients: list[npt.NDArray[np.intp]] = field(default_factory=list)

    def record(self, k: int, units: FloatArray, rescue: npt.NDArray[np.bool_]) -> None:
        given = np.flatnonzero(units)
        if given.size:
            self.bolus_steps.append(k)
            self.bolus_patients.append(given)
            self.bolus_units.append(units[given])
        if rescue.any():  # rare: skip the search on most steps
            self.rescue_steps.append(k)
            self.rescue_patients.append(np.flatnonzero(rescue))


def simulate(
    params: PatientParams,
    grid: Grid,
    inputs: Inputs,
    noise: Float32Array,
    *,
    log: DoseLog | None = None,
) -> tuple[Float32Array, Float32Array]:
    """Step the model over ``grid``; ``noise`` is (2, n, P) standard normals (flux, sensor).

    Returns interstitial glucose (mg/dL) and unit-variance AR(1) sensor noise, both sampled
    every ``grid.sample_every`` steps: arrays of shape (n // sample_every, P). ``log``, when
    given, receives every bolus and rescue the model gave.
    """
    dt = float(grid.dt_min)
    pt = _derive(params, dt)
    state = _State(pt, params.size, dt)
    rates = _Rates.for_step(dt)
    samples = grid.n // grid.sample_every
    ig_out = np.empty((samples, params.size), dtype=np.float32)
    sn_out = np.empty((samples, params.size), dtype=np.float32)
    flux_sd = pt.flux_noise_sd * rates.flux_innovation
    for k in range(grid.n):
        day = k // grid.steps_per_day
        rescue = state.eat(pt, inputs.carbs_g[k], dt)
        units = state.dose(pt, inputs.announced_g[k], dt)
        if log is not None:
            log.record(k, units, rescue)
        state.absorb(pt, rates)
        state.move_glucose(pt, rates, inputs, k, day, flux_sd * noise[0, k])
        state.sensor_noise = (
            rates.sensor_keep * state.sensor_noise + rates.sensor_innovation * (noise[1, k])
        )
        if k % grid.sample_every == 0 and k // grid.sample_every < samples:
            ig_out[k // grid.sample_every] = state.ig
            sn_out[k // grid.sample_every] = state.sensor_noise
    return ig_out, sn_out


@dataclass(frozen=True, slots=True)
class _Rates:
    """Exact decay factors of the linear compartments over one step."""

    insulin_transfer: float
    insulin_keep: float
    action: float
    counter: float
    flux_keep: float
    flux_innovation: float
    sensor_keep: float
    sensor_innovation: float
    exercise_keep: float
    exercise_rise: float
    exo_scale: float
    dt: float

    @classmethod
    def for_step(cls, dt: float) -> _Rates:
        flux_keep = float(np.exp(-dt / _FLUX_NOISE_TAU_MIN))
        sensor_keep = float(np.exp(-dt / _SENSOR_NOISE_TAU_MIN))
        return cls(
            insulin_transfer=float(1.0 - np.exp(-dt / _INSULIN_TMAX_MIN)),
            insulin_keep=float(np.exp(-_INSULIN_KE_PER_MIN * dt)),
            action=float(1.0 - np.exp(-_INSULIN_ACTION_RATE_PER_MIN * dt)),
            counter=float(1.0 - np.exp(-dt / _COUNTER_REGULATION_LAG_MIN)),
            flux_keep=flux_keep,
            flux_innovation=float(np.sqrt(1.0 - flux_keep**2)),
            sensor_keep=sensor_keep,
            sensor_innovation=float(np.sqrt(1.0 - sensor_keep**2)),
            exercise_keep=float(np.exp(-dt / _EXERCISE_SENSITIVITY_TAU_MIN)),
            exercise_rise=float(1.0 - np.exp(-dt / _EXERCISE_SENSITIVITY_RISE_MIN)),
            # insulin entering at a constant rate during the step, cleared meanwhile
            exo_scale=float((1.0 - np.exp(-_INSULIN_KE_PER_MIN * dt)) / (_INSULIN_KE_PER_MIN * dt)),
            dt=dt,
        )


class _State:
    """The model's state for a chunk of patients (one float64 array per compartment)."""

    def __init__(self, pt: _Patients, size: int, dt: float) -> None:
        zeros = np.zeros(size)
        self.glucose = pt.gb.copy()
        self.ig = pt.gb.copy()
        self.gut1, self.gut2 = zeros.copy(), zeros.copy()
        transfer = 1.0 - np.exp(-dt / _INSULIN_TMAX_MIN)
        self.sc1 = pt.basal_mu_per_step * (1.0 - transfer) / transfer
        self.sc2 = self.sc1.copy()
        self.exo = pt.xb - pt.ib_endo
        self.endo = pt.ib_endo.copy()
        self.action = pt.xb.copy()
        self.counter = zeros.copy()
        self.flux = zeros.copy()
        self.sensitised = zeros.copy()
        self.sensor_noise = zeros.copy()
        self.since_bolus = np.full(size, 1e6)
        self.below = zeros.copy()
        self.since_rescue = np.full(size, 1e6)

    def eat(self, pt: _Patients, carbs_g: Float32Array, dt: float) -> npt.NDArray[np.bool_]:
        """Meals enter the gut; a felt low (sensor below threshold for a while) is treated.
        Returns who took rescue carbohydrate."""
        self.below = np.where(self.ig < pt.rescue_threshold, self.below + dt, 0.0)
        rescue = (self.below >= _RESCUE_AFTER_MIN) & (self.since_rescue >= _RESCUE_WAIT_MIN)
        self.since_rescue = np.where(rescue, 0.0, self.since_rescue + dt)
        self.gut1 += carbs_g
        self.gut2 += rescue * RESCUE_GRAMS
        return rescue

    def dose(self, pt: _Patients, announced_g: Float32Array, dt: float) -> FloatArray:
        """Basal insulin, meal boluses (with a correction) and stand-alone corrections, each
        bolus rounded to the device's step. Returns the bolus units given."""
        high = np.maximum(self.ig - _CORRECTION_TARGET_MG_DL, 0.0) / pt.isf_mg_dl_per_u
        meal = announced_g / pt.icr_g_per_u + np.where(self.ig > 150.0, high, 0.0)
        correct = (self.ig > pt.correction_threshold) & (self.since_bolus > _CORRECTION_WAIT_MIN)
        wanted = np.where(announced_g > 0, meal, 0.0) + np.where(correct, 0.7 * high, 0.0)
        units = np.rint(wanted / pt.bolus_step_u) * pt.bolus_step_u
        self.since_bolus = np.where(units > 0, 0.0, self.since_bolus + dt)
        self.sc1 += pt.basal_mu_per_step + 1000.0 * units
        return units

    def absorb(self, pt: _Patients, rates: _Rates) -> None:
        """Carbohydrate and insulin move one step along their compartments."""
        moved = self.gut1 * pt.gut_rate
        self.gut1 -= moved
        self.gut2 += moved
        self.appeared_g = self.gut2 * pt.gut_rate
        self.gut2 -= self.appeared_g
        moved = self.sc1 * rates.insulin_transfer
        self.sc1 -= moved
        self.sc2 += moved
        entered = self.sc2 * rates.insulin_transfer
        self.sc2 -= entered
        self.exo = self.exo * rates.insulin_keep + entered * pt.inv_vi * rates.exo_scale
        suppressed = np.clip((self.glucose - 60.0) / (pt.gb - 60.0), 0.0, 1.0)
        self.endo = (
            self.endo * rates.insulin_keep
            + (1.0 - rates.insulin_keep) * pt.ib_endo * suppressed
            + pt.secretion * np.maximum(self.glucose - pt.gb, 0.0) * rates.dt
        )
        self.action += (self.exo + self.endo - self.action) * rates.action

    def move_glucose(
        self,
        pt: _Patients,
        rates: _Rates,
        inputs: Inputs,
        k: int,
        day: int,
        flux_shock: FloatArray,
    ) -> None:
        g = self.glucose
        exercise = inputs.exercise[k]
        self.counter += (pt.cr_gain * np.maximum(pt.cr_threshold - g, 0.0) - self.counter) * (
            rates.counter
        )
        self.flux = self.flux * rates.flux_keep + flux_shock
        self.sensitised = np.where(
            exercise > 0,
            self.sensitised
            + (_EXERCISE_SENSITIVITY_GAIN * exercise - self.sensitised) * rates.exercise_rise,
            self.sensitised * rates.exercise_keep,
        )
        si = pt.si * inputs.si_day[day] * (1.0 + self.sensitised)
        rate = (
            pt.sg * (pt.gb - g)
            + inputs.dawn[k, pt.zone] * pt.dawn
            + self.flux
            + self.counter
            - si * (self.action - pt.xb) * g
            - exercise * pt.exercise_uptake * g
            - _RENAL_RATE_PER_MIN * np.maximum(g - _RENAL_THRESHOLD_MG_DL, 0.0)
        )
        g = np.maximum(g + rates.dt * rate + self.appeared_g * pt.csf, _MIN_GLUCOSE_MG_DL)
        self.glucose = g
        self.ig += (g - self.ig) * pt.lag_rate
