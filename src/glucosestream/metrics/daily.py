"""Daily metrics per patient and local calendar day, as a SQL model run by an engine.

The model's thresholds and GMI coefficients are passed in as parameters from
``thresholds`` and ``glycemic`` (the numbers live there, not in the SQL).

A row's glucose columns come from the day's readings; its insulin and carbohydrate columns
(``EVENT_COLUMNS``: ``bolus_u``, ``basal_u``, ``insulin_total_u``, ``carbs_g``, ``boluses``,
``automated_pct``; names other tools read) from the day's events
(``metrics.event_totals.daily_event_totals``). The SQL model leaves the event columns NULL;
the pipeline fills them from the day's totals (``event_totals.daily_rows_with_events``), which
adds a row for a day with events and no readings: ``readings`` = 0, ``pct_active`` = 0, the
glucose columns NULL."""

from __future__ import annotations

import datetime as dt
from typing import Final

import pyarrow as pa

from glucosestream.engines import Engine, read_sql
from glucosestream.events import DAILY_EVENT_COLUMNS
from glucosestream.localclock import local_days
from glucosestream.metrics.glycemic import GMI_INTERCEPT_PCT, GMI_SLOPE_PCT_PER_MG_DL
from glucosestream.metrics.thresholds import (
    TAR_LEVEL1_MG_DL,
    TAR_LEVEL2_MG_DL,
    TBR_LEVEL1_MG_DL,
    TBR_LEVEL2_MG_DL,
)

__all__ = [
    "DAILY_METRICS_SCHEMA",
    "EVENT_COLUMNS",
    "compute_daily_metrics",
    "local_dates",
    "touched_days",
]

DAILY_METRICS_SCHEMA: Final = pa.schema(
    [
        pa.field("patient_key", pa.string(), nullable=False),
        pa.field("date", pa.date32(), nullable=False),
        pa.field("tz", pa.string(), nullable=False),
        pa.field("readings", pa.int32(), nullable=False),
        # NULL only on a day with events and no readings (readings = 0).
        pa.field("mean_mg_dl", pa.float64()),
        pa.field("sd_mg_dl", pa.float64()),
        pa.field("cv_pct", pa.float64()),
        pa.field("gmi_pct", pa.float64()),
        pa.field("pct_below_54", pa.float64()),
        pa.field("pct_below_70", pa.float64()),
        pa.field("pct_70_180", pa.float64()),
        pa.field("pct_above_180", pa.float64()),
        pa.field("pct_above_250", pa.float64()),
        pa.field("pct_active", pa.float64(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("computed_at", pa.timestamp("us", tz="UTC"), nullable=False),
        # Insulin and carbohydrate (docs/metrics.md); last, so a lake that gains them by schema
        # evolution (appended columns) has the same column order as a new one.
        pa.field("bolus_u", pa.float64()),
        pa.field("basal_u", pa.float64()),
        pa.field("insulin_total_u", pa.float64()),
        pa.field("carbs_g", pa.float64()),
        pa.field("boluses", pa.int32()),
        pa.field("automated_pct", pa.float64()),
    ]
)
EVENT_COLUMNS: Final = DAILY_EVENT_COLUMNS

_PACKAGE: Final = "glucosestream.metrics"


def local_dates(readings: pa.Table) -> pa.Array:
    """Each reading's calendar day in its own zone (``tz``): ``localclock.local_days``, whose
    rule reads a null or unknown zone as UTC (the pipeline sets such readings aside first)."""
    return local_days(readings["ts"], readings["tz"])


def _with_local_dates(readings: pa.Table) -> pa.Table:
    """The readings with their local day (kept if the caller already added it)."""
    if "local_date" in readings.column_names:
        return readings
    return readings.append_column("local_date", local_dates(readings))


def touched_days(engine: Engine, readings: pa.Table) -> pa.Table:
    """(patient_key, date) of every local day that ``readings`` fall on."""
    return engine.query(
        read_sql(_PACKAGE, "touched_days.sql"), {"readings": _with_local_dates(readings)}
    )


def compute_daily_metrics(
    engine: Engine,
    readings: pa.Table,
    days: pa.Table,
    *,
    run_id: str,
    computed_at: dt.datetime,
) -> pa.Table:
    """Daily metrics for ``days`` (patient_key, date) from all of those patients' readings."""
    result = engine.query(
        read_sql(_PACKAGE, "daily_metrics.sql"),
        {"readings": _with_local_dates(readings), "days": days},
        gmi_intercept=GMI_INTERCEPT_PCT,
        gmi_slope=GMI_SLOPE_PCT_PER_MG_DL,
        tbr_level2=TBR_LEVEL2_MG_DL,
        tbr_level1=TBR_LEVEL1_MG_DL,
        tar_level1=TAR_LEVEL1_MG_DL,
        tar_level2=TAR_LEVEL2_MG_DL,
        run_id=run_id,
        computed_at=computed_at.isoformat(),
    )
    return result.cast(DAILY_METRICS_SCHEMA)
