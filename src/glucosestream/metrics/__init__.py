"""The metric catalog. ``glycemic`` is the PURE reference implementation of the daily metrics;
``daily`` runs the same definitions as a SQL model over the lake, per patient and local day.

The full catalog (consensus core, episodes, GRI, AGP curves and iglu's research set) is computed
per patient by PURE kernels over one patient's time-sorted arrays: ``series`` (cleaning),
``grid`` (the interpolation grid), ``consensus``, ``episodes``, ``risk``, ``variability``,
``mage``, ``agp``, ``sufficiency``; ``catalog`` names and groups them; ``api`` is the public
entry (``compute_metrics``, ``episode_table``, ``agp_table``, and ``calculate_file``, which does
file I/O). Definitions and every difference from iglu: docs/metrics.md.
"""

from __future__ import annotations

from glucosestream.metrics.api import agp_table, calculate_file, compute_metrics, episode_table
from glucosestream.metrics.catalog import ALL, CONSENSUS, MetricOptions
from glucosestream.metrics.daily import DAILY_METRICS_SCHEMA, compute_daily_metrics, touched_days

__all__ = [
    "ALL",
    "CONSENSUS",
    "DAILY_METRICS_SCHEMA",
    "MetricOptions",
    "agp_table",
    "calculate_file",
    "compute_daily_metrics",
    "compute_metrics",
    "episode_table",
    "touched_days",
]
