"""HTML form posts without extra dependencies: the urlencoded body, the CSRF check and the
same-origin check that every state-changing page route makes."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from fastapi import Request

from glucosestream.dashboard.auth import Viewer
from glucosestream.dashboard.browser_sessions import CSRF_FIELD, csrf_matches
from glucosestream.errors import Forbidden, InvalidInput

__all__ = ["check_origin", "checked_form", "read_form", "safe_next"]


async def read_form(request: Request) -> dict[str, str]:
    """The fields of an ``application/x-www-form-urlencoded`` body (first value of each)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise InvalidInput(
            f"expected a form post (application/x-www-form-urlencoded), got {kind!r}"
        )
    body = await request.body()  # at most MAX_OTHER_BODY_BYTES: the app's BodyLimit saw to it
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def check_origin(request: Request, *, required: bool = False) -> None:
    """Refuse a post whose Origin (or Referer) names another site than this one. ``required``
    (the login form, which has no session to carry a CSRF token yet): refuse one that names no
    site, or ``null``, too: browsers send Origin with every form post."""
    sent = request.headers.get("origin") or request.headers.get("referer")
    if not sent or sent == "null":
        if required:
            raise Forbidden(
                f"form post without an Origin or Referer ({sent or 'none'}) refused; log in from "
                "this site's /login page"
            )
        return
    own = urlsplit(str(request.base_url))
    theirs = urlsplit(sent)
    if (theirs.scheme, theirs.netloc) != (own.scheme, own.netloc):
        raise Forbidden(f"cross-site form post from {theirs.scheme}://{theirs.netloc} refused")


async def checked_form(request: Request, viewer: Viewer) -> dict[str, str]:
    """A page form's fields, after the same-origin and per-session CSRF token checks."""
    check_origin(request)
    form = await read_form(request)
    if viewer.session is None or not csrf_matches(viewer.session, form.get(CSRF_FIELD)):
        raise Forbidden("the form's CSRF token is missing or stale; reload the page and retry")
    return form


def safe_next(target: str | None) -> str:
    """A local path to go to after logging in (never another site)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"
