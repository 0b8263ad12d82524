"""The alerts, their history and their snoozes in the metadata store.

``AlertStore.apply`` records the changes the evaluator decides in one transaction: for each,
the ``alerts`` row (inserted for a fire, updated for an escalation or a clear) and the
``alert_events`` row, then the caller's ``enqueue(con, changes)`` (the webhook outbox), so an
alert is never recorded without its deliveries nor delivered without being recorded.

"Fires once per episode" holds across threads, processes and restarts because of the partial
unique index on ``alerts (patient_key, kind) WHERE state = 'active'``: a second fire of an active
kind fails there (as does the same fire twice: its id is derived from what it is) and is
dropped as "already active". An escalation or a clear updates only a row still in the state it
expects, so doing one twice changes nothing either.

Acknowledging and snoozing append to the alert's history and to the access audit trail
(actions ``alert.ack`` and ``alert.snooze``, resource ``alerts/<alert_id>``), so
``glucosestream audit --patient`` lists them with the reads of the patient's data.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa

from glucosestream.alerts.changes import AlertChange
from glucosestream.alerts.evaluate import ActiveAlert
from glucosestream.alerts.rules import SITE_DEFAULT, RuleRow, rule_row_problem
from glucosestream.config import LakeSettings
from glucosestream.errors import InvalidInput, LakeError, NotFound
from glucosestream.lake import (
    AccessAudit,
    AccessEntry,
    Store,
    alert_events,
    alert_rules,
    alert_snoozes,
    alerts,
    metadata_engine,
    webhook_outbox,
)

__all__ = [
    "MAX_SNOOZE_MIN",
    "MAX_URGENT_LOW_SNOOZE_MIN",
    "AlertEvent",
    "AlertRow",
    "AlertStore",
    "Enqueue",
    "PatientAlerts",
    "open_alert_store",
]

log = logging.getLogger(__name__)

Enqueue = Callable[[sa.Connection, Sequence[AlertChange]], Any]
MAX_SNOOZE_MIN: Final = 24 * 60.0  # a snooze lasts at most a day
MAX_URGENT_LOW_SNOOZE_MIN: Final = 30.0  # the urgent low alarm can be silenced for 30 minutes
SYSTEM: Final = "system"  # the actor of the events the evaluator records


@dataclass(frozen=True, slots=True)
class AlertRow:
    """One alert episode as ``alerts list``, the pages and the triage list show it."""

    alert_id: str
    patient_key: str
    kind: str
    state: str
    level: str | None
    fired_at: dt.datetime
    reading_ts: dt.datetime | None
    glucose_mg_dl: float | None
    cleared_at: dt.datetime | None
    acked_at: dt.datetime | None
    acked_by: str | None
    suppressed: bool
    snoozed_until: dt.datetime | None
    deliveries: dict[str, int]  # webhook outbox state -> count


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One entry of an alert's history."""

    alert_id: str
    at: dt.datetime
    event: str  # fired | suppressed | escalated | cleared | acked | snoozed
    actor: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PatientAlerts:
    """What the evaluator needs of the store for one patient, read in one transaction."""

    active: dict[str, ActiveAlert]
    snoozed_until: dict[str, dt.datetime]
    rule_rows: list[RuleRow]


class AlertStore(Store):
    def apply(self, changes: Sequence[AlertChange], *, enqueue: Enqueue) -> list[AlertChange]:
        """Record the changes with their deliveries in one transaction; the changes recorded,
        without those another thread or process had recorded already. When a fire meets an
        alert recorded first elsewhere (the unique index), the transaction is rolled back and
        the changes are recorded one transaction each, that fire dropped."""
        if not changes:
            return []
        try:
            with self._tx() as con:
                applied = [change for change in changes if _write(con, change)]
                if applied:
                    enqueue(con, applied)
        except LakeError as err:
            if not isinstance(err.__cause__, sa.exc.IntegrityError):
                raise
            return [change for change in changes if self._apply_one(change, enqueue)]
        return applied

    def _apply_one(self, change: AlertChange, enqueue: Enqueue) -> bool:
        try:
            with self._tx() as con:
                if not _write(con, change):
                    return False
                enqueue(con, [change])
        except LakeError as err:
            if change.event == "fired" and isinstance(err.__cause__, sa.exc.IntegrityError):
                log.debug("alert %s of %s already active", change.alert_id, change.kind)
                return False
            raise
        return True

    def patient_alerts(self, patient_key: str) -> PatientAlerts:
        """The patient's active alerts by kind, snoozes by kind, and rule rows (theirs and the
        site's)."""
        return self.patients_alerts([patient_key])[patient_key]

    def patients_alerts(self, patient_keys: Sequence[str]) -> dict[str, PatientAlerts]:
        """``patient_alerts`` of several patients, read in one transaction."""
        keys = list(dict.fromkeys(patient_keys))
        active = sa.select(alerts).where(alerts.c.patient_key.in_(keys), alerts.c.state == "active")
        snoozes = sa.select(alert_snoozes).where(alert_snoozes.c.patient_key.in_(keys))
        rules = sa.select(alert_rules).where(alert_rules.c.patient_key.in_([*keys, SITE_DEFAULT]))
        out = {key: PatientAlerts({}, {}, []) for key in keys}
        with self._tx() as con:
            for r in con.execute(active):
                acked = r.acked_at is not None
                out[r.patient_key].active[r.kind] = ActiveAlert(
                    r.alert_id, r.kind, r.level, acked, r.suppressed
                )
            for r in con.execute(snoozes):
                out[r.patient_key].snoozed_until[r.kind] = _utc(r.until)
            for r in con.execute(rules):
                row = RuleRow(r.patient_key, r.kind, r.enabled, r.threshold_mg_dl, r.minutes)
                for key in keys if r.patient_key == SITE_DEFAULT else [r.patient_key]:
                    out[key].rule_rows.append(row)
        return out

    def active_patients(self) -> list[str]:
        """The patients with an active alert."""
        query = sa.select(alerts.c.patient_key).where(alerts.c.state == "active").distinct()
        with self._tx() as con:
            return sorted(con.execute(query).scalars())

    def list_alerts(
        self, *, patient_key: str | None = None, active_only: bool = False, limit: int = 100
    ) -> list[AlertRow]:
        """Alerts newest first, with their snoozes and their deliveries by outbox state."""
        query = sa.select(alerts).order_by(alerts.c.fired_at.desc(), alerts.c.alert_id.desc())
        if patient_key is not None:
            query = query.where(alerts.c.patient_key == patient_key)
        if active_only:
            query = query.where(alerts.c.state == "active")
        with self._tx() as con:
            rows = con.execute(query.limit(limit)).all()
            return _alert_rows(con, rows)

    def get(self, alert_id: str) -> AlertRow | None:
        with self._tx() as con:
            rows = con.execute(sa.select(alerts).where(alerts.c.alert_id == alert_id)).all()
            found = _alert_rows(con, rows)
        return found[0] if found else None

    def events(self, alert_id: str) -> list[AlertEvent]:
        """The alert's history, oldest first."""
        query = (
            sa.select(alert_events)
            .where(alert_events.c.alert_id == alert_id)
            .order_by(alert_events.c.event_id)
        )
        with self._tx() as con:
            return [
                AlertEvent(r.alert_id, _utc(r.at), r.event, r.actor, json.loads(r.detail))
                for r in con.execute(query)
            ]

    def ack(
        self, alert_id: str, *, actor: str, at: dt.datetime, role: str | None = None
    ) -> AlertRow:
        """Acknowledge an alert: no escalation is sent for it any more (its clear still is).
        ``actor``: ``cli`` or the token id; ``role`` the token's role for the audit trail (the
        CLI's entries have role ``cli``, as webhook add/remove's)."""
        with self._tx() as con:
            row = _alert(con, alert_id)
            con.execute(
                alerts.update()
                .where(alerts.c.alert_id == alert_id, alerts.c.acked_at.is_(None))
                .values(acked_at=at, acked_by=actor[:16])
            )
            _event(con, row.alert_id, row.patient_key, at, "acked", actor, {})
        self._audit(row.patient_key, alert_id, "alert.ack", actor=actor, role=role, at=at)
        return _found(self.get(alert_id), alert_id)

    def snooze(
        self,
        alert_id: str,
        *,
        minutes: float,
        actor: str,
        at: dt.datetime,
        role: str | None = None,
    ) -> AlertRow:
        """Snooze the alert's kind for its patient: until ``at + minutes``, a new episode is
        recorded suppressed (not delivered), and so is this one's escalation."""
        with self._tx() as con:
            row = _alert(con, alert_id)
            until = at + dt.timedelta(minutes=_snooze_minutes(row.kind, minutes))
            key = (alert_snoozes.c.patient_key == row.patient_key) & (
                alert_snoozes.c.kind == row.kind
            )
            con.execute(alert_snoozes.delete().where(key))
            con.execute(
                alert_snoozes.insert().values(
                    patient_key=row.patient_key, kind=row.kind, until=until, by=actor[:16], at=at
                )
            )
            detail = {"minutes": minutes, "until": until.isoformat()}
            _event(con, row.alert_id, row.patient_key, at, "snoozed", actor, detail)
        self._audit(row.patient_key, alert_id, "alert.snooze", actor=actor, role=role, at=at)
        return _found(self.get(alert_id), alert_id)

    def set_rule(self, row: RuleRow, *, actor: str, at: dt.datetime) -> None:
        """Set one rule row (``patient_key`` ``"*"``: the site's default), replacing the row of
        that patient and kind; a row the rules would not use is refused (InvalidInput)."""
        problem = rule_row_problem(row)
        if problem is not None:
            raise InvalidInput(f"{problem}; nothing was changed")
        key = (alert_rules.c.patient_key == row.patient_key) & (alert_rules.c.kind == row.kind)
        with self._tx() as con:
            con.execute(alert_rules.delete().where(key))
            con.execute(
                alert_rules.insert().values(
                    patient_key=row.patient_key,
                    kind=row.kind,
                    enabled=row.enabled,
                    threshold_mg_dl=row.threshold_mg_dl,
                    minutes=row.minutes,
                    updated_at=at,
                    updated_by=actor[:16],
                )
            )

    def remove_rule(self, patient_key: str, kind: str) -> bool:
        """Remove one rule row (the default applies again); whether there was one."""
        key = (alert_rules.c.patient_key == patient_key) & (alert_rules.c.kind == kind)
        with self._tx() as con:
            return con.execute(alert_rules.delete().where(key)).rowcount > 0

    def _audit(
        self,
        patient_key: str,
        alert_id: str,
        action: str,
        *,
        actor: str,
        role: str | None,
        at: dt.datetime,
    ) -> None:
        who = actor[:16]
        entry = AccessEntry(at, who, role or who, action, patient_key, f"alerts/{alert_id}")
        AccessAudit(self._engine).log_access(entry)


def open_alert_store(settings: LakeSettings) -> AlertStore:
    return AlertStore(metadata_engine(settings))


def _write(con: sa.Connection, change: AlertChange) -> bool:
    """The alerts row and the history row of one change; False when there is nothing to do
    (the episode already escalated or cleared)."""
    detail = json.dumps(change.detail, sort_keys=True, default=str)
    if change.event == "fired" and not change.suppressed and _deliver_late(con, change):
        event = "fired"  # an episode recorded while snoozed outlasted the snooze
    elif change.event == "fired":
        con.execute(
            alerts.insert().values(
                alert_id=change.alert_id,
                patient_key=change.patient_key,
                kind=change.kind,
                state="active",
                level=change.level,
                fired_at=change.at,
                reading_ts=None if change.kind == "stale_data" else change.at,
                glucose_mg_dl=change.glucose_mg_dl,
                detail=detail,
                suppressed=change.suppressed,
            )
        )
        event = "suppressed" if change.suppressed else "fired"
    else:
        mine = (alerts.c.alert_id == change.alert_id) & (alerts.c.state == "active")
        if change.event == "escalated":
            update = alerts.update().where(mine, alerts.c.level.is_distinct_from(change.level))
            done = con.execute(update.values(level=change.level))
        else:
            update = alerts.update().where(mine)
            values = {"state": "cleared", "cleared_at": change.at}
            done = con.execute(update.values(cleared_glucose_mg_dl=change.glucose_mg_dl, **values))
        if done.rowcount == 0:
            return False
        event = change.event
    _event(con, change.alert_id, change.patient_key, change.at, event, SYSTEM, change.detail)
    return True


def _deliver_late(con: sa.Connection, change: AlertChange) -> bool:
    """Mark the episode ``change`` fires no longer suppressed, if it is one recorded while
    snoozed and still active; whether it was."""
    mine = (alerts.c.alert_id == change.alert_id) & (alerts.c.state == "active")
    update = alerts.update().where(mine, alerts.c.suppressed.is_(True))
    return con.execute(update.values(suppressed=False)).rowcount > 0


def _event(
    con: sa.Connection,
    alert_id: str,
    patient_key: str,
    at: dt.datetime,
    event: str,
    actor: str,
    detail: dict[str, Any],
) -> None:
    con.execute(
        alert_events.insert().values(
            alert_id=alert_id,
            patient_key=patient_key,
            at=at,
            event=event,
            actor=actor[:16],
            detail=json.dumps(detail, sort_keys=True, default=str),
        )
    )


def _alert(con: sa.Connection, alert_id: str) -> sa.Row[Any]:
    row = con.execute(sa.select(alerts).where(alerts.c.alert_id == alert_id)).first()
    if row is None:
        raise NotFound(f"no alert {alert_id!r}; `glucosestream alerts list` shows the alerts")
    return row


def _found(row: AlertRow | None, alert_id: str) -> AlertRow:
    if row is None:
        raise NotFound(f"no alert {alert_id!r}; `glucosestream alerts list` shows the alerts")
    return row


def _snooze_minutes(kind: str, minutes: float) -> float:
    longest = MAX_URGENT_LOW_SNOOZE_MIN if kind == "urgent_low" else MAX_SNOOZE_MIN
    if not (0 < minutes <= longest):  # also refuses NaN
        raise InvalidInput(
            f"cannot snooze {kind} for {minutes} minutes: give more than 0 and at most "
            f"{longest:g} minutes"
        )
    return minutes


def _alert_rows(con: sa.Connection, rows: Sequence[sa.Row[Any]]) -> list[AlertRow]:
    """The rows as AlertRows, with their snoozes and delivery counts."""
    if not rows:
        return []
    ids = [r.alert_id for r in rows]
    counts = sa.select(
        webhook_outbox.c.alert_id, webhook_outbox.c.state, sa.func.count().label("n")
    ).where(webhook_outbox.c.alert_id.in_(ids))
    deliveries: dict[str, dict[str, int]] = {i: {} for i in ids}
    for alert_id, state, n in con.execute(counts.group_by(webhook_outbox.c.alert_id, "state")):
        deliveries[alert_id][state] = int(n)
    patients = {r.patient_key for r in rows}
    snoozes = {
        (s.patient_key, s.kind): _utc(s.until)
        for s in con.execute(
            sa.select(alert_snoozes).where(alert_snoozes.c.patient_key.in_(patients))
        )
    }
    return [
        _alert_row(r, snoozes.get((r.patient_key, r.kind)), deliveries[r.alert_id]) for r in rows
    ]


def _alert_row(
    r: sa.Row[Any], snoozed_until: dt.datetime | None, deliveries: dict[str, int]
) -> AlertRow:
    return AlertRow(
        alert_id=r.alert_id,
        patient_key=r.patient_key,
        kind=r.kind,
        state=r.state,
        level=r.level,
        fired_at=_utc(r.fired_at),
        reading_ts=_utc_or_none(r.reading_ts),
        glucose_mg_dl=r.glucose_mg_dl,
        cleared_at=_utc_or_none(r.cleared_at),
        acked_at=_utc_or_none(r.acked_at),
        acked_by=r.acked_by,
        suppressed=bool(r.suppressed),
        snoozed_until=snoozed_until,
        deliveries=deliveries,
    )


def _utc(at: dt.datetime) -> dt.datetime:
    """SQLite gives back naive datetimes: they are UTC."""
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)


def _utc_or_none(at: dt.datetime | None) -> dt.datetime | None:
    return None if at is None else _utc(at)
