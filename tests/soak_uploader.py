"""Uploaders and a run killer for the soak test (test support).

An uploader posts batches for its own patient to a real server, as a device app would: new
readings (each at a time it never sent before), now and then readings it sent before, readings
no lake should take (an infinite time, a zone that does not exist, a time after now or before
1990, a glucose that is not a number), and now and then the very same body again (a retry).
It records how every reading was answered. With ``retry=True`` it rides out a server that is
killed and started again, as a device app does: a body that got no answer (or a 5xx) is posted
again until it is answered, each failure recorded with its time; an answer "already ingested"
then means the killed server had made it durable. ``Cycler`` posts fresh readings (dated now)
alternating normal and low values, so alerts fire and clear. ``RunKiller`` starts ``glucosestream
run`` again and again and SIGKILLs it at a random point (a quarter of the runs are let finish).
``start_serve``
starts ``glucosestream serve`` on a given port (so a killed server can be started again where
its clients look for it) and waits until it answers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

# Readings ingest must quarantine alone, each with the field values that make it bad.
BAD_READINGS: tuple[dict[str, Any], ...] = (
    {"time": "inf"},
    {"time": "Infinity"},
    {"time": "2199-01-01T00:00:00Z"},
    {"time": "1961-01-01T00:00:00Z"},
    {"tz": "Mars/Olympus_Mons"},  # with a time that carries an offset (finding 1)
    {"tz": "Europe/Londn"},
    {"glucose_mg_dl": "NaN"},
    {"glucose_mg_dl": "inf"},
    {"glucose_mg_dl": None},
    {"time": "yesterday"},
)
# Nightscout entries ingest must quarantine alone (NaN is JSON's non-standard literal).
BAD_ENTRIES: tuple[str, ...] = (
    '{"type": "sgv", "sgv": NaN, "date": %d}',
    '{"type": "sgv", "sgv": Infinity, "date": %d}',
    '{"type": "sgv", "date": %d}',
    '{"type": "sgv", "sgv": 120, "dateString": "inf", "x": %d}',
    '{"type": "sgv", "sgv": 120, "date": 7258118400000, "x": %d}',
)
STEP = dt.timedelta(minutes=5)


@dataclass
class Tally:
    """What one uploader sent and how it was answered."""

    patient_id: str
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    accepted: dict[int, float] = field(default_factory=dict)  # epoch s -> mg/dL, answered accepted
    quarantined: int = 0
    repeats: int = 0  # bodies posted again, answered as already ingested
    transport_errors: list[str] = field(default_factory=list)
    failures_at: list[tuple[float, str]] = field(default_factory=list)  # retried (monotonic)
    wrong_answers: list[str] = field(default_factory=list)


class Uploader(threading.Thread):
    """Posts to ``POST /v1/readings`` (``kind="readings"``) or ``POST /api/v1/entries``."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        patient_id: str,
        kind: str,
        start: dt.datetime,
        end: dt.datetime,
        seed: int,
        deadline: float,
        max_requests: int,
        api_secret: bool = False,
        pause_s: float = 0.0,
        retry: bool = False,
    ) -> None:
        super().__init__(name=f"uploader-{patient_id}", daemon=True)
        self.pause_s, self.retry = pause_s, retry  # between bodies; post again until answered
        self.base_url, self.token, self.kind = base_url, token, kind
        self.api_secret = api_secret  # authenticate as Nightscout uploaders do: SHA-1 of the token
        self.tally = Tally(patient_id)
        self.rng = random.Random(seed)
        self.next_at = start
        self.last_at = end - 40 * STEP  # no reading after ``end``: the lake would refuse it
        self.deadline, self.max_requests = deadline, max_requests

    def run(self) -> None:
        headers = {"Content-Type": "application/json"}
        if self.api_secret:
            headers["api-secret"] = hashlib.sha1(self.token.encode()).hexdigest()
        else:
            headers["Authorization"] = f"Bearer {self.token}"
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=60) as client:
            while (
                time.monotonic() < self.deadline
                and self.tally.requests < self.max_requests
                and self.next_at < self.last_at
            ):
                body, good, bad = self._body()
                self._post(client, body, good, bad)
                if self.rng.random() < 0.1:  # a retry of the same body: nothing new
                    self._post(client, body, good, bad, repeat=True)
                if self.pause_s:
                    time.sleep(self.pause_s)

    def _new(self) -> tuple[int, float]:
        at, self.next_at = self.next_at, self.next_at + STEP
        return int(at.timestamp()), float(self.rng.randint(45, 350))

    def _body(self) -> tuple[bytes, dict[int, float], int]:
        good = dict(self._new() for _ in range(self.rng.randint(3, 30)))
        if self.tally.accepted and self.rng.random() < 0.2:  # some sent before
            again = self.rng.sample(sorted(self.tally.accepted), min(3, len(self.tally.accepted)))
            good.update({at: self.tally.accepted[at] for at in again})
        bad = self.rng.randint(1, 3) if self.rng.random() < 0.3 else 0
        if self.kind == "readings":
            return self._readings(good, bad), good, bad
        return self._entries(good, bad), good, bad

    def _readings(self, good: dict[int, float], bad: int) -> bytes:
        pid = self.tally.patient_id
        items: list[dict[str, Any]] = [
            {"patient_id": pid, "time": _iso(at), "glucose_mg_dl": mg_dl, "tz": "Europe/Berlin"}
            for at, mg_dl in good.items()
        ]
        for _ in range(bad):
            at, mg_dl = self._new()  # a time of its own, never accepted
            reading = {"patient_id": pid, "time": _iso(at, "+02:00"), "glucose_mg_dl": mg_dl}
            reading.update(self.rng.choice(BAD_READINGS))
            items.insert(self.rng.randint(0, len(items)), reading)
        return json.dumps({"readings": items}).encode()

    def _entries(self, good: dict[int, float], bad: int) -> bytes:
        items = [
            json.dumps({"type": "sgv", "sgv": int(mg_dl), "date": at * 1000, "device": "soak"})
            for at, mg_dl in good.items()
        ]
        for _ in range(bad):
            at, _ = self._new()
            items.insert(self.rng.randint(0, len(items)), self.rng.choice(BAD_ENTRIES) % at)
        return ("[" + ",".join(items) + "]").encode()

    def _post(
        self,
        client: httpx.Client,
        body: bytes,
        good: dict[int, float],
        bad: int,
        *,
        repeat: bool = False,
    ) -> None:
        self.tally.requests += 1
        answered = self._send(client, body)
        if answered is None:
            return
        response, retried = answered
        self.tally.statuses[response.status_code] += 1
        if response.status_code != 200:
            self.tally.wrong_answers.append(f"{response.status_code}: {response.text[:300]}")
            return
        counts = _counts(response, self.kind)
        if retried and not repeat and counts["repeat"] is True:
            self.tally.quarantined += bad  # the killed server had made the body durable
            self.tally.accepted.update(good)
            return
        if repeat:
            self.tally.repeats += 1
            if counts["repeat"] is not True:
                self.tally.wrong_answers.append(f"a retried body was not a repeat: {counts}")
            return
        expected = (len(good) + bad, bad)
        if (counts["received"], counts["quarantined"]) != expected:
            self.tally.wrong_answers.append(f"posted {expected} (received, bad), got {counts}")
            return
        if counts["accepted"] + counts["duplicates"] != len(good):
            self.tally.wrong_answers.append(f"{len(good)} good readings, answered {counts}")
            return
        self.tally.quarantined += bad
        self.tally.accepted.update(good)

    def _send(self, client: httpx.Client, body: bytes) -> tuple[httpx.Response, bool] | None:
        """The answer to a body and whether it was posted more than once (``retry``: after no
        answer or a 5xx, each recorded in ``failures_at``); None when none came."""
        path = "/v1/readings" if self.kind == "readings" else "/api/v1/entries"
        retried = False
        while True:
            try:
                response = client.post(path, content=body)
            except httpx.HTTPError as err:
                failure = f"{type(err).__name__}: {err}"
            else:
                if not (self.retry and response.status_code >= 500):
                    return response, retried
                failure = f"{response.status_code}: {response.text[:300]}"
            if not self.retry or time.monotonic() > self.deadline + 120:
                self.tally.transport_errors.append(failure)
                return None
            self.tally.failures_at.append((time.monotonic(), failure))
            retried = True
            time.sleep(0.5)


class Cycler(Uploader):
    """Nightscout entries of one fresh reading each (dated now, whole seconds, never twice the
    same second) cycling through ``pattern`` (mg/dL), so low alerts fire and clear again and
    again. Pass ``kind="entries"`` and a ``pause_s`` of about a second."""

    pattern: tuple[int, ...] = (120, 120, 50, 50)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sent = 0
        self._last_s = 0

    def _body(self) -> tuple[bytes, dict[int, float], int]:
        at = max(int(time.time()), self._last_s + 1)
        self._last_s = at
        good = {at: float(self.pattern[self._sent % len(self.pattern)])}
        self._sent += 1
        return self._entries(good, 0), good, 0


def _iso(epoch_s: int, offset: str = "Z") -> str:
    at = dt.datetime.fromtimestamp(epoch_s, dt.UTC)
    if offset != "Z":
        hours, minutes = (int(p) for p in offset[1:].split(":"))
        at = at.astimezone(dt.timezone(dt.timedelta(hours=hours, minutes=minutes)))
        return at.isoformat()
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _counts(response: httpx.Response, kind: str) -> dict[str, Any]:
    if kind == "readings":
        payload = response.json()
        return {
            "received": payload["received"],
            "accepted": payload["accepted"],
            "duplicates": payload["duplicates"],
            "quarantined": payload["quarantined"],
            "repeat": payload.get("already_ingested_as") is not None,
        }
    names = ("received", "accepted", "duplicates", "quarantined")
    counts: dict[str, Any] = {n: int(response.headers.get(f"x-ingest-{n}", -1)) for n in names}
    counts["repeat"] = counts["accepted"] == 0 and counts["received"] > 0
    return counts


class RunKiller(threading.Thread):
    """Starts ``glucosestream run`` over and over; SIGKILLs each at a random point unless it
    has finished by then. Bounded by ``max_runs``; stops when ``stop`` is set."""

    def __init__(self, *, lake: Path, env: dict[str, str], seed: int, max_runs: int) -> None:
        super().__init__(name="run-killer", daemon=True)
        self.lake, self.env = lake, env
        self.rng = random.Random(seed)
        self.max_runs = max_runs
        self.stop = threading.Event()
        self.started = self.kills = self.finished = 0
        self.failed: list[str] = []

    def run(self) -> None:
        command = [sys.executable, "-m", "glucosestream", "run", "--lake", str(self.lake)]
        while not self.stop.is_set() and self.started < self.max_runs:
            process = subprocess.Popen(
                command, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            self.started += 1
            if self.rng.random() < 0.25:  # now and then a run is let finish, so kills also hit
                self._wait(process)  # runs that follow a publish
            elif self.stop.wait(self.rng.uniform(0.3, 6.0)) or process.poll() is None:
                process.send_signal(signal.SIGKILL)
            _, stderr = process.communicate(timeout=120)
            if process.returncode == -signal.SIGKILL:
                self.kills += 1
            elif process.returncode == 0:
                self.finished += 1
            else:
                self.failed.append(f"exit {process.returncode}: {stderr.decode()[-500:]}")

    def _wait(self, process: subprocess.Popen[bytes]) -> None:
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_serve(
    lake: Path,
    env: dict[str, str],
    log: Path,
    *,
    port: int,
    args: Sequence[str] = (),
    timeout_s: float = 60.0,
) -> subprocess.Popen[bytes]:
    """``glucosestream serve --lake LAKE --port PORT ARGS`` with its output appended to ``log``,
    once ``/healthz`` answers 200; AssertionError with the log when it does not within
    ``timeout_s`` (or exits). The port may still be in TIME_WAIT from a killed server: serve
    binds with SO_REUSEADDR."""
    command = [sys.executable, "-m", "glucosestream", "serve", "--port", str(port)]
    with log.open("ab") as out:
        server = subprocess.Popen(
            [*command, "--lake", str(lake), *args], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            server.wait(timeout=30)
            raise AssertionError(f"serve did not start: {log.read_text()[-3000:]}")
        time.sleep(0.2)
