"""Webhooks: Standard Webhooks 1.0 signatures (checked by a verifier written here from the spec),
sealed secrets, the webhook store, the outbox and the delivery worker."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import hashlib
import hmac
import json
import random
import threading
import time

import pytest
import sqlalchemy as sa

from glucosestream.alerts.changes import AlertChange
from glucosestream.alerts.delivery import DeliveryWorker, Response, post
from glucosestream.alerts.outbox import body_of, delivery_id_of, enqueue, open_outbox
from glucosestream.alerts.store import open_alert_store
from glucosestream.alerts.webhooks import (
    check_url,
    new_secret,
    open_webhook_store,
    seal_secret,
    secret_key,
    sign,
    signed_headers,
    unseal_secret,
)
from glucosestream.config import IngestSettings, LakeSettings, Settings
from glucosestream.errors import ConfigError, LakeError, NotFound
from glucosestream.lake import metadata_engine, open_access, patients, webhook_outbox, webhooks

from .conftest import SECRET
from .pg_database import URL_FILE, throwaway_database
from .webhook_receiver import WebhookReceiver

T0 = dt.datetime(2026, 2, 1, 12, 0, tzinfo=dt.UTC)


def verify_standard_webhook(secret: str, headers: dict[str, str], body: bytes, now: int) -> bool:
    """An independent receiver-side check, from the spec's text (spec/standard-webhooks.md,
    "Verifying signatures"): the key is the base64 after ``whsec_``; the signed content is
    ``msg_id.timestamp.payload``; the header is a space-separated list of ``version,signature``;
    compare in constant time; refuse a timestamp more than 5 minutes off."""
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id, timestamp = lowered["webhook-id"], lowered["webhook-timestamp"]
    if abs(now - int(timestamp)) > 300:
        return False
    key = base64.b64decode(secret.split("_", 1)[1])
    content = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.digest(key, content, "sha256"))
    for candidate in lowered["webhook-signature"].split(" "):
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return True
    return False


# signatures -------------------------------------------------------------------------------------
def test_signature_matches_the_reference_libraries_vector():
    # libraries/python/tests/test_webhooks.py::test_sign_function in standard-webhooks (b2fa7b8)
    key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    body = b'{"test": 2432232314}'
    got = sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert got == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signed_headers_verify_independently_and_any_change_breaks_them():
    secret = new_secret()
    body = b'{"id":"msg_x","kind":"urgent_low","glucose_mg_dl":52.0}'
    headers = signed_headers(secret_key(secret), "msg_x", 1_770_000_000, body)
    assert verify_standard_webhook(secret, headers, body, now=1_770_000_010)
    assert not verify_standard_webhook(secret, headers, body + b" ", now=1_770_000_010)
    assert not verify_standard_webhook(
        secret, headers | {"webhook-id": "msg_y"}, body, 1_770_000_010
    )
    later = headers | {"webhook-timestamp": "1770000001"}
    assert not verify_standard_webhook(secret, later, body, now=1_770_000_010)
    assert not verify_standard_webhook(new_secret(), headers, body, now=1_770_000_010)
    assert not verify_standard_webhook(secret, headers, body, now=1_770_000_000 + 301)


def test_new_secrets_are_whsec_of_32_random_bytes():
    a, b = new_secret(), new_secret()
    assert a != b
    assert a.startswith("whsec_")
    assert len(secret_key(a)) == 32


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "starts with 'whsec_'"),
        ("whsec_not base64!", "not base64"),
        ("whsec_" + base64.b64encode(b"x" * 23).decode(), "23 bytes"),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), "65 bytes"),
    ],
)
def test_a_bad_secret_is_one_clear_error(secret, says):
    with pytest.raises(ConfigError, match=says):
        secret_key(secret)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://example.org/hook", "not an http or https URL"),
        ("example.org/hook", "not an http or https URL"),
        ("https:///hook", "not an http or https URL"),
        ("https://user:pw@example.org/hook", "user or password"),
        ("https://example.org/hook#x", "fragment"),
        ("https://example.org:99999/hook", "not a valid URL"),
        ("https://exa mple.org/", "not a webhook URL"),
        ("", "not a webhook URL"),
        ("https://example.org/" + "a" * 2048, "not a webhook URL"),
    ],
)
def test_a_bad_url_is_one_clear_error(url, says):
    with pytest.raises(ConfigError, match=says):
        check_url(url)


def test_http_and_https_urls_are_kept_as_given():
    assert check_url(" https://example.org:8443/h?x=1 ") == "https://example.org:8443/h?x=1"
    assert check_url("http://127.0.0.1:9/hook") == "http://127.0.0.1:9/hook"


# sealing ------------------------------------------------------------------------------------------
def test_a_sealed_secret_unseals_only_under_its_key_and_id():
    key, secret = hashlib.sha256(b"k").digest(), new_secret()
    sealed = seal_secret(key, "wh_a", secret)
    assert secret.encode() not in sealed
    assert secret_key(secret) not in sealed
    assert unseal_secret(key, "wh_a", sealed) == secret
    assert seal_secret(key, "wh_b", secret) != sealed  # the keystream depends on the id
    with pytest.raises(LakeError, match="cannot be unsealed"):
        unseal_secret(hashlib.sha256(b"other").digest(), "wh_a", sealed)
    with pytest.raises(LakeError, match="cannot be unsealed"):
        unseal_secret(key, "wh_b", sealed)
    damaged = sealed[:5] + bytes([sealed[5] ^ 1]) + sealed[6:]
    with pytest.raises(LakeError, match="cannot be unsealed"):
        unseal_secret(key, "wh_a", damaged)


# the store ----------------------------------------------------------------------------------------
def test_the_store_keeps_no_secret_and_signs_with_the_one_given(settings):
    store = open_webhook_store(settings.lake)
    given = new_secret()
    hook, secret = store.add("https://example.org/h", at=T0, patient_key="pk1", secret=given)
    assert secret == given
    assert hook.webhook_id.startswith("wh_")
    assert hook.enabled
    with metadata_engine(settings.lake).connect() as con:
        stored = con.execute(sa.select(webhooks)).one()
    assert given.encode() not in stored.secret_sealed
    assert secret_key(given) not in stored.secret_sealed
    # a new store (another process) unseals it with the lake's access key
    assert open_webhook_store(settings.lake).signing_key(hook.webhook_id) == secret_key(given)
    assert [h.webhook_id for h in store.webhooks()] == [hook.webhook_id]
    assert not hasattr(store.webhooks()[0], "secret")


def test_add_generates_a_secret_when_none_is_given_and_refuses_bad_input(settings):
    store = open_webhook_store(settings.lake)
    _, secret = store.add("http://localhost:9/h", at=T0)
    assert len(secret_key(secret)) == 32
    with pytest.raises(ConfigError):
        store.add("gopher://x/", at=T0)
    with pytest.raises(ConfigError):
        store.add("https://x/", at=T0, secret="whsec_short")
    assert len(store.webhooks()) == 1  # nothing stored for the refused ones


def test_remove_disables_cancels_pending_deliveries_and_is_audited(settings):
    store = open_webhook_store(settings.lake)
    hook, _ = store.add("https://example.org/h", at=T0)
    other, _ = store.add("https://example.org/other", at=T0)
    engine = metadata_engine(settings.lake)
    with engine.begin() as con:
        for i, (webhook_id, state) in enumerate(
            [
                (hook.webhook_id, "pending"),
                (hook.webhook_id, "delivered"),
                (other.webhook_id, "pending"),
            ]
        ):
            con.execute(webhook_outbox.insert(), [_outbox_row(f"msg_{i}", webhook_id, state)])
    removed, cancelled = store.remove(hook.webhook_id, at=T0 + dt.timedelta(minutes=1))
    assert cancelled == 1
    assert removed.disabled_at == T0 + dt.timedelta(minutes=1)
    assert not removed.enabled
    again, cancelled = store.remove(hook.webhook_id, at=T0 + dt.timedelta(minutes=2))
    assert cancelled == 0
    assert again.disabled_at == removed.disabled_at  # the first time is kept
    with engine.connect() as con:
        states = dict(
            con.execute(sa.select(webhook_outbox.c.delivery_id, webhook_outbox.c.state)).all()
        )
    assert states == {"msg_0": "cancelled", "msg_1": "delivered", "msg_2": "pending"}
    assert [h.webhook_id for h in store.webhooks(enabled_only=True)] == [other.webhook_id]
    with pytest.raises(NotFound, match="no webhook has the id"):
        store.remove("wh_nope", at=T0)
    actions = [e.action for e in open_access(settings.lake).audit.access_entries(limit=10)]
    assert actions.count("webhook.add") == 2
    assert actions.count("webhook.remove") == 2


def _outbox_row(delivery_id: str, webhook_id: str, state: str, **values: object) -> dict:
    row = {
        "delivery_id": delivery_id,
        "webhook_id": webhook_id,
        "alert_id": "al_1",
        "event": "fired",
        "seq": int(delivery_id.rsplit("_", 1)[-1]) if delivery_id[-1].isdigit() else 0,
        "body": b"{}",
        "created_at": T0,
        "state": state,
        "attempts": 0,
        "next_attempt_at": T0,
    }
    return row | values


# the outbox ---------------------------------------------------------------------------------------
def change(event="fired", seq=0, *, patient_key="pk1", alert_id="al_1", suppressed=False):
    return AlertChange(
        alert_id=alert_id,
        patient_key=patient_key,
        kind="urgent_low",
        event=event,
        seq=seq,
        at=T0,
        glucose_mg_dl=52.0 if event != "cleared" else 71.0,
        threshold_mg_dl=55.0,
        direction="SingleDown",
        suppressed=suppressed,
        detail={"rate_mg_dl_min": -2.5, "nan": float("nan")},
    )


def with_patients(settings, *keys):
    with metadata_engine(settings.lake).begin() as con:
        rows = [{"patient_key": k, "external_id": f"P-{k}", "first_seen_at": T0} for k in keys]
        con.execute(patients.insert(), rows)


def outbox_rows(settings):
    with metadata_engine(settings.lake).connect() as con:
        query = sa.select(webhook_outbox).order_by(
            webhook_outbox.c.created_at, webhook_outbox.c.seq
        )
        return con.execute(query).all()


def test_enqueue_writes_one_row_per_matching_webhook_and_change_once(settings):
    with_patients(settings, "pk1", "pk2")
    store = open_webhook_store(settings.lake)
    everyone, _ = store.add("https://a.example/h", at=T0)
    mine, _ = store.add("https://b.example/h", at=T0, patient_key="pk1")
    store.add("https://c.example/h", at=T0, patient_key="pk2")
    removed, _ = store.add("https://d.example/h", at=T0)
    store.remove(removed.webhook_id, at=T0)
    changes = [change(), change(alert_id="al_2", suppressed=True)]
    engine = metadata_engine(settings.lake)
    with engine.begin() as con:
        assert enqueue(con, changes, clock=lambda: T0) == 2
    with engine.begin() as con:  # the same change again (a retried transaction): nothing new
        assert enqueue(con, changes, clock=lambda: T0) == 0
    rows = outbox_rows(settings)
    assert {r.webhook_id for r in rows} == {everyone.webhook_id, mine.webhook_id}
    assert {r.state for r in rows} == {"pending"}
    row = rows[0]
    assert row.delivery_id == delivery_id_of(row.webhook_id, "al_1", "fired", 0)
    body = json.loads(row.body)
    assert list(body) == [
        "id", "type", "kind", "alert_id", "patient", "glucose_mg_dl", "at", "direction",
        "threshold_mg_dl", "level", "detail",
    ]  # fmt: skip
    assert body["id"] == row.delivery_id
    assert body["type"] == "alert.fired"
    assert body["kind"] == "urgent_low"
    assert body["patient"] == "P-pk1"
    assert body["glucose_mg_dl"] == 52.0
    assert body["at"] == "2026-02-01T12:00:00Z"
    assert body["detail"] == {"rate_mg_dl_min": -2.5, "nan": None}
    assert b" " not in row.body  # compact


def test_a_clear_is_delivered_as_kind_cleared():
    body = json.loads(body_of(change("cleared", 2), "msg_x", "P1"))
    assert body["type"] == "alert.cleared"
    assert body["kind"] == "urgent_low_cleared"


def test_a_detail_json_cannot_hold_is_written_as_text_not_an_error():
    odd = dataclasses.replace(change(), detail={"at": T0, "d": decimal.Decimal("1.5"), "x": {1}})
    assert json.loads(body_of(odd, "msg_x", "P1"))["detail"] == {
        "at": "2026-02-01T12:00:00Z", "d": "1.5", "x": "{1}",
    }  # fmt: skip


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
