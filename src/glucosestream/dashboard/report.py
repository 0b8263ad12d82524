"""The AGP report (IDC AGP v5 layout; Battelino 2019 and 2023 consensus) as a page, and as PDF
through headless Chromium; ``render_agp_html``/``render_agp_pdf`` serve the command line too."""

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
from glucosestream.dashboard.auth import Viewer, audit_read, clock_of, page_viewer
from glucosestream.dashboard.pages import CONSENSUS_TARGETS, patient_daily
from glucosestream.dashboard.patientdata import PeriodData, period_data
from glucosestream.dashboard.pdf import copy_assets, html_to_pdf
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


def build_agp(
    published: PublishedLake, patient_key: str, end: dt.date | None, *, now: dt.datetime
) -> AgpReport:
    """The 14 days ending ``end`` (default: the patient's last published day), at the last
    published run: audited when they are a published period (``published.period_results``)."""
    run = published.current()
    daily = patient_daily(run, patient_key)  # 404 for a patient without published metrics
    end = end or daily.last_day(patient_key)
    start = end - dt.timedelta(days=AGP_DAYS - 1)
    return AgpReport(patient_key, period_data(run, patient_key, start, end, now=now), now)


def _context(report: AgpReport, unit: str, viewer: Viewer | None, static: str) -> dict[str, Any]:
    period = report.period
    return {
        "viewer": viewer,
        "report": report,
        "m": period.metrics,
        "unit": unit,
        "static": static,
        "targets": CONSENSUS_TARGETS,
        "data": {
            "unit": unit,
            "audited": period.audited,
            "agp": period.agp,
            "traces": period.traces,
            "episodes": period.episodes,
            "start": period.start.isoformat(),
            "end": period.end.isoformat(),
        },
    }


def render_agp_html(
    settings: Settings,
    patient_key: str,
    *,
    end: dt.date | None = None,
    unit: str = "mg_dl",
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
    template = templates.env.get_template("agp.html")
    return template.render(_context(report, unit, None, static))


def render_agp_pdf(
    settings: Settings,
    patient_key: str,
    out_path: Path,
    *,
    end: dt.date | None = None,
    unit: str = "mg_dl",
    principal: Principal = COMMAND_LINE,
) -> Path:
    """Write the AGP report as PDF (``.pdf``) or as a self-contained page (``.html``)."""
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
    page = templates.env.get_template("agp.html").render(_context(report, unit, None, "static/"))
    if kind == "report.html":  # the page and, beside it, the scripts it loads
        out_path.write_text(page, encoding="utf-8")
        copy_assets(out_path.parent / "static")
    else:
        out_path.write_bytes(html_to_pdf(page))
    return out_path


@router.get("/patients/{patient_key}/agp", response_class=HTMLResponse)
def agp_page(
    patient_key: str,
    request: Request,
    viewer: Annotated[Viewer, Depends(page_viewer)],
    published: Annotated[PublishedLake, Depends(published_of)],
    end: Annotated[dt.date | None, Query()] = None,
) -> Response:
    now = clock_of(request)()
    audit_read(request, viewer, patient_key, "page.agp", at=now)
    report = build_agp(published, patient_key, end, now=now)
    context = _context(report, viewer.unit, viewer, "/static/")
    return templates.TemplateResponse(request, "agp.html", context)


@router.get("/patients/{patient_key}/agp.pdf")
async def agp_pdf(
    patient_key: str,
    request: Request,
    viewer: Annotated[Viewer, Depends(page_viewer)],
    published: Annotated[PublishedLake, Depends(published_of)],
    end: Annotated[dt.date | None, Query()] = None,
) -> Response:
    now = clock_of(request)()
    audit_read(request, viewer, patient_key, "export.agp_pdf", at=now)
    report = build_agp(published, patient_key, end, now=now)
    page = templates.env.get_template("agp.html").render(
        _context(report, viewer.unit, None, "static/")
    )
    pdf = await run_in_threadpool(html_to_pdf, page)
    name = f"agp-{patient_key[:12]}-{report.period.end.isoformat()}.pdf"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
