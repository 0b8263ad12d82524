"""The alert routes: the list (``GET /v1/alerts``), acknowledge and snooze, as JSON for API
callers and as the patient page's form posts.

Who may act on an alert: whoever may read its patient (an admin, a clinician of the patient's
clinic, the patient themself); never an uploader. An alert the caller may not read answers
404 like one that does not exist, so an id says nothing about another patient. Every list,
acknowledgement and snooze is in the access audit trail. A JSON post made with a page session
(not a bearer token) must carry the session's CSRF token as ``X-CSRF-Token``.
"""

from __future__ import annotations

from typing import Annotated, Any, Final
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from glucosestream.access import authorize_read, record_access
from glucosestream.alerts import AlertRow, AlertStore
from glucosestream.alerts.store import MAX_SNOOZE_MIN
from glucosestream.dashboard.auth import Viewer, access_store, api_viewer, clock_of, page_viewer
from glucosestream.dashboard.auth import readable_keys as readable_patient_keys
from glucosestream.dashboard.browser_sessions import csrf_matches
from glucosestream.dashboard.forms import checked_form
from glucosestream.dashboard.now import alert_json
from glucosestream.errors import Forbidden, InvalidInput, NotFound

__all__ = ["alert_store_of", "router"]

router = APIRouter()
MAX_LIST: Final = 500
_ALERT_ID = Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")


def alert_store_of(request: Request) -> AlertStore:
    """The app's alert store (one per app, made by ``create_app``)."""
    store: AlertStore = request.app.state.alerts
    return store


def _resource(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def _listed(
    store: AlertStore, allowed: frozenset[str] | None, *, active: bool, limit: int
) -> list[AlertRow]:
    """The alerts of the allowed patients (None: all), newest first."""
    if allowed is None:
        return store.list_alerts(active_only=active, limit=limit)
    rows = [
        row
        for key in sorted(allowed)
        for row in store.list_alerts(patient_key=key, active_only=active, limit=limit)
    ]
    return sorted(rows, key=lambda r: r.fired_at, reverse=True)[:limit]


@router.get("/v1/alerts", tags=["alerts"])
def list_alerts(
    request: Request,
    viewer: Annotated[Viewer, Depends(api_viewer)],
    store: Annotated[AlertStore, Depends(alert_store_of)],
    patient: Annotated[str | None, Query(max_length=64, description="A patient key.")] = None,
    active: Annotated[bool, Query(description="Only alerts still active.")] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100,
) -> dict[str, Any]:
    """Alerts newest first: one patient's (by patient key), or every patient's the caller may
    read."""
    now = clock_of(request)()
    access = access_store(request)
    if patient is not None:
        authorize_read(access, viewer.principal, patient)
        allowed: frozenset[str] | None = frozenset({patient})
    else:
        allowed = readable_patient_keys(access, viewer.principal)
    record_access(
        access, viewer.principal, "alerts", _resource(request), at=now, patient_key=patient
    )
    rows = _listed(store, allowed, active=active, limit=limit)
    return {"ok": True, "alerts": [alert_json(r) for r in rows]}


def _readable_alert(request: Request, viewer: Viewer, store: AlertStore, alert_id: str) -> AlertRow:
    """The alert, if the viewer may read its patient; else NotFound, as for no such alert."""
    row = store.get(alert_id)
    if row is not None:
        try:
            authorize_read(access_store(request), viewer.principal, row.patient_key)
        except Forbidden:
            row = None
    if row is None:
        raise NotFound(f"no alert {alert_id!r} that this token may see")
    return row


def _act(
    request: Request, viewer: Viewer, store: AlertStore, alert_id: str, snooze_min: float | None
) -> AlertRow:
    """Acknowledge (``snooze_min`` None) or snooze the alert; the store writes its history
    and the access audit entry (``alert.ack``, ``alert.snooze``)."""
    _readable_alert(request, viewer, store, alert_id)
    now = clock_of(request)()
    actor, role = viewer.principal.token_id, viewer.principal.role
    if snooze_min is None:
        return store.ack(alert_id, actor=actor, role=role, at=now)
    return store.snooze(alert_id, minutes=snooze_min, actor=actor, role=role, at=now)


def _check_csrf_header(request: Request, viewer: Viewer) -> None:
    if viewer.session is not None and not csrf_matches(
        viewer.session, request.headers.get("x-csrf-token")
    ):
        raise Forbidden("send the session's CSRF token as X-CSRF-Token, or use a bearer token")


@router.post("/v1/alerts/{alert_id}/ack", tags=["alerts"])
def ack_alert(
    request: Request,
    viewer: Annotated[Viewer, Depends(api_viewer)],
    store: Annotated[AlertStore, Depends(alert_store_of)],
    alert_id: Annotated[str, _ALERT_ID],
) -> dict[str, Any]:
    """Acknowledge an alert: it sends no escalation; its clear is still delivered."""
    _check_csrf_header(request, viewer)
    return {"ok": True, "alert": alert_json(_act(request, viewer, store, alert_id, None))}


@router.post("/v1/alerts/{alert_id}/snooze", tags=["alerts"])
def snooze_alert(
    request: Request,
    viewer: Annotated[Viewer, Depends(api_viewer)],
    store: Annotated[AlertStore, Depends(alert_store_of)],
    alert_id: Annotated[str, _ALERT_ID],
    minutes: Annotated[float, Query(gt=0, le=MAX_SNOOZE_MIN, description="How long.")],
) -> dict[str, Any]:
    """Snooze the alert's kind for its patient: until then a new episode is recorded but not
    delivered (at most a day; urgent low at most 30 minutes: 422 beyond)."""
    _check_csrf_header(request, viewer)
    return {"ok": True, "alert": alert_json(_act(request, viewer, store, alert_id, minutes))}


def _form_minutes(form: dict[str, str]) -> float | None:
    if "minutes" not in form:
        return None
    try:
        minutes = float(form["minutes"])
    except ValueError:
        minutes = -1.0
    if not 0 < minutes <= MAX_SNOOZE_MIN:
        raise InvalidInput(f"minutes={form['minutes']!r}: give 1 to {MAX_SNOOZE_MIN} minutes")
    return minutes


@router.post("/alerts/{alert_id}", include_in_schema=False)
async def alert_form(
    request: Request,
    viewer: Annotated[Viewer, Depends(page_viewer)],
    store: Annotated[AlertStore, Depends(alert_store_of)],
    alert_id: Annotated[str, _ALERT_ID],
) -> Response:
    """The page's acknowledge and snooze buttons (a form with ``minutes`` snoozes); back to the
    alert's patient page."""
    form = await checked_form(request, viewer)
    row = _act(request, viewer, store, alert_id, _form_minutes(form))
    return RedirectResponse(f"/patients/{quote(row.patient_key)}#now", status_code=303)
