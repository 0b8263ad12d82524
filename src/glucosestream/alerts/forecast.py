"""The AR2 glucose forecast behind ``urgent_low_soon``. PURE.

Dexcom's Urgent Low Soon alert warns when glucose is predicted to reach 55 mg/dL within 20
minutes (Dexcom, "How does the Urgent Low Soon alert work?"; Puhr S. et al., J Diabetes Sci
Technol 2019, doi:10.1177/1932296819840691). Dexcom's predictor is not published, so the
forecast here is an open one: the second-order autoregressive forecast ("AR2") of Nightscout
(cgm-remote-monitor ``lib/plugins/ar2.js`` and ``lib/plugins/bgnow.js``, read at commit 7e0e77f),
written here from its description; no code is copied.

The description, in short:

* Glucose is modelled in log space around 140 mg/dL: ``y = ln(g / 140)``.
* Two inputs: "now", the mean of the readings in the 5-minute bucket centred on the newest
  reading (from 2.5 minutes before it to 2.5 after), and "5 minutes ago", the mean of the next
  older non-empty bucket (up to three more buckets of 5 minutes back). When the newest readings
  of the two buckets are more than 9 minutes apart, "5 minutes ago" is interpolated on the line
  between the two means, back to exactly 5 minutes before now. Readings at or below 39 mg/dL
  (a sensor's error values) take no part in a mean.
* Each step of 5 minutes: ``y_next = -0.723 * y_before + 1.716 * y_now``; a step's forecast is
  ``140 * exp(y)``, rounded to whole mg/dL and kept within 36-400 mg/dL. Step 4 is Nightscout's
  "in 20 minutes".
* No forecast unless the "now" mean is at least 36 mg/dL, an older bucket exists, and the newest
  reading is at most 10 minutes old.

Nightscout's own AR2 alarm scores the forecast's distance from 120 mg/dL ("avgLoss"); here only
the forecast values are used, because the alert asks whether glucose crosses 55 within 20
minutes.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__ = ["AR2_COEFFICIENTS", "STEP_MIN", "Ar2Inputs", "ar2", "ar2_inputs", "forecast"]

AR2_COEFFICIENTS: Final = (-0.723, 1.716)  # (y_before, y_now): Nightscout ar2.js
REFERENCE_MG_DL: Final = 140.0  # the centre of the log transform (ar2.js BG_REF)
FORECAST_MIN_MG_DL: Final = 36.0  # forecasts are kept within 36-400 (ar2.js BG_MIN, BG_MAX)
FORECAST_MAX_MG_DL: Final = 400.0
ERROR_MAX_MG_DL: Final = 39.0  # readings at or below are sensor errors (bgnow.js)
STEP_MIN: Final = 5.0  # one forecast step, and one bucket
BUCKETS: Final = 4  # the newest bucket and three older ones (bgnow.js)
INTERPOLATE_AFTER_MIN: Final = 9.0  # buckets further apart: interpolate back to 5 minutes
MAX_AGE_MIN: Final = 10.0  # no forecast from a newest reading older than this (ar2.js)


@dataclass(frozen=True, slots=True)
class Ar2Inputs:
    """The two means the forecast starts from (mg/dL)."""

    now_mg_dl: float
    before_mg_dl: float  # 5 minutes before "now"


def ar2(now_mg_dl: float, before_mg_dl: float, steps: int = 4) -> tuple[float, ...]:
    """The forecast ``steps`` x 5 minutes ahead of ``now_mg_dl``, given the value 5 minutes
    before it; each value rounded to whole mg/dL and kept within 36-400."""
    a_before, a_now = AR2_COEFFICIENTS
    y_before = math.log(before_mg_dl / REFERENCE_MG_DL)
    y_now = math.log(now_mg_dl / REFERENCE_MG_DL)
    out: list[float] = []
    for _ in range(steps):
        y_before, y_now = y_now, a_before * y_before + a_now * y_now
        value = math.floor(REFERENCE_MG_DL * math.exp(y_now) + 0.5)  # half up, as JavaScript
        out.append(min(FORECAST_MAX_MG_DL, max(FORECAST_MIN_MG_DL, float(value))))
    return tuple(out)


def ar2_inputs(points: Sequence[tuple[dt.datetime, float]]) -> Ar2Inputs | None:
    """The "now" and "5 minutes ago" means of one device's readings ``(ts, mg/dL)``, ascending;
    None when there is no older bucket to start from."""
    usable = [(ts, g) for ts, g in points if g > ERROR_MAX_MG_DL]
    if not usable:
        return None
    newest = usable[-1][0]
    buckets: list[list[tuple[dt.datetime, float]]] = [[] for _ in range(BUCKETS)]
    for ts, g in reversed(usable):
        index = _bucket_of((newest - ts).total_seconds() / 60.0)
        if index is None:
            break
        buckets[index].append((ts, g))
    recent = buckets[0]
    previous = next((b for b in buckets[1:] if b), None)
    if previous is None:
        return None
    now_mean = _mean(recent)
    before_mean = _mean(previous)
    elapsed_min = (recent[0][0] - previous[0][0]).total_seconds() / 60.0  # each bucket's newest
    if elapsed_min > INTERPOLATE_AFTER_MIN:
        before_mean = now_mean - (now_mean - before_mean) / elapsed_min * STEP_MIN
    return Ar2Inputs(now_mean, before_mean)


def forecast(
    points: Sequence[tuple[dt.datetime, float]], now: dt.datetime, steps: int = 4
) -> tuple[float, ...] | None:
    """The AR2 forecast from one device's readings (ascending), or None when Nightscout would
    make none: the newest reading more than 10 minutes before ``now``, no older bucket, a "now"
    mean below 36 mg/dL."""
    if not points or (now - points[-1][0]).total_seconds() / 60.0 > MAX_AGE_MIN:
        return None
    inputs = ar2_inputs(points)
    if inputs is None or inputs.now_mg_dl < FORECAST_MIN_MG_DL or inputs.before_mg_dl <= 0:
        return None
    return ar2(inputs.now_mg_dl, inputs.before_mg_dl, steps)


def _bucket_of(minutes_before_newest: float) -> int | None:
    """Bucket ``i`` spans ``5i - 2.5`` to ``5i + 2.5`` minutes before the newest reading (both
    ends included; a reading on the edge goes to the newer bucket); None past the last."""
    index = max(0, math.ceil((minutes_before_newest - STEP_MIN / 2) / STEP_MIN))
    return index if index < BUCKETS else None


def _mean(bucket: Sequence[tuple[dt.datetime, float]]) -> float:
    return sum(g for _, g in bucket) / len(bucket)
