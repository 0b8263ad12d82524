"""What the patient view and the AGP report show of one patient's window of local days: the
daily glucose traces on the local clock (from the published readings), and the window's
consensus metrics, episodes and AGP percentile curves: the audited rows of a published period,
or computed now and marked not yet audited (``published.period_results``).

Which days: ``latest_window`` applies the reporting window's rule (``metrics.report_window``)
to the patient's newest *published* reading: the window ends on the last complete local day,
and a newest day that is not complete is the ``PartialDay``, shown apart and never counted.
Published readings only, because the window's figures are computed from them: a day that the
live window (readings accepted since the run) completes still has only part of its data in the
run, and counting it would plot the very dip the rule is there to avoid; the page's now panel
shows those readings.

The AGP curves are the percentiles of each time-of-day bin of the interpolation grid across
the window's days, then smoothed (``smooth_agp``), as the AGP is drawn (docs/dashboard.md).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.localclock import wall_clock_times
from glucosestream.metrics import REPORT_DAYS, ReportWindow, report_window
from glucosestream.metrics.agp_loess import loess
from glucosestream.published import PeriodResults, PublishedRun, period_results

__all__ = [
    "PartialDay",
    "PeriodData",
    "latest_window",
    "local_readings",
    "period_data",
    "smooth_agp",
    "window_of",
]

_MAX_ZONE_LEAD: Final = dt.timedelta(days=1)  # a local day starts at most 14 h before its UTC date
_AGP_COLUMNS: Final = (
    "minute_of_day", "p05_mg_dl", "p25_mg_dl", "p50_mg_dl", "p75_mg_dl", "p95_mg_dl",
)  # fmt: skip
_EPISODE_COLUMNS: Final = ["type", "level", "start_local", "end_local", "duration_min"]


@dataclass(frozen=True, slots=True)
class PartialDay:
    """The newest local day of a patient's data when it is not complete: shown, marked
    partial, never counted (``metrics.report_window``)."""

    date: dt.date
    until: dt.time  # wall-clock time of its newest published reading
    trace: dict[str, Any] | None  # as PeriodData.traces: date, minute of day, mg/dL

    def as_json(self) -> dict[str, Any]:
        return {
            "date": self.date.isoformat(),
            "until": self.until.strftime("%H:%M"),
            "trace": self.trace,
        }


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
    partial: PartialDay | None = None  # the newest day, when the window ends before it


def local_readings(readings: pa.Table) -> pa.Table:
    """``local_ts`` (naive wall-clock time in each reading's own zone, ``localclock``) and
    ``glucose_mg_dl``, in local time order."""
    local = wall_clock_times(readings["ts"], readings["tz"])
    table = pa.table({"local_ts": local, "glucose_mg_dl": readings["glucose_mg_dl"]})
    return table.sort_by("local_ts")


def window_of(readings: pa.Table, last_day: dt.date, days: int = REPORT_DAYS) -> ReportWindow:
    """The report window that ``readings`` (published, READING_SCHEMA's ``ts``, ``tz``) give:
    ``report_window`` of their newest reading's wall-clock time. Without readings, the
    ``days`` ending on ``last_day`` (the daily metrics' last day), all counted."""
    if readings.num_rows == 0:
        return ReportWindow(last_day - dt.timedelta(days=days - 1), last_day, None)
    local = wall_clock_times(readings["ts"], readings["tz"])
    newest = pc.index(readings["ts"], pc.max(readings["ts"])).as_py()
    newest_local: dt.datetime = local[newest].as_py()
    return report_window(newest_local, days)


def latest_window(
    run: PublishedRun, patient_key: str, *, earliest: dt.date | None = None
) -> tuple[ReportWindow, pa.Table]:
    """The patient's default report window (``window_of`` their published readings) and the
    readings read for it, from ``earliest`` (or the window's first possible day) on: enough
    for ``period_data`` of any window that starts there. The patient must have daily rows."""
    last = run.daily_index().last_day(patient_key)
    first = last - dt.timedelta(days=REPORT_DAYS)
    if earliest is not None:
        first = min(first, earliest)
    since = dt.datetime.combine(first, dt.time(), dt.UTC) - _MAX_ZONE_LEAD
    readings = run.readings([patient_key], since)
    return window_of(readings, last), readings


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
        smooth_agp(results.agp),
    )


def smooth_agp(agp: pa.Table) -> dict[str, list[float | None]]:
    """The AGP curves as drawn: each percentile curve (one value per time-of-day bin) smoothed
    over the time of day by ``metrics.agp_loess.loess`` (span 0.3, local quadratic); a bin
    with no value in any day stays empty. mg/dL to one decimal."""
    agp = agp.sort_by("minute_of_day")
    minutes = agp["minute_of_day"].to_numpy().astype(np.float64)
    out: dict[str, list[float | None]] = {"minute_of_day": agp["minute_of_day"].to_pylist()}
    for column in _AGP_COLUMNS[1:]:
        raw = agp[column].to_numpy(zero_copy_only=False).astype(np.float64)
        smooth = loess(minutes, raw) if raw.size else raw
        out[column] = [
            None if math.isnan(r) or math.isnan(v) else round(float(v), 1)
            for r, v in zip(raw.tolist(), smooth.tolist(), strict=True)
        ]
    return out


def _partial(local: pa.Table, day: dt.date) -> PartialDay:
    traces = _traces(local, day, day)
    dates = pc.cast(local["local_ts"], pa.date32())
    on_day = local["local_ts"].filter(pc.equal(dates, pa.scalar(day)))
    until = pc.max(on_day).as_py().time() if len(on_day) else dt.time()
    return PartialDay(day, until, traces[0] if traces else None)


def period_data(
    run: PublishedRun,
    patient_key: str,
    start: dt.date,
    end: dt.date,
    *,
    now: dt.datetime,
    readings: pa.Table | None = None,
    partial_day: dt.date | None = None,
) -> PeriodData:
    """The patient's traces of ``start``..``end`` and the window's results, at the run;
    ``readings``: the patient's published readings from before ``start`` on (read if None);
    ``partial_day``: the newest day, not counted, whose trace is shown apart."""
    if readings is None:
        since = dt.datetime.combine(start, dt.time(), dt.UTC) - _MAX_ZONE_LEAD
        readings = run.readings([patient_key], since)
    results = period_results(run, patient_key, start, end, readings=readings, now=now)
    episodes, metrics, agp = _views(results)
    local = local_readings(readings)
    return PeriodData(
        start,
        end,
        _traces(local, start, end),
        episodes,
        metrics,
        agp,
        results.audited,
        results.audited_by,
        None if partial_day is None else _partial(local, partial_day),
    )
