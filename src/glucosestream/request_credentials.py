"""Who an HTTP request is: the principal its credentials name, for the ingest routes, the
Nightscout API (both directions) and the Lambda handler.

A bearer token (``Authorization: Bearer <token>``); for Nightscout, as uploader apps send it,
the ``api-secret`` header (the SHA-1 hex of the token), else ``?token=<token>``, else a bearer
token. Never cached: a token revoked or deleted is refused on the very next request (one indexed
lookup in the access store per request; see docs/decisions.md for its cost).
"""

from __future__ import annotations

from fastapi import Request

from glucosestream.access import Principal, authenticate, authenticate_api_secret
from glucosestream.errors import Forbidden
from glucosestream.lake import AccessStores

__all__ = [
    "bearer_principal",
    "bearer_principal_of",
    "bound_patient",
    "nightscout_principal",
    "nightscout_principal_of",
]


def bearer_principal(store: AccessStores, authorization: str | None) -> Principal:
    """The principal of an ``Authorization: Bearer <token>`` header (401 without one)."""
    scheme, _, token = (authorization or "").partition(" ")
    bearer = token.strip() if scheme.lower() == "bearer" else None
    return authenticate(store, bearer or None)


def nightscout_principal(
    store: AccessStores, api_secret: str | None, token: str | None, authorization: str | None
) -> Principal:
    """``api-secret`` header (SHA-1 of the token), else ``?token=``, else a bearer token."""
    if api_secret:
        return authenticate_api_secret(store, api_secret)
    if token:
        return authenticate(store, token)
    return bearer_principal(store, authorization)


def bearer_principal_of(request: Request) -> Principal:
    """The principal of an app request's bearer token (the app's access store)."""
    return bearer_principal(request.app.state.access, request.headers.get("authorization"))


def nightscout_principal_of(request: Request) -> Principal:
    """The principal of a Nightscout request to the app."""
    return nightscout_principal(
        request.app.state.access,
        request.headers.get("api-secret"),
        request.query_params.get("token"),
        request.headers.get("authorization"),
    )


def bound_patient(principal: Principal) -> str:
    """The one patient a token is bound to; Nightscout requests name no patient."""
    if len(principal.patient_keys) == 1:
        return next(iter(principal.patient_keys))
    bound = len(principal.patient_keys)
    raise Forbidden(  # the body is fine: the token's bindings do not name its patient
        f"Nightscout entries name no patient, and this {principal.role} token is bound to "
        f"{bound} patients, not exactly one; use a token bound to one patient"
        + (" (or ?patient=<patient_key> to read)" if principal.role != "uploader" else "")
    )
