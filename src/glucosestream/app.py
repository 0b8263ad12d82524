"""The one ASGI app: the ingest API, the JSON API and the dashboard pages.

Errors leave in one shape, ``{"ok": false, "error": "a; b", "errors": ["a", "b"], "status": N}``.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from glucosestream.config import Settings
from glucosestream.dashboard.pages import router as pages_router
from glucosestream.errors import GlucoseStreamError
from glucosestream.ingest.api import router as ingest_router

__all__ = ["create_app", "error_response"]


def error_response(status: int, errors: list[str]) -> JSONResponse:
    return JSONResponse(
        {"ok": False, "error": "; ".join(errors), "errors": errors, "status": status},
        status_code=status,
        headers={"WWW-Authenticate": "Bearer"} if status == 401 else None,
    )


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(
        title="GlucoseStream",
        version="0.1.0",
        description="Ingest CGM readings and see their metrics.",
    )
    app.state.settings = settings
    app.include_router(ingest_router)
    app.include_router(pages_router)

    @app.exception_handler(GlucoseStreamError)
    async def _domain_error(request: Request, exc: GlucoseStreamError) -> JSONResponse:
        return error_response(exc.status, [str(exc)])

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
            for e in exc.errors()
        ]
        return error_response(422, errors or ["invalid request"])

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, [str(exc.detail)])

    return app
