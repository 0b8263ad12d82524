"""A webhook receiver for tests, the soak and the benchmark: an HTTP server on 127.0.0.1 in a
thread of the calling process that records every POST it receives, and that can be stopped
(connections are then refused) and started again on the same port.

    with WebhookReceiver() as receiver:          # started; receiver.url is http://127.0.0.1:<port>/hook
        ...add a webhook for receiver.url, make alerts fire...
        receiver.wait_for(lambda r: len(r) >= 2, timeout_s=5)
        receiver.stop()                          # down: deliveries are refused and retried
        receiver.start()                         # up again, same port
        receiver.status = 500                    # answer 500 now (or a function of the Receipt)
        by_id = receiver.by_id()                 # webhook-id -> its receipts, in arrival order

Every receipt keeps the request's headers (names lower-cased), its body bytes exactly as sent,
the path, and when it arrived (``time.time()`` and ``time.monotonic()``). A 3xx answer
carries ``Location: /redirected`` (a sender that followed it would show up as a second
receipt). Receipts survive a stop/start. It verifies nothing: tests check signatures
themselves. Standard library only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Receipt", "WebhookReceiver"]


@dataclass(frozen=True, slots=True)
class Receipt:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    received_at: float  # time.time()
    received_monotonic: float  # time.monotonic()
    status: int  # what the receiver answered

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    @property
    def timestamp(self) -> int:
        return int(self.headers.get("webhook-timestamp", "0"))


class WebhookReceiver:
    def __init__(
        self,
        port: int = 0,
        *,
        status: int | Callable[[Receipt], int] = 200,
        delay_s: float = 0.0,
    ) -> None:
        """``port`` 0 picks a free one at the first start and keeps it; ``status`` is the
        answer (or a function of the receipt that returns it); ``delay_s`` waits before it."""
        self.port = port
        self.status = status
        self.delay_s = delay_s
        self._receipts: list[Receipt] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> WebhookReceiver:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="webhook-receiver")
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listening socket: new connections are refused until ``start()``."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def receipts(self) -> list[Receipt]:
        with self._lock:
            return list(self._receipts)

    def by_id(self) -> dict[str, list[Receipt]]:
        found: dict[str, list[Receipt]] = {}
        for receipt in self.receipts:
            found.setdefault(receipt.webhook_id, []).append(receipt)
        return found

    def wait_for(self, done: Callable[[list[Receipt]], bool], timeout_s: float) -> bool:
        """Wait until ``done(receipts)`` holds (checked at each arrival); whether it did."""
        deadline = time.monotonic() + timeout_s
        with self._arrived:
            while not done(list(self._receipts)):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._arrived.wait(left)
        return True

    def _record(self, receipt: Receipt) -> None:
        with self._arrived:
            self._receipts.append(receipt)
            self._arrived.notify_all()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                wall, mono = time.time(), time.monotonic()
                pending = Receipt(self.path, headers, body, wall, mono, 0)
                answer = receiver.status
                status = answer(pending) if callable(answer) else answer
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                receiver._record(Receipt(self.path, headers, body, wall, mono, status))
                self.send_response(status)
                if 300 <= status < 400:  # somewhere a sender that follows redirects would go
                    self.send_header("Location", "/redirected")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet

        return Handler
