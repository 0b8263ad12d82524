"""The Nightscout GETs: entries, treatments and status.

``GET /api/v1/entries`` (or ``.json``): a patient's readings, newest first, as Nightscout
entries (``nightscout_entries``): those of the last published run, read through the read side,
merged with those accepted since (the app's live window, ``request.app.state.live``:
``live_merge``), so a reading is here as soon as its POST is answered. ``GET
/api/v1/entries/current`` (or ``.json``) is the newest one alone. The POST of the same path is
``ingest.nightscout_api``; ``GET /api/v1/status.json`` (``nightscout_status``) is served by this
router too.

``count`` (default 10, as in Nightscout; 1 to 10,000) and ``find[date][$gte|$gt|$lte|$lt]``
(epoch ms) or ``find[dateString][…]`` (ISO 8601) narrow it; a bad bound is 422 (after
authentication). Authentication as for the POST (``request_credentials``). The uploader token
bound to the patient may read it back (uploader apps read entries to find gaps); so may any
token allowed to read that patient (admin or clinician with ``?patient=<patient_key>``; a
patient token).

``GET /api/v1/treatments`` (or ``.json``): the patient's events of the last published run as
Nightscout treatments, newest first (``treatment_documents``), same authentication and
patient rules. As Nightscout's: ``count`` defaults to 100, or 1,000 when ``find`` bounds the
time (cgm-remote-monitor ``lib/api/treatments``; at most 10,000);
``find[created_at][$gte|$gt|$lte|$lt]`` (ISO 8601; a number is read as epoch ms) or
``find[mills][…]`` (epoch ms) bound the time, ``find[eventType]`` names one event type (exact;
Nightscout's ``/regex/`` form is 422). Unlike Nightscout, a GET without a time bound is not
held to the last 4 days: it gives the newest ``count``, as entries do. Treatments POSTed since
the last run are not here until a run publishes them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool

from glucosestream.access import Principal, authorize_read, record_access
from glucosestream.clock import Clock
from glucosestream.errors import InvalidInput
from glucosestream.http_errors import ERROR_RESPONSES
from glucosestream.lake import AccessStores
from glucosestream.live import MAX_GAP_MIN, LiveReading, LiveWindow
from glucosestream.published.live_merge import merged_readings
from glucosestream.published.nightscout_entries import (
    DEFAULT_COUNT,
    EPOCH,
    MAX_COUNT,
    OPERATORS,
    BoundKind,
    date_range,
    entries_from_readings,
)
from glucosestream.published.nightscout_status import router as status_router
from glucosestream.published.published_lake import PublishedLake
from glucosestream.published.request_scope import published_of
from glucosestream.published.treatment_documents import treatments_from_events
from glucosestream.request_credentials import bound_patient, nightscout_principal_of

__all__ = [
    "EntriesQuery",
    "TreatmentsQuery",
    "read_patient_readings",
    "read_patient_treatments",
    "router",
]

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


@dataclass(frozen=True, slots=True)
class EntriesQuery:
    """What one GET asks for: whose readings (None: the token's one patient), between which
    instants (both included; None: unbounded), how many at most."""

    patient: str | None
    since: dt.datetime | None
    until: dt.datetime | None
    count: int


def _patient_to_read(store: AccessStores, principal: Principal, patient: str | None) -> str:
    """The patient named (or the token's one patient), after checking the principal may read
    them: the uploader token bound to them, or any principal ``authorize_read`` lets."""
    key = patient or bound_patient(principal)
    if not (principal.role == "uploader" and key in principal.patient_keys):
        authorize_read(store, principal, key)
    return key


def read_patient_readings(
    published: PublishedLake,
    live: LiveWindow | None,
    store: AccessStores,
    principal: Principal,
    query: EntriesQuery,
    *,
    at: dt.datetime,
) -> tuple[str, list[LiveReading]]:
    """The readings of the patient named (or the token's one patient), newest first: the last
    published run's merged with the live window's, after checking the principal may read
    them; the read is recorded in the audit trail."""
    key = _patient_to_read(store, principal, query.patient)
    run = published.current()
    since = _read_from(query.since)  # the first entry's trend needs the reading before it
    readings = merged_readings(
        run, live, key, now=at, since=since, until=query.until, at_least=query.count + 1
    )
    record_access(store, principal, "read", "api/v1/entries", at=at, patient_key=key)
    return key, readings


async def _entries(
    request: Request, published: PublishedLake, patient: str | None, count: int, *, find: bool
) -> list[Any]:
    """The entries a GET asks for; ``find``: it may narrow them by ``find[...]`` bounds (read
    after authentication, so a bad bound from an unknown caller is 401, not 422)."""
    principal = await run_in_threadpool(nightscout_principal_of, request)
    since_ms, until_ms = date_range(dict(request.query_params)) if find else (None, None)
    since, until = (None if ms is None else EPOCH + _ms(ms) for ms in (since_ms, until_ms))
    clock: Clock = request.app.state.clock
    live: LiveWindow | None = getattr(request.app.state, "live", None)
    _, readings = await run_in_threadpool(
        read_patient_readings,
        published,
        live,
        request.app.state.access,
        principal,
        EntriesQuery(patient, since, until, count),
        at=clock(),
    )
    return entries_from_readings(readings, count=count, since_ms=since_ms, until_ms=until_ms)


def _ms(milliseconds: int) -> dt.timedelta:
    return dt.timedelta(milliseconds=milliseconds)


def _read_from(since: dt.datetime | None) -> dt.datetime | None:
    """Where to read from for entries from ``since``: ``MAX_GAP_MIN`` earlier, so the first
    entry's trend and delta have the reading before it (held at the earliest instant)."""
    if since is None:
        return None
    earliest = dt.datetime.min.replace(tzinfo=dt.UTC) + dt.timedelta(minutes=MAX_GAP_MIN)
    return max(since, earliest) - dt.timedelta(minutes=MAX_GAP_MIN)


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
    """The patient's readings, newest first, as Nightscout entries: the published ones and
    those accepted since the last run."""
    return await _entries(request, published, patient, count, find=True)


@router.get("/api/v1/entries/current", responses=ERROR_RESPONSES)
@router.get("/api/v1/entries/current.json", include_in_schema=False)
async def get_current_entry(
    request: Request,
    published: Annotated[PublishedLake, Depends(published_of)],
    patient: Annotated[str | None, Query(description="patient_key (admin, clinician)")] = None,
    token: Annotated[str | None, Query(description="The token, instead of api-secret.")] = None,
) -> list[dict[str, Any]]:
    """The patient's newest reading as a list of one Nightscout entry (empty: no reading)."""
    return await _entries(request, published, patient, 1, find=False)


# cgm-remote-monitor lib/api/treatments: 100 treatments without find, 1,000 with it.
DEFAULT_TREATMENTS: Final = 100
DEFAULT_FOUND_TREATMENTS: Final = 1000
_TREATMENT_BOUNDS: Final[dict[str, BoundKind]] = {"created_at": "either", "mills": "ms"}
_TREATMENT_PARAMETERS: Final = [
    {
        "name": f"find[{field}][{op}]",
        "in": "query",
        "required": False,
        "schema": {"type": "number"}
        if field == "mills"
        else {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}]},
        "description": "Epoch milliseconds."
        if field == "mills"
        else "An ISO 8601 time, or a number: epoch milliseconds.",
    }
    for field in _TREATMENT_BOUNDS
    for op in OPERATORS
] + [
    {
        "name": "find[eventType]",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "pattern": "^([^/].*)?$"},
        "description": "One event type, exactly (e.g. Meal Bolus); not a /regex/.",
    }
]


@dataclass(frozen=True, slots=True)
class TreatmentsQuery:
    """What one treatments GET asks for: whose (None: the token's one patient), between which
    epoch ms (both included; None: unbounded), which event type (None: all), how many."""

    patient: str | None
    since_ms: int | None
    until_ms: int | None
    event_type: str | None
    count: int


def read_patient_treatments(
    published: PublishedLake,
    store: AccessStores,
    principal: Principal,
    query: TreatmentsQuery,
    *,
    at: dt.datetime,
) -> list[dict[str, Any]]:
    """The treatments of the patient named (or the token's one patient), newest first, from
    the last published run's events, after checking the principal may read them; the read is
    recorded in the audit trail."""
    key = _patient_to_read(store, principal, query.patient)
    since = None if query.since_ms is None else EPOCH + _ms(query.since_ms)
    events = published.current().events(key, since)
    record_access(store, principal, "read", "api/v1/treatments", at=at, patient_key=key)
    return treatments_from_events(
        events,
        count=query.count,
        since_ms=query.since_ms,
        until_ms=query.until_ms,
        event_type=query.event_type,
    )


def _event_type(value: str | None) -> str | None:
    """``find[eventType]``: one type, matched exactly; Nightscout's ``/regex/`` form is 422."""
    if value is not None and len(value) > 1 and value.startswith("/") and value.endswith("/"):
        raise InvalidInput(
            f"find[eventType] has {value[:40]!r}, a regular expression; expected one event "
            "type, exactly (e.g. Meal Bolus)",
            source="request",
        )
    return value


@router.get(
    "/api/v1/treatments",
    responses=ERROR_RESPONSES,
    openapi_extra={"parameters": _TREATMENT_PARAMETERS},
)
@router.get("/api/v1/treatments.json", include_in_schema=False)
async def get_treatments(
    request: Request,
    published: Annotated[PublishedLake, Depends(published_of)],
    count: Annotated[
        int | None, Query(ge=1, le=MAX_COUNT, description="Default 100; 1,000 with find.")
    ] = None,
    patient: Annotated[str | None, Query(description="patient_key (admin, clinician)")] = None,
    token: Annotated[str | None, Query(description="The token, instead of api-secret.")] = None,
) -> list[dict[str, Any]]:
    """The patient's published events, newest first, as Nightscout treatments."""
    principal = await run_in_threadpool(nightscout_principal_of, request)
    params = dict(request.query_params)  # read after authentication: a bad bound is 422
    since_ms, until_ms = date_range(params, _TREATMENT_BOUNDS)
    event_type = _event_type(params.get("find[eventType]"))
    found = any(name.startswith("find[") for name in params)
    clock: Clock = request.app.state.clock
    query = TreatmentsQuery(
        patient,
        since_ms,
        until_ms,
        event_type,
        count or (DEFAULT_FOUND_TREATMENTS if found else DEFAULT_TREATMENTS),
    )
    return await run_in_threadpool(
        read_patient_treatments,
        published,
        request.app.state.access,
        principal,
        query,
        at=clock(),
    )


router.include_router(status_router)  # GET /api/v1/status.json: served with the entries
