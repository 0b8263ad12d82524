"""The probes of the always-on benchmark: small clients that measure, in real time and while the
load runs, what a user of ``serve`` sees (``bench_always_on.py`` starts them).

- ``EntryProbe`` (one per probe patient, staggered): every ``period_s`` it posts one reading
  dated now (whole seconds) with its own uploader token, alternating a low (50 mg/dL: fires
  ``urgent_low`` and ``low``) and a normal value (120: clears them), then GETs
  ``/api/v1/entries.json?count=1`` with the same token until that reading is the newest there.
  It records POST sent -> seen, and each low POST (patient, reading time, when it was sent) for
  matching with the webhook receiver's receipts afterwards (``webhook_latencies``).
- ``DailyProbe``: every ``period_s`` a fresh patient posts one reading, and a poller GETs
  ``/v1/patients/{key}/daily-metrics`` (admin token) every 0.5 s until the day's row exists:
  POST sent -> published daily metrics, with no command run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

POLL_S = 0.05  # between GETs of the entries probe
DAILY_POLL_S = 0.5
LOW_MG_DL, NORMAL_MG_DL = 50, 120


@dataclass
class ProbeSamples:
    """What the probes measured (seconds, ``time.monotonic`` based)."""

    entries_s: list[float] = field(default_factory=list)
    entries_sent_at: list[float] = field(default_factory=list)  # epoch s of each sample's POST
    entries_missed: int = 0  # not seen within the timeout
    lows: list[tuple[str, int, float]] = field(default_factory=list)  # (patient key, epoch s, sent)
    daily_s: list[float] = field(default_factory=list)
    daily_missed: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # non-2xx answers and transport errors
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors[what] += 1


def _entry(epoch_s: int, mg_dl: int) -> bytes:
    return json.dumps(
        [{"type": "sgv", "sgv": mg_dl, "date": epoch_s * 1000, "device": "bench-probe"}]
    ).encode()


def _post(client: httpx.Client, body: bytes, samples: ProbeSamples) -> bool:
    try:
        response = client.post("/api/v1/entries", content=body)
    except httpx.HTTPError as err:
        samples.error(f"POST {type(err).__name__}")
        return False
    if response.status_code != 200:
        samples.error(f"POST {response.status_code}")
        return False
    return True


class EntryProbe(threading.Thread):
    """One probe patient: a reading every ``period_s`` from ``first_at`` (monotonic) on."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        patient_id: str,
        patient_key: str,
        first_at: float,
        period_s: float,
        stop: threading.Event,
        samples: ProbeSamples,
        timeout_s: float = 30.0,
    ) -> None:
        super().__init__(name=f"probe-{patient_id}", daemon=True)
        self.base_url, self.token, self.patient_id = base_url, token, patient_id
        self.patient_key = patient_key
        self.first_at, self.period_s, self.timeout_s = first_at, period_s, timeout_s
        self.stop, self.samples = stop, samples

    def run(self) -> None:
        headers = {"api-secret": _sha1(self.token), "Content-Type": "application/json"}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=60) as client:
            n = k = 0  # the next slot; the readings posted (lows and normals alternate)
            while not self.stop.wait(max(0.0, self.first_at + n * self.period_s - _now())):
                self._probe(client, LOW_MG_DL if k % 2 == 0 else NORMAL_MG_DL)
                k += 1
                n = max(n + 1, int((_now() - self.first_at) // self.period_s) + 1)

    def _probe(self, client: httpx.Client, mg_dl: int) -> None:
        sent_at = time.time()
        epoch_s = int(sent_at)
        sent = _now()
        if not _post(client, _entry(epoch_s, mg_dl), self.samples):
            return
        if mg_dl == LOW_MG_DL:
            with self.samples.lock:
                self.samples.lows.append((self.patient_key, epoch_s, sent))
        while _now() - sent < self.timeout_s:
            try:
                response = client.get("/api/v1/entries.json", params={"count": 1})
            except httpx.HTTPError as err:
                self.samples.error(f"GET {type(err).__name__}")
                continue
            if response.status_code != 200:
                self.samples.error(f"GET {response.status_code}")
            elif any(e.get("date") == epoch_s * 1000 for e in response.json()):
                with self.samples.lock:
                    self.samples.entries_s.append(_now() - sent)
                    self.samples.entries_sent_at.append(sent_at)
                return
            time.sleep(POLL_S)
        with self.samples.lock:
            self.samples.entries_missed += 1


class DailyProbe(threading.Thread):
    """Every ``period_s``, a fresh patient posts a reading; a poller waits for its daily row."""

    def __init__(
        self,
        *,
        base_url: str,
        admin_token: str,
        patients: Sequence[tuple[str, str, str]],  # (patient id, patient key, uploader token)
        period_s: float,
        stop: threading.Event,
        samples: ProbeSamples,
        timeout_s: float = 300.0,
    ) -> None:
        super().__init__(name="probe-daily", daemon=True)
        self.base_url, self.admin_token, self.patients = base_url, admin_token, patients
        self.period_s, self.timeout_s = period_s, timeout_s
        self.stop, self.samples = stop, samples
        self.pollers: list[threading.Thread] = []

    def run(self) -> None:
        for _, key, token in self.patients:
            if self.stop.is_set():
                return
            headers = {"api-secret": _sha1(token), "Content-Type": "application/json"}
            with httpx.Client(base_url=self.base_url, headers=headers, timeout=60) as client:
                sent = _now()
                posted = _post(client, _entry(int(time.time()), NORMAL_MG_DL), self.samples)
            if posted:
                poller = threading.Thread(target=self._poll, args=(key, sent), daemon=True)
                poller.start()
                self.pollers.append(poller)
            self.stop.wait(max(0.0, sent + self.period_s - _now()))

    def join_pollers(self, timeout_s: float) -> None:
        deadline = _now() + timeout_s
        for poller in self.pollers:
            poller.join(max(0.0, deadline - _now()))

    def _poll(self, key: str, sent: float) -> None:
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=60) as client:
            while _now() - sent < self.timeout_s:
                try:
                    response = client.get(f"/v1/patients/{key}/daily-metrics")
                except httpx.HTTPError as err:
                    self.samples.error(f"GET daily {type(err).__name__}")
                else:
                    if response.status_code == 404:  # not published yet: no such patient
                        pass
                    elif response.status_code != 200:
                        self.samples.error(f"GET daily {response.status_code}")
                    elif response.json().get("days"):
                        with self.samples.lock:
                            self.samples.daily_s.append(_now() - sent)
                        return
                time.sleep(DAILY_POLL_S)
        with self.samples.lock:
            self.samples.daily_missed += 1


def webhook_latencies(
    lows: Sequence[tuple[str, int, float]],
    receipts: Sequence[Any],
    patient_of: Mapping[str, str],
) -> tuple[list[float], int]:
    """POST of a low -> arrival of its ``urgent_low`` delivery, and how many lows got none.
    ``lows`` are (patient key, reading time, sent); a receipt is matched by its alert's patient
    (``patient_of``: alert id -> patient key, from the alert store: the body's ``patient`` is
    the external id, which a Nightscout upload may not have given) and the body's ``at``."""
    arrived: dict[tuple[str, int], float] = {}
    for receipt in receipts:
        try:
            body = json.loads(receipt.body)
            at = int(dt.datetime.fromisoformat(body["at"].replace("Z", "+00:00")).timestamp())
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        key = patient_of.get(str(body.get("alert_id")))
        if body.get("kind") == "urgent_low" and key is not None:
            arrived.setdefault((key, at), receipt.received_monotonic)
    out: list[float] = []
    missed = 0
    for key, epoch_s, sent in lows:
        arrival = arrived.get((key, epoch_s))
        if arrival is None:
            missed += 1
        else:
            out.append(arrival - sent)
    return out, missed


def _sha1(token: str) -> str:
    return hashlib.sha1(token.encode(), usedforsecurity=False).hexdigest()


def _now() -> float:
    return time.monotonic()
