"""Nightscout-compatible entries API, so uploader apps (xDrip+, Spike, …) post unchanged.

``POST /api/v1/entries`` (or ``.json``) takes a JSON array of entries (one object also works),
parsed by ``formats.nightscout``: ``sgv`` entries are readings, ``mbg``/``cal`` are skipped.
Authentication as Nightscout does it: the ``api-secret`` header holding the SHA-1 hex of the
token (what uploaders send), or ``?token=<token>``, or a bearer token. Entries name no patient:
they are the one patient the uploader token is bound to (a token bound to several, or to none,
gets 422). The answer is the posted entries, as Nightscout answers, once they are durable; the
accounting is in the ``X-Ingest-*`` headers (received, accepted, duplicates, quarantined, batch).

``GET /api/v1/entries`` (or ``.json``) returns the patient's published curated readings, newest
first, as Nightscout entries (``sgv``, ``date`` epoch ms, ``dateString``, ``direction`` from the
rate of change). ``count`` (default 10, as in Nightscout) and ``find[date][$gte|$gt|$lte|$lt]``
(epoch ms) or ``find[dateString][…]`` (ISO 8601) narrow it. The uploader token bound to the
patient may read it back (uploader apps read entries to find gaps); so may any token allowed to
read that patient (admin or clinician with ``?patient=<patient_key>``; a patient token).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any, Final

import pyarrow as pa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from glucosestream.errors import InvalidInput
from glucosestream.ingest.asgi import ERROR_RESPONSES, commit, service_of
from glucosestream.ingest.service import MAX_READINGS_PER_REQUEST, IngestService

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

router = APIRouter(tags=["nightscout"])


def _principal(service: IngestService, request: Request) -> Any:
    return service.nightscout_principal(
        request.headers.get("api-secret"),
        request.query_params.get("token"),
        request.headers.get("authorization"),
    )


@router.post("/api/v1/entries", responses=ERROR_RESPONSES)
@router.post("/api/v1/entries.json", responses=ERROR_RESPONSES, include_in_schema=False)
async def post_entries(
    request: Request,
    service: Annotated[IngestService, Depends(service_of)],
    token: Annotated[str | None, Query(description="The token, instead of api-secret.")] = None,
) -> JSONResponse:
    """Post Nightscout entries (``api-secret`` header: SHA-1 hex of the token)."""
    principal = await run_in_threadpool(_principal, service, request)
    body = await request.body()
    part = await run_in_threadpool(service.entries_part, principal, body)
    outcome = await commit(service, part)
    r = outcome.report
    posted = json.loads(body)
    headers = {
        "X-Ingest-Received": str(r.received),
        "X-Ingest-Accepted": str(r.accepted),
        "X-Ingest-Duplicates": str(r.duplicates),
        "X-Ingest-Quarantined": str(r.quarantined),
        "X-Ingest-Batch": r.batch_id or r.already_ingested_as or "",
    }
    return JSONResponse(posted if isinstance(posted, list) else [posted], headers=headers)


@router.get("/api/v1/entries", responses=ERROR_RESPONSES)
@router.get("/api/v1/entries.json", responses=ERROR_RESPONSES, include_in_schema=False)
async def get_entries(
    request: Request,
    service: Annotated[IngestService, Depends(service_of)],
    count: Annotated[int, Query(ge=1, le=MAX_READINGS_PER_REQUEST)] = DEFAULT_COUNT,
    patient: Annotated[str | None, Query(description="patient_key (admin, clinician)")] = None,
    token: Annotated[str | None, Query(description="The token, instead of api-secret.")] = None,
) -> list[dict[str, Any]]:
    """The patient's published readings, newest first, as Nightscout entries."""
    since_ms, until_ms = date_range(dict(request.query_params))
    principal = await run_in_threadpool(_principal, service, request)
    since = None if since_ms is None else dt.datetime.fromtimestamp(since_ms / 1000, dt.UTC)
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
                bound = ms + (1 if op == "$gt" else 0)
                since = bound if since is None else max(since, bound)
            else:
                bound = ms - (1 if op == "$lt" else 0)
                until = bound if until is None else min(until, bound)
    return since, until


def _epoch_ms(value: str, field: str) -> int:
    try:
        if field == "date":
            return int(float(value))
        instant = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as err:
        raise InvalidInput(
            f"find[{field}] has {value!r}; expected "
            + ("epoch milliseconds" if field == "date" else "an ISO 8601 time"),
            source="request",
        ) from err
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=dt.UTC)
    return int(instant.timestamp() * 1000)


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
