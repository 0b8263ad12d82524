"""How each sub-population takes its insulin: by pump or by pen, in what steps, and when. PURE.

Decided from the sub-population (``profiles.SUBTYPES``), not drawn, so no patient's random
streams change:

    healthy, t2d_oral   no insulin
    t2d_basal           pens: one long-acting injection a day (basal-only type 2 therapy)
    t2d_mdi             pens: long-acting once a day, rapid-acting at meals (multiple daily
                        injections), doses dialled in whole units
    t1d_well            pump: a scheduled basal rate and meal/correction boluses (in the
                        T1D Exchange registry, pump users have the lower HbA1c: Foster NC et
                        al., Diabetes Technol Ther 2019;21:66)
    t1d_poor            pens (multiple daily injections), half-unit pens for the rapid-acting

A pump delivers boluses in 0.05 U steps and its basal at a rate set in 0.05 U/h steps; a pen
dials whole or half units; a long-acting pen is taken once a day at ``INJECTION_HOUR`` local
time (bedtime, as long-acting analogues are usually started), in whole units. The model
(``physiology``) delivers exactly these rounded amounts, so what a device or a patient logs is
what the model received. The long-acting analogue is modelled, as the pump's basal, as a flat
delivery (its profile over 24 hours is nearly flat); its log is the daily injection.
"""

from __future__ import annotations

from typing import Final, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "INJECTION_HOUR",
    "REGIMENS",
    "Regimen",
    "bolus_step_u",
    "delivered_basal_u_per_day",
    "regimen_of",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

Regimen = Literal["none", "basal_pen", "pens", "pump"]
# By sub-population, in the order of profiles.SUBTYPES.
REGIMENS: Final[tuple[Regimen, ...]] = ("none", "none", "basal_pen", "pens", "pump", "pens")
_BOLUS_STEP_U: Final = (1.0, 1.0, 1.0, 1.0, 0.05, 0.5)
_PUMP_RATE_STEP_U_H: Final = 0.05
_PEN_BASAL_STEP_U: Final = 1.0
INJECTION_HOUR: Final = 22.0  # local time of the daily long-acting injection


def regimen_of(subtype: int) -> Regimen:
    """The regimen of a sub-population code."""
    return REGIMENS[subtype]


def bolus_step_u(subtype: IntArray) -> FloatArray:
    """Per patient, the step a bolus is rounded to (U)."""
    return np.asarray(_BOLUS_STEP_U, dtype=np.float64)[subtype]


def delivered_basal_u_per_day(wanted_u_per_day: FloatArray, subtype: IntArray) -> FloatArray:
    """Per patient, the basal insulin actually delivered in a day (U): a pump's rate rounded to
    its 0.05 U/h setting (x 24), a pen's daily dose rounded to whole units; 0 without insulin."""
    pump = np.asarray([r == "pump" for r in REGIMENS])[subtype]
    rate = np.rint(wanted_u_per_day / 24.0 / _PUMP_RATE_STEP_U_H) * _PUMP_RATE_STEP_U_H
    pen = np.rint(wanted_u_per_day / _PEN_BASAL_STEP_U) * _PEN_BASAL_STEP_U
    return np.asarray(np.where(pump, rate * 24.0, pen), dtype=np.float64)
