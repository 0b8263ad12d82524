"""The one ASGI app: the ingest API, the Nightscout API, the JSON API and the dashboard pages
(the reads through the app's one ``published.PublishedLake``).

Always, the app holds one ingest service whose ``on_committed`` hooks feed what runs beside it.
With ``AlwaysOnOptions`` (``serve``), its lifespan also starts the always-on parts (the alert
engine, the webhook delivery worker and, unless ``pipeline=False``, the run scheduler) and
stops them in reverse order; without them (tests, ``demo``) no thread is started.

Errors leave in one shape, ``{"ok": false, "error": "a; b", "errors": ["a", "b"], "status": N}``;
the one exception is a page asked for without a session, which redirects to ``/login``. A body
over its limit (``ingest.limits``) is refused with 413 before it is read.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final, Protocol
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from glucosestream.alerts import AlertEngine, AlertStore, DeliveryWorker, enqueue, open_alert_store
from glucosestream.clock import Clock, utc_now
from glucosestream.config import Settings
from glucosestream.dashboard.alerts_routes import router as alerts_router
from glucosestream.dashboard.browser_sessions import SessionStore
from glucosestream.dashboard.clinic_pass import warm_clinic_pass
from glucosestream.dashboard.cohort_release import router as cohort_router
from glucosestream.dashboard.comparison import router as comparison_router
from glucosestream.dashboard.login import router as login_router
from glucosestream.dashboard.overlay import router as overlay_router
from glucosestream.dashboard.pages import router as pages_router
from glucosestream.dashboard.patient_search import router as patient_search_router
from glucosestream.dashboard.report import router as report_router
from glucosestream.dashboard.summary_routes import router as summary_router
from glucosestream.dashboard.triage import router as triage_router
from glucosestream.errors import GlucoseStreamError, LoginRequired
from glucosestream.http_errors import ERROR_RESPONSES, ErrorResponse
from glucosestream.ingest.api import router as ingest_router
from glucosestream.ingest.limits import BodyLimit
from glucosestream.ingest.service import IngestService
from glucosestream.lake import open_access, open_patient_directory
from glucosestream.live import CommittedBatch, LiveWindow, live_state
from glucosestream.pipeline.always_on import RunScheduler
from glucosestream.published import PublishedLake, PublishedRun, warm_tails
from glucosestream.published.nightscout_read import router as nightscout_read_router

__all__ = ["AlwaysOnOptions", "create_app", "error_response"]


@dataclass(frozen=True, slots=True)
class AlwaysOnOptions:
    """What ``serve`` runs beside the routes: ``pipeline`` (False: ``serve --no-pipeline``, no
    run scheduler), the command and environment each scheduled run is started with, and the
    maintenance command the scheduler starts daily (none: no maintenance)."""

    pipeline: bool = True
    run_command: Sequence[str] = ()
    run_env: Mapping[str, str] = field(default_factory=dict)
    maintain_command: Sequence[str] = ()


class _Service(Protocol):
    """A part that runs beside the routes in a thread of its own."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


CommittedHook = Callable[[CommittedBatch], None]

_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'"
    ),
}

_METHODS: Final = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
# Every route may answer these, in the one error shape (a route adds its own, e.g. 409).
_ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    **ERROR_RESPONSES,
    400: {"model": ErrorResponse, "description": "A JSON body that cannot be parsed."},
    404: {"model": ErrorResponse, "description": "No such patient, batch or run."},
}


def error_response(
    status: int, errors: list[str], headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The app's one error shape (401 says how to authenticate)."""
    extra = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    return JSONResponse(
        {"ok": False, "error": "; ".join(errors), "errors": errors, "status": status},
        status_code=status,
        headers={**extra, **(headers or {})} or None,
    )


def _domain_error_response(exc: GlucoseStreamError) -> JSONResponse:
    retry_after = getattr(exc, "retry_after_s", None)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return error_response(exc.status, [str(exc)], headers)


def _allowed_methods(request: Request) -> str:
    """The methods some route at the request's path takes (a 405's ``Allow``: Starlette names
    only the first route's, and ``/api/v1/entries`` has a GET route and a POST route)."""
    allowed = [
        method
        for method in _METHODS
        if any(
            isinstance(route, BaseRoute)
            and route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.router.routes
        )
    ]
    return ", ".join(allowed)


def create_app(
    settings: Settings, *, clock: Clock = utc_now, always_on: AlwaysOnOptions | None = None
) -> FastAPI:
    """The app; with ``always_on``, its lifespan runs the always-on parts (module docstring)."""
    published = PublishedLake(settings)
    live, _ = live_state(settings, clock)  # seeded: a restart loses no unpublished reading
    alerts = open_alert_store(settings.lake)
    hooks: list[CommittedHook] = [live.add]
    services = _always_on_services(
        settings, always_on, hooks, _Shared(published, live, alerts), clock=clock
    )
    app = FastAPI(
        title="GlucoseStream",
        version="0.1.0",
        description="Ingest CGM readings and see their metrics.",
        responses=_ERROR_RESPONSES,
        lifespan=_lifespan(services) if services else None,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.sessions = SessionStore()
    app.state.access = open_access(settings.lake)
    app.state.patient_directory = open_patient_directory(settings.lake)
    app.state.published = published
    app.state.live = live
    app.state.alerts = alerts
    app.state.ingest_service = IngestService(settings, now=clock, on_committed=hooks)
    app.include_router(ingest_router)
    app.include_router(nightscout_read_router)
    app.include_router(login_router)
    app.include_router(pages_router)
    app.include_router(report_router)
    app.include_router(triage_router)
    app.include_router(comparison_router)
    app.include_router(overlay_router)
    app.include_router(cohort_router)
    app.include_router(alerts_router)
    app.include_router(patient_search_router)
    app.include_router(summary_router)
    app.add_middleware(BodyLimit, respond=_domain_error_response)
    app.add_middleware(_SecurityHeaders)  # outermost: a 413 of BodyLimit has them too
    _add_error_handlers(app)
    return app


class _SecurityHeaders:
    """ASGI middleware: ``_SECURITY_HEADERS`` on every response (a header the route set is
    kept), and ``Cache-Control: no-store`` on all but /healthz and static files. Plain ASGI, not
    ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware runs each request through a task
    group and memory streams, a large share of a small upload's cost (bench_always_on)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        no_store = path != "/healthz" and not path.startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if no_store:
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass(frozen=True, slots=True)
class _Shared:
    """What the routes and the always-on parts share: the read side, the live window and the
    alert store."""

    published: PublishedLake
    live: LiveWindow
    alerts: AlertStore


def _always_on_services(
    settings: Settings,
    options: AlwaysOnOptions | None,
    hooks: list[CommittedHook],
    shared: _Shared,
    *,
    clock: Clock,
) -> list[_Service]:
    """The parts ``options`` asks for, in their start order, each with its ingest hook added
    after the live window's (the engine evaluates a batch on a window that holds it)."""
    if options is None:
        return []
    worker = DeliveryWorker(settings, clock=clock)
    engine = AlertEngine(
        settings,
        shared.live,
        shared.alerts,
        enqueue=functools.partial(enqueue, clock=clock),  # due times on the worker's clock
        on_change=worker.wake,
        clock=clock,
    )
    hooks.append(engine.submit)
    services: list[_Service] = [engine, worker]
    if options.pipeline:
        scheduler = RunScheduler(
            settings,
            command=options.run_command,
            env=options.run_env,
            on_published=[_published_hook(shared, clock)],
            clock=clock,
            maintain_command=options.maintain_command,
        )
        hooks.append(scheduler.notify)
        services.append(scheduler)
    return services


def _published_hook(shared: _Shared, clock: Clock) -> Callable[[str, list[str]], None]:
    """After a run published: its batches' live readings are settled, and the read side moves
    to the run once the followed patients' published tails are read (one scan), so no request
    pays for that read (requests meanwhile read the previous run and the live window); triage's
    last-upload pass is made too when the previous run had one."""

    def warm(previous: PublishedRun | None, run: PublishedRun) -> None:
        now = clock()
        warm_tails(previous, run, now=now)
        warm_clinic_pass(previous, run, now=now)  # only when triage was in use on the previous

    def seen(run_id: str, batch_ids: list[str]) -> None:
        shared.live.settle(batch_ids, run_id)
        shared.published.adopt_newest(warm)

    return seen


def _lifespan(
    services: Sequence[_Service],
) -> Callable[[FastAPI], Any]:
    """Start the services in order when the server starts; stop them in reverse when it stops
    (a service that failed to start stops those already started)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started: list[_Service] = []
        try:
            for service in services:
                service.start()
                started.append(service)
            yield
        finally:
            for service in reversed(started):
                service.stop()

    return lifespan


def _add_error_handlers(app: FastAPI) -> None:
    """Every error leaves in the one shape; a page without a session redirects to /login."""

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(GlucoseStreamError)
    async def _domain_error(request: Request, exc: GlucoseStreamError) -> JSONResponse:
        return _domain_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
            for e in exc.errors()
        ]
        return error_response(422, errors or ["invalid request"])

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        return error_response(exc.status_code, [str(exc.detail)], headers)
