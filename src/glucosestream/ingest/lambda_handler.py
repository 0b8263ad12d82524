"""The HTTP ingest path as an AWS Lambda function behind API Gateway.

``handler(event, context)`` takes the proxy event of an HTTP API (payload 2.0: ``rawPath``,
``requestContext.http.method``) or a REST API (payload 1.0: ``path``, ``httpMethod``), with the
body as text or base64 (``isBase64Encoded``). Routes and answers are those of the ASGI app:
``POST /v1/readings`` and ``POST /api/v1/entries``, ``/api/v1/treatments`` and
``/api/v1/devicestatus`` (each also with ``.json``); errors in the app's one shape. Settings come
from the environment (``Settings.from_env``); the service (stores, engine) is made once per
container and reused by later invocations.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from glucosestream.access import Principal
from glucosestream.config import Settings
from glucosestream.errors import GlucoseStreamError, InvalidInput, NotFound
from glucosestream.ingest.bodies import nightscout_echo
from glucosestream.ingest.limits import body_limit, too_large
from glucosestream.ingest.nightscout_api import entries_headers
from glucosestream.ingest.nightscout_treatments_api import (
    devicestatus_headers,
    treatment_headers,
)
from glucosestream.ingest.request_parts import RequestParser
from glucosestream.ingest.service import IngestService, RequestOutcome
from glucosestream.lake import AccessStores, open_access
from glucosestream.request_credentials import bearer_principal, nightscout_principal

__all__ = ["handle_event", "handler"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Ingest:
    """What a container keeps between invocations: the access store, the parser, the service."""

    access: AccessStores
    parser: RequestParser
    service: IngestService


# One per container and settings: a container runs one invocation at a time, so each request
# is flushed alone (group commit needs concurrent requests in one process).
_containers: dict[Settings, _Ingest] = {}
_NIGHTSCOUT_PATHS: Final = ("/api/v1/entries", "/api/v1/entries.json")
_TREATMENTS_PATHS: Final = ("/api/v1/treatments", "/api/v1/treatments.json")
_DEVICESTATUS_PATHS: Final = ("/api/v1/devicestatus", "/api/v1/devicestatus.json")


def handler(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    """The Lambda entry point: settings from the environment."""
    return handle_event(Settings.from_env(), event)


def handle_event(settings: Settings, event: Mapping[str, Any]) -> dict[str, Any]:
    """Answer one API Gateway proxy event (v1 or v2) with the given settings."""
    try:
        method, path = _route(event)
        headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
        query = dict(event.get("queryStringParameters") or {})
        ingest = _ingest(settings)
        body = _body(event)
        limit = body_limit(method, path)
        if len(body) > limit:  # API Gateway caps bodies too (10 MB), a Lambda itself at 6 MB
            raise too_large(len(body), limit, path)
        if method == "POST" and path == "/v1/readings":
            principal = bearer_principal(ingest.access, headers.get("authorization"))
            outcome = ingest.service.ingest(ingest.parser.readings_part(principal, body))
            return _json(200, _report(outcome))
        if method == "POST" and path in (
            *_NIGHTSCOUT_PATHS,
            *_TREATMENTS_PATHS,
            *_DEVICESTATUS_PATHS,
        ):
            principal = nightscout_principal(
                ingest.access,
                headers.get("api-secret"),
                query.get("token"),
                headers.get("authorization"),
            )
            return _nightscout(ingest, path, principal, body)
        raise NotFound(
            f"no route {method} {path}; POST /v1/readings, /api/v1/entries, /api/v1/treatments "
            "or /api/v1/devicestatus"
        )
    except GlucoseStreamError as err:
        return _error(err.status, str(err))


def _route(event: Mapping[str, Any]) -> tuple[str, str]:
    http = (event.get("requestContext") or {}).get("http") or {}
    method = http.get("method") or event.get("httpMethod")
    path = event.get("rawPath") or event.get("path")
    if not method or not path:
        raise InvalidInput("not an API Gateway proxy event (no method or path)", source="event")
    stage = (event.get("requestContext") or {}).get("stage")
    if stage and stage != "$default" and str(path).startswith(f"/{stage}/"):
        path = str(path)[len(stage) + 1 :]
    return str(method).upper(), str(path)


def _body(event: Mapping[str, Any]) -> bytes:
    body = event.get("body") or ""
    if not event.get("isBase64Encoded"):
        return str(body).encode("utf-8")
    try:
        return base64.b64decode(str(body), validate=True)
    except (binascii.Error, ValueError) as err:
        raise InvalidInput(f"the body is not valid base64 ({err})", source="request") from err


def _ingest(settings: Settings) -> _Ingest:
    ingest = _containers.get(settings)
    if ingest is None:
        ingest = _containers[settings] = _Ingest(
            open_access(settings.lake), RequestParser(settings), IngestService(settings)
        )
    return ingest


def _nightscout(ingest: _Ingest, path: str, principal: Principal, body: bytes) -> dict[str, Any]:
    """A Nightscout upload: the posted documents echoed, the accounting in headers (as the
    ASGI routes answer)."""
    if path in _TREATMENTS_PATHS:
        part, documents = ingest.parser.treatments_part(principal, body)
        outcome = ingest.service.ingest(part)
        headers = treatment_headers(outcome, part.parsed.skipped)
    elif path in _DEVICESTATUS_PATHS:
        part, documents = ingest.parser.devicestatus_part(principal, body)
        outcome = ingest.service.ingest(part)
        headers = devicestatus_headers(outcome, len(documents))
    else:
        part, documents = ingest.parser.entries_part(principal, body)
        headers = entries_headers(ingest.service.ingest(part))
    response = _json(200, None)
    response["body"] = nightscout_echo(documents).decode("utf-8")
    response["headers"].update({name.lower(): value for name, value in headers.items()})
    return response


def _report(outcome: RequestOutcome) -> dict[str, Any]:
    r = outcome.report
    return {
        "ok": True,
        "batch_id": r.batch_id,
        "received": r.received,
        "accepted": r.accepted,
        "duplicates": r.duplicates,
        "quarantined": r.quarantined,
        "top_reasons": [list(t) for t in r.top_reasons],
        "already_ingested_as": r.already_ingested_as,
        "row_errors": [{"index": e.index, "reason": e.reason} for e in outcome.row_errors],
    }


def _error(status: int, message: str) -> dict[str, Any]:
    response = _json(status, {"ok": False, "error": message, "errors": [message], "status": status})
    if status == 401:
        response["headers"]["www-authenticate"] = "Bearer"
    return response


def _json(status: int, payload: Any) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(payload),
        "isBase64Encoded": False,
    }
