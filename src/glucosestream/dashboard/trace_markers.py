"""The bolus and carb markers of the patient page's daily traces. PURE.

A marker is one bolus (its units) or one carbohydrate entry (its grams) at its wall-clock time
in the event's own zone, the clock the traces are drawn on (``localclock``), so a dose at 07:30
local sits at 07:30 on that day's trace whatever the UTC time. It sits on the trace: at the
glucose of the patient's reading nearest in time, when one is within ``NEAREST_READING_MIN``
minutes; else (no reading around it) ``mg_dl`` is None and the page draws it on the axis.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.localclock import wall_clock_times

__all__ = ["MARKER_KINDS", "NEAREST_READING_MIN", "trace_markers"]

MARKER_KINDS: Final = ("bolus", "carbs")
NEAREST_READING_MIN: Final = 10  # two 5-minute readings either way


def trace_markers(
    events: pa.Table, local: pa.Table, days: tuple[dt.date, dt.date]
) -> list[dict[str, Any]]:
    """The boluses and carbs of ``events`` (EVENT_SCHEMA) on the local days ``days`` (first,
    last; both included), in time order: date, minute of the day, local time, kind, subtype,
    amount (U or g) and the glucose of the nearest reading of ``local``
    (``patientdata.local_readings``: local_ts, glucose_mg_dl, in time order)."""
    keep = pc.is_in(events["kind"], pa.array(MARKER_KINDS))
    shown = events.filter(keep)
    if shown.num_rows == 0:
        return []
    wall = wall_clock_times(shown["ts"], shown["tz"])
    dates = pc.cast(wall, pa.date32())
    on_days = pc.and_(
        pc.greater_equal(dates, pa.scalar(days[0])), pc.less_equal(dates, pa.scalar(days[1]))
    )
    shown, wall = shown.filter(on_days), wall.filter(on_days)
    glucose = _nearest_glucose(wall, local)
    out = []
    for row, at, mg_dl in zip(shown.to_pylist(), wall.to_pylist(), glucose, strict=True):
        amount = row["units"] if row["kind"] == "bolus" else row["carbs_g"]
        if amount is None:
            continue
        out.append(
            {
                "date": at.date().isoformat(),
                "minute": round(at.hour * 60 + at.minute + at.second / 60, 2),
                "time": at.strftime("%H:%M"),
                "kind": row["kind"],
                "subtype": row["subtype"],
                "amount": round(amount, 2),
                "mg_dl": mg_dl,
            }
        )
    out.sort(key=lambda m: (m["date"], m["minute"], m["kind"]))
    return out


def _nearest_glucose(wall: pa.Array | pa.ChunkedArray, local: pa.Table) -> list[float | None]:
    """For each wall-clock time, the glucose of the nearest reading within the limit."""
    if len(wall) == 0:
        return []
    times = np.asarray(pc.cast(wall, pa.timestamp("us")).to_numpy(zero_copy_only=False))
    times = times.astype("datetime64[us]").astype(np.int64)
    if local.num_rows == 0:
        return [None] * len(times)
    at = local["local_ts"].cast(pa.timestamp("us")).to_numpy().astype("datetime64[us]")
    readings = at.astype(np.int64)
    values = local["glucose_mg_dl"].to_numpy()
    right = np.clip(np.searchsorted(readings, times), 1, len(readings) - 1)
    left = right - 1
    if len(readings) == 1:
        left = right = np.zeros_like(times)
    pick = np.where(np.abs(readings[left] - times) <= np.abs(readings[right] - times), left, right)
    near = np.abs(readings[pick] - times) <= NEAREST_READING_MIN * 60_000_000
    return [round(float(v), 1) if ok else None for v, ok in zip(values[pick], near, strict=True)]
