"""The webhook outbox: one row per (webhook, alert change), written in the transaction that
fires, escalates or clears the alert, then claimed, sent and settled by the delivery worker.

A row's ``delivery_id`` is derived from (webhook, alert, event, seq), so enqueueing the same
change again adds nothing; it is the body's ``id`` and the ``webhook-id`` header of every
attempt. The body's bytes are fixed when the row is written and sent unchanged each time.

States: ``pending`` (due at ``next_attempt_at``) → ``delivering`` (claimed by one worker until
``claimed_until``) → ``delivered`` (a 2xx), back to ``pending`` after a failure with an
exponential backoff (``alerts.backoff_first_s`` doubling up to ``alerts.backoff_max_s``, ±20 %),
``dead`` after ``alerts.max_attempts`` (the dead letter), or ``cancelled`` (the webhook removed
or gone). A claim is one UPDATE ... RETURNING (SQLite's single writer; ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL), so two workers never hold one row; a ``delivering`` row whose claim
expired (its worker was killed) is claimed again. A row waits while an earlier change of the
same alert to the same webhook is not settled: a clear never overtakes its fire.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from glucosestream.alerts.changes import AlertChange
from glucosestream.alerts.webhooks import disable_webhook, external_ids
from glucosestream.clock import Clock, utc_now
from glucosestream.config import AlertSettings, LakeSettings
from glucosestream.lake import Store, metadata_engine, webhook_outbox, webhooks

__all__ = [
    "OUTBOX_STATES",
    "Claimed",
    "OutboxStore",
    "body_of",
    "delivery_id_of",
    "enqueue",
    "open_outbox",
    "retry_delay_s",
]

log = logging.getLogger(__name__)

OutboxState = Literal["pending", "delivering", "delivered", "dead", "cancelled"]
OUTBOX_STATES: Final[tuple[OutboxState, ...]] = (
    "pending",
    "delivering",
    "delivered",
    "dead",
    "cancelled",
)
_UNSETTLED: Final = ("pending", "delivering")
_JITTER: Final = 0.2
_ERROR_CHARS: Final = 500


def delivery_id_of(webhook_id: str, alert_id: str, event: str, seq: int) -> str:
    """``msg_`` + 26 hex digits of SHA-256 over the change and its webhook (deterministic)."""
    text = f"{webhook_id}\x00{alert_id}\x00{event}\x00{seq}".encode()
    return "msg_" + hashlib.sha256(text).hexdigest()[:26]


def body_of(change: AlertChange, delivery_id: str, patient: str | None) -> bytes:
    """The JSON body of one delivery: one compact UTF-8 object (CONTRACT's fields, in order)."""
    body = {
        "id": delivery_id,
        "type": f"alert.{change.event}",
        "kind": change.delivered_kind,
        "alert_id": change.alert_id,
        "patient": patient,
        "glucose_mg_dl": change.glucose_mg_dl,
        "at": _iso(change.at),
        "direction": change.direction,
        "threshold_mg_dl": change.threshold_mg_dl,
        "level": change.level,
        "detail": change.detail,
    }
    text = json.dumps(
        _finite(body), separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str
    )
    return text.encode("utf-8")


def enqueue(con: sa.Connection, changes: Sequence[AlertChange], *, clock: Clock = utc_now) -> int:
    """In the caller's transaction: one outbox row per change (suppressed ones skipped) and
    enabled webhook for its patient or for every patient; a row already there is left as it
    is. Returns how many rows were added."""
    deliverable = [c for c in changes if not c.suppressed]
    if not deliverable:
        return 0
    keys = sorted({c.patient_key for c in deliverable})
    hooks = con.execute(
        sa.select(webhooks.c.webhook_id, webhooks.c.patient_key).where(
            webhooks.c.disabled_at.is_(None),
            sa.or_(webhooks.c.patient_key.is_(None), webhooks.c.patient_key.in_(keys)),
        )
    ).all()
    if not hooks:
        return 0
    external = external_ids(con, keys)
    now = clock().astimezone(dt.UTC)
    rows = [
        _outbox_row(change, hook.webhook_id, external.get(change.patient_key), now)
        for change in deliverable
        for hook in hooks
        if hook.patient_key in (None, change.patient_key)
    ]
    return sum(_insert_new(con, row) for row in rows)


def _outbox_row(
    change: AlertChange, webhook_id: str, patient: str | None, now: dt.datetime
) -> dict[str, Any]:
    if patient is None:
        log.warning("webhook body without patient id alert_id=%s", change.alert_id)
    delivery_id = delivery_id_of(webhook_id, change.alert_id, change.event, change.seq)
    return {
        "delivery_id": delivery_id,
        "webhook_id": webhook_id,
        "alert_id": change.alert_id,
        "event": change.event,
        "seq": change.seq,
        "body": body_of(change, delivery_id, patient),
        "created_at": now,
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": now,
    }


def _insert_new(con: sa.Connection, row: dict[str, Any]) -> int:
    """Insert the row unless its delivery id is there already; 1 if it was added."""
    name = con.dialect.name
    if name in ("sqlite", "postgresql"):
        insert = (sqlite_insert if name == "sqlite" else postgresql_insert)(webhook_outbox)
        added = insert.values(row).on_conflict_do_nothing().returning(webhook_outbox.c.delivery_id)
        return len(con.execute(added).all())
    known = con.scalar(  # another database: a check first
        sa.select(webhook_outbox.c.delivery_id).where(
            webhook_outbox.c.delivery_id == row["delivery_id"]
        )
    )
    if known is not None:
        return 0
    con.execute(webhook_outbox.insert(), [row])
    return 1


def retry_delay_s(attempts: int, settings: AlertSettings, rng: random.Random) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: ``backoff_first_s``
    doubling each time, at most ``backoff_max_s``, times a random factor in [0.8, 1.2]."""
    exponent = min(max(attempts - 1, 0), 62)
    base = min(settings.backoff_first_s * 2.0**exponent, settings.backoff_max_s)
    return base * rng.uniform(1 - _JITTER, 1 + _JITTER)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A row a worker holds: what it sends, and the attempt this is (1 for the first)."""

    delivery_id: str
    webhook_id: str
    body: bytes
    attempts: int


class OutboxStore(Store):
    """Claims and settles outbox rows (the delivery worker), and counts them (lists)."""

    def claim(
        self, worker_id: str, *, now: dt.datetime, claim_s: float, limit: int = 1
    ) -> list[Claimed]:
        """Take up to ``limit`` due rows (pending and due, or delivering with an expired
        claim), oldest first, for ``claim_s`` seconds; each attempt counted as it is claimed."""
        now = now.astimezone(dt.UTC)
        row, earlier = webhook_outbox, webhook_outbox.alias("earlier")
        due = sa.or_(
            sa.and_(row.c.state == "pending", row.c.next_attempt_at <= now),
            sa.and_(row.c.state == "delivering", row.c.claimed_until < now),
        )
        waits = (
            sa.select(earlier.c.delivery_id)
            .where(
                earlier.c.webhook_id == row.c.webhook_id,
                earlier.c.alert_id == row.c.alert_id,
                earlier.c.seq < row.c.seq,
                earlier.c.state.in_(_UNSETTLED),
            )
            .exists()
        )
        # A materialized CTE: PostgreSQL may run a plain IN (subquery) more than once per
        # UPDATE, and each run would lock another `limit` rows.
        chosen = (
            sa.select(row.c.delivery_id)
            .where(due, ~waits)
            .order_by(row.c.created_at, row.c.seq, row.c.delivery_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("chosen")
            .prefix_with("MATERIALIZED")
        )
        update = (
            row.update()
            .where(row.c.delivery_id.in_(sa.select(chosen.c.delivery_id)), due)
            .values(
                state="delivering",
                claimed_by=worker_id,
                claimed_until=now + dt.timedelta(seconds=claim_s),
                attempts=row.c.attempts + 1,
            )
            .returning(row.c.delivery_id, row.c.webhook_id, row.c.body, row.c.attempts)
        )
        with self._tx() as con:
            claimed = con.execute(update).all()
        return [Claimed(r.delivery_id, r.webhook_id, bytes(r.body), r.attempts) for r in claimed]

    def delivered(self, delivery_id: str, *, status: int, at: dt.datetime) -> bool:
        """A 2xx was received: the row is delivered, whoever holds it now (a row cancelled
        meanwhile stays cancelled). Whether the row changed."""
        values = {"state": "delivered", "last_status": status, "last_error": None}
        values |= {"delivered_at": at.astimezone(dt.UTC), "claimed_until": None}
        with self._tx() as con:
            done = con.execute(
                webhook_outbox.update()
                .where(
                    webhook_outbox.c.delivery_id == delivery_id,
                    webhook_outbox.c.state.in_(_UNSETTLED),
                )
                .values(values)
            )
        return done.rowcount == 1

    def failed(
        self,
        claimed: Claimed,
        worker_id: str,
        *,
        status: int | None,
        error: str,
        next_attempt_at: dt.datetime | None,
    ) -> OutboxState:
        """An attempt failed: pending again from ``next_attempt_at``, or dead when it is None.
        Only the claim's holder settles it (a worker whose claim expired changes nothing)."""
        state: OutboxState = "dead" if next_attempt_at is None else "pending"
        values: dict[str, Any] = {"state": state, "last_status": status}
        values |= {"last_error": error[:_ERROR_CHARS], "claimed_until": None}
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at.astimezone(dt.UTC)
        with self._tx() as con:
            con.execute(
                webhook_outbox.update()
                .where(
                    webhook_outbox.c.delivery_id == claimed.delivery_id,
                    webhook_outbox.c.claimed_by == worker_id,
                    webhook_outbox.c.state == "delivering",
                )
                .values(values)
            )
        return state

    def gone(self, webhook_id: str, *, at: dt.datetime) -> int:
        """The receiver answered 410 Gone: disable the webhook and cancel its unsettled rows
        (the one just tried too); returns how many were cancelled."""
        with self._tx() as con:
            return disable_webhook(con, webhook_id, at)

    def counts(self) -> dict[str, dict[str, int]]:
        """Rows per webhook and state: ``{webhook_id: {"delivered": 3, "dead": 1, ...}}``."""
        query = sa.select(
            webhook_outbox.c.webhook_id, webhook_outbox.c.state, sa.func.count()
        ).group_by(webhook_outbox.c.webhook_id, webhook_outbox.c.state)
        found: dict[str, dict[str, int]] = {}
        with self._tx() as con:
            for webhook_id, state, count in con.execute(query):
                found.setdefault(webhook_id, {})[state] = count
        return found

    def next_due(self, *, after: dt.datetime) -> dt.datetime | None:
        """When the next row falls due later than ``after``: the earliest retry of a pending
        row or expiry of a claim (a read only; rows due already but waiting for an earlier
        change are left out, as the claim leaves them)."""
        after = after.astimezone(dt.UTC)
        row = webhook_outbox
        retry = sa.select(sa.func.min(row.c.next_attempt_at)).where(
            row.c.state == "pending", row.c.next_attempt_at > after
        )
        expiry = sa.select(sa.func.min(row.c.claimed_until)).where(
            row.c.state == "delivering", row.c.claimed_until >= after
        )
        with self._tx() as con:
            found = [con.scalar(retry), con.scalar(expiry)]
        times = [t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t for t in found if t]
        return min(times, default=None)

    def unsettled(self) -> int:
        """Rows pending or being delivered (zero once everything due was sent or gave up)."""
        query = sa.select(sa.func.count()).where(webhook_outbox.c.state.in_(_UNSETTLED))
        with self._tx() as con:
            return int(con.scalar(query) or 0)


def open_outbox(settings: LakeSettings) -> OutboxStore:
    return OutboxStore(metadata_engine(settings))


def _iso(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _finite(value: Any) -> Any:
    """The value with NaN and infinities as null (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, dt.datetime):
        return _iso(value)
    return value
