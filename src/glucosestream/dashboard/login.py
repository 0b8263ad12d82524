"""Log in with a token (→ an HttpOnly session cookie), log out, and the unit preference."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from glucosestream.access import authenticate, hash_token
from glucosestream.dashboard.auth import (
    UNIT_COOKIE,
    Viewer,
    access_store,
    clock_of,
    page_viewer,
    sessions_of,
)
from glucosestream.dashboard.forms import check_origin, checked_form, read_form, safe_next
from glucosestream.dashboard.sessions import SESSION_COOKIE, SESSION_TTL
from glucosestream.dashboard.templating import templates
from glucosestream.errors import AuthError

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
    check_origin(request)
    form = await read_form(request)
    next_path = safe_next(form.get("next"))
    store = access_store(request)
    try:
        principal = authenticate(store, form.get("token", "").strip())
    except AuthError as err:
        return _login_page(request, next_path, str(err), 401)
    if principal.role == "uploader":
        message = "an uploader token can send readings but cannot log in to the pages"
        return _login_page(request, next_path, message, 403)
    cookie, _ = sessions_of(request).create(
        hash_token(form.get("token", "").strip()), now=clock_of(request)()
    )
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
