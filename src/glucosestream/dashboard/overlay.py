"""The daily overlay of one patient: each local day of a 14-day window drawn as one line over
the same 24 hours, so that a pattern that recurs at a time of day (a night low, a breakfast
peak) shows as lines that bunch together. The window is the patient's last 14 complete local
days (``metrics.report_window``); the newest day, when still being recorded, is drawn apart
and marked partial. A page and its JSON twin; glucose in mg/dL in the JSON, the page draws in
the viewer's unit."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from glucosestream.dashboard.auth import Viewer, api_viewer, audit_read, clock_of, page_viewer
from glucosestream.dashboard.clinic_windows import patient_windows
from glucosestream.dashboard.pages import chart_units
from glucosestream.dashboard.patient_names import patient_name
from glucosestream.dashboard.patientdata import period_data
from glucosestream.dashboard.range_labels import THRESHOLDS_MG_DL
from glucosestream.dashboard.templating import templates
from glucosestream.errors import NotFound
from glucosestream.metrics import REPORT_DAYS
from glucosestream.metrics.thresholds import TAR_LEVEL1_MG_DL, TBR_LEVEL1_MG_DL
from glucosestream.published import PublishedLake, PublishedRun
from glucosestream.published.request_scope import published_of

__all__ = ["DailyOverlay", "build_overlay", "router"]

router = APIRouter()
TARGET_MG_DL: Final = (TBR_LEVEL1_MG_DL, TAR_LEVEL1_MG_DL)  # the shaded band


@dataclass(frozen=True, slots=True)
class DailyOverlay:
    patient_key: str
    start: dt.date
    end: dt.date
    partial_day: dt.date | None  # drawn, marked partial, not one of the window's days
    days: list[dict[str, Any]]  # date, minute of day, mg/dL, partial

    def as_json(self) -> dict[str, Any]:
        return {
            "patient_key": self.patient_key,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "partial_day": self.partial_day.isoformat() if self.partial_day else None,
            "thresholds_mg_dl": list(THRESHOLDS_MG_DL),
            "target_mg_dl": list(TARGET_MG_DL),
            "days": self.days,
        }


def build_overlay(
    run: PublishedRun, patient_key: str, end: dt.date | None, *, now: dt.datetime
) -> DailyOverlay:
    """The 14 local days ending ``end`` (default: the last complete day; then the partial day
    after it is drawn too), at the run; 404 without published readings."""
    windows = patient_windows(run, patient_key)
    if windows is None:
        raise NotFound(f"no published readings for patient key {patient_key!r}")
    partial = windows.partial_day if end is None else None
    end = end or windows.current[1]
    start = end - dt.timedelta(days=REPORT_DAYS - 1)
    period = period_data(run, patient_key, start, partial or end, now=now)
    days = [
        {**trace, "partial": partial is not None and trace["date"] == partial.isoformat()}
        for trace in period.traces
    ]
    return DailyOverlay(patient_key, start, end, partial, days)


@router.get("/patients/{patient_key}/overlay", response_class=HTMLResponse, include_in_schema=False)
def overlay_page(
    patient_key: str,
    request: Request,
    viewer: Annotated[Viewer, Depends(page_viewer)],
    published: Annotated[PublishedLake, Depends(published_of)],
    end: Annotated[dt.date | None, Query(description="The window's last local day.")] = None,
) -> Response:
    """Each local day of the window as one line over 24 hours, in the viewer's unit."""
    now = clock_of(request)()
    audit_read(request, viewer, patient_key, "page.overlay", at=now)
    overlay = build_overlay(published.current(), patient_key, end, now=now)
    context = {
        "viewer": viewer,
        "o": overlay,
        "name": patient_name(request, viewer, patient_key),
        "data": {**chart_units(viewer.unit), **overlay.as_json()},
    }
    return templates.TemplateResponse(request, "overlay.html", context)


@router.get("/v1/patients/{patient_key}/overlay", tags=["metrics"])
def overlay_json(
    patient_key: str,
    request: Request,
    viewer: Annotated[Viewer, Depends(api_viewer)],
    published: Annotated[PublishedLake, Depends(published_of)],
    end: Annotated[dt.date | None, Query(description="The window's last local day.")] = None,
) -> dict[str, Any]:
    """The patient's readings of each local day of the window, by minute of the local day
    (mg/dL): the last 14 complete days by default, and the partial newest day marked."""
    now = clock_of(request)()
    audit_read(request, viewer, patient_key, "api.overlay", at=now)
    overlay = build_overlay(published.current(), patient_key, end, now=now)
    return {"ok": True, **overlay.as_json()}
