"""What triage says of one patient's rolling summary: the time-in-ranges bar (five ranges, the
AGP's colours) and the clinic's flags, each named in words. PURE.

The thresholds are the international consensus targets (Battelino 2019, Diabetes Care
42:1593: time below 54 mg/dL under 1 %, below 70 under 4 %, in range 70-180 over 70 %,
sensor active at least 70 % of the 14 days: ``wear_pct``) and the issue's "time in range down
more than 15 points on the previous period".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from glucosestream.metrics.thresholds import (
    TAR_LEVEL1_MG_DL,
    TAR_LEVEL2_MG_DL,
    TBR_LEVEL1_MG_DL,
    TBR_LEVEL2_MG_DL,
)
from glucosestream.readings import MG_DL_PER_MMOL_L

__all__ = [
    "FLAGS",
    "RANGES",
    "Flag",
    "FlagId",
    "RangeShare",
    "flags_of",
    "range_shares",
    "wear_pct",
]

FlagId = Literal["very_low", "low", "tir_drop", "tir_low", "wear_low"]
VERY_LOW_MAX_PCT: Final = 1.0
LOW_MAX_PCT: Final = 4.0
TIR_MIN_PCT: Final = 70.0
TIR_DROP_MAX_POINTS: Final = 15.0
WEAR_MIN_PCT: Final = 70.0
MINUTES_PER_DAY: Final = 1440.0


@dataclass(frozen=True, slots=True)
class Flag:
    """A flag in words: ``wording`` with ``{g}`` standing for ``threshold_mg_dl`` in the
    viewer's unit."""

    flag_id: FlagId
    wording: str
    threshold_mg_dl: float | None = None

    def label(self, unit: str = "mg_dl") -> str:
        if self.threshold_mg_dl is None:
            return self.wording
        if unit == "mmol_l":
            return self.wording.format(g=f"{self.threshold_mg_dl / MG_DL_PER_MMOL_L:.1f} mmol/L")
        return self.wording.format(g=f"{self.threshold_mg_dl:.0f} mg/dL")


FLAGS: Final[tuple[Flag, ...]] = (
    Flag("very_low", "Time below {g} over 1 %", TBR_LEVEL2_MG_DL),
    Flag("low", "Time below {g} over 4 %", TBR_LEVEL1_MG_DL),
    Flag("tir_drop", "Time in range down more than 15 points"),
    Flag("tir_low", "Time in range under 70 %"),
    Flag("wear_low", "Sensor wear under 70 %"),
)
_BY_ID: Final = {f.flag_id: f for f in FLAGS}


@dataclass(frozen=True, slots=True)
class RangeShare:
    """One segment of the time-in-ranges bar."""

    range_id: str  # the column of the summary, and the CSS class's key
    css: str  # AGP colour class in app.css
    label: str  # the range's name
    bounds_key: str  # its bounds in the viewer's unit: this field of ``range_labels``
    low_mg_dl: float | None  # the thresholds bounding it (mg/dL), below and above
    high_mg_dl: float | None
    pct: float


# Top to bottom as the AGP draws them: very high, high, in range, low, very low.
RANGES: Final = (
    ("pct_above_250", "vhigh", "Very high", "very_high", TAR_LEVEL2_MG_DL, None),
    ("pct_181_250", "high", "High", "high", TAR_LEVEL1_MG_DL, TAR_LEVEL2_MG_DL),
    ("pct_70_180", "target", "In range", "target", TBR_LEVEL1_MG_DL, TAR_LEVEL1_MG_DL),
    ("pct_54_69", "low", "Low", "low", TBR_LEVEL2_MG_DL, TBR_LEVEL1_MG_DL),
    ("pct_below_54", "vlow", "Very low", "very_low", None, TBR_LEVEL2_MG_DL),
)


def _pct(row: Mapping[str, Any], column: str) -> float | None:
    value = row.get(column)
    if value is None or value != value:  # missing or NaN: no readings in the window
        return None
    return float(value)


def range_shares(row: Mapping[str, Any] | None) -> list[RangeShare]:
    """The five segments of a summary row, very high first; empty without readings."""
    if row is None or _pct(row, "pct_70_180") is None:
        return []
    return [
        RangeShare(column, css, label, bounds, low, high, _pct(row, column) or 0.0)
        for column, css, label, bounds, low, high in RANGES
    ]


def wear_pct(row: Mapping[str, Any] | None) -> float | None:
    """The share of the window's days the sensor was active: ``active_pct`` counts the
    readings expected from the first reading to the last only, so it is scaled by the span's
    share of the window (4 full days of a 14-day window: about 29 %, not 100 %)."""
    if row is None:
        return None
    active, days, dt0_min = _pct(row, "active_pct"), _pct(row, "days"), _pct(row, "dt0_min")
    start, end = row.get("period_start"), row.get("period_end")
    if active is None or days is None or not isinstance(start, dt.date):
        return None
    window_days = ((end - start).days + 1) if isinstance(end, dt.date) else 14
    spanned = days + (dt0_min or 0.0) / MINUTES_PER_DAY
    return active * min(1.0, spanned / window_days)


def flags_of(current: Mapping[str, Any] | None, previous: Mapping[str, Any] | None) -> list[Flag]:
    """The flags a patient's current window raises (and, for the drop, the previous one).
    A window without readings raises only the wear flag (no time is "in range" in it)."""
    if current is None:
        return [_BY_ID["wear_low"]]
    raised: list[FlagId] = []
    below_54, below_70 = _pct(current, "pct_below_54"), _pct(current, "pct_below_70")
    tir, active = _pct(current, "pct_70_180"), wear_pct(current)
    tir_before = _pct(previous, "pct_70_180") if previous is not None else None
    if below_54 is not None and below_54 > VERY_LOW_MAX_PCT:
        raised.append("very_low")
    if below_70 is not None and below_70 > LOW_MAX_PCT:
        raised.append("low")
    if tir is not None and tir_before is not None and tir_before - tir > TIR_DROP_MAX_POINTS:
        raised.append("tir_drop")
    if tir is not None and tir < TIR_MIN_PCT:
        raised.append("tir_low")
    if active is None or active < WEAR_MIN_PCT:
        raised.append("wear_low")
    return [_BY_ID[f] for f in raised]
