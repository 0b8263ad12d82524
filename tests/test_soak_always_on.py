"""A bounded soak of the always-on serve: the pipeline on (a run at most every 2 s), short
webhook backoffs, uploaders posting concurrently (old readings, bad ones, repeats: as in
``test_soak``) and cyclers posting fresh readings that swing between 120 and 50 mg/dL, so alerts
fire and clear again and again, all delivered to a webhook receiver in this process.

Timeline (``GLUCOSESTREAM_SOAK_S``, default 90 s): the receiver is up for the first third, down
(connection refused: deliveries are retried) for the middle third, and up again for the last;
in the middle of its down time ``serve`` is SIGKILLed and started again on the same lake and
port (the uploaders post their unanswered bodies again). Then the outbox settles, serve stops,
one clean run publishes what is left, and:

- each cycler's ``urgent_low`` fired once per run of low readings it was answered accepted for
  (none again after the restart), and old readings fired nothing but ``stale_data``;
- every fire, escalation and clear in ``alert_events`` has exactly one outbox row (one webhook),
  each delivered, none dead;
- the receiver got each ``webhook-id`` exactly once (strict: the kill came while no delivery
  could succeed), and exactly the outbox's delivery ids;
- every reading answered "accepted" is published exactly once, nothing else is published;
- no uploader saw a 5xx or a lost connection except in the kill/restart gap.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from glucosestream.access import create_token
from glucosestream.config import IngestSettings, LakeSettings, Settings
from glucosestream.ingest.identity import patient_key
from glucosestream.lake import alert_events, alerts, metadata_engine, webhook_outbox
from glucosestream.pipeline import run_pipeline

from .conftest import SECRET, VERIFICATION_COUNTS
from .soak_uploader import Cycler, Tally, Uploader, free_port, start_serve
from .test_soak import _published
from .webhook_receiver import Receipt, WebhookReceiver

pytestmark = pytest.mark.soak

SOAK_S = float(os.environ.get("GLUCOSESTREAM_SOAK_S", "90"))
READINGS_PATIENTS = ("AO-1", "AO-2", "AO-3")
ENTRIES_PATIENTS = ("AO-NS-1", "AO-NS-2")
CYCLE_PATIENTS = ("AO-CYCLE-1", "AO-CYCLE-2", "AO-CYCLE-3")
PATIENTS = READINGS_PATIENTS + ENTRIES_PATIENTS + CYCLE_PATIENTS
ALWAYS_ON_ENV = {  # runs at most every 2 s; retries every 0.5-2 s, never dead within the soak
    "GLUCOSESTREAM_PIPELINE__MIN_INTERVAL": "2",
    "GLUCOSESTREAM_ALERTS__BACKOFF_FIRST_S": "0.5",
    "GLUCOSESTREAM_ALERTS__BACKOFF_MAX_S": "2",
    "GLUCOSESTREAM_ALERTS__MAX_ATTEMPTS": "1000",
    "GLUCOSESTREAM_ALERTS__TIMEOUT_S": "2",
    "GLUCOSESTREAM_ALERTS__CLAIM_S": "5",
}
DELIVERED_EVENTS = ("fired", "escalated", "cleared")


def _uploaders(base: str, tokens: dict[str, str], now: dt.datetime) -> list[Uploader]:
    deadline = time.monotonic() + SOAK_S
    common: dict[str, Any] = {
        "base_url": base,
        "deadline": deadline,
        "max_requests": 1_000,
        "retry": True,
    }
    old = [
        Uploader(
            **common,
            token=tokens[p],
            patient_id=p,
            kind="entries" if p in ENTRIES_PATIENTS else "readings",
            start=now - dt.timedelta(days=60),
            end=now,
            seed=i,
            api_secret=p == ENTRIES_PATIENTS[-1],
            pause_s=0.3,
        )
        for i, p in enumerate(READINGS_PATIENTS + ENTRIES_PATIENTS)
    ]
    fresh = [
        Cycler(
            **common,
            token=tokens[p],
            patient_id=p,
            kind="entries",
            start=now - dt.timedelta(days=1),
            end=now + dt.timedelta(days=1),
            seed=100 + i,
            api_secret=True,
            pause_s=1.0,
        )
        for i, p in enumerate(CYCLE_PATIENTS)
    ]
    return old + fresh


def _add_webhook(lake: Path, env: dict[str, str], url: str) -> str:
    command = [sys.executable, "-m", "glucosestream", "alerts", "webhook", "add", url]
    out = subprocess.run(
        [*command, "--lake", str(lake), "--json"], env=env, check=True, capture_output=True
    )
    webhook_id: str = json.loads(out.stdout)["webhook_id"]
    return webhook_id


def _wait_settled(engine: sa.Engine, timeout_s: float) -> int:
    """Wait until no outbox row is pending or being delivered; how many still are."""
    unsettled = sa.select(sa.func.count()).where(
        webhook_outbox.c.state.in_(("pending", "delivering"))
    )
    deadline = time.monotonic() + timeout_s
    while True:
        with engine.connect() as con:
            left = int(con.scalar(unsettled) or 0)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def _low_runs(values: list[float]) -> int:
    """How many runs of consecutive values <= 55 mg/dL (urgent low episodes) there are."""
    return sum(v <= 55 and (i == 0 or values[i - 1] > 55) for i, v in enumerate(values))


class _Timeline:
    """The receiver down for the middle third; serve SIGKILLed and restarted halfway."""

    def __init__(
        self, receiver: WebhookReceiver, restart: Callable[[], subprocess.Popen[bytes]]
    ) -> None:
        self.receiver, self.restart = receiver, restart
        self.killed_at = self.restarted_at = 0.0  # monotonic
        self.killed_wall: dt.datetime | None = None

    def play(self, started: float, serve: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        time.sleep(max(0.0, started + SOAK_S / 3 - time.monotonic()))
        self.receiver.stop()
        time.sleep(max(0.0, started + SOAK_S / 2 - time.monotonic()))
        self.killed_at, self.killed_wall = time.monotonic(), dt.datetime.now(dt.UTC)
        serve.send_signal(signal.SIGKILL)
        assert serve.wait(timeout=30) == -signal.SIGKILL
        serve = self.restart()
        self.restarted_at = time.monotonic()
        time.sleep(max(0.0, started + 2 * SOAK_S / 3 - time.monotonic()))
        self.receiver.start()
        return serve


@dataclass
class _Soaked:
    """What the soak did and what the lake recorded."""

    settings: Settings
    webhook_id: str
    tallies: list[Tally]
    timeline: _Timeline
    receipts: dict[str, list[Receipt]]
    events: list[Any]  # alert_events: (alert_id, event) of fires, escalations, clears
    fired: list[Any]  # alerts: (patient_key, kind)
    outbox: list[Any]


def test_alerts_delivered_once_and_readings_published_once_across_a_serve_kill(
    tmp_path: Path,
) -> None:
    soaked = _soak(tmp_path)
    tallies, outbox, receipts = soaked.tallies, soaked.outbox, soaked.receipts
    statuses = sum((t.statuses for t in tallies), Counter())
    counts = {
        "always-on soak requests": sum(t.requests for t in tallies),
        "always-on soak readings answered accepted": sum(len(t.accepted) for t in tallies),
        "always-on soak alert changes delivered": len(soaked.events),
        "always-on soak webhook receipts": sum(len(r) for r in receipts.values()),
        "always-on soak posts retried over the kill": sum(len(t.failures_at) for t in tallies),
        "always-on soak deliveries retried": sum(o.attempts > 1 for o in outbox),
    }
    VERIFICATION_COUNTS.update(counts)
    print(f"\nalways-on soak: {counts} statuses={dict(statuses)}")  # noqa: T201
    _check_alerts(soaked)
    _check_deliveries(soaked)
    _check_readings(soaked)


def _soak(tmp_path: Path) -> _Soaked:
    lake = tmp_path / "lake"
    settings = Settings(
        lake=LakeSettings(root=str(lake)), ingest=IngestSettings(pseudonym_secret=SECRET)
    )
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    tokens = {
        p: create_token(
            settings.lake, "uploader", label=f"soak {p}", now=now, patient_keys=[_key(p)]
        )
        for p in PATIENTS
    }
    env = {**os.environ, "GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": SECRET, **ALWAYS_ON_ENV}
    receiver = WebhookReceiver().start()
    webhook_id = _add_webhook(lake, env, receiver.url)
    port, log = free_port(), tmp_path / "serve.log"
    serve = start_serve(lake, env, log, port=port)
    timeline = _Timeline(receiver, lambda: start_serve(lake, env, log, port=port))
    uploaders = _uploaders(f"http://127.0.0.1:{port}", tokens, now)
    engine = metadata_engine(settings.lake)
    try:
        started = time.monotonic()
        for uploader in uploaders:
            uploader.start()
        serve = timeline.play(started, serve)
        for uploader in uploaders:
            uploader.join(timeout=SOAK_S + 180)
            assert not uploader.is_alive(), f"{uploader.name} did not finish"
        unsettled = _wait_settled(engine, timeout_s=60)
    finally:
        serve.terminate()
        serve.wait(timeout=60)
        receiver.stop()
    assert unsettled == 0, f"{unsettled} deliveries still pending: {log.read_text()[-2000:]}"
    report = run_pipeline(settings)  # whatever the last scheduled run left
    assert report.status in ("published", "noop"), report
    events, fired, outbox = _recorded(engine)
    tallies = [u.tally for u in uploaders]
    return _Soaked(settings, webhook_id, tallies, timeline, receiver.by_id(), events, fired, outbox)


def _recorded(engine: sa.Engine) -> tuple[list[Any], list[Any], list[Any]]:
    delivered = alert_events.c.event.in_(DELIVERED_EVENTS)
    columns = ("delivery_id", "webhook_id", "alert_id", "event", "state", "attempts", "created_at")
    with engine.connect() as con:
        events = con.execute(
            sa.select(alert_events.c.alert_id, alert_events.c.event).where(delivered)
        ).all()
        fired = con.execute(sa.select(alerts.c.patient_key, alerts.c.kind)).all()
        outbox = con.execute(sa.select(*(webhook_outbox.c[c] for c in columns))).all()
    return list(events), list(fired), list(outbox)


def _check_alerts(soaked: _Soaked) -> None:
    """Once per episode of the readings accepted, across the kill; none from old readings."""
    keys = {_key(p): p for p in PATIENTS}
    kinds = Counter((keys[a.patient_key], a.kind) for a in soaked.fired)
    for tally in (t for t in soaked.tallies if t.patient_id in CYCLE_PATIENTS):
        lows = _low_runs([mg for _, mg in sorted(tally.accepted.items())])
        assert kinds[(tally.patient_id, "urgent_low")] == lows, (tally.patient_id, kinds)
    old = {p for p, kind in kinds if p not in CYCLE_PATIENTS and kind != "stale_data"}
    assert not old, f"old readings fired alerts: {kinds}"


def _check_deliveries(soaked: _Soaked) -> None:
    """Each change one outbox row, delivered, some across the kill; each received once."""
    events, outbox, receipts = soaked.events, soaked.outbox, soaked.receipts
    assert Counter(e.event for e in events)["fired"] >= len(CYCLE_PATIENTS), "too few alerts"
    assert Counter((e.alert_id, e.event) for e in events) == Counter(
        (o.alert_id, o.event) for o in outbox
    )
    assert {o.webhook_id for o in outbox} == {soaked.webhook_id}
    assert Counter(o.state for o in outbox) == {"delivered": len(outbox)}
    assert soaked.timeline.killed_wall is not None
    killed = soaked.timeline.killed_wall.replace(tzinfo=None)  # SQLite gives naive UTC back
    across = [o for o in outbox if o.attempts > 1 and o.created_at.replace(tzinfo=None) < killed]
    assert across, "no delivery was pending across the kill: the soak did not test that"
    twice = {i: len(r) for i, r in receipts.items() if len(r) != 1}
    assert not twice, f"webhook-ids received more than once: {twice}"
    assert set(receipts) == {o.delivery_id for o in outbox}


def _check_readings(soaked: _Soaked) -> None:
    """As test_soak's reconciliation; failures only in the kill/restart gap."""
    tallies, timeline = soaked.tallies, soaked.timeline
    statuses = sum((t.statuses for t in tallies), Counter())
    assert not [e for t in tallies for e in t.transport_errors]
    assert not [e for t in tallies for e in t.wrong_answers]
    assert not any(status >= 500 for status in statuses), statuses
    gap = (timeline.killed_at - 1.0, timeline.restarted_at + 1.0)
    outside = [f for t in tallies for f in t.failures_at if not gap[0] <= f[0] <= gap[1]]
    assert not outside, f"failures outside the kill/restart gap: {outside[:3]}"
    accepted = {(t.patient_id, at): mg for t in tallies for at, mg in t.accepted.items()}
    published = _published(soaked.settings, PATIENTS)
    assert accepted
    twice = {k: v for k, v in published.items() if len(v) > 1}
    assert not twice, f"{len(twice)} readings published more than once"
    assert not accepted.keys() - published.keys(), "accepted readings not published"
    assert not published.keys() - accepted.keys(), "published readings never answered accepted"
    changed = [k for k, mg_dl in accepted.items() if published[k] != [mg_dl]]
    assert not changed, f"{len(changed)} readings published with another glucose value"


def _key(patient_id: str) -> str:
    return patient_key(SECRET.encode(), patient_id)
