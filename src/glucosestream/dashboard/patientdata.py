"""What the patient view and the AGP report show of one patient's window of local days: the
daily glucose traces on the local clock (from the published readings), and the window's
consensus metrics, episodes and AGP percentile curves: the audited rows of a published period,
or computed now and marked not yet audited (``published.period_results``)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.localclock import wall_clock_times
from glucosestream.published import PeriodResults, PublishedRun, period_results

__all__ = ["PeriodData", "local_readings", "period_data"]

_MAX_ZONE_LEAD: Final = dt.timedelta(days=1)  # a local day starts at most 14 h before its UTC date
_AGP_COLUMNS: Final = (
    "minute_of_day", "p05_mg_dl", "p25_mg_dl", "p50_mg_dl", "p75_mg_dl", "p95_mg_dl",
)  # fmt: skip
_EPISODE_COLUMNS: Final = ["type", "level", "start_local", "end_local", "duration_min"]


@dataclass(frozen=True, slots=True)
class PeriodData:
    """One patient's views for the local dates start..end (both included)."""

    start: dt.date
    end: dt.date
    traces: list[dict[str, Any]]  # one per local day: date, minute of day, mg/dL
    episodes: list[dict[str, Any]]
    metrics: dict[str, Any]  # the consensus set, GRI and sufficiency for the period
    agp: dict[str, list[float | None]]  # minute_of_day and p05..p95 (mg/dL)
    audited: bool  # the published rows of a closed period, not computed for this request
    audited_by: str | None  # the run that wrote them


def local_readings(readings: pa.Table) -> pa.Table:
    """``local_ts`` (naive wall-clock time in each reading's own zone, ``localclock``) and
    ``glucose_mg_dl``, in local time order."""
    local = wall_clock_times(readings["ts"], readings["tz"])
    table = pa.table({"local_ts": local, "glucose_mg_dl": readings["glucose_mg_dl"]})
    return table.sort_by("local_ts")


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


def _views(results: PeriodResults) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """The episodes, metrics and AGP curves of the results as JSON-ready values."""
    episodes = results.episodes.sort_by([("start_local", "ascending"), ("type", "ascending")])
    rows = results.metrics.to_pylist()
    metrics = (
        {k: _clean(v) for k, v in rows[0].items() if k not in ("run_id", "computed_at")}
        if rows
        else {}
    )
    episode_rows = episodes.select(_EPISODE_COLUMNS).to_pylist()
    return (
        [{k: _clean(v) for k, v in r.items()} for r in episode_rows],
        metrics,
        {c: [_clean(v) for v in results.agp[c].to_pylist()] for c in _AGP_COLUMNS},
    )


def period_data(
    run: PublishedRun, patient_key: str, start: dt.date, end: dt.date, *, now: dt.datetime
) -> PeriodData:
    """The patient's traces of ``start``..``end`` and the window's results, at the run."""
    since = dt.datetime.combine(start, dt.time(), dt.UTC) - _MAX_ZONE_LEAD
    readings = run.readings([patient_key], since)
    results = period_results(run, patient_key, start, end, readings=readings, now=now)
    episodes, metrics, agp = _views(results)
    return PeriodData(
        start,
        end,
        _traces(local_readings(readings), start, end),
        episodes,
        metrics,
        agp,
        results.audited,
        results.audited_by,
    )
