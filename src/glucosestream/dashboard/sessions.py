"""Browser sessions: an opaque random cookie naming a server-side session.

The cookie carries 256 random bits and nothing else; the server keeps, under the SHA-256 of that
value, which token the session was made from, its CSRF token and when it expires. Logging out
deletes the entry, so a copied cookie stops working at once. Sessions live in the app process
(one ``serve`` process); a restart logs everyone out.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from typing import Final

__all__ = [
    "CSRF_FIELD",
    "SESSION_COOKIE",
    "SESSION_TTL",
    "Session",
    "SessionStore",
    "csrf_matches",
]

SESSION_COOKIE: Final = "gs_session"
CSRF_FIELD: Final = "csrf_token"
SESSION_TTL: Final = dt.timedelta(hours=8)  # one clinic working day


@dataclass(frozen=True, slots=True)
class Session:
    token_sha256: str
    csrf_token: str
    expires_at: dt.datetime


def _digest(cookie_value: str) -> str:
    return hashlib.sha256(cookie_value.encode("utf-8")).hexdigest()


class SessionStore:
    """Sessions by the hash of their cookie value; thread-safe."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, token_sha256: str, *, now: dt.datetime) -> tuple[str, Session]:
        """A new session for a token: (cookie value, session)."""
        cookie_value = secrets.token_urlsafe(32)
        session = Session(token_sha256, secrets.token_urlsafe(32), now + SESSION_TTL)
        with self._lock:
            self._drop_expired(now)
            self._sessions[_digest(cookie_value)] = session
        return cookie_value, session

    def get(self, cookie_value: str | None, *, now: dt.datetime) -> Session | None:
        if not cookie_value:
            return None
        with self._lock:
            session = self._sessions.get(_digest(cookie_value))
            if session is not None and session.expires_at <= now:
                del self._sessions[_digest(cookie_value)]
                return None
            return session

    def delete(self, cookie_value: str | None) -> None:
        if cookie_value:
            with self._lock:
                self._sessions.pop(_digest(cookie_value), None)

    def _drop_expired(self, now: dt.datetime) -> None:
        for key in [k for k, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[key]


def csrf_matches(session: Session, sent: str | None) -> bool:
    """Whether a form's CSRF token is this session's (constant-time comparison)."""
    return bool(sent) and hmac.compare_digest(session.csrf_token, str(sent))
