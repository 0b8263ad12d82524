"""The pipeline's steps, in order. Each is a plain function; ``runner`` times and records them.

``STEPS`` is the step list other deployments are generated from (one state per step). Discover
is ``discovery.discover``; a bucket task's merge, transform and audit are ``process_bucket``
(the events' part of the merge: ``event_merge``).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.config import QualitySettings
from glucosestream.engines import Engine
from glucosestream.events import EVENT_SCHEMA
from glucosestream.lake import (
    DeviceRecord,
    Lakehouse,
    PublishedSnapshots,
    Scope,
)
from glucosestream.metrics import (
    PERIOD_EVENT_COLUMNS,
    compute_daily_metrics,
    local_dates,
    period_results,
    touched_days,
)
from glucosestream.metrics.event_totals import (
    daily_event_totals,
    daily_rows_with_events,
    period_event_totals,
)
from glucosestream.pipeline.discovery import discover
from glucosestream.pipeline.event_merge import (
    PATIENT_DAYS,
    MergedEvents,
    event_days,
    merge_events,
    read_curated_events,
)
from glucosestream.pipeline.first_arrival import new_readings
from glucosestream.pipeline.meal_rows import meal_rows, meal_scope
from glucosestream.pipeline.periods import closed_periods, first_period
from glucosestream.pipeline.rolling_summary import (
    ROLLING_HISTORY,
    rolling_history_start,
    rolling_summaries,
)
from glucosestream.pipeline.sensor_wear import (
    SENSOR_SESSIONS_SCHEMA,
    SESSION_BREAK_MIN,
    SessionInputs,
    infer_sessions,
    session_inputs,
)
from glucosestream.quality import (
    CheckResult,
    StagedRun,
    run_checks,
    set_aside_events,
    set_aside_rows,
)
from glucosestream.readings import READING_SCHEMA

__all__ = [
    "STEPS",
    "BucketTables",
    "BucketWork",
    "StepSeconds",
    "discover",
    "process_bucket",
]

log = logging.getLogger(__name__)

STEPS: Final = ("recover", "discover", "plan", "merge", "transform", "audit", "stage", "publish")
# The local day a reading falls on began at most 25 hours before it (a day of a daylight-saving
# change lasts 25 hours), so history from 26 hours before the earliest new reading holds every
# reading of every day the run recomputes; 3 hours more for the meal responses, which start on
# the local day of 3 hours before it (``meal_rows``), 15 minutes before a meal.
_HISTORY_MARGIN: Final = dt.timedelta(hours=29)
_PERIOD_KEYS: Final = ("patient_key", "period_start", "period_end")


@dataclass(frozen=True, slots=True)
class BucketWork:
    """What every bucket of a run shares."""

    engine: Engine
    lake: Lakehouse
    published: PublishedSnapshots | None
    quality: QualitySettings
    run_id: str
    computed_at: dt.datetime
    full_refresh: bool
    threads: int | None = None  # cores the task may use (None: every core)


@dataclass(frozen=True, slots=True)
class Bucket:
    """One bucket's input: its key prefix, the readings that arrived for it, and (a full
    refresh) every registered patient of it."""

    prefix: str
    arrived: pa.Table
    patient_keys: tuple[str, ...] = ()
    events: pa.Table = field(default_factory=EVENT_SCHEMA.empty_table)  # that arrived for it


@dataclass(frozen=True, slots=True)
class BucketTables:
    """A bucket's rows for every table of the registry (by short key), each with the scope of
    published rows they replace (ignored for a table runs append to), and its checks."""

    prefix: str
    incoming_rows: int
    tables: dict[str, tuple[pa.Table, Scope]]
    set_aside: pa.Table  # quality.SET_ASIDE_SCHEMA: the incoming readings kept out, and why
    incoming_events: int
    event_set_aside: pa.Table  # the same for the incoming events
    days: int
    period_count: int
    devices: tuple[DeviceRecord, ...]
    checks: tuple[CheckResult, ...]


@dataclass
class StepSeconds:
    """Seconds spent in each step, summed over the times it ran."""

    totals: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.totals[name] = self.totals.get(name, 0.0) + time.perf_counter() - started


def process_bucket(work: BucketWork, bucket: Bucket, timer: StepSeconds) -> BucketTables:
    """Set aside the readings the run must not publish, then merge, transform and audit the
    rest of one bucket of patients."""
    with timer.step("merge"):
        merged = _merge(work, bucket)
    with timer.step("transform"):
        out = _transform(work, bucket, merged)
    with timer.step("audit"):
        events = merged.events
        staged = StagedRun(
            merged.new,
            merged.every,
            out.daily,
            out.days,
            merged.incoming,
            incoming_events=events.incoming,
            all_events=events.every,
        )
        checks = run_checks(staged, work.quality)
    return BucketTables(
        prefix=bucket.prefix,
        incoming_rows=merged.arrived_rows,
        tables=out.tables,
        set_aside=merged.set_aside,
        incoming_events=merged.events.arrived_rows,
        event_set_aside=merged.events.set_aside,
        days=out.days.num_rows,
        period_count=out.period_count,
        devices=_devices(merged.new),
        checks=tuple(checks),
    )


@dataclass(frozen=True, slots=True)
class _Merged:
    arrived_rows: int
    set_aside: pa.Table  # quality.SET_ASIDE_SCHEMA
    incoming: pa.Table  # the arrived readings the row checks kept
    new: pa.Table  # those curated does not hold yet
    every: pa.Table  # the curated history the run read, and the new readings
    first_period_day: dt.date | None
    history: pa.Table  # every, and the older readings the rolling summary needs
    events: MergedEvents
    summarised: frozenset[str]  # the patients whose rolling summary the run rewrites


def _merge(work: BucketWork, bucket: Bucket) -> _Merged:
    """Set aside the readings and events the row checks refuse; read the curated history the
    run needs and keep the first arrival of each new key (``first_arrival``; the events':
    ``event_merge``)."""
    arrived = bucket.arrived
    admitted = set_aside_rows(arrived, work.quality)
    events = set_aside_events(bucket.events, work.quality)
    incoming = admitted.kept
    keys = set(pc.unique(incoming["patient_key"]).to_pylist())
    keys |= set(pc.unique(events.kept["patient_key"]).to_pylist())
    since = first_period_day = None
    if work.full_refresh:
        keys |= set(bucket.patient_keys)
    elif incoming.num_rows or events.kept.num_rows:
        new_days = _concat_days([touched_days(work.engine, incoming), event_days(events.kept)])
        first_period_day = _first_period(work, new_days)
        since = _history_start(_earliest(incoming, events.kept), first_period_day)
    read_since = rolling_history_start(incoming, since)  # one read for both
    summarised = frozenset(pc.unique(incoming["patient_key"]).to_pylist())
    if not work.full_refresh and events.kept.num_rows:
        read_since, summarised = _with_event_only(work, events.kept, read_since, summarised)
    older = work.lake.read_readings(_published(work, "readings"), keys, read_since)
    curated = older if since == read_since else older.filter(pc.field("ts") >= since)
    new = new_readings(incoming, curated)
    every = _concat([curated, new])
    history = every if curated is older else _concat([older, new])
    # From the rolling summary's start too: its windows' insulin and carbs (``_summaries``).
    stored = read_curated_events(work.lake, _published(work, "events"), keys, read_since)
    merged_events = merge_events(events, bucket.events.num_rows, stored)
    merged = (arrived.num_rows, admitted.set_aside, incoming, new, every, first_period_day)
    return _Merged(*merged, history, merged_events, summarised)


def _with_event_only(
    work: BucketWork, events: pa.Table, read_since: dt.datetime | None, summarised: frozenset[str]
) -> tuple[dt.datetime | None, frozenset[str]]:
    """The patients with new events and no new readings join the rolling summary's (their
    windows' insulin and carbs change), with history from ``ROLLING_HISTORY`` before their
    newest reading (the published summary's ``last_reading_at``; none: nothing to rewrite)."""
    only = tuple(sorted(set(pc.unique(events["patient_key"]).to_pylist()) - summarised))
    if not only:
        return read_since, summarised
    scope = Scope(patient_keys=only)
    stored = work.lake.read_scope("summaries", _published(work, "summaries"), scope)
    if stored.num_rows == 0:
        return read_since, summarised
    start = pc.min(stored["last_reading_at"]).as_py() - ROLLING_HISTORY
    since = start if read_since is None else min(read_since, start)
    return since, summarised | frozenset(stored["patient_key"].to_pylist())


@dataclass(frozen=True, slots=True)
class _Transformed:
    tables: dict[str, tuple[pa.Table, Scope]]  # by short key: rows, and the scope they replace
    daily: pa.Table
    days: pa.Table
    period_count: int


def _transform(work: BucketWork, bucket: Bucket, merged: _Merged) -> _Transformed:
    """Every table's rows for the bucket: the new readings and events, the daily metrics of
    the days they touch (glucose from the readings, insulin and carbs from the events), the
    closed periods' results, the sensor sessions."""
    every, new = merged.every, merged.new
    dated = every.append_column("local_date", local_dates(every))  # once, for both
    reading_days = touched_days(work.engine, dated)
    totals = daily_event_totals(merged.events.every)
    all_days = _distinct_days(_concat_days([reading_days, totals]))
    days, scope = _days_to_compute(work, bucket, all_days, new, merged.events.new)
    glucose = compute_daily_metrics(
        work.engine, dated, days, run_id=work.run_id, computed_at=work.computed_at
    )
    del dated
    keys = ["patient_key", "date"]
    of_days = totals.join(days.select(keys), keys, join_type="left semi")
    daily = daily_rows_with_events(
        glucose, of_days, run_id=work.run_id, computed_at=work.computed_at
    )
    periods, period_scope = _periods_to_compute(
        work, bucket, reading_days, scope, merged.first_period_day
    )
    run_id, at = work.run_id, work.computed_at
    inputs, session_scope = _session_inputs(work, bucket, every, new)
    results = period_results(every, periods, run_id=run_id, computed_at=at, threads=work.threads)
    summaries, summary_scope = _summaries(work, bucket, merged.history, merged.summarised)
    summaries = _with_event_totals(summaries, totals)
    meals, meals_scope = _meals(work, bucket, merged)
    tables = {
        "readings": (new, Scope()),
        "events": (merged.events.new, Scope()),
        "daily": (daily, scope),
        "periods": (_with_event_totals(results.periods, totals), period_scope),
        "episodes": (results.episodes, period_scope),
        "agp": (results.agp, period_scope),
        "summaries": (summaries, summary_scope),
        "meals": (meals, meals_scope),
        "sessions": (infer_sessions(inputs, run_id=run_id, computed_at=at), session_scope),
    }
    return _Transformed(tables, daily, days, periods.num_rows)


def _summaries(
    work: BucketWork, bucket: Bucket, every: pa.Table, summarised: frozenset[str]
) -> tuple[pa.Table, Scope]:
    """The rolling summary of the bucket's patients (full refresh), else of those with new
    readings, or new events and a published summary."""
    full = work.full_refresh
    keys = frozenset(bucket.patient_keys) if full else summarised
    scope = Scope(prefix=bucket.prefix) if full else Scope(patient_keys=tuple(sorted(keys)))
    return rolling_summaries(every, keys, run_id=work.run_id, computed_at=work.computed_at), scope


def _with_event_totals(rows: pa.Table, totals: pa.Table) -> pa.Table:
    """Period metrics (or rolling summary) rows with their insulin and carbohydrate columns,
    from the daily event totals of each row's days (``period_event_totals`` of its
    patient_key, period_start, period_end); NULL, as a recomputation without events leaves
    them, for a period that recorded no insulin, carbs or basal at all."""
    if rows.num_rows == 0:
        return rows
    per_period = period_event_totals(totals, rows.select(list(_PERIOD_KEYS)))  # rows' order
    days = ("insulin_days", "basal_days", "carbs_days", "automated_days")
    recorded = pc.greater(functools.reduce(pc.add, (per_period[n] for n in days)), 0)
    for name in PERIOD_EVENT_COLUMNS:
        values = pc.if_else(recorded, per_period[name], pa.scalar(None, per_period[name].type))
        rows = rows.set_column(rows.schema.get_field_index(name), rows.field(name), values)
    return rows


def _meals(work: BucketWork, bucket: Bucket, merged: _Merged) -> tuple[pa.Table, Scope]:
    """The meal responses to recompute (``meal_rows``) and the rows they replace."""
    full = work.full_refresh
    scope = Scope(prefix=bucket.prefix) if full else meal_scope(merged.new, merged.events.new)
    at, run_id = work.computed_at, work.run_id
    rows = meal_rows(merged.every, merged.events.every, scope, run_id=run_id, computed_at=at)
    return rows, scope


def _periods_to_compute(
    work: BucketWork,
    bucket: Bucket,
    all_days: pa.Table,
    scope: Scope,
    first_period_day: dt.date | None,
) -> tuple[pa.Table, Scope]:
    """The closed periods to recompute (pipeline.periods) and the results rows they replace."""
    if work.full_refresh:
        return closed_periods(all_days, None, None), Scope(prefix=bucket.prefix)
    if first_period_day is not None:
        touched = frozenset(scope.patient_keys)
        periods = closed_periods(all_days, touched, first_period_day)
        return periods, Scope(patient_keys=scope.patient_keys, from_date=first_period_day)
    # Every period this run touches is still open: nothing to write or replace.
    return closed_periods(all_days.slice(0, 0), None, None), Scope()


def _first_period(work: BucketWork, days: pa.Table) -> dt.date | None:
    """The first period to recompute: the one holding the earliest new day (``days``: of the
    new readings and events) or the last day published before this run, if that period is
    closed now (see pipeline.periods)."""
    span = days.group_by("patient_key").aggregate([("date", "min"), ("date", "max")])
    new_days = {
        key: (low, high)
        for key, low, high in zip(
            span["patient_key"].to_pylist(),
            span["date_min"].to_pylist(),
            span["date_max"].to_pylist(),
            strict=True,
        )
    }
    return first_period(new_days, work.lake.last_days(_published(work, "daily"), new_days))


def _earliest(incoming: pa.Table, events: pa.Table) -> dt.datetime:
    """The earliest time of the incoming readings and events (one of them has rows)."""
    times: list[dt.datetime] = [pc.min(t["ts"]).as_py() for t in (incoming, events) if t.num_rows]
    return min(times)


def _history_start(earliest: dt.datetime, first_period_day: dt.date | None) -> dt.datetime:
    """Curated rows from here on hold every day and period the run recomputes: 26 hours
    before the earliest new reading or event, or a day before the first period (a local day
    starts at most 14 hours before its UTC date)."""
    since = earliest - _HISTORY_MARGIN
    if first_period_day is not None:
        day_before = first_period_day - dt.timedelta(days=1)
        since = min(since, dt.datetime.combine(day_before, dt.time(), tzinfo=dt.UTC))
    return since


def _session_inputs(
    work: BucketWork, bucket: Bucket, every: pa.Table, new: pa.Table
) -> tuple[SessionInputs, Scope]:
    """A full refresh infers every session of the bucket from its readings. An incremental run
    replaces, for the patients with new readings, the sessions that end on or after the day of
    the earliest new reading less a session break, folding those it keeps as summaries."""
    no_sessions = SENSOR_SESSIONS_SCHEMA.empty_table()
    if work.full_refresh:
        return SessionInputs(no_sessions, every), Scope(prefix=bucket.prefix)
    if new.num_rows == 0:
        return SessionInputs(no_sessions, new), Scope()
    earliest: dt.datetime = pc.min(new["ts"]).as_py()
    scope = Scope(
        patient_keys=tuple(sorted(pc.unique(new["patient_key"]).to_pylist())),
        from_date=(earliest - dt.timedelta(minutes=SESSION_BREAK_MIN)).date(),
    )
    stored = work.lake.read_scope("sessions", _published(work, "sessions"), scope)
    readings_snapshot = _published(work, "readings")

    def read_curated(keys: tuple[str, ...], since: dt.datetime) -> pa.Table:
        return work.lake.read_readings(readings_snapshot, keys, since)

    return session_inputs(stored, new, read_curated), scope


def _published(work: BucketWork, short: str) -> int | None:
    """The table's published snapshot (None before the first publish)."""
    return None if work.published is None else work.published.of(short)


def _devices(new: pa.Table) -> tuple[DeviceRecord, ...]:
    """The (patient, device) pairs of the new readings, each with its format and first reading."""
    if new.num_rows == 0:
        return ()
    first = new.group_by(["patient_key", "device_id"]).aggregate([("ts", "min"), ("source", "min")])
    return tuple(
        DeviceRecord(k, d, s, t)
        for k, d, s, t in zip(
            first["patient_key"].to_pylist(),
            first["device_id"].to_pylist(),
            first["source_min"].to_pylist(),
            first["ts_min"].to_pylist(),
            strict=True,
        )
    )


def _days_to_compute(
    work: BucketWork, bucket: Bucket, all_days: pa.Table, new: pa.Table, new_events: pa.Table
) -> tuple[pa.Table, Scope]:
    """A full refresh recomputes every day of the bucket. An incremental run recomputes, for
    each patient with new readings or events, every day from the earliest local day a new
    reading or event of that patient falls on. Per patient, not one range for the bucket: a
    date begins 19 hours earlier in Sydney than in Los Angeles (26 between the extreme
    zones), so the bucket's earliest new day could begin, for another patient, before the
    history the run read."""
    if work.full_refresh:
        return all_days, Scope(prefix=bucket.prefix)
    touched = _concat_days([touched_days(work.engine, new), event_days(new_events)])
    if touched.num_rows == 0:
        return touched, Scope()
    first = touched.group_by("patient_key").aggregate([("date", "min")])
    scope = Scope.days_from(
        dict(zip(first["patient_key"].to_pylist(), first["date_min"].to_pylist(), strict=True))
    )
    return all_days.filter(scope.covers(all_days)), scope


def _concat_days(tables: list[pa.Table]) -> pa.Table:
    """(patient_key, date) tables as one (a day may repeat)."""
    return pa.concat_tables([t.select(["patient_key", "date"]).cast(PATIENT_DAYS) for t in tables])


def _distinct_days(days: pa.Table) -> pa.Table:
    """Each (patient_key, date) once, sorted."""
    distinct = days.group_by(["patient_key", "date"]).aggregate([])
    return distinct.sort_by([("patient_key", "ascending"), ("date", "ascending")])


def _concat(tables: list[pa.Table]) -> pa.Table:
    if not tables:
        return READING_SCHEMA.empty_table()
    return pa.concat_tables([t.cast(READING_SCHEMA) for t in tables])
