"""What the ingest routes share on the ASGI app: the per-app ingest service (the group commit)
and request parser, and the async wait for a group commit."""

from __future__ import annotations

import asyncio
import threading
from typing import Final

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from glucosestream.ingest.batch import Part
from glucosestream.ingest.request_parts import RequestParser
from glucosestream.ingest.service import IngestService, RequestOutcome

__all__ = ["commit", "parser_of", "service_of"]

_STATE_LOCK: Final = threading.Lock()


def service_of(request: Request) -> IngestService:
    """The app's ingest service, made on first use (one per app: one group committer)."""
    state = request.app.state
    service: IngestService | None = getattr(state, "ingest_service", None)
    if service is None:
        with _STATE_LOCK:
            service = getattr(state, "ingest_service", None)
            if service is None:
                service = IngestService(state.settings)
                state.ingest_service = service
    return service


async def parser_of(request: Request) -> RequestParser:
    """The app's request parser, made on first use (it loads the pseudonym key once). In the
    event loop, not a worker thread: one more thread hand-over per request could reorder
    requests before the group commit, which takes them in their order of arrival."""
    state = request.app.state
    parser: RequestParser | None = getattr(state, "request_parser", None)
    if parser is None:
        with _STATE_LOCK:
            parser = getattr(state, "request_parser", None)
            if parser is None:
                parser = RequestParser(state.settings)
                state.request_parser = parser
    return parser


async def commit(service: IngestService, part: Part) -> RequestOutcome:
    """Queue a request for the next group commit and wait until it is durable."""
    future, lead = service.committer.enqueue(part)
    if lead:
        await run_in_threadpool(service.committer.drain)
    return await asyncio.wrap_future(future)
