"""What the ingest routes share on the ASGI app: the per-app ingest service (the group commit)
and request parser, how large a body is parsed in the event loop, and the async wait for a
group commit."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Final, TypeVar

from fastapi import Request

from glucosestream.config import Settings
from glucosestream.ingest.batch import Part
from glucosestream.ingest.request_parts import RequestParser
from glucosestream.ingest.service import IngestService, RequestOutcome

__all__ = ["INLINE_PARSE_BYTES", "commit", "parser_of", "service_of"]

log = logging.getLogger(__name__)

# A body up to this size (about 2,000 readings) is parsed in the event loop, which takes ~1 ms
# per 1,000 readings: cheaper than handing it to a worker thread and back under the GIL.
INLINE_PARSE_BYTES: Final = 256 * 1024

_STATE_LOCK: Final = threading.Lock()
# The running drains (the leaders'): a reference keeps each until it ends.
_DRAINS: Final[set[asyncio.Future[None]]] = set()


def service_of(request: Request) -> IngestService:
    """The app's ingest service, made on first use (one per app: one group committer). Called
    by the routes themselves, not as a FastAPI dependency: a plain function dependency runs in
    a worker thread, one more hand-over a request."""
    return _once(request, "ingest_service", IngestService)


def parser_of(request: Request) -> RequestParser:
    """The app's request parser, made on first use (it loads the pseudonym key once)."""
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
    """Queue a request for the next group commit and wait until it is durable. The leader
    starts the drain in a worker thread and, like every request, waits for its own group only:
    awaiting the drain would hold its answer until the queue is empty, never under steady load."""
    future, lead = service.committer.enqueue(part)
    if lead:
        drain = asyncio.get_running_loop().run_in_executor(None, service.committer.drain)
        _DRAINS.add(drain)
        drain.add_done_callback(_drained)
    return await asyncio.wrap_future(future)


def _drained(drain: asyncio.Future[None]) -> None:
    """A drain ended: forget it, and log what made it fail (its groups' requests were answered
    with that failure already)."""
    _DRAINS.discard(drain)
    if not drain.cancelled() and drain.exception() is not None:
        log.error("group commit drain failed", exc_info=drain.exception())
