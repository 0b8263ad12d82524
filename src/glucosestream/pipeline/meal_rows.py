"""Which meal responses a run recomputes (results.meal_responses): the carbohydrate records of
the patients' recent local days, each answered by ``metrics.meal_responses`` from the readings
the run read. PURE.

A meal's response reads the readings from 15 minutes before it to 3 hours after, and its
window ends at the next meal. So a new reading or a new carbs record changes the responses of
the meals up to ``MEAL_REACH`` (3 h) before it: an incremental run replaces, per patient with
new readings or events, the rows of every local day from the day of (its earliest new reading
or event less 3 h) on (which may be the day before the first day whose daily metrics it
recomputes: a meal at 23:00 whose peak comes after midnight). The run's curated history
reaches back far enough (``steps``: 29 hours before the earliest new reading or event). A full
refresh recomputes every meal of the bucket.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.lake import Scope
from glucosestream.metrics import local_dates, meal_responses
from glucosestream.metrics.meal_response import PEAK_WINDOW

__all__ = ["MEAL_REACH", "meal_rows", "meal_scope"]

# How far before a new reading or carbs record the meals it changes can be.
MEAL_REACH: Final = PEAK_WINDOW


def meal_scope(new_readings: pa.Table, new_events: pa.Table) -> Scope:
    """Per patient with new readings or events: its days from the local day of (its earliest
    new reading or event less ``MEAL_REACH``) on."""
    parts = [t.select(["patient_key", "ts", "tz"]) for t in (new_readings, new_events)]
    arrived = pa.concat_tables([p.cast(parts[0].schema) for p in parts])
    if arrived.num_rows == 0:
        return Scope()
    earliest = arrived.group_by("patient_key").aggregate([("ts", "min"), ("tz", "min")])
    shifted = pa.table(
        {
            "ts": pc.subtract(earliest["ts_min"], pa.scalar(MEAL_REACH)),
            "tz": earliest["tz_min"],
        }
    )
    days = local_dates(shifted).to_pylist()
    return Scope.days_from(dict(zip(earliest["patient_key"].to_pylist(), days, strict=True)))


def meal_rows(
    readings: pa.Table,
    events: pa.Table,
    scope: Scope,
    *,
    run_id: str,
    computed_at: dt.datetime,
) -> pa.Table:
    """``MEAL_RESPONSE_SCHEMA`` rows of the carbs records of ``events`` on the days ``scope``
    covers, from ``readings``."""
    carbs = events.filter(pc.equal(events["kind"], "carbs"))
    dated = carbs.append_column("date", local_dates(carbs))
    meals = carbs.filter(scope.covers(dated))
    return meal_responses(readings, meals, run_id=run_id, computed_at=computed_at)
