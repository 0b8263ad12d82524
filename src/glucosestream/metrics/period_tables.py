"""Metrics per patient and reporting period, for the pipeline's results tables. PURE.

The pipeline passes canonical readings (``patient_key, ts, glucose_mg_dl, tz``: UTC instants
and each reading's IANA zone) and the periods to report (``patient_key, period_start,
period_end``: local calendar dates, both included). Each reading is placed on its patient's
local wall clock first (its own ``tz``), so days, the grid and night/day are local; a period
holds the readings whose local date lies in it. Three tables come out, with the schemas below
(the lead creates Iceberg tables ``results.period_metrics``, ``results.episodes`` and
``results.agp_profile`` from them):

* ``compute_period_metrics``: one row per period: the consensus set (docs/metrics.md), GRI,
  episode counts and the data-sufficiency report, published definitions; its insulin and
  carbohydrate columns are NULL here (the pipeline fills them from
  ``event_totals.period_event_totals``);
* ``episode_rows``: one row per hypo- or hyperglycaemia episode (levels 1, 2, extended);
* ``agp_profile``: the AGP percentile curves, one row per grid time of day.

``period_results`` gives all three from one period cohort (the pipeline's call: placing the
readings on local clocks and laying them out per period is most of the cost of each).

Undefined values (a metric with too few data) are null. A period without readings still gets
its row in ``period_metrics`` (``readings`` = 0) and no rows in the other two.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.errors import InvalidInput
from glucosestream.localclock import wall_clock_times
from glucosestream.metrics.cohort_layout import Cohort, Readings, prepare_cohort
from glucosestream.metrics.kernel_columns import cohort_columns, numba_threads, usable_cores
from glucosestream.metrics.kernels.period_profiles import agp_percentiles, episode_list, grid_steps
from glucosestream.metrics.kernels.slices import gather_periods
from glucosestream.metrics.metric_options import MetricOptions
from glucosestream.metrics.result_schemas import (
    AGP_PROFILE_SCHEMA,
    EPISODE_KINDS,
    EPISODES_SCHEMA,
    LOCAL_TIME_COLUMNS,
    PERIOD_EVENT_FIELDS,
    PERIOD_METRICS_SCHEMA,
    metric_field,
)
from glucosestream.metrics.spec import CONSENSUS
from glucosestream.metrics.thresholds import (
    AGP_PERCENTILES,
    DEFAULT_INTER_GAP_MIN,
    MINUTES_PER_DAY,
    SECONDS_PER_DAY,
)

__all__ = [
    "AGP_PROFILE_SCHEMA",
    "EPISODES_SCHEMA",
    "PERIOD_METRICS_SCHEMA",
    "PeriodResults",
    "agp_profile",
    "compute_period_metrics",
    "episode_rows",
    "period_results",
]

IntArray = npt.NDArray[np.int64]


def _period_cohort(readings: pa.Table, periods: pa.Table) -> Cohort:
    """One "patient" per period: the readings of its patient whose local date lies in it."""
    missing = {"patient_key", "ts", "glucose_mg_dl", "tz"} - set(readings.column_names)
    if missing:
        raise InvalidInput(f"readings lack columns {sorted(missing)}; pass canonical readings")
    local = pa.table(
        {
            "id": readings["patient_key"],
            "time": wall_clock_times(readings["ts"], readings["tz"]),
            "gl": readings["glucose_mg_dl"],
        }
    )
    cohort = prepare_cohort(local)
    index = {key: i for i, key in enumerate(cohort.ids.to_pylist())}
    keys = periods["patient_key"].to_pylist()
    patient = np.array([index.get(k, -1) for k in keys], dtype=np.int64)
    day_s = SECONDS_PER_DAY
    start = pc.cast(periods["period_start"], pa.int32()).to_numpy().astype(np.int64) * day_s
    stop = (pc.cast(periods["period_end"], pa.int32()).to_numpy().astype(np.int64) + 1) * day_s
    r = cohort.readings
    offsets, t, g = gather_periods(*r.as_tuple(), patient, start, stop)
    return Cohort(pa.array(keys, pa.string()), Readings(offsets, t, g))


def _keys(periods: pa.Table, rows: IntArray | None = None) -> dict[str, pa.Array]:
    types = {"patient_key": pa.string(), "period_start": pa.date32(), "period_end": pa.date32()}
    out = {}
    for name, kind in types.items():
        column = periods[name].combine_chunks().cast(kind)
        out[name] = column if rows is None else pc.take(column, pa.array(rows))
    return out


def _run(n: int, run_id: str, computed_at: dt.datetime) -> dict[str, pa.Array]:
    """The run columns: one value repeated (no Python list of ``n`` objects)."""
    return {
        "run_id": pa.repeat(pa.scalar(run_id, pa.string()), n),
        "computed_at": pa.repeat(pa.scalar(computed_at, pa.timestamp("us", tz="UTC")), n),
    }


@dataclass(frozen=True, slots=True)
class PeriodResults:
    """The three results tables of the same readings and periods (see ``period_results``)."""

    periods: pa.Table  # PERIOD_METRICS_SCHEMA
    episodes: pa.Table  # EPISODES_SCHEMA
    agp: pa.Table  # AGP_PROFILE_SCHEMA


def period_results(
    readings: pa.Table,
    periods: pa.Table,
    *,
    run_id: str,
    computed_at: dt.datetime,
    threads: int | None = None,
) -> PeriodResults:
    """``compute_period_metrics``, ``episode_rows`` and ``agp_profile`` of the same readings
    and periods, from one period cohort (the readings on local wall clocks, laid out per
    period, and the grid steps) instead of one each; the kernels on ``threads`` threads
    (default: every core this process may use), the same results on any number."""
    threads = threads or usable_cores()
    cohort = _period_cohort(readings, periods)
    at = computed_at
    with numba_threads(threads):
        steps = grid_steps(*cohort.readings.as_tuple()[:2])
        return PeriodResults(
            periods=_period_metrics_of(
                cohort, steps, periods, run_id=run_id, computed_at=at, threads=threads
            ),
            episodes=_episodes_of(cohort, steps, periods, run_id=run_id, computed_at=at),
            agp=_agp_of(cohort, steps, periods, run_id=run_id, computed_at=at),
        )


def compute_period_metrics(
    readings: pa.Table, periods: pa.Table, *, run_id: str, computed_at: dt.datetime
) -> pa.Table:
    """``PERIOD_METRICS_SCHEMA`` rows, one per row of ``periods``, in that order."""
    cohort = _period_cohort(readings, periods)
    steps = grid_steps(*cohort.readings.as_tuple()[:2])
    return _period_metrics_of(cohort, steps, periods, run_id=run_id, computed_at=computed_at)


def episode_rows(
    readings: pa.Table, periods: pa.Table, *, run_id: str, computed_at: dt.datetime
) -> pa.Table:
    """``EPISODES_SCHEMA`` rows: every episode of every period, by period then kind."""
    cohort = _period_cohort(readings, periods)
    steps = grid_steps(*cohort.readings.as_tuple()[:2])
    return _episodes_of(cohort, steps, periods, run_id=run_id, computed_at=computed_at)


def agp_profile(
    readings: pa.Table, periods: pa.Table, *, run_id: str, computed_at: dt.datetime
) -> pa.Table:
    """``AGP_PROFILE_SCHEMA`` rows: each period's percentile curves by grid time of day."""
    cohort = _period_cohort(readings, periods)
    steps = grid_steps(*cohort.readings.as_tuple()[:2])
    return _agp_of(cohort, steps, periods, run_id=run_id, computed_at=computed_at)


def _period_metrics_of(
    cohort: Cohort,
    steps: IntArray,
    periods: pa.Table,
    *,
    run_id: str,
    computed_at: dt.datetime,
    threads: int | None = None,
) -> pa.Table:
    values = cohort_columns(cohort, CONSENSUS, MetricOptions(), threads)
    columns: dict[str, pa.Array] = _keys(periods)
    for name in CONSENSUS:
        field = metric_field(name)
        column = values[name]
        if name in LOCAL_TIME_COLUMNS:
            column = pc.strptime(column, format="%Y-%m-%d %H:%M:%S", unit="s")
        elif pa.types.is_floating(column.type):
            column = pa.array(column.to_numpy(zero_copy_only=False), from_pandas=True)
        columns[field.name] = pc.fill_null(column, 0) if name == "readings" else column
    columns["dt0_min"] = pa.array(np.where(steps > 0, steps, 0)).cast(pa.int32())
    columns["dt0_min"] = pc.if_else(pc.equal(columns["dt0_min"], 0), None, columns["dt0_min"])
    columns.update(_run(len(periods), run_id, computed_at))
    for field in PERIOD_EVENT_FIELDS:  # from the events: the pipeline fills them
        columns[field.name] = pa.nulls(len(periods), field.type)
    return pa.table(columns).cast(PERIOD_METRICS_SCHEMA)


def _episodes_of(
    cohort: Cohort, steps: IntArray, periods: pa.Table, *, run_id: str, computed_at: dt.datetime
) -> pa.Table:
    offsets, t, g = cohort.readings.as_tuple()
    ints, floats = episode_list(offsets, t, g, steps, DEFAULT_INTER_GAP_MIN * 60.0)
    kinds = ints[:, 1]
    columns: dict[str, pa.Array] = _keys(periods, ints[:, 0])
    columns["type"] = pa.array([EPISODE_KINDS[k][0] for k in kinds.tolist()], pa.string())
    columns["level"] = pa.array([EPISODE_KINDS[k][1] for k in kinds.tolist()], pa.string())
    columns["start_local"] = pa.array(ints[:, 2], pa.timestamp("s"))
    columns["end_local"] = pa.array(ints[:, 3], pa.timestamp("s"))
    columns["duration_min"] = pa.array((ints[:, 3] - ints[:, 2]) // 60, pa.int32())
    for j, name in enumerate(("mean_mg_dl", "min_mg_dl", "max_mg_dl")):
        columns[name] = pa.array(floats[:, j])
    columns.update(_run(len(ints), run_id, computed_at))
    return pa.table(columns).cast(EPISODES_SCHEMA)


def _agp_of(
    cohort: Cohort, steps: IntArray, periods: pa.Table, *, run_id: str, computed_at: dt.datetime
) -> pa.Table:
    offsets, t, g = cohort.readings.as_tuple()
    probs = np.asarray(AGP_PERCENTILES) / 100.0
    curves = agp_percentiles(offsets, t, g, steps, probs, DEFAULT_INTER_GAP_MIN * 60.0)
    per_day = np.where(steps > 0, MINUTES_PER_DAY // np.maximum(steps, 1), 0)
    period = np.repeat(np.arange(steps.size), per_day)
    first = np.repeat(np.cumsum(per_day) - per_day, per_day)
    minute = (np.arange(period.size) - first + 1) * np.repeat(steps, per_day)
    columns: dict[str, pa.Array] = _keys(periods, period)
    columns["minute_of_day"] = pa.array(minute, pa.int16())
    for j, p in enumerate(AGP_PERCENTILES):
        columns[f"p{int(p):02d}_mg_dl"] = pa.array(curves[:, j], from_pandas=True)
    columns.update(_run(period.size, run_id, computed_at))
    return pa.table(columns).cast(AGP_PROFILE_SCHEMA)
