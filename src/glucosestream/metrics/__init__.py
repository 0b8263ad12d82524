"""The metric catalog. ``glycemic`` is the PURE reference implementation of each metric;
``daily`` runs the same definitions as a SQL model over the lake, per patient and local day.
"""

from __future__ import annotations

from glucosestream.metrics.daily import DAILY_METRICS_SCHEMA, compute_daily_metrics, touched_days

__all__ = ["DAILY_METRICS_SCHEMA", "compute_daily_metrics", "touched_days"]
