"""Offered load for the always-on benchmark: one-reading Nightscout POSTs at a fixed rate.

Many uploaders (each its own token, sent as Nightscout's ``api-secret`` header: the SHA-1 of the
token) post ``POST /api/v1/entries`` with a single ``sgv`` each, round-robin, paced by a token
bucket at ``rate`` requests/s, over a pool of keep-alive HTTP/1.1 connections. It has to cost
well under a core, since on a 2-core box the server needs the other: one process, raw asyncio
streams (uvloop when installed), every request's bytes built before the clock starts, only the
status line and Content-Length read back (no HTTP client library: httpx costs ~0.5-1 ms of CPU a
request).

Time compression: uploader ``u``'s n-th reading is dated ``first_at + 5 min * n`` with
``first_at`` chosen so the last one is before now (ingest quarantines future readings): an
uploader's 60 posts of a one-minute run cover the 5 hours up to now. Values come from the synth
generator, so they look like CGM.

Run as a script it reads a JSON spec (``--spec``: host, port, uploaders with their token and
glucose values) and prints a JSON result, so the benchmark can run it in a process of its own
and read its CPU time apart from the probes':

    .venv/bin/python benchmarks/load_generator.py --spec load.json --rate 1000 --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

STEP_S = 300  # one reading every 5 minutes, as CGMs upload
PATH = "/api/v1/entries"
# uvicorn closes a keep-alive connection idle for 5 s (timeout_keep_alive): at low rates a
# connection idle for longer than this is reopened rather than written into as it closes
IDLE_REOPEN_S = 4.0


@dataclass(frozen=True, slots=True)
class LoadUploader:
    """One uploader: its token and the glucose values (mg/dL) of its successive readings."""

    token: str
    values: tuple[int, ...]


@dataclass
class LoadResult:
    """What the offered load got back. Latency is from the write of a request to the end of
    its answer; ``max_lag_s`` is how far behind the token bucket's schedule a send started
    (a large lag means the pool of connections, not the server, set the pace)."""

    offered_rate: float
    connections: int
    sent: int = 0
    answered: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    cpu_s: float = 0.0
    max_lag_s: float = 0.0
    error_samples: list[str] = field(default_factory=list)  # the first few non-2xx answers
    warmup_statuses: Counter[int] = field(default_factory=Counter)

    def summary(self) -> dict[str, object]:
        lat = sorted(self.latencies_s)
        ok = sum(n for status, n in self.statuses.items() if 200 <= status < 300)
        return {
            "offered_rate": self.offered_rate,
            "connections": self.connections,
            "sent": self.sent,
            "answered": self.answered,
            "answered_2xx": ok,
            "achieved_rate": round(self.answered / self.elapsed_s, 1) if self.elapsed_s else 0.0,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "transport_errors": dict(self.transport_errors),
            "latency_ms": percentiles_ms(lat),
            "elapsed_s": round(self.elapsed_s, 2),
            "generator_cpu_s": round(self.cpu_s, 2),
            "generator_cpu_share": round(self.cpu_s / self.elapsed_s, 3) if self.elapsed_s else 0,
            "max_lag_s": round(self.max_lag_s, 3),
            "error_samples": self.error_samples,
            "warmup_statuses": {str(k): v for k, v in sorted(self.warmup_statuses.items())},
        }


def percentiles_ms(sorted_s: Sequence[float]) -> dict[str, float | None]:
    """p50, p99 and max of sorted seconds, in milliseconds (None when there are none)."""
    if not sorted_s:
        return {"p50": None, "p99": None, "max": None, "n": 0}
    n = len(sorted_s)
    return {
        "p50": round(sorted_s[n // 2] * 1000, 1),
        "p99": round(sorted_s[min(n - 1, int(n * 0.99))] * 1000, 1),
        "max": round(sorted_s[-1] * 1000, 1),
        "n": n,
    }


def api_secret(token: str) -> str:
    """Nightscout's ``api-secret`` header value: the SHA-1 hex of the token."""
    return hashlib.sha1(token.encode(), usedforsecurity=False).hexdigest()


def entry_request(host: str, secret_hex: str, date_ms: int, sgv: int) -> bytes:
    """The whole bytes of one keep-alive POST of a single sgv entry."""
    body = b'[{"type":"sgv","sgv":%d,"date":%d,"device":"bench-load"}]' % (sgv, date_ms)
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\napi-secret: {secret_hex}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def build_requests(
    host: str, uploaders: Sequence[LoadUploader], total: int, *, last_at: dt.datetime
) -> list[bytes]:
    """``total`` requests, round-robin over the uploaders; each uploader's readings 5 minutes
    apart, the last of them at or before ``last_at``."""
    rounds = -(-total // len(uploaders))
    first_ms = int(last_at.timestamp()) * 1000 - (rounds - 1) * STEP_S * 1000
    secrets = [api_secret(u.token) for u in uploaders]
    out: list[bytes] = []
    for n in range(rounds):
        for u, uploader in enumerate(uploaders):
            if len(out) == total:
                return out
            sgv = uploader.values[n % len(uploader.values)]
            out.append(entry_request(host, secrets[u], first_ms + n * STEP_S * 1000, sgv))
    return out


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        end = lower.find(b"\r\n", at + 2)
        length = int(lower[at + 17 : end])
    body = await reader.readexactly(length) if length else b""
    return status, body


class _Pacer:
    """The token bucket: request i may start at ``start + i / rate``."""

    def __init__(self, requests: Sequence[bytes], rate: float, deadline_s: float) -> None:
        self.requests, self.rate = requests, rate
        self.start = time.perf_counter()
        self.deadline = self.start + deadline_s
        self.next = 0

    def take(self) -> tuple[int, float] | None:
        """The next request and when it is due; None once all are sent or the time is up
        (by the schedule or the clock: a server that falls behind does not stretch the run)."""
        if self.next >= len(self.requests):
            return None
        due = self.start + self.next / self.rate
        if due >= self.deadline or time.perf_counter() >= self.deadline:
            return None
        self.next += 1
        return self.next - 1, due


async def _connection(host: str, port: int, pacer: _Pacer, result: LoadResult) -> None:
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    last_used = 0.0
    while (slot := pacer.take()) is not None:
        index, due = slot
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        else:
            result.max_lag_s = max(result.max_lag_s, -wait)
        if writer is not None and time.perf_counter() - last_used > IDLE_REOPEN_S:
            writer.close()  # the server may be closing it right now: don't race it
            reader = writer = None
        try:
            if writer is None or reader is None:
                reader, writer = await asyncio.open_connection(host, port)
            sent = time.perf_counter()
            writer.write(pacer.requests[index])
            result.sent += 1
            status, body = await _read_answer(reader)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as err:
            result.transport_errors[type(err).__name__] += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            continue
        last_used = time.perf_counter()
        result.latencies_s.append(last_used - sent)
        result.answered += 1
        result.statuses[status] += 1
        if not 200 <= status < 300 and len(result.error_samples) < 10:
            result.error_samples.append(f"{status}: {body[:300].decode(errors='replace')}")
    if writer is not None:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def offer_load(
    host: str,
    port: int,
    requests: Sequence[bytes],
    *,
    rate: float,
    duration_s: float,
    connections: int = 200,
    warmup: Sequence[bytes] = (),
    on_start: Callable[[], None] = lambda: None,
) -> LoadResult:
    """Send ``requests`` at ``rate``/s for at most ``duration_s`` over ``connections``.
    ``warmup`` requests go first, as fast as the connections allow, and are not counted: an
    uploader's first request costs more (its patient is registered, its token's first use
    recorded), which a steady state of known uploaders does not pay."""
    if warmup:
        ignored = LoadResult(offered_rate=0, connections=connections)
        pacer = _Pacer(warmup, float("inf"), 600.0)
        await asyncio.gather(*(_connection(host, port, pacer, ignored) for _ in range(connections)))
    result = LoadResult(offered_rate=rate, connections=connections)
    if warmup:
        result.warmup_statuses = ignored.statuses
        result.error_samples = ignored.error_samples
    on_start()
    cpu = time.process_time()
    pacer = _Pacer(requests, rate, duration_s)
    await asyncio.gather(*(_connection(host, port, pacer, result) for _ in range(connections)))
    result.elapsed_s = time.perf_counter() - pacer.start
    result.cpu_s = time.process_time() - cpu
    return result


def run_load(
    host: str,
    port: int,
    requests: Sequence[bytes],
    *,
    rate: float,
    duration_s: float,
    connections: int = 200,
    warmup: Sequence[bytes] = (),
    on_start: Callable[[], None] = lambda: None,
) -> LoadResult:
    """``offer_load`` on a fresh event loop (uvloop when it is installed)."""
    coroutine = offer_load(
        host,
        port,
        requests,
        rate=rate,
        duration_s=duration_s,
        connections=connections,
        warmup=warmup,
        on_start=on_start,
    )
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def _say_started() -> None:
    """Tell the parent process (reading stdout) that the measured load starts now."""
    sys.stdout.write("started\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, required=True, help="JSON: host, port, uploaders")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--out", type=Path, help="write the JSON result here too")
    args = parser.parse_args()
    spec = json.loads(args.spec.read_text())
    uploaders = [LoadUploader(u["token"], tuple(u["values"])) for u in spec["uploaders"]]
    total = int(args.rate * args.duration)
    last_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    requests = build_requests(spec["host"], uploaders, total + len(uploaders), last_at=last_at)
    warmup, requests = requests[: len(uploaders)], requests[len(uploaders) :]
    result = run_load(
        spec["host"],
        int(spec["port"]),
        requests,
        rate=args.rate,
        duration_s=args.duration,
        connections=args.connections,
        warmup=warmup,
        on_start=_say_started,
    )
    summary = result.summary()
    if args.out is not None:
        args.out.write_text(json.dumps(summary) + "\n")
    sys.stdout.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
