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

``GET /api/v1/entries`` (or ``.json``) returns the patient's published curated readings, newest
first, as Nightscout entries (``sgv``, ``date`` epoch ms, ``dateString``, ``direction`` from the
rate of change). ``count`` (default 10, as in Nightscout; 1 to 10,000) and
``find[date][$gte|$gt|$lte|$lt]`` (epoch ms) or ``find[dateString][…]`` (ISO 8601) narrow it
(a bound past year 9999 or before year 1 is held there); any other value, such as ``inf``, is
422 (after authentication).
The uploader token bound to the patient may read it back (uploader apps read entries to find
gaps); so may any token allowed to read that patient (admin or clinician with
``?patient=<patient_key>``; a patient token).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Annotated, Any, Final

import pyarrow as pa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from glucosestream.errors import InvalidInput
from glucosestream.ingest.asgi import ERROR_RESPONSES, commit, service_of
from glucosestream.ingest.bodies import nightscout_echo
from glucosestream.ingest.limits import MAX_READINGS_PER_REQUEST
from glucosestream.ingest.service import IngestService

__all__ = ["entries_from_readings", "router"]

# cgm-remote-monitor lib/api/entries: a GET without count returns 10 entries.
DEFAULT_COUNT: Final = 10
# Dexcom trend arrows by rate of change (mg/dL per minute): flat within ±1, 45° 1-2,
# single 2-3, double above 3 (Dexcom G6 user guide, "Trend arrows").
_TREND_MG_DL_PER_MIN: Final = ((3.0, "DoubleUp"), (2.0, "SingleUp"), (1.0, "FortyFiveUp"))
_TREND_DOWN: Final = ((-3.0, "DoubleDown"), (-2.0, "SingleDown"), (-1.0, "FortyFiveDown"))
# Beyond this gap between readings no trend is shown (Nightscout shows NONE).
_TREND_MAX_GAP_MIN: Final = 15.0
_OPERATORS: Final = ("$gte", "$gt", "$lte", "$lt")
# find[...] bounds are held within the instants Python has: year 1 to the end of year 9999.
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MIN_EPOCH_MS: Final = -62_135_596_800_000
_MAX_EPOCH_MS: Final = 253_402_300_799_999
_LEAP_SECOND: Final = re.compile(r"(?<=\d\d:\d\d):60(?=[.,+-]|$)")

router = APIRouter(tags=["nightscout"])

# The body is parsed by the service (so the Lambda handler shares it); its schema is given here.
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
        "direction": {"description": "Trend arrow, e.g. Flat (not stored)."},
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
    for op in _OPERATORS
]


def _principal(service: IngestService, request: Request) -> Any:
    return service.nightscout_principal(
        request.headers.get("api-secret"),
        request.query_params.get("token"),
        request.headers.get("authorization"),
    )


@router.post(
    "/api/v1/entries",
    responses=_POSTED,
    response_class=Response,
    openapi_extra={"requestBody": _ENTRIES_BODY},
)
@router.post("/api/v1/entries.json", response_class=Response, include_in_schema=False)
async def post_entries(
    request: Request,
    service: Annotated[IngestService, Depends(service_of)],
    token: Annotated[str | None, Query(description="The token, instead of api-secret.")] = None,
) -> Response:
    """Post Nightscout entries (``api-secret`` header: SHA-1 hex of the token); at most 10,000
    entries, a body of at most 16 MiB."""
    principal = await run_in_threadpool(_principal, service, request)
    body = await request.body()
    part, entries = await run_in_threadpool(service.entries_part, principal, body)
    outcome = await commit(service, part)
    r = outcome.report
    headers = {
        "X-Ingest-Received": str(r.received),
        "X-Ingest-Accepted": str(r.accepted),
        "X-Ingest-Duplicates": str(r.duplicates),
        "X-Ingest-Quarantined": str(r.quarantined),
        "X-Ingest-Batch": r.batch_id or r.already_ingested_as or "",
    }
    echo = await run_in_threadpool(nightscout_echo, entries)
    return Response(echo, media_type="application/json", headers=headers)


@router.get(
    "/api/v1/entries",
    responses=ERROR_RESPONSES,
    openapi_extra={"parameters": _FIND_PARAMETERS},
)
@router.get("/api/v1/entries.json", include_in_schema=False)
async def get_entries(
    request: Request,
    service: Annotated[IngestService, Depends(service_of)],
    count: Annotated[int, Query(ge=1, le=MAX_READINGS_PER_REQUEST)] = DEFAULT_COUNT,
    patient: Annotated[str | None, Query(description="patient_key (admin, clinician)")] = None,
    token: Annotated[str | None, Query(description="The token, instead of api-secret.")] = None,
) -> list[dict[str, Any]]:
    """The patient's published readings, newest first, as Nightscout entries."""
    principal = await run_in_threadpool(_principal, service, request)
    since_ms, until_ms = date_range(dict(request.query_params))
    since = None if since_ms is None else _EPOCH + dt.timedelta(milliseconds=since_ms)
    _, table = await run_in_threadpool(service.read_patient_readings, principal, patient, since)
    return entries_from_readings(table, count=count, until_ms=until_ms)


def date_range(params: dict[str, str]) -> tuple[int | None, int | None]:
    """``find[date][$op]`` (epoch ms) or ``find[dateString][$op]`` (ISO) as [since, until] ms."""
    since: int | None = None
    until: int | None = None
    for field in ("date", "dateString"):
        for op in _OPERATORS:
            value = params.get(f"find[{field}][{op}]")
            if value is None:
                continue
            ms = _epoch_ms(value, field)
            if op in ("$gte", "$gt"):
                bound = min(ms + (1 if op == "$gt" else 0), _MAX_EPOCH_MS)
                since = bound if since is None else max(since, bound)
            else:
                bound = max(ms - (1 if op == "$lt" else 0), _MIN_EPOCH_MS)
                until = bound if until is None else min(until, bound)
    return since, until


def _epoch_ms(value: str, field: str) -> int:
    """Epoch ms of a bound, held within the instants Python has (years 1 to 9999: a bound past
    them selects what the furthest one would); a value that is no number or time (inf, nan,
    1e400, text) is 422 naming it."""
    try:
        if field == "date":
            number = float(value)
            if not math.isfinite(number):
                raise ValueError("not a finite number")
            ms = number
        else:
            instant = _instant(value)
            ms = (instant - _EPOCH) // dt.timedelta(milliseconds=1)
    except (ValueError, OverflowError) as err:
        shown = value if len(value) <= 40 else value[:40] + "…"
        raise InvalidInput(
            f"find[{field}] has {shown!r}; expected "
            + ("epoch milliseconds" if field == "date" else "an ISO 8601 time"),
            source="request",
        ) from err
    return int(min(max(ms, _MIN_EPOCH_MS), _MAX_EPOCH_MS))


def _instant(value: str) -> dt.datetime:
    """An ISO 8601 / RFC 3339 time (``Z`` or ``z``, a leap second read as :59); UTC without an
    offset."""
    text = value.strip().upper().replace("Z", "+00:00")
    try:
        instant = dt.datetime.fromisoformat(text)
    except ValueError:
        instant = dt.datetime.fromisoformat(_LEAP_SECOND.sub(":59", text))
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=dt.UTC)


def entries_from_readings(
    table: pa.Table, *, count: int, until_ms: int | None = None
) -> list[dict[str, Any]]:
    """Curated readings as Nightscout ``sgv`` entries, newest first, at most ``count``."""
    rows = table.select(["device_id", "ts", "glucose_mg_dl"]).sort_by(
        [("device_id", "ascending"), ("ts", "ascending")]
    )
    devices = rows["device_id"].to_pylist()
    times = [ts.astimezone(dt.UTC) for ts in rows["ts"].to_pylist()]
    values = rows["glucose_mg_dl"].to_pylist()
    entries: list[tuple[int, dict[str, Any]]] = []
    for i, (device, ts, value) in enumerate(zip(devices, times, values, strict=True)):
        date_ms = int(ts.timestamp() * 1000)
        if until_ms is not None and date_ms > until_ms:
            continue
        previous = i - 1 if i and devices[i - 1] == device else None
        direction = (
            "NONE" if previous is None else _direction(value, values[previous], ts, times[previous])
        )
        entry = {
            "_id": f"{device}-{date_ms}",
            "type": "sgv",
            "sgv": round(value),
            "date": date_ms,
            "dateString": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "direction": direction,
            "device": device,
            "utcOffset": 0,
        }
        entries.append((date_ms, entry))
    entries.sort(key=lambda e: e[0], reverse=True)
    return [entry for _, entry in entries[:count]]


def _direction(value: float, before: float, ts: dt.datetime, ts_before: dt.datetime) -> str:
    minutes = (ts - ts_before).total_seconds() / 60
    if minutes <= 0 or minutes > _TREND_MAX_GAP_MIN:
        return "NONE"
    rate = (value - before) / minutes
    for threshold, name in _TREND_MG_DL_PER_MIN:
        if rate > threshold:
            return name
    for threshold, name in _TREND_DOWN:
        if rate < threshold:
            return name
    return "Flat"
