"""What the patient view and the AGP report show, from one patient's published readings:
daily glucose traces on the local clock, the episodes to mark on them, the period's consensus
metrics and its AGP percentile curves (computed by ``glucosestream.metrics.periods``)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.dashboard.lakeview import LakeView, PublishedDaily
from glucosestream.metrics import agp_profile, compute_period_metrics, episode_rows

__all__ = ["PeriodData", "local_readings", "period_data"]

_RUN_ID = "dashboard"  # period tables made for a page are not published: no run owns them
_MAX_ZONE_LEAD = dt.timedelta(days=1)  # a local day starts at most 14 h before its UTC date


@dataclass(frozen=True, slots=True)
class PeriodData:
    """One patient's readings-based views for the local dates start..end (both included)."""

    start: dt.date
    end: dt.date
    traces: list[dict[str, Any]]  # one per local day: date, minute of day, mg/dL
    episodes: list[dict[str, Any]]
    metrics: dict[str, Any]  # the consensus set, GRI and sufficiency for the period
    agp: dict[str, list[float | None]]  # minute_of_day and p05..p95 (mg/dL)


def local_readings(readings: pa.Table) -> pa.Table:
    """``local_ts`` (naive wall-clock time in each reading's own zone) and ``glucose_mg_dl``."""
    parts = []
    for zone in pc.unique(readings["tz"]).to_pylist():
        rows = readings.filter(pc.equal(readings["tz"], zone))
        local = pc.local_timestamp(rows["ts"].cast(pa.timestamp("us", tz=zone)))
        parts.append(pa.table({"local_ts": local, "glucose_mg_dl": rows["glucose_mg_dl"]}))
    if not parts:
        return pa.table({"local_ts": pa.array([], pa.timestamp("us")), "glucose_mg_dl": []})
    return pa.concat_tables(parts).sort_by("local_ts")


def _traces(local: pa.Table, start: dt.date, end: dt.date) -> list[dict[str, Any]]:
    dates = pc.cast(local["local_ts"], pa.date32())
    keep = pc.and_(pc.greater_equal(dates, pa.scalar(start)), pc.less_equal(dates, pa.scalar(end)))
    local, dates = local.filter(keep), dates.filter(keep)
    minutes = pc.divide(
        pc.cast(pc.subtract(local["local_ts"], pc.cast(dates, pa.timestamp("us"))), pa.int64()),
        60_000_000.0,
    )
    table = pa.table({"date": dates, "minute": minutes, "g": local["glucose_mg_dl"]})
    out = []
    for day in pc.unique(table["date"]).to_pylist():
        rows = table.filter(pc.equal(table["date"], pa.scalar(day)))
        out.append(
            {
                "date": day.isoformat(),
                "minute": [round(m, 2) for m in rows["minute"].to_pylist()],
                "mg_dl": [round(g, 1) for g in rows["g"].to_pylist()],
            }
        )
    return out


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def period_data(
    view: LakeView,
    published: PublishedDaily,
    patient_key: str,
    start: dt.date,
    end: dt.date,
    *,
    now: dt.datetime,
) -> PeriodData:
    since = dt.datetime.combine(start, dt.time(), dt.UTC) - _MAX_ZONE_LEAD
    readings = view.lake.read_readings(published.readings_snapshot_id, [patient_key], since)
    periods = pa.table(
        {"patient_key": [patient_key], "period_start": [start], "period_end": [end]},
        pa.schema(
            [
                ("patient_key", pa.string()),
                ("period_start", pa.date32()),
                ("period_end", pa.date32()),
            ]
        ),
    )
    metrics_row = compute_period_metrics(readings, periods, run_id=_RUN_ID, computed_at=now)
    episodes = episode_rows(readings, periods, run_id=_RUN_ID, computed_at=now)
    profile = agp_profile(readings, periods, run_id=_RUN_ID, computed_at=now)
    agp_columns = ("minute_of_day", "p05_mg_dl", "p25_mg_dl", "p50_mg_dl", "p75_mg_dl", "p95_mg_dl")
    return PeriodData(
        start,
        end,
        _traces(local_readings(readings), start, end),
        [
            {k: _clean(v) for k, v in row.items() if k not in ("run_id", "computed_at")}
            for row in episodes.select(
                ["type", "level", "start_local", "end_local", "duration_min"]
            ).to_pylist()
        ],
        {
            k: _clean(v)
            for k, v in metrics_row.to_pylist()[0].items()
            if k not in ("run_id", "computed_at")
        },
        {c: [_clean(v) for v in profile[c].to_pylist()] for c in agp_columns},
    )
