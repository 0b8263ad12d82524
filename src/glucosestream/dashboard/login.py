"""Log in with a token (→ an HttpOnly session cookie), log out, and the unit preference.

A login post must come from this site (its Origin or Referer; none or ``null`` is refused: login
CSRF). Each login, failed or not, goes to the access audit trail with the client's address; after
``MAX_FAILED_LOGINS`` failures within a minute an address gets 429 with Retry-After (the count is
kept in the app process: see ``sessions``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from glucosestream.access import authenticate, hash_token, record_access, record_failed_login
from glucosestream.dashboard.auth import (
    UNIT_COOKIE,
    Viewer,
    access_store,
    clock_of,
    page_viewer,
    sessions_of,
)
from glucosestream.dashboard.browser_sessions import (
    FAILED_LOGIN_WINDOW,
    MAX_FAILED_LOGINS,
    SESSION_COOKIE,
    SESSION_TTL,
)
from glucosestream.dashboard.forms import check_origin, checked_form, read_form, safe_next
from glucosestream.dashboard.templating import templates
from glucosestream.errors import AuthError, TooManyRequests

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def _login_page(request: Request, next_path: str, error: str = "", status: int = 200) -> Response:
    return templates.TemplateResponse(
        request,
        "login.html",
        {"next": safe_next(next_path), "error": error, "viewer": None},
        status_code=status,
    )


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> Response:
    return _login_page(request, next)


@router.post("/login")
async def login(request: Request) -> Response:
    check_origin(request, required=True)
    now = clock_of(request)()
    address = request.client.host if request.client else "unknown"
    throttle = sessions_of(request).failed_logins
    form = await read_form(request)
    # Checked after the last await, so the check and the record of a failure below happen in
    # one step of the event loop: concurrent guesses cannot all pass before any is counted.
    wait_s = throttle.retry_after_s(address, now=now)
    if wait_s:  # the app answers 429 in its error shape, with Retry-After
        raise _too_many_failures(address, wait_s)
    next_path = safe_next(form.get("next"))
    store = access_store(request)
    token = form.get("token", "").strip()
    try:
        principal = authenticate(store, token, now=now)
    except AuthError as err:
        throttle.failed(address, now=now)
        record_failed_login(store, address=address, reason=str(err), at=now)
        return _login_page(request, next_path, str(err), 401)
    # A good login does not clear the address's failures (they age out): otherwise any valid
    # token, an uploader's included, would reset the count between guesses.
    if principal.role == "uploader":
        message = "an uploader token can send readings but cannot log in to the pages"
        record_failed_login(store, address=address, reason=message, at=now)
        return _login_page(request, next_path, message, 403)
    record_access(store, principal, "login", f"POST /login from {address}", at=now)
    cookie, _ = sessions_of(request).create(hash_token(token), now=now)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=int(SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


def _too_many_failures(address: str, wait_s: int) -> TooManyRequests:
    window_s = int(FAILED_LOGIN_WINDOW.total_seconds())
    return TooManyRequests(
        f"{MAX_FAILED_LOGINS} failed logins from {address} within {window_s} s; wait {wait_s} s "
        "before trying again, and check the token was copied whole",
        retry_after_s=wait_s,
    )


@router.post("/logout")
async def logout(request: Request, viewer: Annotated[Viewer, Depends(page_viewer)]) -> Response:
    await checked_form(request, viewer)
    sessions_of(request).delete(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/preferences")
async def preferences(
    request: Request, viewer: Annotated[Viewer, Depends(page_viewer)]
) -> Response:
    form = await checked_form(request, viewer)
    unit = "mmol_l" if form.get("unit") == "mmol_l" else "mg_dl"
    response = RedirectResponse(safe_next(form.get("next")), status_code=303)
    response.set_cookie(
        UNIT_COOKIE,
        unit,
        max_age=365 * 24 * 3600,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response
