"""The period comparison of one patient: this fortnight (the last 14 complete local days,
``metrics.report_window``) against the 14 days before, as a page and as JSON.

Each window's consensus metrics, time-in-ranges bar and AGP percentile curves come from
``published.period_results`` (the audited rows when a window is a published period, else
computed from the published readings and marked not audited; the curves smoothed as the AGP
report draws them, ``patientdata.smooth_agp``); the change is this fortnight's
value less the previous one's, and each metric is set against its consensus target (Battelino
2019, Diabetes Care 42:1593)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from glucosestream.dashboard.auth import Viewer, api_viewer, audit_read, clock_of, page_viewer
from glucosestream.dashboard.clinic_windows import (
    ReportWindows,
    Window,
    window_readings,
    windows_of,
)
from glucosestream.dashboard.pages import CONSENSUS_TARGETS, chart_units
from glucosestream.dashboard.patient_names import patient_name
from glucosestream.dashboard.patientdata import smooth_agp
from glucosestream.dashboard.range_labels import range_labels
from glucosestream.dashboard.templating import templates
from glucosestream.dashboard.triage_flags import WEAR_MIN_PCT, range_shares, wear_pct
from glucosestream.errors import NotFound
from glucosestream.metrics.thresholds import (
    TAR_LEVEL1_MG_DL,
    TAR_LEVEL2_MG_DL,
    TBR_LEVEL1_MG_DL,
    TBR_LEVEL2_MG_DL,
)
from glucosestream.published import PeriodResults, PublishedLake, PublishedRun, period_results
from glucosestream.published.request_scope import published_of
from glucosestream.readings import MG_DL_PER_MMOL_L

__all__ = ["COMPARED", "ComparedMetric", "Comparison", "build_comparison", "router"]

router = APIRouter()

NO_CHANGE: Final = 0.05  # below this (the pages' last decimal) a change is no change

Kind = Literal["pct", "glucose", "score", "days"]
Better = Literal["higher", "lower"]


@dataclass(frozen=True, slots=True)
class _Spec:
    metric: str
    label: str
    kind: Kind
    better: Better | None
    target_min: float | None = None
    target_max: float | None = None
    low_mg_dl: float | None = None  # the glucose range a time-in-range row counts
    high_mg_dl: float | None = None


_T = CONSENSUS_TARGETS
# The consensus set, in the AGP report's order.
COMPARED: Final[tuple[_Spec, ...]] = (
    _Spec("days", "Days of data", "days", "higher"),
    _Spec("wear_pct", "Sensor wear (share of the window)", "pct", "higher", WEAR_MIN_PCT),
    _Spec("mean_mg_dl", "Mean glucose", "glucose", None),
    _Spec("gmi_pct", "Glucose management indicator (GMI)", "pct", "lower", None, _T["gmi_pct_max"]),
    _Spec("cv_pct", "Glucose variability (CV)", "pct", "lower", None, _T["cv_pct_max"]),
    _Spec(
        "pct_above_250", "Time very high", "pct", "lower",
        target_max=_T["pct_above_250_max"], low_mg_dl=TAR_LEVEL2_MG_DL,
    ),
    _Spec(
        "pct_above_180", "Time high or very high", "pct", "lower",
        target_max=_T["pct_above_180_max"], low_mg_dl=TAR_LEVEL1_MG_DL,
    ),
    _Spec(
        "pct_70_180", "Time in range", "pct", "higher",
        target_min=_T["pct_70_180_min"], low_mg_dl=TBR_LEVEL1_MG_DL, high_mg_dl=TAR_LEVEL1_MG_DL,
    ),
    _Spec(
        "pct_below_70", "Time low or very low", "pct", "lower",
        target_max=_T["pct_below_70_max"], high_mg_dl=TBR_LEVEL1_MG_DL,
    ),
    _Spec(
        "pct_below_54", "Time very low", "pct", "lower",
        target_max=_T["pct_below_54_max"], high_mg_dl=TBR_LEVEL2_MG_DL,
    ),
    _Spec("gri", "Glycemia Risk Index (GRI)", "score", "lower"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ComparedMetric:
    """One metric of both windows: ``change`` is current less previous; ``improved`` says
    whether the change goes the better way (None: no better way, or no change to judge)."""

    metric: str
    label: str
    kind: Kind
    current: float | None
    previous: float | None
    change: float | None
    improved: bool | None
    target_min: float | None
    target_max: float | None
    meets_current: bool | None  # None: no target, or no value
    meets_previous: bool | None
    low_mg_dl: float | None
    high_mg_dl: float | None


@dataclass(frozen=True, slots=True)
class WindowView:
    start: dt.date
    end: dt.date
    audited: bool
    audited_by: str | None
    metrics: dict[str, Any]  # the period metrics row, JSON-ready, with ``wear_pct``
    agp: dict[str, list[float | None]]  # minute_of_day and p05..p95 (mg/dL), smoothed

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(start=self.start.isoformat(), end=self.end.isoformat())
        out["ranges"] = [asdict(r) for r in range_shares(self.metrics)]
        return out


@dataclass(frozen=True, slots=True)
class Comparison:
    patient_key: str
    partial_day: dt.date | None
    current: WindowView
    previous: WindowView
    rows: list[ComparedMetric]

    def as_json(self) -> dict[str, Any]:
        return {
            "patient_key": self.patient_key,
            "partial_day": self.partial_day.isoformat() if self.partial_day else None,
            "current": self.current.as_json(),
            "previous": self.previous.as_json(),
            "metrics": [asdict(r) for r in self.rows],
        }


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.isoformat() if isinstance(value, dt.date) else value


def _view(results: PeriodResults) -> WindowView:
    rows = results.metrics.to_pylist()
    metrics = {k: v for k, v in (rows[0] if rows else {}).items() if k not in ("computed_at",)}
    metrics["wear_pct"] = wear_pct(metrics)
    agp = smooth_agp(results.agp)  # as the AGP report draws it
    return WindowView(
        results.start,
        results.end,
        results.audited,
        results.audited_by,
        {k: _json_value(v) for k, v in metrics.items()},
        agp,
    )


def _number(metrics: dict[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    return float(value) if isinstance(value, int | float) else None


def _meets(spec: _Spec, value: float | None) -> bool | None:
    if value is None or (spec.target_min is None and spec.target_max is None):
        return None
    if spec.target_min is not None and value < spec.target_min:
        return False
    return not (spec.target_max is not None and value > spec.target_max)


def _compared(spec: _Spec, current: WindowView, previous: WindowView) -> ComparedMetric:
    now, before = _number(current.metrics, spec.metric), _number(previous.metrics, spec.metric)
    change = None if now is None or before is None else now - before
    improved = None
    if change is not None and abs(change) >= NO_CHANGE and spec.better is not None:
        improved = (change > 0) == (spec.better == "higher")
    return ComparedMetric(
        spec.metric,
        spec.label,
        spec.kind,
        now,
        before,
        change,
        improved,
        spec.target_min,
        spec.target_max,
        _meets(spec, now),
        _meets(spec, before),
        spec.low_mg_dl,
        spec.high_mg_dl,
    )


def build_comparison(run: PublishedRun, patient_key: str, *, now: dt.datetime) -> Comparison:
    """This fortnight against the one before, at the run (404 without published readings)."""
    readings = window_readings(run, patient_key)
    windows: ReportWindows | None = windows_of(readings)
    if windows is None:
        raise NotFound(f"no published readings for patient key {patient_key!r}")
    views: dict[Window, WindowView] = {
        window: _view(period_results(run, patient_key, start, end, readings=readings, now=now))
        for window, (start, end) in windows.spans().items()
    }
    current, previous = views["current"], views["previous"]
    rows = [_compared(spec, current, previous) for spec in COMPARED]
    return Comparison(patient_key, windows.partial_day, current, previous, rows)


@router.get("/patients/{patient_key}/compare", response_class=HTMLResponse, include_in_schema=False)
def comparison_page(
    patient_key: str,
    request: Request,
    viewer: Annotated[Viewer, Depends(page_viewer)],
    published: Annotated[PublishedLake, Depends(published_of)],
) -> Response:
    """This fortnight against the one before: metrics, time in ranges and AGP curves."""
    now = clock_of(request)()
    audit_read(request, viewer, patient_key, "page.compare", at=now)
    comparison = build_comparison(published.current(), patient_key, now=now)
    context = {
        "viewer": viewer,
        "c": comparison,
        "name": patient_name(request, viewer, patient_key),
        "data": {**chart_units(viewer.unit), **comparison.as_json()},
        "range_text": range_labels(viewer.unit).as_json(),
        "mg_dl_per_mmol_l": MG_DL_PER_MMOL_L,
    }
    return templates.TemplateResponse(request, "comparison.html", context)


@router.get("/v1/patients/{patient_key}/compare", tags=["metrics"])
def comparison_json(
    patient_key: str,
    request: Request,
    viewer: Annotated[Viewer, Depends(api_viewer)],
    published: Annotated[PublishedLake, Depends(published_of)],
) -> dict[str, Any]:
    """The patient's last 14 complete local days against the 14 before: each window's
    consensus metrics, time in ranges and AGP curves (mg/dL), and per metric the change and
    the consensus target."""
    now = clock_of(request)()
    audit_read(request, viewer, patient_key, "api.compare", at=now)
    comparison = build_comparison(published.current(), patient_key, now=now)
    return {"ok": True, **comparison.as_json()}
