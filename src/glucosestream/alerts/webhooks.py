"""Webhooks: where alerts are delivered, how each delivery is signed, and how the signing
secret is kept.

Signatures follow Standard Webhooks 1.0 (github.com/standard-webhooks/standard-webhooks,
``spec/standard-webhooks.md``): a secret is ``whsec_`` + base64 of 24-64 random bytes (the
decoded bytes are the HMAC key); each attempt carries ``webhook-id`` (the delivery's id, the
same on every retry: the receiver's idempotency key), ``webhook-timestamp`` (unix seconds of
this attempt) and ``webhook-signature: v1,<base64 HMAC-SHA256 over "{id}.{timestamp}.{body}">``.

The metadata store holds no credential (``lake.metadata_schema``), so a secret is kept sealed:
XORed with a keystream of HMAC-SHA256 blocks under a key derived from the lake's access key (the
key ``token_api_secrets`` uses) and the webhook's id, plus a 16-byte tag that tells a damaged
value or another lake's key from a good one. The database alone cannot sign a delivery.

Signing, sealing and checking a URL are pure; ``WebhookStore`` is the I/O over ``webhooks``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import sqlalchemy as sa

from glucosestream.config import LakeSettings
from glucosestream.errors import ConfigError, LakeError, NotFound
from glucosestream.lake import (
    AccessAudit,
    AccessEntry,
    Store,
    metadata_engine,
    open_access,
    patients,
    webhook_outbox,
    webhooks,
)

__all__ = [
    "SECRET_PREFIX",
    "Webhook",
    "WebhookStore",
    "check_url",
    "disable_webhook",
    "external_ids",
    "new_secret",
    "open_webhook_store",
    "seal_secret",
    "secret_key",
    "sign",
    "signed_headers",
    "unseal_secret",
]

SECRET_PREFIX: Final = "whsec_"
SECRET_MIN_BYTES: Final = 24  # Standard Webhooks 1.0: 192 to 512 bits
SECRET_MAX_BYTES: Final = 64
NEW_SECRET_BYTES: Final = 32
SIGNATURE_VERSION: Final = "v1"
URL_MAX_CHARS: Final = 2048
SEAL_PURPOSE: Final = "webhook-secret-seal"
_SEAL_FORMAT: Final = b"\x01"
_TAG_BYTES: Final = 16
_CLI_ACTOR: Final = "cli"


# Secrets and signatures (pure) ------------------------------------------------------------------
def new_secret() -> str:
    """A new signing secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(NEW_SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret (its base64 part decoded); ConfigError otherwise."""
    text = secret.strip()
    hint = f"pass {SECRET_PREFIX}<base64 of {SECRET_MIN_BYTES}-{SECRET_MAX_BYTES} random bytes>"
    if not text.startswith(SECRET_PREFIX):
        raise ConfigError(f"a webhook secret starts with {SECRET_PREFIX!r}; {hint}, or omit it")
    try:
        key = base64.b64decode(text.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError) as err:
        raise ConfigError(f"the webhook secret is not base64 after the prefix; {hint}") from err
    if not SECRET_MIN_BYTES <= len(key) <= SECRET_MAX_BYTES:
        raise ConfigError(f"the webhook secret decodes to {len(key)} bytes; {hint}")
    return key


def sign(key: bytes, delivery_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` + base64 of the HMAC-SHA256 of
    ``{id}.{timestamp}.{body}`` under the secret's key."""
    message = f"{delivery_id}.{timestamp}.".encode("ascii") + body
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signed_headers(key: bytes, delivery_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt."""
    return {
        "webhook-id": delivery_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, delivery_id, timestamp, body),
    }


def check_url(url: str) -> str:
    """The URL, if deliveries can go there: http or https with a host, no credentials in it (the
    store keeps no credential), no fragment, at most 2,048 characters; ConfigError otherwise."""
    text = url.strip()
    if not text or len(text) > URL_MAX_CHARS or any(c.isspace() or ord(c) < 32 for c in text):
        raise ConfigError(
            f"{text[:80]!r} is not a webhook URL; pass http(s)://host/path, at most "
            f"{URL_MAX_CHARS} characters without spaces"
        )
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as err:
        raise ConfigError(f"{text[:80]!r} is not a valid URL: {err}") from err
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{text[:80]!r} is not an http or https URL with a host; webhooks are POSTed to "
            "http(s)://host[:port]/path"
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            "a webhook URL may not carry a user or password (it would be stored as is); the "
            "receiver checks the webhook-signature header instead"
        )
    if parts.fragment:
        raise ConfigError(f"{text[:80]!r} has a #fragment, which is never sent; remove it")
    if port == 0:
        raise ConfigError(f"{text[:80]!r} names port 0; pass the receiver's port")
    return text


# Sealing (pure) -----------------------------------------------------------------------------------
def seal_secret(seal_key: bytes, webhook_id: str, secret: str) -> bytes:
    """The secret as stored: version byte, secret XOR keystream, 16-byte tag."""
    plain = secret.encode("ascii")
    stream = _keystream(seal_key, webhook_id, len(plain))
    cipher = bytes(a ^ b for a, b in zip(plain, stream, strict=True))
    return _SEAL_FORMAT + cipher + _tag(seal_key, webhook_id, cipher)


def unseal_secret(seal_key: bytes, webhook_id: str, sealed: bytes) -> str:
    """The secret sealed by ``seal_secret``; LakeError if the value is damaged or the lake's
    access key is not the one it was sealed under."""
    cipher, tag = sealed[1:-_TAG_BYTES], sealed[-_TAG_BYTES:]
    good = sealed[:1] == _SEAL_FORMAT and len(sealed) > 1 + _TAG_BYTES
    if not good or not hmac.compare_digest(tag, _tag(seal_key, webhook_id, cipher)):
        raise LakeError(
            f"the signing secret of webhook {webhook_id} cannot be unsealed (the lake's access "
            "key changed or the row is damaged); remove the webhook and add it again"
        )
    stream = _keystream(seal_key, webhook_id, len(cipher))
    return bytes(a ^ b for a, b in zip(cipher, stream, strict=True)).decode("ascii")


def _keystream(seal_key: bytes, webhook_id: str, size: int) -> bytes:
    blocks = []
    for counter in range((size + 31) // 32):
        label = f"webhook-secret:{webhook_id}:{counter}".encode()
        blocks.append(hmac.new(seal_key, label, hashlib.sha256).digest())
    return b"".join(blocks)[:size]


def _tag(seal_key: bytes, webhook_id: str, cipher: bytes) -> bytes:
    label = f"webhook-secret-tag:{webhook_id}:".encode() + cipher
    return hmac.new(seal_key, label, hashlib.sha256).digest()[:_TAG_BYTES]


# The store -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Webhook:
    """A webhook as lists show it: never its secret."""

    webhook_id: str
    url: str
    patient_key: str | None  # None: every patient
    created_at: dt.datetime
    created_by: str
    disabled_at: dt.datetime | None

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None


class WebhookStore(Store):
    """The ``webhooks`` table: add, list, remove (disable), and the signing key for a delivery."""

    def __init__(self, engine: sa.Engine, *, seal_key: Callable[[], bytes]) -> None:
        super().__init__(engine)
        self._seal_key_of = seal_key
        self._seal_key: bytes | None = None
        self._audit = AccessAudit(engine)

    def add(
        self,
        url: str,
        *,
        at: dt.datetime,
        patient_key: str | None = None,
        secret: str | None = None,
        actor: str = _CLI_ACTOR,
    ) -> tuple[Webhook, str]:
        """Add a webhook; returns it and its secret (given, or new): the only time it is seen."""
        checked = check_url(url)
        secret = new_secret() if secret is None else secret.strip()
        secret_key(secret)  # checked before anything is stored
        hook = Webhook(f"wh_{secrets.token_hex(10)}", checked, patient_key, at, actor, None)
        row = _row(hook) | {"secret_sealed": seal_secret(self._key(), hook.webhook_id, secret)}
        with self._tx() as con:
            con.execute(webhooks.insert(), [row])
        self._record(hook, "webhook.add", actor, at)
        return hook, secret

    def webhooks(self, *, enabled_only: bool = False) -> list[Webhook]:
        """Every webhook, oldest first (removed ones too, unless ``enabled_only``)."""
        query = sa.select(*_COLUMNS).order_by(webhooks.c.created_at, webhooks.c.webhook_id)
        if enabled_only:
            query = query.where(webhooks.c.disabled_at.is_(None))
        with self._tx() as con:
            return [_webhook(r) for r in con.execute(query)]

    def get(self, webhook_id: str) -> Webhook | None:
        with self._tx() as con:
            row = con.execute(
                sa.select(*_COLUMNS).where(webhooks.c.webhook_id == webhook_id)
            ).first()
        return None if row is None else _webhook(row)

    def signing_key(self, webhook_id: str) -> bytes:
        """The HMAC key of a webhook's secret, unsealed (NotFound for an unknown id)."""
        with self._tx() as con:
            sealed = con.scalar(
                sa.select(webhooks.c.secret_sealed).where(webhooks.c.webhook_id == webhook_id)
            )
        if sealed is None:
            raise NotFound(f"no webhook has the id {webhook_id!r}")
        return secret_key(unseal_secret(self._key(), webhook_id, bytes(sealed)))

    def remove(
        self, webhook_id: str, *, at: dt.datetime, actor: str = _CLI_ACTOR
    ) -> tuple[Webhook, int]:
        """Disable a webhook (a removed one keeps its first time) and cancel its deliveries
        not yet made; returns it and how many were cancelled. NotFound for an unknown id."""
        with self._tx() as con:
            cancelled = disable_webhook(con, webhook_id, at)
        hook = self.get(webhook_id)
        if hook is None:
            raise NotFound(
                f"no webhook has the id {webhook_id!r}; see `glucosestream alerts webhook list`"
            )
        self._record(hook, "webhook.remove", actor, at)
        return hook, cancelled

    def external_ids(self, patient_keys: Iterable[str]) -> dict[str, str]:
        """The id as ingested of each patient key the lake knows."""
        with self._tx() as con:
            return external_ids(con, patient_keys)

    def _key(self) -> bytes:
        if self._seal_key is None:
            self._seal_key = self._seal_key_of()
        return self._seal_key

    def _record(self, hook: Webhook, action: str, actor: str, at: dt.datetime) -> None:
        resource = f"webhooks/{hook.webhook_id} {hook.url}"[:512]
        entry = AccessEntry(at, actor, actor, action, hook.patient_key, resource)
        self._audit.log_access(entry)


def disable_webhook(con: sa.Connection, webhook_id: str, at: dt.datetime) -> int:
    """In the caller's transaction: mark a webhook disabled (once) and cancel its pending and
    in-flight deliveries; returns how many were cancelled."""
    con.execute(
        webhooks.update()
        .where(webhooks.c.webhook_id == webhook_id, webhooks.c.disabled_at.is_(None))
        .values(disabled_at=at.astimezone(dt.UTC))
    )
    done = con.execute(
        webhook_outbox.update()
        .where(
            webhook_outbox.c.webhook_id == webhook_id,
            webhook_outbox.c.state.in_(("pending", "delivering")),
        )
        .values(state="cancelled", claimed_by=None, claimed_until=None)
    )
    return done.rowcount


def external_ids(con: sa.Connection, patient_keys: Iterable[str]) -> dict[str, str]:
    """The id as ingested (``patients.external_id``) of each of these keys the lake knows."""
    keys = sorted(set(patient_keys))
    if not keys:
        return {}
    query = sa.select(patients.c.patient_key, patients.c.external_id).where(
        patients.c.patient_key.in_(keys)
    )
    return {key: external for key, external in con.execute(query)}


def open_webhook_store(settings: LakeSettings) -> WebhookStore:
    """The lake's webhooks; the seal key is derived from its access key on first use."""

    def seal_key() -> bytes:
        return open_access(settings).tokens.derived_key(SEAL_PURPOSE)

    return WebhookStore(metadata_engine(settings), seal_key=seal_key)


_COLUMNS: Final = tuple(c for c in webhooks.c if c.name != "secret_sealed")


def _row(hook: Webhook) -> dict[str, Any]:
    return {
        "webhook_id": hook.webhook_id,
        "url": hook.url,
        "patient_key": hook.patient_key,
        "created_at": hook.created_at.astimezone(dt.UTC),
        "created_by": hook.created_by[:16],
        "disabled_at": None,
    }


def _webhook(row: sa.Row[Any]) -> Webhook:
    return Webhook(
        row.webhook_id,
        row.url,
        row.patient_key,
        _utc(row.created_at),
        row.created_by,
        None if row.disabled_at is None else _utc(row.disabled_at),
    )


def _utc(at: dt.datetime) -> dt.datetime:
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)
