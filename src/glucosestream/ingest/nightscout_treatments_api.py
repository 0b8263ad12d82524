"""Nightscout-compatible treatments and devicestatus uploads, as uploader apps (AndroidAPS,
Loop, xDrip+, the careportal) post them.

``POST /api/v1/treatments`` (or ``.json``) takes a JSON array of treatment documents (one object
also works), read by ``formats.nightscout.treatments_from_records`` into events (insulin,
carbs, temporary basals, exercise, site and sensor changes, finger-sticks, notes); documents
that are no event we keep (a temporary target, a profile switch) are counted as skipped, and a
document that is not a JSON object is a quarantined event, never a refused request.
``POST /api/v1/devicestatus`` (or ``.json``) takes devicestatus documents (the pump's
reservoir and battery, the loop's state), kept raw in the raw batch of the request
(``devicestatus.parquet``): no run reads them and nothing of them reaches the curated lake;
erasing a patient removes them.

Both are as ``POST /api/v1/entries`` (``nightscout_api``): the same authentication
(``api-secret``, ``?token=``, bearer), the one patient the uploader token is bound to, the
limits (16 MiB, 10,000 documents, 64 levels of nesting), an answer only once durable, and
idempotency: the same body posted again changes nothing (its events are counted duplicates).
The answer is the posted documents, as Nightscout answers; the accounting is in the headers:
``X-Ingest-Received``/``-Accepted``/``-Duplicates``/``-Quarantined``/``-Notes-Dropped`` count
events (a meal bolus is two: its insulin and its carbs), ``X-Ingest-Skipped`` documents that are
no event, ``X-Ingest-Batch`` the raw batch. For devicestatus ``X-Ingest-Received`` counts the
documents kept.
"""

from __future__ import annotations

from collections.abc import Callable
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

__all__ = ["devicestatus_headers", "router", "treatment_headers"]

router = APIRouter(tags=["nightscout"])


def _documents_body(items: dict[str, Any]) -> dict[str, Any]:
    """An array of documents (``items``), or one object."""
    array = {"type": "array", "minItems": 1, "maxItems": MAX_READINGS_PER_REQUEST, "items": items}
    return {
        "required": True,
        "content": {"application/json": {"schema": {"anyOf": [array, {"type": "object"}]}}},
    }


# A treatment that is no object is a quarantined event (its request stands); a devicestatus
# document must be an object (else 422, as an entry).
_TREATMENTS_BODY: Final = _documents_body({})
_DEVICESTATUS_BODY: Final = _documents_body({"type": "object"})
_TOKEN_PARAMETER: Final = {
    "name": "token",
    "in": "query",
    "required": False,
    "description": "The token, instead of api-secret.",
    "schema": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Token"},
}


def _posted(counted: tuple[tuple[str, str], ...]) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": "The posted documents, once durable; the accounting in headers.",
            "content": {"application/json": {"schema": {"type": "array", "items": {}}}},
            "headers": {
                f"X-Ingest-{name}": {"schema": {"type": "string"}, "description": text}
                for name, text in counted
            },
        },
        **ERROR_RESPONSES,
    }


_TREATMENT_HEADERS: Final = (
    ("Received", "Events received (a meal bolus is two: insulin and carbs)."),
    ("Accepted", "Events accepted."),
    ("Duplicates", "Events already held."),
    ("Quarantined", "Events set aside, each with a reason."),
    ("Notes-Dropped", "Notes with nothing kept (their text is kept only if configured)."),
    ("Skipped", "Documents that are no event kept (a temporary target, a profile switch)."),
    ("Batch", "The raw batch the events landed in."),
)
_DEVICESTATUS_HEADERS: Final = (
    ("Received", "Documents received and kept, as posted."),
    ("Duplicates", "Documents already held (the same body posted before)."),
    ("Batch", "The raw batch they are kept in."),
)


def treatment_headers(outcome: RequestOutcome, skipped: int) -> dict[str, str]:
    """The accounting of a treatments post (see the module docstring)."""
    r = outcome.report
    return {
        "X-Ingest-Received": str(r.events_received),
        "X-Ingest-Accepted": str(r.events_accepted),
        "X-Ingest-Duplicates": str(r.events_duplicates),
        "X-Ingest-Quarantined": str(r.events_quarantined),
        "X-Ingest-Notes-Dropped": str(r.events_notes_dropped),
        "X-Ingest-Skipped": str(skipped),
        "X-Ingest-Batch": r.batch_id or r.already_ingested_as or "",
    }


def devicestatus_headers(outcome: RequestOutcome, documents: int) -> dict[str, str]:
    """The accounting of a devicestatus post: every document is kept, or was already."""
    r = outcome.report
    repeated = r.already_ingested_as is not None
    return {
        "X-Ingest-Received": str(documents),
        "X-Ingest-Duplicates": str(documents if repeated else 0),
        "X-Ingest-Batch": r.batch_id or r.already_ingested_as or "",
    }


@router.post(
    "/api/v1/treatments",
    responses=_posted(_TREATMENT_HEADERS),
    response_class=Response,
    openapi_extra={"requestBody": _TREATMENTS_BODY, "parameters": [_TOKEN_PARAMETER]},
)
@router.post("/api/v1/treatments.json", response_class=Response, include_in_schema=False)
async def post_treatments(request: Request) -> Response:
    """Post Nightscout treatments (insulin, carbs, temporary basals, exercise, site and sensor
    changes, finger-sticks); at most 10,000 documents, a body of at most 16 MiB."""
    part, echo = await _parsed(request, RequestParser.treatments_part)
    outcome = await commit(service_of(request), part)
    headers = treatment_headers(outcome, part.parsed.skipped)
    return Response(echo, media_type="application/json", headers=headers)


@router.post(
    "/api/v1/devicestatus",
    responses=_posted(_DEVICESTATUS_HEADERS),
    response_class=Response,
    openapi_extra={"requestBody": _DEVICESTATUS_BODY, "parameters": [_TOKEN_PARAMETER]},
)
@router.post("/api/v1/devicestatus.json", response_class=Response, include_in_schema=False)
async def post_devicestatus(request: Request) -> Response:
    """Post Nightscout devicestatus documents, kept raw (never in the curated lake); at most
    10,000 documents, a body of at most 16 MiB."""
    part, echo = await _parsed(request, RequestParser.devicestatus_part)
    outcome = await commit(service_of(request), part)
    documents = 0 if part.devicestatus is None else part.devicestatus.num_rows
    headers = devicestatus_headers(outcome, documents)
    return Response(echo, media_type="application/json", headers=headers)


_Parse = Callable[[RequestParser, Principal, bytes], tuple[Part, list[Any]]]


async def _parsed(request: Request, parse: _Parse) -> tuple[Part, bytes]:
    """The request's part and its answer's body (the posted documents), the token looked up
    before a byte of the body is read; a small body parsed in the event loop (as entries)."""
    principal = await run_in_threadpool(nightscout_principal_of, request)
    body = await request.body()
    parser = parser_of(request)
    if len(body) <= INLINE_PARSE_BYTES:
        return _part_and_echo(parse, parser, principal, body)
    return await run_in_threadpool(_part_and_echo, parse, parser, principal, body)


def _part_and_echo(
    parse: _Parse, parser: RequestParser, principal: Principal, body: bytes
) -> tuple[Part, bytes]:
    part, documents = parse(parser, principal, body)
    return part, nightscout_echo(documents)
