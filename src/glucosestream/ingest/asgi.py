"""What the ingest routes share on the ASGI app: the per-app ingest service (the group commit)
and request parser, and the async wait for a group commit."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Final, TypeVar

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from glucosestream.config import Settings
from glucosestream.ingest.batch import Part
from glucosestream.ingest.request_parts import RequestParser
from glucosestream.ingest.service import IngestService, RequestOutcome

__all__ = ["commit", "parser_of", "service_of"]

_STATE_LOCK: Final = threading.Lock()


def service_of(request: Request) -> IngestService:
    """The app's ingest service, made on first use (one per app: one group committer)."""
    return _once(request, "ingest_service", IngestService)


async def parser_of(request: Request) -> RequestParser:
    """The app's request parser, made on first use (it loads the pseudonym key once). In the
    event loop, not a worker thread: one more thread hand-over per request could reorder
    requests before the group commit, which takes them in their order of arrival."""
    return _once(request, "request_parser", RequestParser)


_T = TypeVar("_T")


def _once(request: Request, name: str, make: Callable[[Settings], _T]) -> _T:
    """The app state's ``name``, made from the app's settings by the first request to ask."""
    state = request.app.state
    made: _T | None = getattr(state, name, None)
    if made is None:
        with _STATE_LOCK:
            made = getattr(state, name, None)
            if made is None:
                made = make(state.settings)
                setattr(state, name, made)
    return made


async def commit(service: IngestService, part: Part) -> RequestOutcome:
    """Queue a request for the next group commit and wait until it is durable."""
    future, lead = service.committer.enqueue(part)
    if lead:
        await run_in_threadpool(service.committer.drain)
    return await asyncio.wrap_future(future)
