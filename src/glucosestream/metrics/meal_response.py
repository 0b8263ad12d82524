"""Meal-anchored glucose: the CGM response to each carbohydrate record. PURE.

For every carbs event (``kind`` = carbs, meals and correction carbs alike; the row says which),
from the patient's CGM readings (canonical readings: ``patient_key, ts, glucose_mg_dl``):

* **pre-meal glucose**: the last reading at or before the meal's time, at most
  ``PREMEAL_LOOKBACK`` (15 min) before it: the value a pre-meal check gives (ADA's preprandial
  glucose), the level the meal starts from;
* **peak** and **time to peak**: the highest reading after the meal's time within
  ``PEAK_WINDOW`` (3 h); the first such reading if it repeats. Peak rise = peak - pre-meal
  (negative when glucose never rose above the pre-meal value). Known only when the window
  has no gap between readings longer than ``MAX_READING_GAP`` (30 min, its edges included): a
  longer hole can hide the peak;
* **2-hour excursion**: the reading nearest the meal's time + 2 h (within
  ``TWO_HOUR_TOLERANCE``, 15 min; the earlier of two as near) minus the pre-meal glucose.

**Another meal.** A carbs event ``SAME_MEAL`` (30 min) or more after this one starts a new
response: this meal's window ends there (``window_min`` says how long it ran), its peak is the
highest reading before it, and its 2-hour value is NULL if it came before the 2 hours. A carbs
record within 30 min (a dessert, a meal entered as two foods) is the same eating occasion and
cuts nothing.

Nothing is interpolated or guessed: a value whose readings are missing is NULL, and each value
names the reading it used (``*_at``). Sources and why these choices: docs/metrics.md, "Meal
responses".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.localclock import local_days

__all__ = [
    "MAX_READING_GAP",
    "MEAL_RESPONSE_SCHEMA",
    "PEAK_WINDOW",
    "PREMEAL_LOOKBACK",
    "SAME_MEAL",
    "TWO_HOURS",
    "TWO_HOUR_TOLERANCE",
    "meal_responses",
]

PREMEAL_LOOKBACK: Final = dt.timedelta(minutes=15)
PEAK_WINDOW: Final = dt.timedelta(hours=3)
MAX_READING_GAP: Final = dt.timedelta(minutes=30)
TWO_HOURS: Final = dt.timedelta(hours=2)
TWO_HOUR_TOLERANCE: Final = dt.timedelta(minutes=15)
SAME_MEAL: Final = dt.timedelta(minutes=30)

_TS: Final = pa.timestamp("us", tz="UTC")
MEAL_RESPONSE_SCHEMA: Final = pa.schema(
    [
        pa.field("patient_key", pa.string(), nullable=False),
        pa.field("device_id", pa.string(), nullable=False),  # of the carbs record
        pa.field("meal_at", _TS, nullable=False),
        pa.field("tz", pa.string(), nullable=False),
        pa.field("date", pa.date32(), nullable=False),  # the meal's local day
        pa.field("subtype", pa.string()),  # meal | correction
        pa.field("carbs_g", pa.float64()),
        pa.field("premeal_mg_dl", pa.float64()),
        pa.field("premeal_at", _TS),
        pa.field("peak_mg_dl", pa.float64()),
        pa.field("peak_at", _TS),
        pa.field("peak_rise_mg_dl", pa.float64()),
        pa.field("time_to_peak_min", pa.float64()),
        pa.field("two_hour_mg_dl", pa.float64()),
        pa.field("two_hour_at", _TS),
        pa.field("excursion_2h_mg_dl", pa.float64()),
        pa.field("window_min", pa.float64(), nullable=False),  # the peak window: 180 or cut
        pa.field("window_readings", pa.int32(), nullable=False),  # readings in it
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("computed_at", _TS, nullable=False),
    ]
)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
_NONE: Final = -1


def _us(delta: dt.timedelta) -> int:
    return delta // dt.timedelta(microseconds=1)


def _instants(column: pa.ChunkedArray | pa.Array) -> IntArray:
    return np.asarray(pc.cast(column, pa.int64()).to_numpy(), np.int64)


@dataclass(frozen=True, slots=True)
class _Found:
    """For each meal: the index (into the patient's readings) of the pre-meal, peak and 2-hour
    readings (``_NONE``: none), the end of its peak window (us) and the readings in it."""

    premeal: IntArray
    peak: IntArray
    two_hour: IntArray
    window_end: IntArray
    window_readings: IntArray


def _window_ends(meals: IntArray) -> IntArray:
    """Each meal's peak window end: 3 h on, or the next meal starting 30 min or more later
    (``meals`` sorted)."""
    following = np.searchsorted(meals, meals + _us(SAME_MEAL), side="left")
    ends = meals + _us(PEAK_WINDOW)
    cut = following < meals.size
    ends[cut] = np.minimum(ends[cut], meals[following[cut]])
    return ends


def _nearest(t: IntArray, target: IntArray, tolerance_us: int) -> IntArray:
    """Index of the reading nearest each target within the tolerance (the earlier of two as
    near), else ``_NONE``."""
    after = np.searchsorted(t, target, side="left")
    before = after - 1
    best = np.full(target.size, _NONE, np.int64)
    distance = np.full(target.size, np.iinfo(np.int64).max, np.int64)
    for index in (before, after):  # the earlier first: it keeps a tie
        ok = (index >= 0) & (index < t.size)
        gap = np.abs(t[np.clip(index, 0, max(t.size - 1, 0))] - target) if t.size else distance
        closer = ok & (gap < distance)
        best[closer], distance[closer] = index[closer], gap[closer]
    return np.where(distance <= tolerance_us, best, _NONE)


def _peak(t: IntArray, g: FloatArray, meal: int, end: int) -> tuple[int, int]:
    """(index of the peak reading or ``_NONE``, readings in the window) of one meal."""
    lo = int(np.searchsorted(t, meal, side="right"))
    hi = int(np.searchsorted(t, end, side="right"))
    if hi <= lo:
        return _NONE, 0
    edges = np.concatenate([[meal], t[lo:hi], [end]])
    if int(np.max(np.diff(edges))) > _us(MAX_READING_GAP):
        return _NONE, hi - lo
    return lo + int(np.argmax(g[lo:hi])), hi - lo


def _find(t: IntArray, g: FloatArray, meals: IntArray) -> _Found:
    """The readings each meal of one patient uses (``t`` sorted, ``meals`` sorted)."""
    at_or_before = np.searchsorted(t, meals, side="right") - 1
    recent = at_or_before >= 0
    recent[recent] = t[at_or_before[recent]] >= meals[recent] - _us(PREMEAL_LOOKBACK)
    ends = _window_ends(meals)
    found = [_peak(t, g, int(m), int(e)) for m, e in zip(meals, ends, strict=True)]
    peak = np.array([f[0] for f in found], np.int64)
    two_hour = _nearest(t, meals + _us(TWO_HOURS), _us(TWO_HOUR_TOLERANCE))
    two_hour[ends < meals + _us(TWO_HOURS)] = _NONE  # another meal came first
    return _Found(
        np.where(recent, at_or_before, _NONE),
        peak,
        two_hour,
        ends,
        np.array([f[1] for f in found], np.int64),
    )


def _at(index: IntArray, values: IntArray | FloatArray) -> pa.Array:
    """``values[index]``, NULL where ``index`` is ``_NONE``."""
    missing = index == _NONE
    if values.size == 0:
        return pa.nulls(index.size, pa.from_numpy_dtype(values.dtype))
    return pa.array(values[np.where(missing, 0, index)], mask=missing)


def _patient_slices(keys: pa.ChunkedArray) -> dict[str, tuple[int, int]]:
    """Each patient's rows [first, last + 1) in readings sorted by patient."""
    n = len(keys)
    if n == 0:
        return {}
    change = pc.not_equal(keys.slice(1), keys.slice(0, n - 1))
    starts = np.concatenate([[0], np.flatnonzero(change.to_numpy(zero_copy_only=False)) + 1])
    stops = np.append(starts[1:], n)
    names = pc.take(keys, pa.array(starts)).to_pylist()
    return {name: (int(a), int(b)) for name, a, b in zip(names, starts, stops, strict=True)}


def _meals(events: pa.Table) -> pa.Table:
    carbs = events.filter(pc.equal(events["kind"], "carbs"))
    order = ("patient_key", "ts", "device_id", "subtype", "carbs_g")
    return carbs.sort_by([(name, "ascending") for name in order])


def meal_responses(
    readings: pa.Table, events: pa.Table, *, run_id: str, computed_at: dt.datetime
) -> pa.Table:
    """``MEAL_RESPONSE_SCHEMA`` rows, one per carbs event of ``events`` (EVENT_SCHEMA), sorted by
    patient and time, from ``readings`` (canonical readings of the same patients: every reading
    from 15 min before the first meal to 3 h after the last). The module docstring defines
    each value."""
    meals = _meals(events)
    wanted = pc.is_in(readings["patient_key"], value_set=pc.unique(meals["patient_key"]))
    readings = readings.filter(wanted).select(["patient_key", "ts", "glucose_mg_dl"])
    readings = readings.sort_by([("patient_key", "ascending"), ("ts", "ascending")])
    t = _instants(readings["ts"])
    g = np.asarray(readings["glucose_mg_dl"].to_numpy(), np.float64)
    found = _find_all(_patient_slices(readings["patient_key"]), t, g, meals)
    meal_t = _instants(meals["ts"])
    premeal, peak, two_hour = (_at(i, g) for i in (found.premeal, found.peak, found.two_hour))
    peak_t = _at(found.peak, t)
    minute = float(_us(dt.timedelta(minutes=1)))
    n = meals.num_rows
    columns = {
        "patient_key": meals["patient_key"],
        "device_id": meals["device_id"],
        "meal_at": meals["ts"],
        "tz": meals["tz"],
        "date": local_days(meals["ts"], meals["tz"]),
        "subtype": meals["subtype"],
        "carbs_g": meals["carbs_g"],
        "premeal_mg_dl": premeal,
        "premeal_at": _at(found.premeal, t).cast(_TS),
        "peak_mg_dl": peak,
        "peak_at": peak_t.cast(_TS),
        "peak_rise_mg_dl": pc.subtract(peak, premeal),
        "time_to_peak_min": pc.divide(pc.subtract(peak_t, pa.array(meal_t)), minute),
        "two_hour_mg_dl": two_hour,
        "two_hour_at": _at(found.two_hour, t).cast(_TS),
        "excursion_2h_mg_dl": pc.subtract(two_hour, premeal),
        "window_min": pa.array((found.window_end - meal_t) / minute),
        "window_readings": pa.array(found.window_readings, pa.int32()),
        "run_id": pa.repeat(pa.scalar(run_id, pa.string()), n),
        "computed_at": pa.repeat(pa.scalar(computed_at, _TS), n),
    }
    return pa.table(columns).cast(MEAL_RESPONSE_SCHEMA)


def _find_all(
    slices: dict[str, tuple[int, int]], t: IntArray, g: FloatArray, meals: pa.Table
) -> _Found:
    """``_Found`` of every meal (sorted by patient), indices into all ``t``/``g``."""
    meal_t = _instants(meals["ts"])
    n = meal_t.size
    premeal, peak, two_hour = (np.full(n, _NONE, np.int64) for _ in range(3))
    window_end, window_readings = meal_t + _us(PEAK_WINDOW), np.zeros(n, np.int64)
    for key, (first, stop) in _patient_slices(meals["patient_key"]).items():
        lo, hi = slices.get(key, (0, 0))
        found = _find(t[lo:hi], g[lo:hi], meal_t[first:stop])
        for into, local in (
            (premeal, found.premeal),
            (peak, found.peak),
            (two_hour, found.two_hour),
        ):
            into[first:stop] = np.where(local != _NONE, local + lo, _NONE)
        window_end[first:stop] = found.window_end
        window_readings[first:stop] = found.window_readings
    return _Found(premeal, peak, two_hour, window_end, window_readings)
