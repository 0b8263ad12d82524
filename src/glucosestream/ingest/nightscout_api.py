"""Nightscout-compatible entries API, so uploader apps (xDrip+, Spike, …) post unchanged.

``POST /api/v1/entries`` (or ``.json``) takes a JSON array of entries (one object also works),
parsed by ``formats.nightscout``: ``sgv`` entries are readings, ``mbg``/``cal`` are skipped.
Authentication as Nightscout does it: the ``api-secret`` header holding the SHA-1 hex of the
token (what uploaders send), or ``?token=<token>``, or a bearer token. Entries name no patient:
they are the one patient the uploader token is bound to (a token bound to several, or to none,
gets 403). The answer is the posted entries, as Nightscout answers, once they are durable (a
number that is not finite, NaN or Infinity, is echoed as null); the accounting is in the
``X-Ingest-*`` headers (received, accepted, duplicates, quarantined, batch). Limits and errors as
for ``POST /v1/readings`` (``ingest.api``).

``GET`` of the same path (the published readings) is the read side's:
``published.nightscout_read``.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from glucosestream.access import Principal
from glucosestream.http_errors import ERROR_RESPONSES
from glucosestream.ingest.asgi import INLINE_PARSE_BYTES, commit, parser_of, service_of
from glucosestream.ingest.batch import Part
from glucosestream.ingest.bodies import nightscout_echo
from glucosestream.ingest.limits import MAX_READINGS_PER_REQUEST
from glucosestream.ingest.request_parts import RequestParser
from glucosestream.ingest.service import RequestOutcome
from glucosestream.request_credentials import nightscout_principal_of

__all__ = ["entries_headers", "router"]

router = APIRouter(tags=["nightscout"])

# The body is parsed by ``request_parts`` (the Lambda handler shares it); its schema is here.
_ENTRY_SCHEMA: Final = {
    "title": "NightscoutEntry",
    "type": "object",
    "description": (
        "An entry as uploaders post it; `sgv` entries are readings, others are skipped. A field"
        " may hold any JSON value: one that is not what its description says quarantines that"
        " entry alone."
    ),
    "properties": {
        "type": {"description": "Entry type, e.g. sgv, mbg, cal."},
        "sgv": {"description": "Glucose in mg/dL (a number)."},
        "date": {"description": "Epoch milliseconds (a number)."},
        "dateString": {"description": "ISO 8601 time."},
        "device": {"description": "The uploader and sensor, e.g. xDrip-DexcomG6."},
        "direction": {
            "description": "Trend arrow, a Nightscout direction name, e.g. Flat: stored with the"
            " reading and returned by GET. Another value is dropped, never the entry."
        },
        "trend": {
            "description": "Trend number 0-9 (NONE, DoubleUp, ..., RATE OUT OF RANGE), read as"
            " the direction when the entry has no known `direction`."
        },
    },
    "additionalProperties": True,
}
_ENTRIES_BODY: Final = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "anyOf": [
                    {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": MAX_READINGS_PER_REQUEST,
                        "items": _ENTRY_SCHEMA,
                    },
                    _ENTRY_SCHEMA,
                ]
            }
        }
    },
}
# ``?token=`` is read by ``request_credentials`` from the request, so the route declares no
# parameter for FastAPI to solve on every request: the document names it here.
_TOKEN_PARAMETER: Final = {
    "name": "token",
    "in": "query",
    "required": False,
    "description": "The token, instead of api-secret.",
    "schema": {
        "anyOf": [{"type": "string"}, {"type": "null"}],
        "description": "The token, instead of api-secret.",
        "title": "Token",
    },
}
_POSTED: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": "The posted entries, once durable; the accounting in X-Ingest-* headers.",
        "content": {"application/json": {"schema": {"type": "array", "items": {}}}},
        "headers": {
            f"X-Ingest-{name}": {"schema": {"type": "string"}, "description": text}
            for name, text in (
                ("Received", "Readings received."),
                ("Accepted", "Readings accepted."),
                ("Duplicates", "Readings already held."),
                ("Quarantined", "Readings set aside, each with a reason."),
                ("Batch", "The raw batch the readings landed in."),
            )
        },
    },
    **ERROR_RESPONSES,
}


@router.post(
    "/api/v1/entries",
    responses=_POSTED,
    response_class=Response,
    openapi_extra={"requestBody": _ENTRIES_BODY, "parameters": [_TOKEN_PARAMETER]},
)
@router.post("/api/v1/entries.json", response_class=Response, include_in_schema=False)
async def post_entries(request: Request) -> Response:
    """Post Nightscout entries (``api-secret`` header: SHA-1 hex of the token); at most 10,000
    entries, a body of at most 16 MiB."""
    # One thread hand-over a request: the token's lookup (a read of the access store, and its
    # last use written at most every 10 minutes) before a byte of the body is read. A small
    # body is parsed, and its echo made, in the event loop (see ``asgi.INLINE_PARSE_BYTES``).
    principal = await run_in_threadpool(nightscout_principal_of, request)
    body = await request.body()
    parser, service = parser_of(request), service_of(request)
    if len(body) <= INLINE_PARSE_BYTES:
        part, echo = _part_and_echo(parser, principal, body)
    else:
        part, echo = await run_in_threadpool(_part_and_echo, parser, principal, body)
    outcome = await commit(service, part)
    return Response(echo, media_type="application/json", headers=entries_headers(outcome))


def entries_headers(outcome: RequestOutcome) -> dict[str, str]:
    """The accounting of an entries post (the readings'), in the ``X-Ingest-*`` headers."""
    r = outcome.report
    return {
        "X-Ingest-Received": str(r.received),
        "X-Ingest-Accepted": str(r.accepted),
        "X-Ingest-Duplicates": str(r.duplicates),
        "X-Ingest-Quarantined": str(r.quarantined),
        "X-Ingest-Batch": r.batch_id or r.already_ingested_as or "",
    }


def _part_and_echo(parser: RequestParser, principal: Principal, body: bytes) -> tuple[Part, bytes]:
    """The request's part, and its answer's body (made before the commit: it is the posted
    entries, whatever the commit says)."""
    part, entries = parser.entries_part(principal, body)
    return part, nightscout_echo(entries)
