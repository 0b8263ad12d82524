"""``GET /api/v1/entries`` (or ``.json``): a patient's published curated readings, newest first,
as Nightscout entries (``nightscout_entries``), read through the read side at the last
published run. The POST of the same path is ``ingest.nightscout_api``.

``count`` (default 10, as in Nightscout; 1 to 10,000) and ``find[date][$gte|$gt|$lte|$lt]``
(epoch ms) or ``find[dateString][…]`` (ISO 8601) narrow it; a bad bound is 422 (after
authentication). Authentication as for the POST (``request_credentials``). The uploader token
bound to the patient may read it back (uploader apps read entries to find gaps); so may any
token allowed to read that patient (admin or clinician with ``?patient=<patient_key>``; a
patient token).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Final

import pyarrow as pa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool

from glucosestream.access import Principal, authorize_read, record_access
from glucosestream.clock import Clock
from glucosestream.http_errors import ERROR_RESPONSES
from glucosestream.lake import AccessStores
from glucosestream.published.nightscout_entries import (
    DEFAULT_COUNT,
    EPOCH,
    MAX_COUNT,
    OPERATORS,
    date_range,
    entries_from_readings,
)
from glucosestream.published.published_lake import PublishedLake
from glucosestream.published.request_scope import published_of
from glucosestream.request_credentials import bound_patient, nightscout_principal_of

__all__ = ["read_patient_readings", "router"]

router = APIRouter(tags=["nightscout"])

_FIND_PARAMETERS: Final = [
    {
        "name": f"find[{field}][{op}]",
        "in": "query",
        "required": False,
        "schema": {"type": "number"}
        if field == "date"
        else {"type": "string", "format": "date-time"},
        "description": "Epoch milliseconds." if field == "date" else "An ISO 8601 time.",
    }
    for field in ("date", "dateString")
    for op in OPERATORS
]


def read_patient_readings(
    published: PublishedLake,
    store: AccessStores,
    principal: Principal,
    patient: str | None,
    since: dt.datetime | None,
    *,
    at: dt.datetime,
) -> tuple[str, pa.Table]:
    """The published curated readings of the patient named (or the token's one patient),
    after checking the principal may read them; the read is recorded in the audit trail."""
    key = patient or bound_patient(principal)
    if not (principal.role == "uploader" and key in principal.patient_keys):
        authorize_read(store, principal, key)
    table = published.current().readings([key], since)
    record_access(store, principal, "read", "api/v1/entries", at=at, patient_key=key)
    return key, table


@router.get(
    "/api/v1/entries",
    responses=ERROR_RESPONSES,
    openapi_extra={"parameters": _FIND_PARAMETERS},
)
@router.get("/api/v1/entries.json", include_in_schema=False)
async def get_entries(
    request: Request,
    published: Annotated[PublishedLake, Depends(published_of)],
    count: Annotated[int, Query(ge=1, le=MAX_COUNT)] = DEFAULT_COUNT,
    patient: Annotated[str | None, Query(description="patient_key (admin, clinician)")] = None,
    token: Annotated[str | None, Query(description="The token, instead of api-secret.")] = None,
) -> list[dict[str, Any]]:
    """The patient's published readings, newest first, as Nightscout entries."""
    principal = await run_in_threadpool(nightscout_principal_of, request)
    since_ms, until_ms = date_range(dict(request.query_params))
    since = None if since_ms is None else EPOCH + dt.timedelta(milliseconds=since_ms)
    clock: Clock = request.app.state.clock
    _, table = await run_in_threadpool(
        read_patient_readings,
        published,
        request.app.state.access,
        principal,
        patient,
        since,
        at=clock(),
    )
    return entries_from_readings(table, count=count, until_ms=until_ms)
