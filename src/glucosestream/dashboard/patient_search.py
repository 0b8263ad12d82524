"""Finding a patient by who they are: ``GET /patients?id=…`` (the search box of every page) and
its JSON twin ``GET /v1/patients?id=…``; and setting the clinic's display label,
``PUT /v1/patients/{key}/label``.

A search matches the id as ingested (whole, case aside; ``patients.external_id`` in the
metadata store, so the dashboard needs no pseudonym secret), the patient key, or a part of the
label (case-insensitive), and keeps only the patients the viewer may read: a patient of another
clinic is "nothing found", exactly like an id the lake never saw. One match goes straight to the
patient's page (303), several are listed. Each search is in the access audit trail, one entry
per patient shown (one naming none when nothing was), with the path but never the text searched
for: the trail is append-only and outlives an erasure, and the text may be a name.
"""

from __future__ import annotations

from typing import Annotated, Any, Final
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from glucosestream.access import authorize_read, record_access
from glucosestream.dashboard.auth import (
    Viewer,
    access_store,
    api_viewer,
    clock_of,
    page_viewer,
    readable_keys,
)
from glucosestream.dashboard.browser_sessions import csrf_matches
from glucosestream.dashboard.patient_names import (
    PatientName,
    patient_directory_of,
    patient_name,
    patient_names,
)
from glucosestream.dashboard.templating import templates
from glucosestream.errors import Forbidden, NotFound
from glucosestream.lake import LABEL_MAX_CHARS, LABEL_PATTERN

__all__ = ["LabelBody", "find_patients", "router"]

router = APIRouter()
_PATIENT_KEY = Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
MAX_SHOWN: Final = 100  # patients a search shows (and audits) at most: type more to narrow it
_ID_QUERY = Query(
    alias="id",
    description="The patient's id as ingested, or a part of their label (case-insensitive).",
)


# The label's rule in the schema, checked by ``checked_label`` (one message for each fault).
_Label = Annotated[
    str, Field(max_length=LABEL_MAX_CHARS, json_schema_extra={"pattern": LABEL_PATTERN})
]


class LabelBody(BaseModel):
    """A patient's display label; null removes it."""

    label: _Label | None = Field(
        description="A name or record number: up to 120 characters on one line, at least one "
        "visible; no control, zero-width or bidirectional-override characters. Its ends are "
        "trimmed. null removes the label."
    )


def find_patients(request: Request, viewer: Viewer, text: str, action: str) -> list[PatientName]:
    """The patients matching ``text`` that the viewer may read (at most ``MAX_SHOWN``), by
    what they are shown as; the search audited as ``action``."""
    keys = patient_directory_of(request).find(text)
    readable = readable_keys(access_store(request), viewer.principal)
    allowed = [k for k in keys if readable is None or k in readable][:MAX_SHOWN]
    store, at = access_store(request), clock_of(request)()
    shown: list[str | None] = list(allowed) or [None]  # a search that found nothing too
    for key in shown:
        record_access(store, viewer.principal, action, request.url.path, at=at, patient_key=key)
    names = patient_names(request, viewer, allowed)
    return sorted(names.values(), key=lambda n: (n.shown.lower(), n.patient_key))


@router.get("/patients", response_class=HTMLResponse, include_in_schema=False)
def search_page(
    request: Request,
    viewer: Annotated[Viewer, Depends(page_viewer)],
    text: Annotated[str, _ID_QUERY] = "",
) -> Response:
    """One patient found: their page; several: a list; none (or none the viewer may read): a
    page that says so."""
    found = find_patients(request, viewer, text, "page.patient.find") if text.strip() else []
    if len(found) == 1:
        return RedirectResponse(f"/patients/{quote(found[0].patient_key)}", status_code=303)
    context = {"viewer": viewer, "query": text, "found": found, "max_shown": MAX_SHOWN}
    return templates.TemplateResponse(request, "search_results.html", context)


@router.get("/v1/patients", tags=["patients"])
def search_json(
    request: Request,
    viewer: Annotated[Viewer, Depends(api_viewer)],
    text: Annotated[str, _ID_QUERY],
) -> dict[str, Any]:
    """The patients the caller may read whose id as ingested is ``id`` (case aside) or whose
    label contains it: key, id and label of each (none: an empty list, never a 403 or 404)."""
    found = find_patients(request, viewer, text, "api.patient.find")
    return {"ok": True, "patients": [_json(name) for name in found]}


@router.put("/v1/patients/{patient_key}/label", tags=["patients"])
def set_label(
    patient_key: Annotated[str, _PATIENT_KEY],
    request: Request,
    viewer: Annotated[Viewer, Depends(api_viewer)],
    body: Annotated[LabelBody, Body()],
) -> dict[str, Any]:
    """Set (or, with ``null``, remove) a patient's display label: admins, and clinicians of the
    patient's clinic. A page session must send its CSRF token as ``X-CSRF-Token``."""
    if viewer.principal.role not in ("admin", "clinician"):
        raise Forbidden("only an admin or a clinician of the patient's clinic may set a label")
    if viewer.session is not None and not csrf_matches(
        viewer.session, request.headers.get("x-csrf-token")
    ):
        raise Forbidden("send the session's CSRF token as X-CSRF-Token, or use a bearer token")
    store = access_store(request)
    authorize_read(store, viewer.principal, patient_key)  # before any lookup: says nothing
    at = clock_of(request)()
    directory = patient_directory_of(request)
    if not directory.set_label(patient_key, body.label, at=at, by=viewer.principal.token_id):
        raise NotFound(f"no patient with key {patient_key!r} in this lake")
    action = "api.patient.label.clear" if body.label is None else "api.patient.label.set"
    record_access(store, viewer.principal, action, request.url.path, at=at, patient_key=patient_key)
    return {"ok": True, **_json(patient_name(request, viewer, patient_key))}


def _json(name: PatientName) -> dict[str, Any]:
    return {"patient_key": name.patient_key, "external_id": name.external_id, "label": name.label}
