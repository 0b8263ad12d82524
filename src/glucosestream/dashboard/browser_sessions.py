"""Browser sessions: an opaque random cookie naming a server-side session.

The cookie carries 256 random bits and nothing else; the server keeps, under the SHA-256 of that
value (never the value itself), which token the session was made from, its CSRF token and when
it expires. Logging out deletes the entry, so a copied cookie stops working at once; so does
revoking the token (each request reads the token again). Sessions live in the app process (one
``serve`` process), never on disk; a restart logs everyone out.

Failed logins are counted here too, per client address, in the same process: after
``MAX_FAILED_LOGINS`` within ``FAILED_LOGIN_WINDOW`` an address is refused (HTTP 429) until the
oldest of them is a window old. The address is the connection's peer: behind a reverse proxy
every client shares the proxy's address, so there the proxy should throttle instead.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import secrets
import threading
from collections import deque
from dataclasses import dataclass
from typing import Final

__all__ = [
    "CSRF_FIELD",
    "FAILED_LOGIN_WINDOW",
    "MAX_FAILED_LOGINS",
    "SESSION_COOKIE",
    "SESSION_TTL",
    "LoginThrottle",
    "Session",
    "SessionStore",
    "csrf_matches",
]

SESSION_COOKIE: Final = "gs_session"
CSRF_FIELD: Final = "csrf_token"
SESSION_TTL: Final = dt.timedelta(hours=8)  # one clinic working day
MAX_FAILED_LOGINS: Final = 5
FAILED_LOGIN_WINDOW: Final = dt.timedelta(minutes=1)
_MAX_THROTTLED_ADDRESSES: Final = 10_000  # bounds the memory a flood of addresses can take


@dataclass(frozen=True, slots=True)
class Session:
    token_sha256: str
    csrf_token: str
    expires_at: dt.datetime


def _digest(cookie_value: str) -> str:
    return hashlib.sha256(cookie_value.encode("utf-8")).hexdigest()


class LoginThrottle:
    """Failed logins per client address over the last ``FAILED_LOGIN_WINDOW``; thread-safe."""

    def __init__(self) -> None:
        self._failures: dict[str, deque[dt.datetime]] = {}
        self._lock = threading.Lock()

    def retry_after_s(self, address: str, *, now: dt.datetime) -> int:
        """0 if this address may try to log in now, else the seconds until it may."""
        with self._lock:
            recent = _prune(self._failures.get(address, deque()), now)
            if len(recent) < MAX_FAILED_LOGINS:
                return 0
            return max(1, math.ceil((recent[0] + FAILED_LOGIN_WINDOW - now).total_seconds()))

    def failed(self, address: str, *, now: dt.datetime) -> None:
        with self._lock:
            failures = self._failures.setdefault(address, deque(maxlen=MAX_FAILED_LOGINS))
            _prune(failures, now).append(now)
            if len(self._failures) > _MAX_THROTTLED_ADDRESSES:
                for stale in [a for a, f in self._failures.items() if not _prune(f, now)]:
                    del self._failures[stale]
            while len(self._failures) > _MAX_THROTTLED_ADDRESSES:
                del self._failures[next(iter(self._failures))]  # the longest tracked


def _prune(failures: deque[dt.datetime], now: dt.datetime) -> deque[dt.datetime]:
    """The failures of the last window (older ones dropped)."""
    while failures and failures[0] <= now - FAILED_LOGIN_WINDOW:
        failures.popleft()
    return failures


class SessionStore:
    """Sessions by the hash of their cookie value, and the failed logins; thread-safe."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self.failed_logins = LoginThrottle()

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
    if not sent:
        return False
    # as bytes: compare_digest refuses a str with non-ASCII characters (a TypeError, a 500)
    return hmac.compare_digest(session.csrf_token.encode(), str(sent).encode("utf-8", "replace"))
