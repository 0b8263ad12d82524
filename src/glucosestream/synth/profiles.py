"""Who the synthetic patients are: sub-populations and each patient's parameters. PURE.

A profile (``healthy``, ``t2d``, ``t1d``, ``mixed``) is a mixture of sub-populations; each
sub-population gives every physiological and behavioural parameter a distribution, and each
patient draws its own values from them, from a generator seeded by (cohort seed, patient index).
A patient is therefore the same person whatever the cohort size or chunking.

Sources of the ranges (orders of magnitude, then calibrated so that cohorts match the published
CGM figures tested in tests/test_synth_realism.py):
- glucose distribution volume, meal absorption time, insulin absorption and clearance:
  Hovorka R et al., Physiol Meas 2004;25:905 (VG 0.16 L/kg, tmax,G 40 min, tmax,I 55 min,
  ke 0.138/min, VI 0.12 L/kg, carbohydrate bioavailability 0.8).
- glucose effectiveness and insulin sensitivity, pancreatic secretion above a threshold:
  Bergman RN et al., Am J Physiol 1979;236:E667 (the minimal model).
- type 1 dosing: total daily dose 0.4-1.0 U/kg/day, about half basal, the "1800 rule" for the
  insulin sensitivity factor (Walsh J, Roberts R, Pumping Insulin, 6th ed.).
- sensor devices and wear: Dexcom G6 10-day sessions with a 2 h warm-up, G7 10 days with 30 min,
  FreeStyle Libre 2 and 3 14 days with 1 h (manufacturers' labelling).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEVICES",
    "PROFILES",
    "SUBTYPES",
    "ZONES",
    "Device",
    "PatientParams",
    "Profile",
    "draw_params",
]

Profile = Literal["healthy", "t1d", "t2d", "mixed"]
PROFILES: Final = ("healthy", "t1d", "t2d", "mixed")

# Sub-populations, in the order of the codes stored in PatientParams.subtype.
SUBTYPES: Final = ("healthy", "t2d_oral", "t2d_basal", "t2d_mdi", "t1d_well", "t1d_poor")
_MIX: Final[dict[str, tuple[float, ...]]] = {
    "healthy": (1.0, 0, 0, 0, 0, 0),
    "t2d": (0, 0.55, 0.30, 0.15, 0, 0),
    "t1d": (0, 0, 0, 0, 0.45, 0.55),
    "mixed": (0.40, 0.17, 0.09, 0.04, 0.135, 0.165),
}

# Home zones, with weights: the export formats show each zone's local wall clock.
ZONES: Final = (
    "America/New_York",
    "America/Los_Angeles",
    "America/Chicago",
    "Europe/London",
    "Europe/Berlin",
    "Australia/Sydney",
    "UTC",
)
_ZONE_WEIGHTS: Final = (0.22, 0.14, 0.12, 0.18, 0.16, 0.10, 0.08)


@dataclass(frozen=True, slots=True)
class Device:
    """A CGM model: its name, session length, warm-up and native sampling."""

    name: str
    session_days: int
    warmup_min: int
    vendor: Literal["dexcom", "abbott"]


DEVICES: Final = (
    Device("Dexcom G6", 10, 120, "dexcom"),
    Device("Dexcom G7", 10, 30, "dexcom"),
    Device("FreeStyle Libre 2", 14, 60, "abbott"),
    Device("FreeStyle Libre 3", 14, 60, "abbott"),
)
_DEVICE_WEIGHTS: Final = (0.35, 0.25, 0.20, 0.20)

# Per sub-population: (median, log-sd) of lognormal parameters, or (mean, sd) of normal ones.
# Columns follow SUBTYPES: healthy, t2d_oral, t2d_basal, t2d_mdi, t1d_well, t1d_poor.
_LOGNORMAL: Final[dict[str, tuple[tuple[float, ...], tuple[float, ...]]]] = {
    # insulin-independent glucose effectiveness SG (1/min), Bergman's minimal model
    "sg_per_min": ((0.014, 0.009, 0.008, 0.008, 0.003, 0.003), (0.2,) * 6),
    # insulin sensitivity (1/min per mU/L); t1d derives it from the 1800 rule instead
    "si_per_min_per_mu_l": ((8e-4, 3.6e-4, 3.2e-4, 2.8e-4, 0, 0), (0.18, 0.25, 0.25, 0.25, 0, 0)),
    # pancreatic secretion gain (mU/L/min per mg/dL above threshold); none in t1d
    "secretion_gain": ((0.12, 0.035, 0.022, 0.012, 0, 0), (0.18, 0.25, 0.25, 0.25, 0, 0)),
    # total daily insulin dose (U/kg/day), insulin-treated sub-populations only
    "tdd_u_per_kg": ((0, 0, 0.35, 0.7, 0.6, 0.65), (0.25,) * 6),
    # dawn rise of endogenous glucose output (peak, mg/dL/min)
    "dawn_mg_dl_per_min": ((0.04, 0.25, 0.2, 0.2, 0.16, 0.22), (0.5,) * 6),
    # unexplained variation of glucose flux (sd of an hourly OU process, mg/dL/min)
    "flux_noise_mg_dl_per_min": ((0.17, 0.2, 0.2, 0.2, 0.35, 0.45), (0.2, 0.3, 0.3, 0.3, 0.3, 0.3)),
    # meal sizes relative to the population's typical meals
    "meal_scale": ((0.9, 1.05, 1.05, 1.05, 1.0, 1.1), (0.2,) * 6),
    # meal absorption time tmax,G (min), Hovorka 2004
    "meal_tmax_min": ((40.0,) * 6, (0.2,) * 6),
    # plasma-to-interstitial lag (min)
    "lag_min": ((8.0,) * 6, (0.25,) * 6),
}
_NORMAL: Final[dict[str, tuple[tuple[float, ...], tuple[float, ...]]]] = {
    # the glucose level that endogenous output and uptake balance at (true) basal insulin
    "gb_mg_dl": ((96.0, 122, 135, 140, 125, 175), (5.0, 12, 15, 15, 14, 30)),
    # counter-regulation threshold (glucagon, adrenaline) and gain (mg/dL/min per mg/dL)
    "cr_threshold_mg_dl": ((66.0, 72, 70, 70, 60, 58), (3.0,) * 6),
    "cr_gain_per_min": (
        (0.06, 0.05, 0.04, 0.04, 0.015, 0.012),
        (0.01, 0.01, 0.01, 0.01, 0.004, 0.004),
    ),
    # dosing errors: log-sd of carbohydrate counting, basal dose and ratio settings
    "carb_error_sd": ((0, 0, 0, 0.3, 0.25, 0.45), (0, 0, 0, 0.05, 0.05, 0.1)),
    "basal_error_sd": ((0, 0, 0.12, 0.12, 0.1, 0.3), (0, 0, 0.03, 0.03, 0.03, 0.06)),
    "ratio_error_sd": ((0, 0, 0, 0.15, 0.1, 0.22), (0, 0, 0, 0.03, 0.02, 0.05)),
    # probability that a meal bolus is missed / given late (30-60 min after eating)
    "miss_bolus_p": ((0, 0, 0, 0.08, 0.04, 0.3), (0, 0, 0, 0.03, 0.02, 0.12)),
    "late_bolus_p": ((0, 0, 0, 0.15, 0.1, 0.3), (0, 0, 0, 0.05, 0.04, 0.08)),
    # hypoglycaemia treatment: threshold felt and carbohydrates taken (g)
    "rescue_threshold_mg_dl": ((0, 0, 65, 65, 64, 58), (0, 0, 4, 4, 4, 5)),
    # fraction of exercise uptake that hepatic output makes up (healthy physiology)
    "exercise_compensation": ((0.85, 0.6, 0.5, 0.5, 0.25, 0.25), (0.05, 0.1, 0.1, 0.1, 0.1, 0.1)),
    "exercise_per_day": ((0.3, 0.2, 0.2, 0.2, 0.3, 0.2), (0.12,) * 6),
    "snacks_per_day": ((1.0, 1.2, 1.2, 1.2, 1.0, 1.4), (0.4,) * 6),
    "compression_per_night": ((0.15, 0.08, 0.08, 0.08, 0.1, 0.1), (0.04,) * 6),
    "dropouts_per_day": ((1.0,) * 6, (0.5,) * 6),
    "bw_kg": ((74.0, 92, 95, 95, 76, 78), (13.0, 17, 17, 17, 13, 14)),
    # a correction bolus when the sensor stays above this (0: never)
    "correction_threshold_mg_dl": ((0, 0, 0, 240, 200, 300), (0, 0, 0, 25, 20, 40)),
    # basal plasma insulin from the pancreas (mU/L); none in type 1
    "endogenous_basal_mu_l": ((8.0, 14, 12, 10, 0, 0), (2.0, 3, 3, 3, 0, 0)),
}
# Each patient's own dosing bias: basal dose and insulin-to-carb/sensitivity settings off by a
# lognormal factor, centred low (under-insulinised) in poorly controlled type 1.
_FACTORS: Final = (
    ("basal_factor", "basal_error_sd", (1.0, 1, 1, 1, 1, 0.85)),
    ("ratio_factor", "ratio_error_sd", (1.0, 1, 1, 1, 1, 1.15)),
)
_N_DRAWS: Final = 3 + len(_LOGNORMAL) + len(_NORMAL) + len(_FACTORS)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class PatientParams:
    """Parameters of a chunk of patients: each array has one entry per patient."""

    index: IntArray  # 0-based patient index in the cohort
    subtype: IntArray  # code into SUBTYPES
    zone: IntArray  # code into ZONES
    device: IntArray  # code into DEVICES
    values: dict[str, FloatArray]

    def __getitem__(self, name: str) -> FloatArray:
        return self.values[name]

    @property
    def size(self) -> int:
        return int(self.index.size)


def draw_params(profile: Profile, indices: IntArray, draws: FloatArray) -> PatientParams:
    """Turn per-patient standard draws (shape (P, n_param_draws())) into parameters."""
    uniform = _normal_cdf(draws[:, 0:3])
    subtype = _categorical(uniform[:, 0], _MIX[profile])
    zone = _categorical(uniform[:, 1], _ZONE_WEIGHTS)
    device = _categorical(uniform[:, 2], _DEVICE_WEIGHTS)
    values: dict[str, FloatArray] = {}
    column = 3
    for name, (centre, spread) in _LOGNORMAL.items():
        c, s = np.asarray(centre)[subtype], np.asarray(spread)[subtype]
        values[name] = c * np.exp(s * draws[:, column])
        column += 1
    for name, (centre, spread) in _NORMAL.items():
        c, s = np.asarray(centre)[subtype], np.asarray(spread)[subtype]
        values[name] = np.maximum(c + s * draws[:, column], 0.0)
        column += 1
    for name, sd_name, centre in _FACTORS:
        values[name] = np.asarray(centre)[subtype] * np.exp(values[sd_name] * draws[:, column])
        column += 1
    values["bw_kg"] = np.clip(values["bw_kg"], 45.0, 160.0)
    values["miss_bolus_p"] = np.clip(values["miss_bolus_p"], 0.0, 0.5)
    values["exercise_compensation"] = np.clip(values["exercise_compensation"], 0.0, 0.95)
    return PatientParams(
        index=indices.astype(np.int64),
        subtype=subtype,
        zone=zone,
        device=device,
        values=values,
    )


def n_param_draws() -> int:
    """How many standard-normal draws each patient needs for ``draw_params``."""
    return _N_DRAWS


def _categorical(u: FloatArray, weights: tuple[float, ...]) -> IntArray:
    edges = np.cumsum(np.asarray(weights, dtype=np.float64))
    edges /= edges[-1]
    return np.minimum(np.searchsorted(edges, u, side="right"), len(weights) - 1).astype(np.int64)


def _normal_cdf(z: FloatArray) -> FloatArray:
    """Standard normal CDF via erf (numpy has no erf: Abramowitz-Stegun 7.1.26, |err| < 1.5e-7)."""
    x = np.abs(z) / np.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    erf = 1.0 - poly * np.exp(-x * x)
    return np.asarray(0.5 * (1.0 + np.sign(z) * erf), dtype=np.float64)
