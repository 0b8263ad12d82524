"""HTTP ingest: ``POST /v1/readings`` takes a JSON batch of readings with a bearer token.

The batch is acknowledged only after its raw batch is durable in the raw zone. Bad rows do not
fail the request: they are quarantined and counted in the response, like a file ingest.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from glucosestream.config import Settings
from glucosestream.errors import AuthError
from glucosestream.ingest.accept import ingest_records
from glucosestream.lake import open_metadata

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
    if scheme.lower() != "bearer" or not token:
        raise AuthError(
            "missing bearer token; send 'Authorization: Bearer <token>' "
            "(create one with `glucosestream token create --role uploader`)"
        )
    found = open_metadata(settings.lake).token_role(hashlib.sha256(token.encode()).hexdigest())
    if found is None or found[0] not in _UPLOAD_ROLES:
        raise AuthError("the token is unknown or may not upload readings; use an uploader token")
    return found[0]


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
