"""The trend of a reading: its direction (a Nightscout name), trend number and rate. PURE.

The one definition the Nightscout read API, the patient page's arrow and the alerts share:

- ``rate_of``: the uploader's rate of change when it sent one (a Dexcom export's column,
  ``rate_mg_dl_min`` of ``/v1/readings``), else the rate computed from the device's previous
  reading (``rate_between``). A direction alone gives no number.
- ``direction_for_rate``: Dexcom's arrows by rate (flat within ±1 mg/dL/min, 45° beyond 1,
  single beyond 2, double beyond 3: Dexcom G6 user guide, "Trend arrows").
- ``direction_of``: the uploader's direction when it sent one, else the arrow of the rate
  above, else ``NONE`` (no previous reading of the device within ``MAX_GAP_MIN``).
- ``trend_number``: Nightscout's number for a direction (cgm-remote-monitor
  ``lib/server/pebble.js``, ``directionToTrend``).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Final, Protocol

from glucosestream.readings import DIRECTIONS

__all__ = [
    "DIRECTIONS",
    "MAX_GAP_MIN",
    "TrendPoint",
    "delta_between",
    "direction_for_rate",
    "direction_of",
    "rate_between",
    "rate_of",
    "rate_range",
    "trend_number",
]

# Beyond this gap between two readings of a device no rate is computed (Nightscout then shows
# NONE); the read API's ``delta`` follows the same rule.
MAX_GAP_MIN: Final = 15.0
# Dexcom trend arrows by rate of change (mg/dL per minute): flat within ±1, 45° 1-2,
# single 2-3, double above 3 (Dexcom G6 user guide, "Trend arrows").
_RISING: Final = ((3.0, "DoubleUp"), (2.0, "SingleUp"), (1.0, "FortyFiveUp"))
_FALLING: Final = ((-3.0, "DoubleDown"), (-2.0, "SingleDown"), (-1.0, "FortyFiveDown"))
_NUMBERS: Final = {name: number for number, name in enumerate(DIRECTIONS)}


class TrendPoint(Protocol):
    """What the trend uses of a reading (``LiveReading`` has it)."""

    @property
    def device_id(self) -> str: ...
    @property
    def ts(self) -> dt.datetime: ...
    @property
    def glucose_mg_dl(self) -> float: ...
    @property
    def direction(self) -> str | None: ...
    @property
    def rate_mg_dl_min(self) -> float | None: ...


def trend_number(direction: str | None) -> int | None:
    """Nightscout's trend number of a direction name (0-9); None for no or an unknown name."""
    return None if direction is None else _NUMBERS.get(direction)


def direction_for_rate(rate_mg_dl_min: float) -> str:
    """Dexcom's arrow for a rate of change (thresholds exclusive: 2.0 is 45° up)."""
    for threshold, name in _RISING:
        if rate_mg_dl_min > threshold:
            return name
    for threshold, name in _FALLING:
        if rate_mg_dl_min < threshold:
            return name
    return "Flat"


def rate_range(direction: str | None) -> tuple[float, float] | None:
    """The rates (mg/dL/min, lowest and highest) a Dexcom arrow stands for, from the thresholds
    ``direction_for_rate`` uses: SingleUp (2, 3), DoubleUp (3, inf), Flat (-1, 1), ...; None
    for NONE, NOT COMPUTABLE, RATE OUT OF RANGE and unknown names."""
    if direction == "Flat":
        return (_FALLING[-1][0], _RISING[-1][0])
    bounds = [math.inf, *(threshold for threshold, _ in _RISING)]
    for (threshold, name), upper in zip(_RISING, bounds, strict=False):
        if name == direction:
            return (threshold, upper)
    bounds = [-math.inf, *(threshold for threshold, _ in _FALLING)]
    for (threshold, name), lower in zip(_FALLING, bounds, strict=False):
        if name == direction:
            return (lower, threshold)
    return None


def _minutes_apart(earlier: TrendPoint, later: TrendPoint) -> float | None:
    """Minutes from ``earlier`` to ``later`` when both are of one device, in order and at most
    ``MAX_GAP_MIN`` apart; else None."""
    if earlier.device_id != later.device_id:
        return None
    minutes = (later.ts - earlier.ts).total_seconds() / 60
    return minutes if 0 < minutes <= MAX_GAP_MIN else None


def rate_between(earlier: TrendPoint, later: TrendPoint) -> float | None:
    """mg/dL per minute from ``earlier`` to ``later``; None across devices or a gap over
    ``MAX_GAP_MIN`` (or readings out of order)."""
    minutes = _minutes_apart(earlier, later)
    return None if minutes is None else (later.glucose_mg_dl - earlier.glucose_mg_dl) / minutes


def delta_between(earlier: TrendPoint, later: TrendPoint) -> float | None:
    """mg/dL from ``earlier`` to ``later`` (Nightscout's ``delta``), under ``rate_between``'s
    rule; None otherwise."""
    if _minutes_apart(earlier, later) is None:
        return None
    return later.glucose_mg_dl - earlier.glucose_mg_dl


def rate_of(reading: TrendPoint, previous: TrendPoint | None) -> float | None:
    """The uploader's rate, else the rate from the device's previous reading (None: neither)."""
    if reading.rate_mg_dl_min is not None:
        return reading.rate_mg_dl_min
    return None if previous is None else rate_between(previous, reading)


def direction_of(reading: TrendPoint, previous: TrendPoint | None) -> str:
    """The uploader's direction, else the arrow of ``rate_of``, else ``NONE``."""
    if reading.direction is not None:
        return reading.direction
    rate = rate_of(reading, previous)
    return "NONE" if rate is None else direction_for_rate(rate)
