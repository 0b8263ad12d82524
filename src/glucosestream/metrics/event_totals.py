"""Insulin and carbohydrate per patient and local day, and per period. PURE.

``daily_event_totals(events)`` gives, per patient and local calendar day (the day of each
event's time in its own zone, ``glucosestream.localclock``), the daily metrics' event columns
(``metrics.daily.EVENT_COLUMNS``). Definitions (docs/metrics.md, "Insulin and carbohydrate"):

* ``bolus_u``: insulin delivered by boluses that day: normal and automatic boluses on the day of
  their time; an extended bolus spread evenly over its duration and cut at midnight, as basal
  is. 0 on a day with other insulin records and no bolus; NULL on a day with no insulin record.
* ``boluses``: the boluses the person gave: distinct (device, time) of normal and extended
  boluses (the two parts of a dual-wave bolus are one), on the day they start; automatic
  boluses are the algorithm's, not counted. NULL with ``bolus_u``.
* ``basal_u``: pump basal delivered that day (``basal_delivery``: rate x hours of each interval
  of known delivery, cut at local midnight) plus long-acting injections of the day. Known only
  when the day's known pump time falls short of the whole local day (23, 24 or 25 hours) by at
  most ``BASAL_GAP_TOLERANCE``, or the day has an injection; else NULL.
* ``insulin_total_u`` = ``bolus_u`` + ``basal_u`` (NULL when ``basal_u`` is).
* ``carbs_g``: sum of the day's carbohydrate records (meals and corrections); NULL when none.
* ``automated_pct``: share of the day's known pump time in ``automated`` segments, in %; NULL
  on a day without pump basal records.

A day is in the result when any event (of any kind) falls on it, or basal or an extended
bolus was delivered on it. The totals of a day are exact when ``events`` holds every event of
the patient from a day before it to a day after it (a segment or an extended bolus lasts at
most ``events.MAX_DURATION_MIN``).

``period_event_totals(daily, periods)`` gives each period's mean per day of each column, over
the days where it is known, and how many days those are. ``daily_rows_with_events`` puts a
day's totals into its daily metrics row and adds a row for a day with events and no readings.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.events import EVENT_SCHEMA, MAX_DURATION_MIN
from glucosestream.localclock import local_days
from glucosestream.metrics.basal_delivery import (
    basal_intervals,
    delivering_subtype,
    sorted_events,
)
from glucosestream.metrics.daily import DAILY_METRICS_SCHEMA, EVENT_COLUMNS
from glucosestream.metrics.day_pieces import cut_at_midnight
from glucosestream.metrics.result_schemas import PERIOD_EVENT_FIELDS

__all__ = [
    "BASAL_GAP_TOLERANCE",
    "DAILY_EVENT_TOTALS_SCHEMA",
    "PERIOD_EVENT_TOTALS_SCHEMA",
    "daily_event_totals",
    "daily_rows_with_events",
    "period_event_totals",
]

# The pump time a day may lack and still have a known basal total: 15 minutes is about 1 % of
# the day, so the total is at most ~1 % short (nothing is added for the missing time).
BASAL_GAP_TOLERANCE: Final = dt.timedelta(minutes=15)
_US_PER_HOUR: Final = 3_600_000_000.0
_US_PER_MIN: Final = 60_000_000

_EVENT_FIELDS: Final = [DAILY_METRICS_SCHEMA.field(name) for name in EVENT_COLUMNS]
DAILY_EVENT_TOTALS_SCHEMA: Final = pa.schema(
    [
        pa.field("patient_key", pa.string(), nullable=False),
        pa.field("date", pa.date32(), nullable=False),
        pa.field("tz", pa.string(), nullable=False),  # the smallest zone of the day's events
        *_EVENT_FIELDS,
    ]
)
_PERIOD_KEYS: Final = ("patient_key", "period_start", "period_end")
PERIOD_EVENT_TOTALS_SCHEMA: Final = pa.schema(
    [
        pa.field("patient_key", pa.string(), nullable=False),
        pa.field("period_start", pa.date32(), nullable=False),
        pa.field("period_end", pa.date32(), nullable=False),
        *PERIOD_EVENT_FIELDS,
    ]
)
# Period column <- daily column it averages, and the count of days it is known on.
_PERIOD_MEANS: Final = (
    ("bolus_u_per_day", "bolus_u"),
    ("basal_u_per_day", "basal_u"),
    ("insulin_total_u_per_day", "insulin_total_u"),
    ("carbs_g_per_day", "carbs_g"),
    ("boluses_per_day", "boluses"),
    ("automated_pct", "automated_pct"),
)
_PERIOD_DAYS: Final = (
    ("insulin_days", "bolus_u"),
    ("basal_days", "basal_u"),
    ("carbs_days", "carbs_g"),
    ("automated_days", "automated_pct"),
)
# What each contribution row may carry toward its day (all float, NULL where it has nothing).
_PARTS: Final = (
    "insulin", "bolus_u", "boluses", "injection_u", "injections", "pump_u", "covered_us",
    "automated_us", "day_us", "carbs_g", "carbs",
)  # fmt: skip


def _part(keys: pa.Table, **values: object) -> pa.Table:
    """A contribution table: ``keys`` (patient_key, date, tz) and the given parts."""
    n = keys.num_rows
    columns = {name: keys[name] for name in ("patient_key", "date", "tz")}
    for name in _PARTS:
        value = values.get(name)
        if value is None:
            columns[name] = pa.nulls(n, pa.float64())
        elif isinstance(value, (int, float)):
            columns[name] = pa.array(np.full(n, float(value)))
        else:
            columns[name] = pc.cast(value, pa.float64())
    return pa.table(columns)


def _event_parts(events: pa.Table) -> pa.Table:
    """Each event's contribution to the day of its own time."""
    days = local_days(events["ts"], events["tz"])
    keys = pa.table({"patient_key": events["patient_key"], "date": days, "tz": events["tz"]})
    kind, subtype = events["kind"], events["subtype"]
    bolus = pc.equal(kind, "bolus")
    extended = _spread_boluses(events)
    injection = pc.and_(
        pc.and_(pc.equal(kind, "basal"), pc.equal(subtype, "injection")),
        pc.is_valid(events["units"]),
    )
    carbs = pc.and_(pc.equal(kind, "carbs"), pc.is_valid(events["carbs_g"]))
    return _part(
        keys,
        insulin=pc.if_else(pc.or_(bolus, pc.equal(kind, "basal")), 1.0, None),
        bolus_u=pc.if_else(pc.and_(bolus, pc.invert(extended)), events["units"], None),
        injection_u=pc.if_else(injection, events["units"], None),
        injections=pc.if_else(injection, 1.0, None),
        carbs_g=pc.if_else(carbs, events["carbs_g"], None),
        carbs=pc.if_else(carbs, 1.0, None),
    )


def _spread_boluses(events: pa.Table) -> pa.ChunkedArray:
    """Whether each row is an extended bolus with units and a duration (spread over it)."""
    extended = pc.and_(pc.equal(events["kind"], "bolus"), pc.equal(events["subtype"], "extended"))
    timed = pc.greater(pc.fill_null(events["duration_min"], 0.0), 0.0)
    return pc.fill_null(pc.and_(pc.and_(extended, timed), pc.is_valid(events["units"])), False)


def _extended_parts(events: pa.Table) -> pa.Table:
    """Extended boluses, each spread evenly over its duration, cut at local midnight."""
    rows = events.filter(_spread_boluses(events))
    start = np.asarray(pc.cast(rows["ts"], pa.int64()).to_numpy(), np.int64)
    minutes = np.minimum(rows["duration_min"].to_numpy(), MAX_DURATION_MIN)
    end = start + np.round(minutes * _US_PER_MIN).astype(np.int64)
    zones = pc.dictionary_encode(rows["tz"]).combine_chunks()
    pieces = cut_at_midnight(
        start, end, np.asarray(zones.indices.to_numpy(), np.int64), zones.dictionary.to_pylist()
    )
    share = (pieces.end_us - pieces.start_us) / (end - start)[pieces.source]
    units = rows["units"].to_numpy()[pieces.source] * share
    return _part(_piece_keys(rows, pieces.source, pieces.day), insulin=1.0, bolus_u=pa.array(units))


def _piece_keys(rows: pa.Table, source: np.ndarray, day: np.ndarray) -> pa.Table:
    take = pa.array(source, pa.int64())
    return pa.table(
        {
            "patient_key": pc.take(rows["patient_key"], take),
            "date": pa.array(day.astype(np.int32), pa.int32()).cast(pa.date32()),
            "tz": pc.take(rows["tz"], take),
        }
    )


def _basal_parts(events: pa.Table) -> pa.Table:
    """Known pump basal delivery, cut at local midnight, summed per patient and local day (in
    arrays: an automated pump's day has hundreds of segments)."""
    intervals = basal_intervals(events)
    zone = _zone_codes(events["tz"])
    pieces = cut_at_midnight(
        intervals.start_us, intervals.end_us, zone.codes[intervals.row], zone.names
    )
    row = intervals.row[pieces.source]
    patient = _zone_codes(events["patient_key"]).codes[row]
    length = (pieces.end_us - pieces.start_us).astype(np.float64)
    automated = np.asarray(
        pc.equal(delivering_subtype(events), "automated").to_numpy(zero_copy_only=False), np.bool_
    )[row]
    key = patient * (1 << 32) + (pieces.day - np.int64(np.iinfo(np.int32).min))
    _, first, day_of = np.unique(key, return_index=True, return_inverse=True)
    zone_rank = np.full(first.size, np.iinfo(np.int64).max)
    np.minimum.at(zone_rank, day_of, zone.codes[row])

    def total(values: np.ndarray) -> pa.Array:
        return pa.array(np.bincount(day_of, weights=values, minlength=first.size))

    keys = pa.table(
        {
            "patient_key": pc.take(events["patient_key"], pa.array(row[first])),
            "date": pa.array(pieces.day[first].astype(np.int32)).cast(pa.date32()),
            "tz": pa.array([zone.names[c] for c in zone_rank.tolist()], pa.string()),
        }
    )
    day_us = np.zeros(first.size)
    np.maximum.at(day_us, day_of, pieces.day_us.astype(np.float64))
    return _part(
        keys,
        insulin=1.0,
        pump_u=total(intervals.rate_u_h[pieces.source] * length / _US_PER_HOUR),
        covered_us=total(length),
        automated_us=total(np.where(automated, length, 0.0)),
        day_us=pa.array(day_us),
    )


@dataclass(frozen=True, slots=True)
class _Dictionary:
    """A string column as codes into its distinct values, in sorted order (so the smallest
    code is the smallest value)."""

    codes: np.ndarray
    names: list[str]


def _zone_codes(column: pa.ChunkedArray) -> _Dictionary:
    encoded = pc.dictionary_encode(column).combine_chunks()
    values = encoded.dictionary.to_pylist()
    order = sorted(range(len(values)), key=lambda i: values[i])
    rank = np.empty(len(values), np.int64)
    rank[order] = np.arange(len(values))
    return _Dictionary(
        rank[np.asarray(encoded.indices.to_numpy(), np.int64)], [values[i] for i in order]
    )


def _bolus_count_parts(events: pa.Table) -> pa.Table:
    """One count per bolus the person gave: distinct (device, time) of non-automatic boluses."""
    given = pc.and_(
        pc.equal(events["kind"], "bolus"),
        pc.invert(pc.fill_null(pc.equal(events["subtype"], "automatic"), False)),
    )
    rows = events.filter(given)
    keys = ["patient_key", "device_id", "ts"]
    first = rows.group_by(keys, use_threads=False).aggregate([("tz", "min")])
    days = local_days(first["ts"], first["tz_min"])
    table = pa.table({"patient_key": first["patient_key"], "date": days, "tz": first["tz_min"]})
    return _part(table, boluses=1.0)


_SUMS: Final = tuple(name for name in _PARTS if name not in ("day_us",))


def daily_event_totals(events: pa.Table) -> pa.Table:
    """``DAILY_EVENT_TOTALS_SCHEMA`` rows, sorted by (patient_key, date), from EVENT_SCHEMA
    rows (any kinds, any order): the module docstring's definitions."""
    events = sorted_events(events.select(EVENT_SCHEMA.names))
    parts = pa.concat_tables(
        [
            _event_parts(events),
            _extended_parts(events),
            _bolus_count_parts(events),
            _basal_parts(events),
        ]
    )
    aggregations = [("tz", "min"), ("day_us", "max"), *((name, "sum") for name in _SUMS)]
    days = parts.group_by(["patient_key", "date"], use_threads=False).aggregate(aggregations)
    days = days.sort_by([("patient_key", "ascending"), ("date", "ascending")])
    return _totals(days)


def _totals(days: pa.Table) -> pa.Table:
    """The event columns from each day's summed contributions."""

    def summed(name: str) -> np.ndarray:
        return np.asarray(pc.fill_null(days[f"{name}_sum"], 0.0).to_numpy(), np.float64)

    insulin = summed("insulin") > 0
    covered = summed("covered_us")
    day_us = np.asarray(pc.fill_null(days["day_us_max"], np.inf).to_numpy(), np.float64)
    tolerance = BASAL_GAP_TOLERANCE / dt.timedelta(microseconds=1)
    basal_known = (covered >= day_us - tolerance) | (summed("injections") > 0)
    bolus = summed("bolus_u")
    basal = summed("pump_u") + summed("injection_u")
    with np.errstate(divide="ignore", invalid="ignore"):
        automated = 100.0 * summed("automated_us") / covered
    return pa.table(
        {
            "patient_key": days["patient_key"],
            "date": days["date"],
            "tz": days["tz_min"],
            "bolus_u": pa.array(bolus, mask=~insulin),
            "basal_u": pa.array(basal, mask=~basal_known),
            "insulin_total_u": pa.array(bolus + basal, mask=~(insulin & basal_known)),
            "carbs_g": pa.array(summed("carbs_g"), mask=~(summed("carbs") > 0)),
            "boluses": pa.array(summed("boluses").astype(np.int32), mask=~insulin),
            "automated_pct": pa.array(automated, mask=~(covered > 0)),
        }
    ).cast(DAILY_EVENT_TOTALS_SCHEMA)


def period_event_totals(daily: pa.Table, periods: pa.Table) -> pa.Table:
    """``PERIOD_EVENT_TOTALS_SCHEMA`` rows, one per row of ``periods`` (``patient_key,
    period_start, period_end``: local dates, both included), in that order: each column's mean
    per day over the period's days where it is known, and the number of those days. ``daily``
    is any table with ``patient_key, date`` and the event columns (``daily_event_totals`` or
    daily metrics rows)."""
    keys = periods.select(list(_PERIOD_KEYS)).append_column(
        "period_index", pa.array(np.arange(periods.num_rows), pa.int64())
    )
    days = daily.select(["patient_key", "date", *EVENT_COLUMNS])
    days = days.set_column(
        days.schema.get_field_index("boluses"), "boluses", pc.cast(days["boluses"], pa.float64())
    )
    joined = keys.join(days, "patient_key", join_type="inner", use_threads=False)
    inside = pc.and_(
        pc.greater_equal(joined["date"], joined["period_start"]),
        pc.less_equal(joined["date"], joined["period_end"]),
    )
    joined = joined.filter(inside).sort_by([("period_index", "ascending"), ("date", "ascending")])
    aggregations = [(column, "mean") for _, column in _PERIOD_MEANS]
    aggregations += [(column, "count") for _, column in _PERIOD_DAYS]
    per_period = joined.group_by("period_index", use_threads=False).aggregate(aggregations)
    order = keys.join(per_period, "period_index", join_type="left outer", use_threads=False)
    order = order.sort_by("period_index")
    columns = {name: order[name] for name in _PERIOD_KEYS}
    columns |= {name: order[f"{column}_mean"] for name, column in _PERIOD_MEANS}
    columns |= {name: pc.fill_null(order[f"{column}_count"], 0) for name, column in _PERIOD_DAYS}
    return pa.table(columns).cast(PERIOD_EVENT_TOTALS_SCHEMA)


def daily_rows_with_events(
    daily: pa.Table, totals: pa.Table, *, run_id: str, computed_at: dt.datetime
) -> pa.Table:
    """``DAILY_METRICS_SCHEMA`` rows of every day of ``daily`` (its readings' metrics) or
    ``totals`` (``daily_event_totals`` of the same days): the event columns from ``totals``
    (NULL for a day it lacks), and a row for each day of ``totals`` without readings:
    ``readings`` = 0, ``pct_active`` = 0, the glucose columns NULL, ``tz`` the events' zone."""
    keys = ["patient_key", "date"]
    glucose = daily.drop_columns(list(EVENT_COLUMNS))
    events = totals.select([*keys, *EVENT_COLUMNS])
    with_readings = glucose.join(events, keys, join_type="left outer", use_threads=False)
    only = totals.join(daily.select(keys), keys, join_type="left anti", use_threads=False)
    n = only.num_rows
    filled = {
        "readings": pa.array(np.zeros(n, np.int32)),
        "pct_active": pa.array(np.zeros(n)),
        "run_id": pa.repeat(pa.scalar(run_id, pa.string()), n),
        "computed_at": pa.repeat(pa.scalar(computed_at, pa.timestamp("us", tz="UTC")), n),
    }
    columns = {
        field.name: only[field.name]
        if field.name in only.column_names
        else filled.get(field.name, pa.nulls(n, field.type))
        for field in DAILY_METRICS_SCHEMA
    }
    rows = pa.concat_tables(
        [
            with_readings.select(DAILY_METRICS_SCHEMA.names).cast(DAILY_METRICS_SCHEMA),
            pa.table(columns).cast(DAILY_METRICS_SCHEMA),
        ]
    )
    return rows.sort_by([("patient_key", "ascending"), ("date", "ascending")])
