"""Every limit on what a request may send, in one place (docs/security.md lists them), and the
ASGI middleware that enforces the body sizes before a body is read. Pure but for the middleware.

The limits a file shares with a request are defined where ingest applies them and listed here:
``MAX_JSON_DEPTH`` (``formats.jsontext``) and ``MAX_ID_CHARS`` (``readings``).

Sizes measured on 10,000 readings (the most a request may carry) as JSON: 1.0 MB with four short
fields each, 2.4 MB (2.9 MB indented) with seven verbose ones (a UUID patient id, a zone name,
both units), 3.2 MB (3.8 MB indented) as the Nightscout entries xDrip+ posts, 13.7 MB with five
text fields at ``MAX_ID_CHARS`` each. ``MAX_INGEST_BODY_BYTES`` holds the last with room to spare.

A body over its limit is refused with 413 as soon as its ``Content-Length`` says so, or, for a
body sent in chunks, as soon as the bytes received pass the limit: it is never read whole.
A chunked body within its limit is held here before the route reads it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from glucosestream.errors import PayloadTooLarge
from glucosestream.formats.jsontext import MAX_JSON_DEPTH
from glucosestream.readings import MAX_ID_CHARS

__all__ = [
    "INGEST_PATHS",
    "MAX_ID_CHARS",
    "MAX_INGEST_BODY_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_OTHER_BODY_BYTES",
    "MAX_READINGS_PER_REQUEST",
    "BodyLimit",
    "body_limit",
    "too_large",
]

# Readings (or Nightscout entries, treatments or devicestatus documents) in one request: a day
# of 5-minute readings is 288, a month 8,640; more is split by the client. Over it: 422 (the
# documented schema's maxItems), nothing written.
MAX_READINGS_PER_REQUEST: Final = 10_000
# Body of POST /v1/readings and POST /api/v1/entries (and treatments, devicestatus): 10,000
# readings with their text fields at their longest take 13.7 MB (see above). Over it: 413 before
# the body is read.
MAX_INGEST_BODY_BYTES: Final = 16 * 1024 * 1024
# Body of every other request: the login and page forms (a token, a CSRF token, a path) and the
# cohort release's JSON are well under 1 KB. Over it: 413 before the body is read.
MAX_OTHER_BODY_BYTES: Final = 16 * 1024
# MAX_JSON_DEPTH (64, formats.jsontext): nesting of a JSON body or file. A readings batch is 3
#   deep ({"readings": [{...}]}), Nightscout entries 2. Deeper: 422, nothing written.
# MAX_ID_CHARS (256, readings): characters of a patient or device id. Longer: that reading is
#   quarantined (a row's fault, not its request's); the body limit bounds the rest.

INGEST_PATHS: Final = frozenset(
    {
        "/v1/readings",
        *(
            f"/api/v1/{name}{suffix}"
            for name in ("entries", "treatments", "devicestatus")
            for suffix in ("", ".json")
        ),
    }
)

_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
_App = Callable[[_Scope, _Receive, _Send], Awaitable[None]]
_Respond = Callable[[PayloadTooLarge], Callable[[_Scope, _Receive, _Send], Awaitable[None]]]


def body_limit(method: str, path: str) -> int:
    """The most bytes a request's body may hold."""
    if method == "POST" and path in INGEST_PATHS:
        return MAX_INGEST_BODY_BYTES
    return MAX_OTHER_BODY_BYTES


def too_large(size: int | None, limit: int, path: str) -> PayloadTooLarge:
    """The 413 of a body over its limit (``size`` None: a chunked body, not read to its end)."""
    what = "the body" if size is None else f"the body of {size:,} bytes"
    return PayloadTooLarge(
        f"{what} is over the limit of {limit:,} bytes for {path}; nothing was read or written"
        + (
            f" (send at most {MAX_READINGS_PER_REQUEST:,} readings a request: split it)"
            if path in INGEST_PATHS
            else ""
        )
    )


class BodyLimit:
    """ASGI middleware: a body over ``body_limit`` is refused before it is read.

    A ``Content-Length`` over the limit is answered at once by ``respond`` (the app's error
    shape, 413) without reading a byte; a body without one (chunked) is received here up to the
    limit (ingest routes read their whole body anyway) and answered 413 by ``respond`` as soon
    as it passes the limit, so the rest is never read.
    """

    def __init__(self, app: _App, *, respond: _Respond) -> None:
        self.app = app
        self.respond = respond

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        limit = body_limit(str(scope.get("method", "")), path)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self.respond(too_large(declared, limit, path))(scope, receive, send)
            return
        if declared is not None:  # the server holds the body to its declared length
            await self.app(scope, receive, send)
            return
        # A body sent in chunks: received up to the limit before the app sees it, so passing
        # the limit is answered 413 here whatever the route (a route that parses its body with
        # pydantic would turn an error raised from ``receive`` into a 400).
        messages: list[_Message] = []
        received = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > limit:
                await self.respond(too_large(None, limit, path))(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> _Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


def _content_length(scope: _Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
