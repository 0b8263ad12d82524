"""HTTP ingest: ``POST /v1/readings`` takes a JSON batch of readings with a bearer token.

The batch is acknowledged only after its raw batch is durable in the raw zone. Bad rows do not
fail the request: they are quarantined and counted in the response, like a file ingest.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from glucosestream.access import authenticate
from glucosestream.config import Settings
from glucosestream.errors import Forbidden
from glucosestream.ingest.accept import ingest_records
from glucosestream.lake.access_store import open_access

__all__ = ["MAX_READINGS_PER_REQUEST", "router"]

MAX_READINGS_PER_REQUEST: Final = 10_000
_UPLOAD_ROLES: Final = frozenset({"admin", "uploader"})

router = APIRouter()


class ReadingIn(BaseModel):
    """One reading. Field names as in the tabular formats (see formats.tabular)."""

    model_config = ConfigDict(extra="allow")

    patient_id: str | None = Field(None, description="The patient's id in your system.")
    device_id: str | None = Field(None, description="Device serial or id (pseudonymised).")
    time: str | None = Field(None, description="ISO 8601; without an offset it is local to tz.")
    glucose_mg_dl: float | str | None = Field(None, description="Glucose in mg/dL.")
    glucose_mmol_l: float | str | None = Field(None, description="Glucose in mmol/L.")
    tz: str | None = Field(None, description="IANA time zone of the device.")


class ReadingsBatch(BaseModel):
    readings: list[ReadingIn] = Field(..., max_length=MAX_READINGS_PER_REQUEST)


class IngestResponse(BaseModel):
    ok: bool = True
    batch_id: str | None
    received: int
    accepted: int
    duplicates: int
    quarantined: int
    top_reasons: list[tuple[str, int]]
    already_ingested_as: str | None


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def require_uploader(request: Request, settings: Annotated[Settings, Depends(settings_of)]) -> str:
    """The role of the bearer token; 401 unless it may upload."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    principal = authenticate(
        open_access(settings.lake), token if scheme.lower() == "bearer" else None
    )
    if principal.role not in _UPLOAD_ROLES:
        raise Forbidden("this token may not upload readings; use an uploader or admin token")
    return principal.role


@router.post("/v1/readings", response_model=IngestResponse, tags=["ingest"])
async def post_readings(
    batch: ReadingsBatch,
    settings: Annotated[Settings, Depends(settings_of)],
    role: Annotated[str, Depends(require_uploader)],
) -> IngestResponse:
    """Ingest a batch of readings; returns how each was accounted for."""
    records: list[dict[str, Any]] = [r.model_dump(exclude_none=True) for r in batch.readings]
    report = await run_in_threadpool(ingest_records, settings, records)
    fields = dataclasses.asdict(report)
    return IngestResponse(
        batch_id=fields["batch_id"],
        received=fields["received"],
        accepted=fields["accepted"],
        duplicates=fields["duplicates"],
        quarantined=fields["quarantined"],
        top_reasons=[tuple(r) for r in fields["top_reasons"]],
        already_ingested_as=fields["already_ingested_as"],
    )
