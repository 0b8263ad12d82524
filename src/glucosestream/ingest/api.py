"""HTTP ingest: ``POST /v1/readings`` takes a JSON batch of readings with a bearer token.

A request is acknowledged only after the raw batch holding its readings is durable in the raw
zone (written, fsynced, committed by its manifest); concurrent requests share one such write
(group commit, see ``group_commit``). Posting the same body again changes nothing: the answer
names the batch it landed in (``already_ingested_as``).

Errors. A request that cannot be taken as a whole gets the one error shape of the app,
``{"ok": false, "error": "a; b", "errors": ["a", "b"], "status": N}``: 401 no, unknown or
revoked token, 403 a token that may not upload (or a reading for a patient an uploader is not
bound to: nothing is written), 413 a body over 16 MiB (see ``ingest.limits``), 422 a body
that is not JSON (or not UTF-8), not ``{"readings": [...]}``, empty, over 10,000 readings,
nested more than 64 deep, or whose readings cannot be checked at all (that request alone:
requests flushed with it are unaffected). Partly bad input is not an error: the good readings
are accepted, and each bad one is quarantined and listed in the 200 response as
``row_errors``, ``[{"index": 3, "reason": "unparsable time"}]`` (``index``: 0-based place in
``readings``), with ``received = accepted + duplicates + quarantined``.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from glucosestream.http_errors import ERROR_RESPONSES
from glucosestream.ingest.asgi import INLINE_PARSE_BYTES, commit, parser_of, service_of
from glucosestream.ingest.limits import MAX_READINGS_PER_REQUEST
from glucosestream.ingest.nightscout_api import router as nightscout_router
from glucosestream.ingest.nightscout_treatments_api import router as treatments_router
from glucosestream.ingest.service import RequestOutcome
from glucosestream.request_credentials import bearer_principal_of

__all__ = ["MAX_READINGS_PER_REQUEST", "IngestResponse", "router"]

router = APIRouter()


class ReadingIn(BaseModel):
    """One reading. Field names as in the tabular formats (see formats.tabular). A field may
    hold any JSON value: one that is not what its description says quarantines that reading
    alone (listed in ``row_errors``), so the schema does not refuse it."""

    model_config = ConfigDict(extra="allow")

    patient_id: Any = Field(None, description="The patient's id in your system (a string).")
    device_id: Any = Field(None, description="Device serial or id, a string (pseudonymised).")
    time: Any = Field(None, description="ISO 8601; without an offset it is local to tz.")
    glucose_mg_dl: Any = Field(None, description="Glucose in mg/dL (a number or numeric text).")
    glucose_mmol_l: Any = Field(None, description="Glucose in mmol/L (a number or numeric text).")
    tz: Any = Field(None, description="IANA time zone of the device, e.g. Europe/London.")
    direction: Any = Field(
        None,
        description="The trend arrow the device showed, a Nightscout direction name (Flat, "
        "FortyFiveUp, SingleUp, DoubleUp, FortyFiveDown, SingleDown, DoubleDown, NONE, NOT "
        "COMPUTABLE, RATE OUT OF RANGE); any other value is dropped, the reading kept.",
    )
    rate_mg_dl_min: Any = Field(
        None,
        description="The device's rate of change in mg/dL per minute; a value that is no "
        "number, or beyond ±20, is dropped, the reading kept.",
    )


class RowErrorOut(BaseModel):
    index: int = Field(..., description="0-based place of the reading in the posted array.")
    reason: str = Field(..., description="Why it was quarantined.")


class IngestResponse(BaseModel):
    ok: bool = True
    batch_id: str | None = Field(None, description="The raw batch the readings landed in.")
    received: int
    accepted: int
    duplicates: int
    quarantined: int
    top_reasons: list[tuple[str, int]]
    already_ingested_as: str | None = Field(
        None, description="Set when this body was posted before: the batch it landed in."
    )
    row_errors: list[RowErrorOut] = Field(
        default_factory=list, description="Each quarantined reading with its reason."
    )


def response_of(outcome: RequestOutcome) -> IngestResponse:
    r = outcome.report
    return IngestResponse(
        batch_id=r.batch_id,
        received=r.received,
        accepted=r.accepted,
        duplicates=r.duplicates,
        quarantined=r.quarantined,
        top_reasons=[(reason, n) for reason, n in r.top_reasons],
        already_ingested_as=r.already_ingested_as,
        row_errors=[RowErrorOut(index=e.index, reason=e.reason) for e in outcome.row_errors],
    )


# The body is parsed by ``request_parts`` (the Lambda handler shares it); its schema is here.
_READINGS_SCHEMA: Final = {
    "title": "ReadingsBatch",
    "type": "object",
    "required": ["readings"],
    "properties": {
        "readings": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_READINGS_PER_REQUEST,
            "items": ReadingIn.model_json_schema(),
            "description": (
                "Some reading names a time and some a glucose value (else 422: the batch has "
                "no such column); a reading without one is quarantined alone."
            ),
            "allOf": [
                {"contains": {"required": ["time"]}},
                {
                    "contains": {
                        "anyOf": [{"required": ["glucose_mg_dl"]}, {"required": ["glucose_mmol_l"]}]
                    }
                },
            ],
        }
    },
}
_READINGS_BODY: Final = {
    "required": True,
    "content": {"application/json": {"schema": _READINGS_SCHEMA}},
}


@router.post(
    "/v1/readings",
    response_model=IngestResponse,
    tags=["ingest"],
    responses=ERROR_RESPONSES,
    openapi_extra={"requestBody": _READINGS_BODY},
)
async def post_readings(
    request: Request,
) -> IngestResponse:
    """Ingest up to 10,000 readings (a body of at most 16 MiB); returns how each was
    accounted for.

    An uploader token may post only for the patients it is bound to; an admin token for any.
    """
    # In the event loop, before a byte of the body is read: the token is looked up in the store
    # on every request (a revoked one is refused at once; ~0.6 ms), and requests keep their
    # order of arrival up to the group commit.
    principal = bearer_principal_of(request)
    body = await request.body()
    parser, service = parser_of(request), service_of(request)
    if len(body) <= INLINE_PARSE_BYTES:  # parsed in the event loop: no thread hand-over
        part = parser.readings_part(principal, body)
    else:
        part = await run_in_threadpool(parser.readings_part, principal, body)
    return response_of(await commit(service, part))


router.include_router(nightscout_router)
router.include_router(treatments_router)
