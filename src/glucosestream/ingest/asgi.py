"""What the ingest routes share on the ASGI app: the per-app ingest service, the async wait for a
group commit, and the error model shown in the OpenAPI document."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Final, Literal

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from glucosestream.ingest.accept import Part
from glucosestream.ingest.service import IngestService, RequestOutcome

__all__ = ["ERROR_RESPONSES", "ErrorResponse", "commit", "service_of"]

_SERVICE_LOCK: Final = threading.Lock()


class ErrorResponse(BaseModel):
    """The one error shape of the app."""

    ok: Literal[False] = False
    error: str = Field(..., description="The messages joined with '; '.")
    errors: list[str]
    status: int


ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    401: {"model": ErrorResponse, "description": "No token, or an unknown or revoked one."},
    403: {"model": ErrorResponse, "description": "The token may not do this."},
    413: {
        "model": ErrorResponse,
        "description": "The body is over its size limit (16 MiB for ingest, 16 KiB otherwise).",
    },
    422: {"model": ErrorResponse, "description": "The body cannot be taken as a whole."},
}


def service_of(request: Request) -> IngestService:
    """The app's ingest service, made on first use (one per app: one group committer)."""
    state = request.app.state
    service: IngestService | None = getattr(state, "ingest_service", None)
    if service is None:
        with _SERVICE_LOCK:
            service = getattr(state, "ingest_service", None)
            if service is None:
                service = IngestService(state.settings)
                state.ingest_service = service
    return service


async def commit(service: IngestService, part: Part) -> RequestOutcome:
    """Queue a request for the next group commit and wait until it is durable."""
    future, lead = service.committer.enqueue(part)
    if lead:
        await run_in_threadpool(service.committer.drain)
    return await asyncio.wrap_future(future)
