"""Who is asking: the session (pages) or the session or bearer token (JSON API), and the
checks and audit records around every read of a patient's data."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final, Literal

from fastapi import Request

from glucosestream.access import (
    Principal,
    authenticate,
    authorize_read,
    principal_of,
    record_access,
    usable_record,
)
from glucosestream.clock import Clock
from glucosestream.dashboard.browser_sessions import SESSION_COOKIE, Session, SessionStore
from glucosestream.errors import AuthError, Forbidden, LoginRequired
from glucosestream.lake import AccessStores, TokenStore

__all__ = [
    "UNIT_COOKIE",
    "Unit",
    "Viewer",
    "access_store",
    "api_viewer",
    "audit_read",
    "clock_of",
    "page_viewer",
    "principal_of_session",
    "readable_keys",
    "sessions_of",
]

Unit = Literal["mg_dl", "mmol_l"]
UNIT_COOKIE: Final = "gs_unit"
_PAGE_ROLES: Final = frozenset({"admin", "clinician", "patient"})


@dataclass(frozen=True, slots=True)
class Viewer:
    principal: Principal
    session: Session | None  # None when the request came with a bearer token
    unit: Unit


def access_store(request: Request) -> AccessStores:
    store: AccessStores = request.app.state.access
    return store


def sessions_of(request: Request) -> SessionStore:
    sessions: SessionStore = request.app.state.sessions
    return sessions


def clock_of(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


def _unit(request: Request) -> Unit:
    return "mmol_l" if request.cookies.get(UNIT_COOKIE) == "mmol_l" else "mg_dl"


def principal_of_session(tokens: TokenStore, session: Session, *, now: dt.datetime) -> Principal:
    """The principal behind a session, read again each request: a deleted, revoked or expired
    token ends every session made from it at once (LoginRequired: back to /login)."""
    try:
        record = usable_record(tokens.token(session.token_sha256), now=now)
    except AuthError as err:
        raise LoginRequired(f"this session's {err}") from err
    return principal_of(record)


def _session_viewer(request: Request) -> Viewer | None:
    now = clock_of(request)()
    sessions = sessions_of(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    session = sessions.get(cookie, now=now)
    if session is None:
        return None
    try:
        principal = principal_of_session(access_store(request).tokens, session, now=now)
    except LoginRequired:
        sessions.delete(cookie)
        raise
    return Viewer(principal, session, _unit(request))


def page_viewer(request: Request) -> Viewer:
    """The logged-in viewer of a page; LoginRequired (a redirect to /login) without one."""
    viewer = _session_viewer(request)
    if viewer is None:
        raise LoginRequired("log in to see this page")
    return viewer


def api_viewer(request: Request) -> Viewer:
    """The caller of a JSON route: ``Authorization: Bearer <token>`` or a page session."""
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("the Authorization header must be 'Bearer <token>'")
        principal = authenticate(access_store(request), token.strip(), now=clock_of(request)())
        if principal.role not in _PAGE_ROLES:
            raise Forbidden("an uploader token may upload readings but not read data")
        return Viewer(principal, None, _unit(request))
    try:
        viewer = _session_viewer(request)
    except LoginRequired as err:  # a JSON route answers 401, not a redirect to /login
        raise AuthError(f"{err}; log in again, or send 'Authorization: Bearer <token>'") from err
    if viewer is None:
        raise AuthError("log in, or send 'Authorization: Bearer <token>'")
    return viewer


def readable_keys(store: AccessStores, principal: Principal) -> frozenset[str] | None:
    """The patient keys a principal may read; None means every patient (admin)."""
    if principal.role == "admin":
        return None
    if principal.role == "patient":
        return principal.patient_keys
    if principal.role == "clinician" and principal.clinic_id:
        return store.clinics.clinic_patient_keys(principal.clinic_id)
    return frozenset()


def audit_read(
    request: Request, viewer: Viewer, patient_key: str, action: str, *, at: dt.datetime
) -> None:
    """Check that the viewer may read this patient, then record the read in the audit trail.

    The check comes before any lookup, so a refused id says nothing about whether it exists.
    """
    store = access_store(request)
    authorize_read(store, viewer.principal, patient_key)
    resource = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    record_access(store, viewer.principal, action, resource, at=at, patient_key=patient_key)
