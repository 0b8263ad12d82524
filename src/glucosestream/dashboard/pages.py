"""Dashboard routes: the patient list, the patient page and the daily-metrics JSON."""

from __future__ import annotations

import datetime as dt
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from glucosestream.config import Settings
from glucosestream.errors import NotFound
from glucosestream.ingest.api import settings_of
from glucosestream.lake import open_lakehouse, open_metadata
from glucosestream.metrics.summary import summarise_patients

__all__ = ["router"]

router = APIRouter()
_HERE = Path(__file__).parent
templates = Jinja2Templates(directory=_HERE / "templates")


def _plotly_js() -> Path:
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


def _daily_rows(
    settings: Settings,
    patient_key: str | None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
) -> list[dict[str, Any]]:
    published = open_metadata(settings.lake).published()
    if published is None:
        return []
    lake = open_lakehouse(settings.lake)
    table = lake.read_daily(published.daily_snapshot_id, patient_key, date_from, date_to)
    return [
        {**row, "date": row["date"].isoformat(), "computed_at": row["computed_at"].isoformat()}
        for row in table.to_pylist()
    ]


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


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index(request: Request, settings: Annotated[Settings, Depends(settings_of)]) -> HTMLResponse:
    published = open_metadata(settings.lake).published()
    summaries = []
    if published is not None:
        lake = open_lakehouse(settings.lake)
        summaries = summarise_patients(lake.read_daily(published.daily_snapshot_id))
    return templates.TemplateResponse(
        request, "index.html", {"patients": summaries, "run_id": published and published.run_id}
    )


@router.get("/v1/patients/{patient_key}/daily-metrics", tags=["metrics"])
def daily_metrics(
    patient_key: str,
    settings: Annotated[Settings, Depends(settings_of)],
    date_from: Annotated[dt.date | None, Query(alias="from")] = None,
    date_to: Annotated[dt.date | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    """The published daily metrics of one patient (by patient key), oldest day first."""
    rows = _daily_rows(settings, patient_key, date_from, date_to)
    if not rows and date_from is None and date_to is None:
        raise NotFound(f"no published metrics for patient key {patient_key!r}")
    return {"ok": True, "patient_key": patient_key, "days": rows}


@router.get("/patients/{patient_key}", response_class=HTMLResponse, include_in_schema=False)
def patient_page(
    patient_key: str, request: Request, settings: Annotated[Settings, Depends(settings_of)]
) -> HTMLResponse:
    rows = _daily_rows(settings, patient_key)
    if not rows:
        raise NotFound(f"no published metrics for patient key {patient_key!r}")
    return templates.TemplateResponse(
        request, "patient.html", {"patient_key": patient_key, "days": rows}
    )
