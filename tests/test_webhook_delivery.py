"""Webhook delivery: the worker's retries with backoff (500, timeout, refused), dead letters,
410 Gone, a clear after its fire, claims taken over after a killed serve, two workers that never
send one row twice (SQLite; PostgreSQL in the slow tier), claims only when due, and real HTTP to
the test receiver."""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time

import pytest

from glucosestream.alerts.delivery import DeliveryWorker, Response, post
from glucosestream.alerts.outbox import enqueue, open_outbox
from glucosestream.alerts.store import open_alert_store
from glucosestream.alerts.webhooks import open_webhook_store
from glucosestream.config import IngestSettings, LakeSettings, Settings
from glucosestream.lake import metadata_engine, webhook_outbox

from .conftest import SECRET
from .pg_database import URL_FILE, throwaway_database
from .test_webhooks import T0, change, outbox_rows, verify_standard_webhook, with_patients
from .webhook_receiver import WebhookReceiver


# delivery ---------------------------------------------------------------------------------------
class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += dt.timedelta(seconds=seconds)


class FakeReceiver:
    """A Sender that records each attempt and answers from a script (a status, or an
    exception to raise)."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.sent = []

    def __call__(self, url, body, headers, timeout_s):
        self.sent.append((url, body, dict(headers)))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return Response(answer)


def delivery_settings(settings, **alerts):
    values = {"max_attempts": 4, "backoff_first_s": 10.0, "backoff_max_s": 25.0} | alerts
    return settings.override("alerts", **values)


def one_webhook(settings, clock, changes=None):
    with_patients(settings, "pk1")
    hook, secret = open_webhook_store(settings.lake).add("https://r.example/h", at=T0)
    with metadata_engine(settings.lake).begin() as con:
        enqueue(con, changes or [change()], clock=clock)
    return hook, secret


@pytest.mark.parametrize(
    "failure",
    [Response(500), TimeoutError("timed out"), ConnectionRefusedError(111, "refused")],
    ids=["500", "timeout", "refused"],
)
def test_failures_are_retried_with_backoff_then_dead(settings, failure):
    settings = delivery_settings(settings)
    clock = Clock()
    _hook, secret = one_webhook(settings, clock)
    answer = failure.status if isinstance(failure, Response) else failure
    receiver = FakeReceiver(answer)
    worker = DeliveryWorker(settings, clock=clock, send=receiver, rng=random.Random(1))
    waits = []
    for attempt in range(1, 5):
        assert worker.deliver_due() == 1
        (row,) = outbox_rows(settings)
        assert row.attempts == attempt
        if attempt == 4:
            break
        assert row.state == "pending"
        wait = (_utc(row.next_attempt_at) - clock.now).total_seconds()
        waits.append(wait)
        assert worker.deliver_due() == 0  # not due yet
        clock.advance(wait - 0.5)
        assert worker.deliver_due() == 0
        clock.advance(1.0)
    assert 8 <= waits[0] <= 12  # 10 s ± 20 %
    assert 16 <= waits[1] <= 24  # doubled
    assert 20 <= waits[2] <= 30  # capped at 25 s (± 20 %)
    assert row.state == "dead"
    assert row.last_error
    assert (row.last_status == 500) == isinstance(failure, Response)
    clock.advance(3600)
    assert worker.deliver_due() == 0  # a dead letter is never tried again
    # every attempt: the same webhook-id and byte-identical body, a new timestamp, valid signature
    assert len(receiver.sent) == 4
    assert {body for _, body, _ in receiver.sent} == {row.body}
    assert {h["webhook-id"] for _, _, h in receiver.sent} == {row.delivery_id}
    stamps = [int(h["webhook-timestamp"]) for _, _, h in receiver.sent]
    assert stamps == sorted(set(stamps))
    for _, body, headers in receiver.sent:
        assert verify_standard_webhook(secret, headers, body, now=int(headers["webhook-timestamp"]))
        assert headers["Content-Type"] == "application/json"
        assert headers["User-Agent"].startswith("GlucoseStream")


def test_a_2xx_settles_the_row_at_once(settings):
    clock = Clock()
    one_webhook(settings, clock)
    receiver = FakeReceiver(500, 204)
    worker = DeliveryWorker(delivery_settings(settings), clock=clock, send=receiver)
    worker.deliver_due()
    clock.advance(60)
    assert worker.deliver_due() == 1
    (row,) = outbox_rows(settings)
    assert (row.state, row.attempts, row.last_status) == ("delivered", 2, 204)
    assert _utc(row.delivered_at) == clock.now
    clock.advance(3600)
    assert worker.deliver_due() == 0


def test_a_retry_after_longer_than_the_backoff_is_respected(settings):
    clock = Clock()
    one_webhook(settings, clock)

    def busy(url, body, headers, timeout_s):
        return Response(429, retry_after_s=20.0)

    worker = DeliveryWorker(delivery_settings(settings), clock=clock, send=busy)
    worker.deliver_due()
    (row,) = outbox_rows(settings)
    assert (_utc(row.next_attempt_at) - clock.now).total_seconds() == 20.0


def test_410_gone_disables_the_webhook_and_cancels_its_deliveries(settings):
    clock = Clock()
    changes = [change(), change(alert_id="al_2")]
    hook, _ = one_webhook(settings, clock, changes)
    worker = DeliveryWorker(delivery_settings(settings), clock=clock, send=FakeReceiver(410))
    assert worker.deliver_due() == 1
    assert {r.state for r in outbox_rows(settings)} == {"cancelled"}
    assert not open_webhook_store(settings.lake).get(hook.webhook_id).enabled
    with metadata_engine(settings.lake).begin() as con:  # a later alert: not for a gone webhook
        assert enqueue(con, [change(alert_id="al_3")], clock=clock) == 0


def test_a_clear_waits_until_its_fire_is_settled(settings):
    clock = Clock()
    one_webhook(settings, clock, [change("fired", 0), change("cleared", 2)])
    receiver = FakeReceiver(500, 200)
    worker = DeliveryWorker(delivery_settings(settings), clock=clock, send=receiver)
    assert worker.deliver_due() == 1  # the fire fails; the clear, due too, must wait
    assert [r.state for r in outbox_rows(settings)] == ["pending", "pending"]
    clock.advance(60)
    assert worker.deliver_due() == 2
    kinds = [json.loads(body)["kind"] for _, body, _ in receiver.sent]
    assert kinds == ["urgent_low", "urgent_low", "urgent_low_cleared"]


def test_a_claim_left_by_a_killed_serve_is_taken_over_once_it_expires(settings):
    settings = delivery_settings(settings, claim_s=30.0)
    clock = Clock()
    one_webhook(settings, clock)
    killed = open_outbox(settings.lake).claim("killed:1", now=clock(), claim_s=30.0)
    assert len(killed) == 1  # claimed, then the serve holding it died mid-POST
    receiver = FakeReceiver(200)
    worker = DeliveryWorker(settings, clock=clock, send=receiver)
    clock.advance(29)
    assert worker.deliver_due() == 0  # still held
    clock.advance(2)
    assert worker.deliver_due() == 1
    (row,) = outbox_rows(settings)
    assert (row.state, row.attempts) == ("delivered", 2)
    ((_, body, headers),) = receiver.sent
    assert headers["webhook-id"] == killed[0].delivery_id
    assert body == killed[0].body
    # the killed worker's late report of a failure changes nothing
    outbox = open_outbox(settings.lake)
    outbox.failed(killed[0], "killed:1", status=None, error="x", next_attempt_at=clock())
    assert outbox_rows(settings)[0].state == "delivered"


def test_a_claim_takes_at_most_its_limit_oldest_first(settings):
    clock = Clock()
    one_webhook(settings, clock, [change(alert_id=f"al_{i}") for i in range(5)])
    outbox = open_outbox(settings.lake)
    first = outbox.claim("w1", now=clock(), claim_s=30, limit=1)
    two = outbox.claim("w2", now=clock(), claim_s=30, limit=2)
    assert len(first) == 1
    assert len(two) == 2
    assert len({c.delivery_id for c in first + two}) == 3
    assert [c.attempts for c in first + two] == [1, 1, 1]
    assert len(outbox.claim("w3", now=clock(), claim_s=30, limit=10)) == 2


def test_two_workers_over_one_store_never_send_a_row_twice(settings):
    with_patients(settings, "pk1")
    open_webhook_store(settings.lake).add("https://r.example/h", at=T0)
    with metadata_engine(settings.lake).begin() as con:
        enqueue(con, [change(alert_id=f"al_{i}") for i in range(40)])
    sent, lock = [], threading.Lock()

    def send(url, body, headers, timeout_s):
        with lock:
            sent.append(headers["webhook-id"])
        time.sleep(0.002)
        return Response(200)

    workers = [DeliveryWorker(settings, send=send) for _ in range(2)]
    for worker in workers:
        worker.start()
        worker.wake()
    deadline = time.monotonic() + 20
    while open_outbox(settings.lake).unsettled() and time.monotonic() < deadline:
        time.sleep(0.05)
    for worker in workers:
        worker.stop()
    assert len(sent) == 40
    assert len(set(sent)) == 40
    assert {r.state for r in outbox_rows(settings)} == {"delivered"}


# over HTTP, to the test receiver ------------------------------------------------------------------
def test_post_delivers_signed_over_http_and_follows_no_redirect(settings):
    clock = Clock()
    hook, secret = one_webhook(settings, clock, [change(), change(alert_id="al_2")])
    with WebhookReceiver(status=307) as receiver:
        store = open_webhook_store(settings.lake)
        store.remove(hook.webhook_id, at=T0)
        hook, secret = store.add(receiver.url, at=T0)
        with metadata_engine(settings.lake).begin() as con:
            enqueue(con, [change()], clock=clock)
        worker = DeliveryWorker(delivery_settings(settings), clock=clock)
        assert worker.deliver_due() == 1
        (_receipt,) = receiver.receipts  # the redirect was not followed
        (row,) = [r for r in outbox_rows(settings) if r.state != "cancelled"]
        assert (row.state, row.last_status) == ("pending", 307)
        receiver.status = 200
        clock.advance(60)
        assert worker.deliver_due() == 1
        first, second = receiver.receipts
    assert first.body == second.body == row.body
    assert first.webhook_id == second.webhook_id == row.delivery_id
    assert second.headers["content-type"] == "application/json"
    assert verify_standard_webhook(secret, second.headers, second.body, now=second.timestamp)
    assert outbox_rows(settings)[-1].state == "delivered"


def test_post_reports_refused_and_timed_out_connections(settings):
    receiver = WebhookReceiver().start()
    url = receiver.url
    receiver.stop()
    with pytest.raises(ConnectionRefusedError):
        post(url, b"{}", {}, 1.0)
    receiver.delay_s = 0.5
    with receiver.start(), pytest.raises(TimeoutError):
        post(url, b"{}", {}, 0.1)  # the same port again, now slow


def _utc(at):
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at


@pytest.fixture
def pg_settings(tmp_path):
    if not URL_FILE.exists():
        pytest.skip("no test PostgreSQL server: run `scripts/postgres.sh start` (make test does)")
    with throwaway_database(URL_FILE.read_text().strip()) as url:
        yield Settings(
            lake=LakeSettings(root=str(tmp_path / "lake"), metadata_url=url),
            ingest=IngestSettings(pseudonym_secret=SECRET),
        )


@pytest.mark.slow
def test_two_workers_over_one_postgresql_store_never_send_a_row_twice(pg_settings):
    settings = pg_settings
    with_patients(settings, "pk1")
    open_webhook_store(settings.lake).add("https://r.example/h", at=T0)
    with metadata_engine(settings.lake).begin() as con:
        enqueue(con, [change(alert_id=f"al_{i}") for i in range(30)])
        enqueue(con, [change("cleared", 2, alert_id=f"al_{i}") for i in range(30)])
    sent, lock = [], threading.Lock()

    def send(url, body, headers, timeout_s):
        with lock:
            sent.append((headers["webhook-id"], json.loads(body)))
        time.sleep(0.002)
        return Response(200)

    workers = [DeliveryWorker(settings, send=send) for _ in range(2)]
    for worker in workers:
        worker.start()
        worker.wake()
    deadline = time.monotonic() + 60
    while open_outbox(settings.lake).unsettled() and time.monotonic() < deadline:
        time.sleep(0.05)
    for worker in workers:
        worker.stop()
    ids = [delivery_id for delivery_id, _ in sent]
    assert len(ids) == 60
    assert len(set(ids)) == 60
    order = [(body["alert_id"], body["type"]) for _, body in sent]
    for i in range(30):  # each clear after its fire
        assert order.index((f"al_{i}", "alert.fired")) < order.index((f"al_{i}", "alert.cleared"))


def test_a_fire_committed_through_the_alert_store_is_sent_at_once_on_wake(settings, monkeypatch):
    monkeypatch.setattr("glucosestream.alerts.delivery.POLL_S", 30.0)  # only wake() is quick
    with_patients(settings, "pk1")
    with WebhookReceiver() as receiver:
        _, secret = open_webhook_store(settings.lake).add(receiver.url, at=T0)
        worker = DeliveryWorker(settings, threads=1)
        worker.start()
        try:
            time.sleep(0.2)  # the thread has found nothing and waits
            open_alert_store(settings.lake).apply([change()], enqueue=enqueue)
            worker.wake()
            assert receiver.wait_for(lambda r: len(r) == 1, timeout_s=10)
        finally:
            worker.stop()
    (receipt,) = receiver.receipts
    assert json.loads(receipt.body)["alert_id"] == "al_1"
    assert verify_standard_webhook(secret, receipt.headers, receipt.body, now=receipt.timestamp)
    assert outbox_rows(settings)[0].state == "delivered"


def test_a_claim_outlasts_the_receivers_timeout(settings):
    clock = Clock()
    one_webhook(settings, clock)
    slow = delivery_settings(settings, claim_s=1.0, timeout_s=5.0)

    def send(url, body, headers, timeout_s):
        (row,) = outbox_rows(settings)
        assert (_utc(row.claimed_until) - clock.now).total_seconds() == 10.0
        return Response(200)

    assert DeliveryWorker(slow, clock=clock, send=send).deliver_due() == 1
    assert outbox_rows(settings)[0].state == "delivered"


def test_idle_threads_claim_rarely_and_a_known_retry_is_sent_on_time(settings, monkeypatch):
    clock = Clock()
    one_webhook(settings, clock)
    receiver = FakeReceiver(500, 200)
    fast = delivery_settings(settings, backoff_first_s=0.3, backoff_max_s=0.3)
    worker = DeliveryWorker(fast, send=receiver)  # the real clock: its threads sleep for real
    claims = []
    real_claim = worker._outbox.claim
    monkeypatch.setattr(
        worker._outbox, "claim", lambda *a, **k: claims.append(1) or real_claim(*a, **k)
    )
    with metadata_engine(settings.lake).begin() as con:  # due now on the real clock
        con.execute(webhook_outbox.update().values(next_attempt_at=T0))
    worker.start()
    try:
        deadline = time.monotonic() + 5
        while open_outbox(settings.lake).unsettled() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(receiver.sent) == 2  # the retry was found without a wake
        settled = len(claims)
        time.sleep(1.5)
        assert len(claims) == settled  # nothing due: no claim query while idle
    finally:
        worker.stop()
    assert (
        settled <= 6
    )  # two passes (the first attempt, the retry), each: row, empty, and a woken peer
