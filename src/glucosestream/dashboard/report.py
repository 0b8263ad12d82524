"""The AGP report (IDC AGP v5 layout; Battelino 2019 and 2023 consensus) as a page, and as PDF
through headless Chromium on A4 or Letter; ``render_agp_html``/``render_agp_pdf`` serve the
command line too.

The report's 14 days end on the patient's last complete local day (``patientdata.latest_window``,
``metrics.report_window``), or on an earlier day asked for; a partial newest day is named on the
report, never counted. Every glucose value, range and label is in the viewer's unit."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from glucosestream.access import Principal, record_access
from glucosestream.clock import utc_now
from glucosestream.config import Settings
from glucosestream.dashboard.auth import Unit, Viewer, audit_read, clock_of, page_viewer
from glucosestream.dashboard.pages import CONSENSUS_TARGETS, chart_units, patient_daily
from glucosestream.dashboard.patient_names import PatientName, patient_name, patient_name_for
from glucosestream.dashboard.patientdata import PeriodData, latest_window, period_data
from glucosestream.dashboard.pdf import PAPER_SIZES, Paper, copy_assets, html_to_pdf
from glucosestream.dashboard.range_labels import range_labels
from glucosestream.dashboard.templating import templates
from glucosestream.lake import open_access
from glucosestream.published import PublishedLake
from glucosestream.published.request_scope import published_of

__all__ = ["AGP_DAYS", "COMMAND_LINE", "AgpReport", "render_agp_html", "render_agp_pdf", "router"]

router = APIRouter(include_in_schema=False)
AGP_DAYS: Final = 14  # Battelino 2019: 14 days with >= 70 % of data
# The principal the command line acts as: an operator with the lake on their own disk.
COMMAND_LINE: Final = Principal("command-line", "admin", frozenset(), None, "command line")


@dataclass(frozen=True, slots=True)
class AgpReport:
    patient_key: str
    period: PeriodData
    generated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class _Layout:
    """How one rendering looks: unit, who it names, paper, where its scripts are."""

    unit: Unit
    name: PatientName | None
    paper: Paper = "a4"
    viewer: Viewer | None = None
    static: str = "static/"


def build_agp(
    published: PublishedLake, patient_key: str, end: dt.date | None, *, now: dt.datetime
) -> AgpReport:
    """The 14 complete local days ending ``end`` (default, and at the latest: the patient's
    last complete day), at the last published run: audited when they are a published period
    (``published.period_results``); the partial newest day is named when the report reaches
    the last complete day."""
    run = published.current()
    patient_daily(run, patient_key)  # 404 for a patient without published metrics
    back = None if end is None else end - dt.timedelta(days=AGP_DAYS)
    window, readings = latest_window(run, patient_key, earliest=back)
    last = min(end or window.end, window.end)
    start = last - dt.timedelta(days=AGP_DAYS - 1)
    partial = window.partial_day if last == window.end else None
    period = period_data(
        run, patient_key, start, last, now=now, readings=readings, partial_day=partial
    )
    return AgpReport(patient_key, period, now)


def _context(report: AgpReport, layout: _Layout) -> dict[str, Any]:
    period = report.period
    width_in, _ = PAPER_SIZES[layout.paper]
    return {
        "viewer": layout.viewer,
        "name": layout.name,
        "report": report,
        "m": period.metrics,
        "unit": layout.unit,
        "ranges": range_labels(layout.unit),
        "static": layout.static,
        "targets": CONSENSUS_TARGETS,
        "agp_days": AGP_DAYS,
        "paper": layout.paper,
        "paper_size": "A4" if layout.paper == "a4" else "Letter",
        "page_width_in": f"{width_in - 0.5:.2f}",
        "data": {
            **chart_units(layout.unit),
            "audited": period.audited,
            "agp": period.agp,
            "traces": period.traces,
            "episodes": period.episodes,
            "days": AGP_DAYS,
            "start": period.start.isoformat(),
            "end": period.end.isoformat(),
            "partial": None if period.partial is None else period.partial.as_json(),
        },
    }


def _page(report: AgpReport, layout: _Layout) -> str:
    return templates.env.get_template("agp.html").render(_context(report, layout))


def render_agp_html(
    settings: Settings,
    patient_key: str,
    *,
    end: dt.date | None = None,
    unit: Unit = "mg_dl",
    paper: Paper = "a4",
    principal: Principal = COMMAND_LINE,
    static: str = "/static/",
    now: dt.datetime | None = None,
) -> str:
    """The AGP report page as a string (records the read in the access audit trail)."""
    at = now or utc_now()
    report = build_agp(PublishedLake(settings), patient_key, end, now=at)
    record_access(
        open_access(settings.lake),
        principal,
        "report.html",
        f"agp:{patient_key}",
        at=at,
        patient_key=patient_key,
    )
    name = patient_name_for(settings, patient_key)
    return _page(report, _Layout(unit, name, paper, static=static))


def render_agp_pdf(
    settings: Settings,
    patient_key: str,
    out_path: Path,
    *,
    end: dt.date | None = None,
    unit: Unit = "mg_dl",
    paper: Paper = "a4",
    principal: Principal = COMMAND_LINE,
) -> Path:
    """Write the AGP report as PDF (``.pdf``, one page of A4 or Letter) or as a self-contained
    page (``.html``). It names the patient by label or id (``patient_name_for``), else leaves
    blank Name and DOB lines to write in."""
    at = utc_now()
    report = build_agp(PublishedLake(settings), patient_key, end, now=at)
    kind = "report.pdf" if out_path.suffix.lower() == ".pdf" else "report.html"
    record_access(
        open_access(settings.lake),
        principal,
        kind,
        f"agp:{patient_key}",
        at=at,
        patient_key=patient_key,
    )
    page = _page(report, _Layout(unit, patient_name_for(settings, patient_key), paper))
    if kind == "report.html":  # the page and, beside it, the scripts it loads
        out_path.write_text(page, encoding="utf-8")
        copy_assets(out_path.parent / "static")
    else:
        out_path.write_bytes(html_to_pdf(page, paper))
    return out_path


@router.get("/patients/{patient_key}/agp", response_class=HTMLResponse)
def agp_page(
    patient_key: str,
    request: Request,
    viewer: Annotated[Viewer, Depends(page_viewer)],
    published: Annotated[PublishedLake, Depends(published_of)],
    end: Annotated[dt.date | None, Query()] = None,
    paper: Annotated[Paper, Query()] = "a4",
) -> Response:
    now = clock_of(request)()
    audit_read(request, viewer, patient_key, "page.agp", at=now)
    report = build_agp(published, patient_key, end, now=now)
    name = patient_name(request, viewer, patient_key)
    layout = _Layout(viewer.unit, name, paper, viewer, "/static/")
    return templates.TemplateResponse(request, "agp.html", _context(report, layout))


@router.get("/patients/{patient_key}/agp.pdf")
async def agp_pdf(
    patient_key: str,
    request: Request,
    viewer: Annotated[Viewer, Depends(page_viewer)],
    published: Annotated[PublishedLake, Depends(published_of)],
    end: Annotated[dt.date | None, Query()] = None,
    paper: Annotated[Paper, Query()] = "a4",
) -> Response:
    """The AGP report as a one-page PDF on ``paper`` (a4 or letter)."""
    now = clock_of(request)()
    audit_read(request, viewer, patient_key, "export.agp_pdf", at=now)
    report = build_agp(published, patient_key, end, now=now)
    name = patient_name(request, viewer, patient_key)
    page = _page(report, _Layout(viewer.unit, name, paper))
    pdf = await run_in_threadpool(html_to_pdf, page, paper)
    filename = f"agp-{patient_key[:12]}-{report.period.end.isoformat()}.pdf"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
