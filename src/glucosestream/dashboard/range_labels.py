"""The consensus glucose ranges as the pages and the AGP report label them, in the viewer's
unit. PURE.

The thresholds are ``metrics.thresholds``' (mg/dL; Battelino 2019, Diabetes Care 42:1593). In
mmol/L each is shown to one decimal through ``templating.format_glucose`` (the one conversion
factor, ``readings.MG_DL_PER_MMOL_L``): 54, 70, 180 and 250 mg/dL read 3.0, 3.9, 10.0 and
13.9 mmol/L, the values the consensus gives for mmol/L. A band's inner bound is the next value
the unit shows: "181-250 mg/dL" and "10.1-13.9 mmol/L", "54-69 mg/dL" and "3.0-3.8 mmol/L".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Final

from glucosestream.dashboard.auth import Unit
from glucosestream.dashboard.templating import format_glucose
from glucosestream.metrics.thresholds import (
    TAR_LEVEL1_MG_DL,
    TAR_LEVEL2_MG_DL,
    TBR_LEVEL1_MG_DL,
    TBR_LEVEL2_MG_DL,
)
from glucosestream.readings import MG_DL_PER_MMOL_L

__all__ = ["THRESHOLDS_MG_DL", "RangeLabels", "range_labels"]

EN_DASH: Final = "\N{EN DASH}"  # between a range's bounds, as the AGP report prints them

THRESHOLDS_MG_DL: Final = (TBR_LEVEL2_MG_DL, TBR_LEVEL1_MG_DL, TAR_LEVEL1_MG_DL, TAR_LEVEL2_MG_DL)
_UNIT_TEXT: Final = {"mg_dl": "mg/dL", "mmol_l": "mmol/L"}
_STEP: Final = {"mg_dl": 1.0, "mmol_l": 0.1}  # the smallest difference each unit shows


@dataclass(frozen=True, slots=True)
class RangeLabels:
    """Labels of the five ranges and of the four thresholds, without the unit (``unit``)."""

    unit: str  # "mg/dL" or "mmol/L"
    very_low: str  # "<54"; bounds joined by EN_DASH
    low: str  # "54-69"
    target: str  # "70-180"
    high: str  # "181-250"
    very_high: str  # ">250"
    t54: str
    t70: str
    t180: str
    t250: str

    def as_json(self) -> dict[str, str]:
        return asdict(self)


def _shifted(value_mg_dl: float, unit: Unit, steps: int) -> str:
    """The value as the unit shows it, moved ``steps`` of the unit's smallest difference."""
    shown = float(format_glucose(value_mg_dl, unit)) + steps * _STEP[unit]
    return format_glucose(shown * (MG_DL_PER_MMOL_L if unit == "mmol_l" else 1.0), unit)


def range_labels(unit: Unit) -> RangeLabels:
    """The labels in ``unit`` ("mg_dl" or "mmol_l")."""
    t54, t70, t180, t250 = (format_glucose(t, unit) for t in THRESHOLDS_MG_DL)
    return RangeLabels(
        unit=_UNIT_TEXT[unit],
        very_low=f"<{t54}",
        low=f"{t54}{EN_DASH}{_shifted(TBR_LEVEL1_MG_DL, unit, -1)}",
        target=f"{t70}{EN_DASH}{t180}",
        high=f"{_shifted(TAR_LEVEL1_MG_DL, unit, 1)}{EN_DASH}{t250}",
        very_high=f">{t250}",
        t54=t54,
        t70=t70,
        t180=t180,
        t250=t250,
    )
