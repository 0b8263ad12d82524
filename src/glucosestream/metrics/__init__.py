"""The metric catalog. ``glycemic`` is the PURE reference implementation of the daily metrics;
``daily`` runs the same definitions as a SQL model over the lake, per patient and local day.

The full catalog (consensus core, episodes, GRI, AGP curves and iglu's research set) is defined
per patient by PURE reference functions over one patient's time-sorted arrays: ``series``
(cleaning), ``grid`` (the interpolation grid), ``consensus``, ``episodes``, ``risk``,
``variability``, ``mage``, ``agp``, ``sufficiency``; ``catalog`` names and groups them. Cohorts are
computed by compiled kernels (``kernels``, numba) in one pass over flat (patient, time)-sorted
arrays (``cohort`` builds them, ``columns`` names the results); tests hold them equal to the
reference. ``api`` is the public entry (``compute_metrics``, ``episode_table``, ``agp_table``,
and ``calculate_file``, which does file I/O); ``periods`` computes the per-period results tables
whose schemas are in ``result_schemas``. Definitions and every difference from iglu:
docs/metrics.md.
"""

from __future__ import annotations

from glucosestream.metrics.api import agp_table, calculate_file, compute_metrics, episode_table
from glucosestream.metrics.catalog import ALL, CONSENSUS, MetricOptions
from glucosestream.metrics.daily import (
    DAILY_METRICS_SCHEMA,
    compute_daily_metrics,
    local_dates,
    touched_days,
)
from glucosestream.metrics.periods import agp_profile, compute_period_metrics, episode_rows
from glucosestream.metrics.result_schemas import (
    AGP_PROFILE_SCHEMA,
    EPISODES_SCHEMA,
    PERIOD_METRICS_SCHEMA,
)

__all__ = [
    "AGP_PROFILE_SCHEMA",
    "ALL",
    "CONSENSUS",
    "DAILY_METRICS_SCHEMA",
    "EPISODES_SCHEMA",
    "PERIOD_METRICS_SCHEMA",
    "MetricOptions",
    "agp_profile",
    "agp_table",
    "calculate_file",
    "compute_daily_metrics",
    "compute_metrics",
    "compute_period_metrics",
    "episode_rows",
    "episode_table",
    "local_dates",
    "touched_days",
]
