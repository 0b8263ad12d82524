"""Page and JSON routes: assets, the triage list, the patient view and their JSON."""

from __future__ import annotations

import datetime as dt
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import pyarrow as pa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from glucosestream.alerts import AlertStore, rules_for
from glucosestream.config import AlertSettings
from glucosestream.dashboard.alerts_routes import alert_store_of
from glucosestream.dashboard.auth import Unit, Viewer, api_viewer, audit_read, clock_of, page_viewer
from glucosestream.dashboard.insulin_carbs import InsulinCarbs, insulin_carbs
from glucosestream.dashboard.now import KIND_LABELS, NowPanel, now_panel
from glucosestream.dashboard.patient_names import patient_name
from glucosestream.dashboard.patientdata import latest_window, local_readings, period_data
from glucosestream.dashboard.range_labels import THRESHOLDS_MG_DL, range_labels
from glucosestream.dashboard.templating import templates
from glucosestream.dashboard.trace_markers import trace_markers
from glucosestream.dashboard.triage import TriageFilter, triage_rows
from glucosestream.errors import NotFound
from glucosestream.live import LiveWindow
from glucosestream.metrics import ReportWindow
from glucosestream.metrics.summary import TARGETS
from glucosestream.published import (
    DailyIndex,
    PublishedLake,
    PublishedRun,
    audited_periods,
    merged_readings,
)
from glucosestream.published.request_scope import published_of
from glucosestream.readings import MG_DL_PER_MMOL_L

__all__ = ["CONSENSUS_TARGETS", "chart_units", "patient_daily", "router"]

router = APIRouter()
_HERE = Path(__file__).parent
TRACE_DAYS = 14  # daily traces shown: the AGP reporting window (Battelino 2019)
TREND_DAYS = 90  # default range of the trend charts
NOW_READINGS = dt.timedelta(hours=24)  # the now panel's readings: today's local day is in them
NOW_ALERTS = 50  # the newest alerts the now panel looks through (active, dead deliveries)
# The consensus targets (metrics.summary.TARGETS) keyed as the pages' scripts read them:
# "<metric>_min" / "<metric>_max".
CONSENSUS_TARGETS: dict[str, float] = {f"{t.metric}_{t.bound}": t.value for t in TARGETS}


def chart_units(unit: Unit) -> dict[str, Any]:
    """What static/charts.js needs to draw in the viewer's unit: the unit, the one conversion
    factor, the thresholds the axes mark (mg/dL) and the ranges' labels."""
    return {
        "unit": unit,
        "mg_dl_per_mmol_l": MG_DL_PER_MMOL_L,
        "thresholds_mg_dl": list(THRESHOLDS_MG_DL),
        "ranges": range_labels(unit).as_json(),
    }


def patient_daily(run: PublishedRun, patient_key: str) -> DailyIndex:
    """The run's daily index, after checking the patient has published metrics (else 404)."""
    daily = run.daily_index()
    if patient_key not in daily:
        raise NotFound(f"no published metrics for patient key {patient_key!r}")
    return daily


def _plotly_js() -> Path:
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


@router.get("/static/plotly.min.js", include_in_schema=False)
def plotly_js() -> FileResponse:
    return FileResponse(_plotly_js(), media_type="text/javascript")


@router.get("/static/{name}", include_in_schema=False)
def static_file(name: str) -> FileResponse:
    allowed = {p.name: p for p in (_HERE / "static").iterdir()}
    if name not in allowed:
        raise NotFound(f"no static file {name!r}")
    return FileResponse(allowed[name])


@router.get("/healthz", tags=["ops"])
def healthz() -> dict[str, bool]:
    return {"ok": True}


def _iso_rows(
    daily: DailyIndex, key: str, start: dt.date | None, end: dt.date | None
) -> list[dict[str, Any]]:
    rows = daily.patient_days(key, start, end).drop_columns(["run_id", "computed_at"])
    return [{**r, "date": r["date"].isoformat()} for r in rows.to_pylist()]


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index(
    request: Request,
    viewer: Annotated[Viewer, Depends(page_viewer)],
    published: Annotated[PublishedLake, Depends(published_of)],
    flt: Annotated[TriageFilter, Depends()],
) -> Response:
    """Clinic triage for clinicians and admins; a patient goes to their own page."""
    if viewer.principal.role == "patient":
        own = sorted(viewer.principal.patient_keys)[0]
        return RedirectResponse(f"/patients/{own}", status_code=303)
    page = triage_rows(request, viewer, published.current(), flt)
    return templates.TemplateResponse(
        request,
        "triage.html",
        {"viewer": viewer, "page": page, "flt": flt, "kind_labels": KIND_LABELS},
    )


@router.get("/v1/triage", tags=["triage"])
def triage_json(
    request: Request,
    viewer: Annotated[Viewer, Depends(api_viewer)],
    published: Annotated[PublishedLake, Depends(published_of)],
    flt: Annotated[TriageFilter, Depends()],
) -> dict[str, Any]:
    """Every patient the caller may read, riskiest first (GRI, time <54, time <70,
    data sufficiency, last day with data), over the last 14 days in the lake."""
    page = triage_rows(request, viewer, published.current(), flt)
    return {"ok": True, "total": page.total, "as_of": page.as_of, "patients": page.rows}


@router.get("/v1/patients/{patient_key}/daily-metrics", tags=["metrics"])
def daily_metrics(
    patient_key: str,
    request: Request,
    viewer: Annotated[Viewer, Depends(api_viewer)],
    published: Annotated[PublishedLake, Depends(published_of)],
    date_from: Annotated[dt.date | None, Query(alias="from")] = None,
    date_to: Annotated[dt.date | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    """The published daily metrics of one patient (by patient key), oldest day first."""
    audit_read(request, viewer, patient_key, "api.daily_metrics", at=clock_of(request)())
    daily = patient_daily(published.current(), patient_key)
    rows = _iso_rows(daily, patient_key, date_from, date_to)
    return {"ok": True, "patient_key": patient_key, "days": rows}


def _range(
    daily: DailyIndex,
    key: str,
    requested: tuple[dt.date | None, dt.date | None],
    window: ReportWindow,
) -> tuple[dt.date, dt.date]:
    """The page's days: those asked for, ending on the last complete day at the latest (a
    partial day is never counted); by default the ``TREND_DAYS`` ending there."""
    start, end = requested
    if start is not None and end is not None and start > end:
        start, end = end, start
    end = min(end or window.end, window.end)
    start = start or max(daily.first_day(key), end - dt.timedelta(days=TREND_DAYS - 1))
    return min(start, end), end


def _now_of(request: Request, run: PublishedRun, patient_key: str, at: dt.datetime) -> NowPanel:
    """The patient's now panel: the published and live readings of the last day, the alerts."""
    live: LiveWindow = request.app.state.live
    since = at - NOW_READINGS
    readings = merged_readings(run, live, patient_key, now=at, since=since)
    store = alert_store_of(request)
    warn_min, urgent_min = _stale_minutes(store, request.app.state.settings.alerts, patient_key)
    return now_panel(
        readings,
        at=at,
        unpublished=len(live.unsettled(patient_key)),
        alerts=store.list_alerts(patient_key=patient_key, limit=NOW_ALERTS),
        stale_warn_min=warn_min,
        stale_urgent_min=urgent_min,
    )


def _stale_minutes(
    store: AlertStore, limits: AlertSettings, patient_key: str
) -> tuple[float, float]:
    """The patient's stale-data rule (the site's or their own override of the warning's
    minutes) and when it becomes urgent: the badge says what the alert would."""
    rules = rules_for(patient_key, store.patient_alerts(patient_key).rule_rows, limits)
    warn_min = rules.get("stale_data").minutes or limits.stale_warn_min
    return warn_min, max(warn_min, rules.stale_urgent_min)


def _now_json(patient_key: str, panel: NowPanel, unit: str) -> dict[str, Any]:
    """What static/now.js starts from: the panel, the unit, the labels and where to refresh."""
    return {
        "url": f"/v1/patients/{quote(patient_key)}/now",
        "unit": unit,
        "labels": KIND_LABELS,
        "panel": panel.as_json(),
    }


@router.get("/v1/patients/{patient_key}/now", tags=["metrics"])
def patient_now(
    patient_key: str,
    request: Request,
    viewer: Annotated[Viewer, Depends(api_viewer)],
    published: Annotated[PublishedLake, Depends(published_of)],
) -> dict[str, Any]:
    """The patient's now panel: the newest reading (published or accepted since) with its
    trend, minutes since it, the stale-data level, today's trace on the patient's local clock,
    the active alerts and those with dead webhook deliveries. The page refreshes it every 30 s."""
    at = clock_of(request)()
    audit_read(request, viewer, patient_key, "page.patient.now", at=at)
    panel = _now_of(request, published.current(), patient_key, at)
    return {"ok": True, "patient_key": patient_key, "now": panel.as_json()}


def _event_views(
    run: PublishedRun,
    patient_key: str,
    readings: pa.Table,
    days: tuple[dt.date, dt.date, dt.date],
) -> tuple[list[dict[str, Any]], InsulinCarbs]:
    """The traces' bolus and carb markers (the counted days ``days[0]``..``days[1]`` and a
    partial day up to ``days[2]``) and the counted days' insulin and carbs summary."""
    first, end, last = days
    since = dt.datetime.combine(first, dt.time(), dt.UTC) - dt.timedelta(days=1)
    until = dt.datetime.combine(last, dt.time(), dt.UTC) + dt.timedelta(days=2)
    events = run.events(patient_key, since, until)  # a margin for any zone's local days
    markers = trace_markers(events, local_readings(readings), (first, last))
    summary = insulin_carbs(run.daily_index().patient_days(patient_key, first, end), first, end)
    return markers, summary


def _patient_context(
    run: PublishedRun,
    patient_key: str,
    window: tuple[dt.date | None, dt.date | None],
    *,
    now: dt.datetime,
    unit: Unit,
) -> dict[str, Any]:
    """The page's metrics, charts and periods (``has_metrics``: a run published some). The
    traces are the last ``TRACE_DAYS`` complete days of the range; a partial newest day is
    shown apart when the range reaches the last complete day."""
    daily = run.daily_index()
    if patient_key not in daily:
        return {"has_metrics": False, "has_readings": False}
    back = None if window[1] is None else window[1] - dt.timedelta(days=TRACE_DAYS)
    report, readings = latest_window(run, patient_key, earliest=back)
    start, end = _range(daily, patient_key, window, report)
    trace_start = max(start, end - dt.timedelta(days=TRACE_DAYS - 1))
    partial = report.partial_day if end == report.end else None
    period = period_data(
        run, patient_key, trace_start, end, now=now, readings=readings, partial_day=partial
    )
    markers, summary = _event_views(run, patient_key, readings, (trace_start, end, partial or end))
    data = {
        **chart_units(unit),
        "audited": period.audited,
        "days": _iso_rows(daily, patient_key, start, end),
        "traces": period.traces,
        "episodes": period.episodes,
        "targets": CONSENSUS_TARGETS,
        "partial": None if period.partial is None else period.partial.as_json(),
        "partial_days": [] if partial is None else _iso_rows(daily, patient_key, partial, partial),
        "markers": markers,
    }
    return {
        "has_metrics": True,
        # A pump's data without a sensor's: no AGP, comparison or overlay to link to.
        "has_readings": readings.num_rows > 0,
        "start": start,
        "end": end,
        "trace_start": trace_start,
        "trace_days": (end - trace_start).days + 1,
        "metrics": period.metrics,
        "period": period,
        "partial": period.partial,
        "audited_periods": [
            (s, e) for s, e in audited_periods(run, patient_key) if e >= start and s <= end
        ],
        "data": data,
        "markers": markers,
        "insulin_carbs": summary,
    }


@router.get("/patients/{patient_key}", response_class=HTMLResponse, include_in_schema=False)
def patient_page(
    patient_key: str,
    request: Request,
    viewer: Annotated[Viewer, Depends(page_viewer)],
    published: Annotated[PublishedLake, Depends(published_of)],
    date_from: Annotated[dt.date | None, Query(alias="from")] = None,
    date_to: Annotated[dt.date | None, Query(alias="to")] = None,
) -> Response:
    """The patient view: the now panel above the published metrics. A patient with neither
    published metrics nor readings accepted since is 404."""
    now = clock_of(request)()
    audit_read(request, viewer, patient_key, "page.patient", at=now)
    run = published.current()
    context = _patient_context(run, patient_key, (date_from, date_to), now=now, unit=viewer.unit)
    panel = _now_of(request, run, patient_key, now)
    if not context["has_metrics"] and panel.reading_at is None and not panel.alerts:
        raise NotFound(f"no published metrics or readings for patient key {patient_key!r}")
    context.update(
        viewer=viewer,
        patient_key=patient_key,
        now=panel,
        now_json=_now_json(patient_key, panel, viewer.unit),
        kind_labels=KIND_LABELS,
        ranges=range_labels(viewer.unit),
        name=patient_name(request, viewer, patient_key),
    )
    return templates.TemplateResponse(request, "patient.html", context)
