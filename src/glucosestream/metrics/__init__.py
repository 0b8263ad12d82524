"""The metric catalog.

``spec`` is the one definition of every metric (name, group, unit, tier, thresholds, iglu
column, result type, source); ``ALL``, ``CONSENSUS``, the kernels' column order, the iglu
mappings, the results schemas and the docs' metric table derive from it. ``thresholds`` names
the numbers the definitions share. Cohorts are computed by compiled kernels (``kernels``,
numba) in one pass over flat (patient, time)-sorted arrays (``cohort_layout`` builds them,
``kernel_columns`` reads the results back by name). ``reference`` is the readable, PURE
per-patient definition of the same catalog: the test oracle the kernels are held equal to.
``calculator`` is the public entry (``compute_metrics``, ``episode_table``, ``agp_table``, and
``calculate_file``, which does file I/O); ``period_tables`` computes the per-period results
tables whose schemas are in ``result_schemas``; ``daily`` runs the daily metrics as a SQL model
(``glycemic`` is its PURE reference). ``event_totals`` gives insulin and carbohydrate per local
day and period from the events (pump basal by ``basal_delivery``, cut at local midnight by
``day_pieces``); ``meal_response`` the CGM response to each carbohydrate record. Local days
come from ``glucosestream.localclock``.
Definitions and every difference from iglu: docs/metrics.md.
"""

from __future__ import annotations

from glucosestream.metrics.calculator import (
    agp_table,
    calculate_file,
    compute_metrics,
    episode_table,
)
from glucosestream.metrics.daily import (
    DAILY_METRICS_SCHEMA,
    EVENT_COLUMNS,
    compute_daily_metrics,
    local_dates,
    touched_days,
)
from glucosestream.metrics.event_totals import (
    DAILY_EVENT_TOTALS_SCHEMA,
    PERIOD_EVENT_TOTALS_SCHEMA,
    daily_event_totals,
    daily_rows_with_events,
    period_event_totals,
)
from glucosestream.metrics.meal_response import MEAL_RESPONSE_SCHEMA, meal_responses
from glucosestream.metrics.metric_options import MetricOptions
from glucosestream.metrics.open_episode import OpenEpisode, open_episode
from glucosestream.metrics.period_tables import (
    PeriodResults,
    agp_profile,
    compute_period_metrics,
    episode_rows,
    period_results,
)
from glucosestream.metrics.report_window import REPORT_DAYS, ReportWindow, report_window
from glucosestream.metrics.result_schemas import (
    AGP_PROFILE_SCHEMA,
    EPISODES_SCHEMA,
    PERIOD_EVENT_COLUMNS,
    PERIOD_METRICS_SCHEMA,
)
from glucosestream.metrics.spec import ALL, CONSENSUS

__all__ = [
    "AGP_PROFILE_SCHEMA",
    "ALL",
    "CONSENSUS",
    "DAILY_EVENT_TOTALS_SCHEMA",
    "DAILY_METRICS_SCHEMA",
    "EPISODES_SCHEMA",
    "EVENT_COLUMNS",
    "MEAL_RESPONSE_SCHEMA",
    "PERIOD_EVENT_COLUMNS",
    "PERIOD_EVENT_TOTALS_SCHEMA",
    "PERIOD_METRICS_SCHEMA",
    "REPORT_DAYS",
    "MetricOptions",
    "OpenEpisode",
    "PeriodResults",
    "ReportWindow",
    "agp_profile",
    "agp_table",
    "calculate_file",
    "compute_daily_metrics",
    "compute_metrics",
    "compute_period_metrics",
    "daily_event_totals",
    "daily_rows_with_events",
    "episode_rows",
    "episode_table",
    "local_dates",
    "meal_responses",
    "open_episode",
    "period_event_totals",
    "period_results",
    "report_window",
    "touched_days",
]
