"""Webhooks: Standard Webhooks 1.0 signatures (checked by a verifier written here from the spec),
sealed secrets, the webhook store and the outbox rows (delivery: test_webhook_delivery.py)."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import hashlib
import hmac
import json

import pytest
import sqlalchemy as sa

from glucosestream.alerts.changes import AlertChange
from glucosestream.alerts.outbox import body_of, delivery_id_of, enqueue
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
from glucosestream.errors import ConfigError, LakeError, NotFound
from glucosestream.lake import metadata_engine, open_access, patients, webhook_outbox, webhooks

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
