"""The delivery worker: threads in ``serve`` that claim due outbox rows and POST them.

Each attempt is signed anew (Standard Webhooks: a new ``webhook-timestamp`` and signature, the
same ``webhook-id`` and the byte-identical body) and sent with the standard library's urllib:
no redirect is followed (a 3xx is a failure, as the spec advises), no proxy is read from the
environment, and a receiver has ``alerts.timeout_s`` for each read and write. A 2xx settles the
row as delivered at once, before anything else; ``410 Gone`` disables the webhook and cancels
its deliveries; anything else (another status, a timeout, a refused connection) schedules the
next attempt (``outbox.retry_delay_s``, at least a ``Retry-After`` the receiver sent) or, past
``alerts.max_attempts``, makes the row a dead letter.

The threads are woken by ``wake()`` (the alert engine calls it once a fire commits); between
wake-ups they claim only when the next retry or claim expiry they know of falls due (kept in
memory, re-read after each pass that found nothing), and every ``RECHECK_S`` seconds in case
another process queued rows: no claim query every second for nothing. A row a killed
``serve`` left ``delivering`` is claimed again once its claim expires (``alerts.claim_s``, at
least twice ``alerts.timeout_s``), and sent once more with the same id and body: at least once
on the wire, once per ``webhook-id`` at a receiver that keeps the ids it has seen.
"""

from __future__ import annotations

import datetime as dt
import http.client
import logging
import os
import random
import secrets
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from importlib.metadata import PackageNotFoundError, version
from typing import Final

from glucosestream.alerts.outbox import Claimed, OutboxStore, open_outbox, retry_delay_s
from glucosestream.alerts.webhooks import WebhookStore, open_webhook_store, signed_headers
from glucosestream.clock import Clock, utc_now
from glucosestream.config import Settings
from glucosestream.errors import GlucoseStreamError

__all__ = ["DeliveryWorker", "Response", "Sender", "post"]

log = logging.getLogger(__name__)

POLL_S: Final = 1.0  # the longest a thread sleeps before it checks the time of the next retry
RECHECK_S: Final = 5.0  # a claim is tried this often even when nothing is known to be due
THREADS: Final = 4  # one slow receiver holds one thread, not the others
_RESPONSE_BYTES: Final = 4096  # of a receiver's answer read (and dropped) before closing


@dataclass(frozen=True, slots=True)
class Response:
    """What a receiver answered: its status and the seconds of a ``Retry-After``, if any."""

    status: int
    retry_after_s: float | None = None


# (url, body, headers, timeout_s) -> Response; raises OSError or http.client.HTTPException when
# no answer came (refused, reset, timed out).
Sender = Callable[[str, bytes, Mapping[str, str], float], Response]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # urllib then raises the 3xx as an HTTPError: a failed attempt


_OPENER: Final = urllib.request.build_opener(_NoRedirects(), urllib.request.ProxyHandler({}))


def post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> Response:
    """POST the body with urllib; a non-2xx answer is a Response too, not an exception."""
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with _OPENER.open(request, timeout=timeout_s) as answer:
            answer.read(_RESPONSE_BYTES)
            return Response(answer.status)
    except urllib.error.HTTPError as err:
        try:
            return Response(err.code, _retry_after_s(err.headers))
        finally:
            err.close()
    except urllib.error.URLError as err:
        reason = err.reason
        raise reason if isinstance(reason, OSError) else OSError(str(reason)) from err


def _retry_after_s(headers: Message | None) -> float | None:
    """A ``Retry-After`` of delay-seconds (an HTTP date is ignored: the backoff applies)."""
    value = (headers.get("Retry-After") if headers is not None else None) or ""
    return float(value) if value.strip().isdigit() else None


class DeliveryWorker:
    """Threads that deliver the outbox; ``deliver_due()`` is one pass, for tests and tools."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utc_now,
        send: Sender = post,
        threads: int = THREADS,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings.alerts
        self._clock = clock
        self._send = send
        self._outbox: OutboxStore = open_outbox(settings.lake)
        self._webhooks: WebhookStore = open_webhook_store(settings.lake)
        self._rng = rng or random.Random()  # for the jitter, not a secret
        self._rng_lock = threading.Lock()
        self._targets: dict[str, tuple[str, bytes]] = {}
        self._count = threads
        self._threads: list[threading.Thread] = []
        self._signal = threading.Condition()
        self._signalled = False
        self._next_due: dt.datetime | None = None  # the earliest retry or claim expiry known
        self._recheck_at = time.monotonic() + RECHECK_S
        self._stopping = threading.Event()
        host = socket.gethostname()[:24]
        self.worker_id = f"{host}:{os.getpid()}:{secrets.token_hex(4)}"
        self._headers = {"Content-Type": "application/json", "User-Agent": _user_agent()}

    @property
    def claim_s(self) -> float:
        """How long a claim lasts: ``alerts.claim_s``, but at least twice ``alerts.timeout_s``,
        so no other worker takes over a row whose attempt may still be answered."""
        return max(self._settings.claim_s, 2 * self._settings.timeout_s)

    def wake(self) -> None:
        """Look for due rows now (called right after an alert change commits): one thread
        claims, and wakes another each time it found a row, so a lone delivery costs one or
        two claims and a backlog gets every thread."""
        with self._signal:
            self._signalled = True
            self._signal.notify()

    def start(self) -> None:
        self._stopping.clear()
        for i in range(self._count):
            thread = threading.Thread(target=self._loop, name=f"webhook-delivery-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self.wake()  # what a previous serve left pending

    def stop(self) -> None:
        """Stop the threads; one waiting for a receiver stops within ``alerts.timeout_s``
        (the row it holds is claimed again after its claim expires)."""
        self._stopping.set()
        with self._signal:
            self._signal.notify_all()
        for thread in self._threads:
            thread.join(self._settings.timeout_s + POLL_S)
        self._threads = []

    def deliver_due(self) -> int:
        """Claim and send due rows one at a time until none is left; returns the attempts.
        Then remember when the next row (a retry, an expiring claim) falls due."""
        attempts = 0
        while not self._stopping.is_set():
            now = self._clock()
            claimed = self._outbox.claim(self.worker_id, now=now, claim_s=self.claim_s)
            if not claimed:
                self._note_due(self._outbox.next_due(after=now), replace=True)
                return attempts
            if attempts == 0 and self._threads:
                self.wake()  # there was work: another thread looks for more
            for row in claimed:
                self._attempt(row)
                attempts += 1
        return attempts

    def _loop(self) -> None:
        while not self._stopping.is_set():
            woken = self._wait()
            if self._stopping.is_set():
                return
            if not (woken or self._is_due() or self._take_recheck()):
                continue
            try:
                self.deliver_due()
            except GlucoseStreamError as err:  # the store unreachable: try again at the next poll
                cause = type(err.__cause__ or err).__name__  # not its text: it quotes rows
                log.warning("webhook delivery pass failed (%s)", cause)
                self._note_due(self._clock() + dt.timedelta(seconds=POLL_S), replace=True)
            except Exception:  # a bug must not end delivery for good
                log.exception("webhook delivery pass failed")
                self._note_due(self._clock() + dt.timedelta(seconds=POLL_S), replace=True)

    def _wait(self) -> bool:
        """Sleep until woken or the next known retry (at most POLL_S); whether woken."""
        with self._signal:
            if not self._signalled:
                self._signal.wait(self._seconds_to_due())
            woken, self._signalled = self._signalled, False
        return woken

    def _seconds_to_due(self) -> float:
        due = self._next_due
        if due is None:
            return POLL_S
        return min(max((due - self._clock()).total_seconds(), 0.0), POLL_S)

    def _take_recheck(self) -> bool:
        """Whether this thread makes the claim every ``RECHECK_S`` (one thread of them all)."""
        with self._signal:
            if time.monotonic() < self._recheck_at:
                return False
            self._recheck_at = time.monotonic() + RECHECK_S
        return True

    def _is_due(self) -> bool:
        due = self._next_due
        return due is not None and due <= self._clock()

    def _note_due(self, at: dt.datetime | None, *, replace: bool = False) -> None:
        with self._signal:
            if replace or self._next_due is None:
                self._next_due = at
            elif at is not None:
                self._next_due = min(self._next_due, at)

    def _attempt(self, row: Claimed) -> None:
        try:
            url, key = self._target(row.webhook_id)
        except GlucoseStreamError as err:  # its secret cannot be unsealed: retried, then dead
            self._failed(row, None, str(err), None)
            return
        now = self._clock()
        headers = self._headers | signed_headers(
            key, row.delivery_id, int(now.timestamp()), row.body
        )
        try:
            response = self._send(url, row.body, headers, self._settings.timeout_s)
        except (OSError, http.client.HTTPException, ValueError) as err:
            self._failed(row, None, f"{type(err).__name__}: {err}", None)
            return
        if 200 <= response.status < 300:
            self._outbox.delivered(row.delivery_id, status=response.status, at=self._clock())
            log.info("webhook delivered delivery_id=%s attempt=%d", row.delivery_id, row.attempts)
        elif response.status == 410:
            cancelled = self._outbox.gone(row.webhook_id, at=self._clock())
            log.warning(
                "webhook gone (410): disabled webhook_id=%s cancelled=%d", row.webhook_id, cancelled
            )
        else:
            self._failed(row, response.status, f"HTTP {response.status}", response.retry_after_s)

    def _failed(
        self, row: Claimed, status: int | None, error: str, retry_after_s: float | None
    ) -> None:
        next_at = None
        if row.attempts < self._settings.max_attempts:
            with self._rng_lock:
                delay = retry_delay_s(row.attempts, self._settings, self._rng)
            if retry_after_s is not None:
                delay = max(delay, min(retry_after_s, self._settings.backoff_max_s))
            next_at = self._clock() + dt.timedelta(seconds=delay)
            self._note_due(next_at)
        state = self._outbox.failed(
            row, self.worker_id, status=status, error=error, next_attempt_at=next_at
        )
        log.log(
            logging.WARNING if state == "dead" else logging.INFO,
            "webhook attempt failed delivery_id=%s attempt=%d error=%s now=%s",
            row.delivery_id,
            row.attempts,
            error,
            state,
        )

    def _target(self, webhook_id: str) -> tuple[str, bytes]:
        """A webhook's URL and signing key (both fixed for its life), read once."""
        found = self._targets.get(webhook_id)
        if found is None:
            hook = self._webhooks.get(webhook_id)
            url = hook.url if hook is not None else ""
            found = (url, self._webhooks.signing_key(webhook_id))
            self._targets[webhook_id] = found
        return found


def _user_agent() -> str:
    try:
        return f"GlucoseStream/{version('glucosestream')}"
    except PackageNotFoundError:
        return "GlucoseStream"
