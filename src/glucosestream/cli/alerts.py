"""Commands over alerts and their delivery: ``alerts list``, ``alerts ack`` and
``alerts webhook add|list|remove``.

A contract other tools call: the ``--json`` shapes and the exit codes (0 done, 1 an error with
its one-line message, a NotFound included; 2 a usage error, as ``cli.base`` defines them) stay
stable. A webhook's secret is printed once, by ``webhook add``, and never listed. ``--patient``
takes the patient's id as ingested, as every other command does.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

import click

from glucosestream.alerts.outbox import OUTBOX_STATES, open_outbox
from glucosestream.alerts.store import AlertRow, open_alert_store
from glucosestream.alerts.webhooks import Webhook, open_webhook_store
from glucosestream.cli.base import Context, common, main
from glucosestream.errors import ConfigError, NotFound
from glucosestream.ingest.identity import load_secret, patient_key
from glucosestream.lake import open_metadata

__all__ = ["ack", "alerts", "list_alerts", "webhook_add", "webhook_list", "webhook_remove"]

_EVERY_PATIENT: Final = "*"
_CLI: Final = "cli"  # the actor and role of what the command line does, in history and audit


@main.group()
def alerts() -> None:
    """Alerts (fired on arrival by `serve`) and the webhooks they are delivered to."""


@alerts.command("list")
@click.option("--patient", "patient_id", help="Only this patient's alerts (id as ingested).")
@click.option("--active", "active_only", is_flag=True, help="Only alerts not cleared yet.")
@click.option(
    "--limit", type=click.IntRange(1, 100_000), default=100, show_default=True, help="Alerts shown."
)
@common
def list_alerts(ctx: Context, patient_id: str | None, active_only: bool, limit: int) -> None:
    """List alerts newest first: kind, state, times, glucose, acknowledgement, snooze, and
    their webhook deliveries by state (dead letters included).

    Example: glucosestream alerts list --patient P00001 --active --json
    """
    key = _known_patient(ctx, patient_id) if patient_id is not None else None
    found = open_alert_store(ctx.settings.lake).list_alerts(
        patient_key=key, active_only=active_only, limit=limit
    )
    names = open_webhook_store(ctx.settings.lake).external_ids(a.patient_key for a in found)
    rows = [_alert_row(a, names) for a in found]
    ctx.emit({"alerts": rows}, _alert_table(rows) if rows else "no alerts")


@alerts.command()
@click.argument("alert_id")
@common
def ack(ctx: Context, alert_id: str) -> None:
    """Acknowledge an alert (by its id from `alerts list`): no escalation is sent for it any
    more; its clear still is. Recorded in its history and the audit trail.

    Example: glucosestream alerts ack al_20260201T120000123456Z-3f9a
    """
    store = open_alert_store(ctx.settings.lake)
    alert_id = alert_id.strip()
    before = store.get(alert_id)
    if before is None:
        raise NotFound(f"no alert {alert_id!r}; `glucosestream alerts list` shows the alerts")
    done = before if before.acked_at is not None else None
    if done is None:
        done = store.ack(alert_id, actor=_CLI, role=_CLI, at=dt.datetime.now(dt.UTC))
    names = open_webhook_store(ctx.settings.lake).external_ids([done.patient_key])
    row = _alert_row(done, names)
    said = "was already acknowledged" if before.acked_at is not None else "acknowledged"
    ctx.emit(
        row,
        f"alert {row['alert_id']} ({row['kind']}, patient {row['patient']}) {said} at "
        f"{row['acked_at']} by {row['acked_by']}",
    )


@alerts.group()
def webhook() -> None:
    """Manage the webhooks alerts are POSTed to (signed as Standard Webhooks 1.0)."""


@webhook.command("add")
@click.argument("url")
@click.option(
    "--patient", "patient_id", help="Only this patient's alerts (id as ingested); default: all."
)
@click.option(
    "--secret",
    help="Signing secret, whsec_ + base64 of 24-64 random bytes; default: a new one.",
)
@common
def webhook_add(ctx: Context, url: str, patient_id: str | None, secret: str | None) -> None:
    """Add a webhook; its signing secret is printed once and stored only sealed.

    Example: glucosestream alerts webhook add https://pager.example.org/hooks/cgm
    """
    key = _known_patient(ctx, patient_id) if patient_id is not None else None
    store = open_webhook_store(ctx.settings.lake)
    hook, secret = store.add(url, at=dt.datetime.now(dt.UTC), patient_key=key, secret=secret)
    who = f"patient {patient_id}" if patient_id is not None else "every patient"
    ctx.emit(
        {
            "webhook_id": hook.webhook_id,
            "url": hook.url,
            "patient": patient_id if patient_id is not None else _EVERY_PATIENT,
            "secret": secret,
            "created_at": _when(hook.created_at),
        },
        f"webhook {hook.webhook_id} added: alerts of {who} are POSTed to {hook.url}\n"
        f"signing secret: {secret}\nStore it now: it is not shown again.",
    )


@webhook.command("list")
@common
def webhook_list(ctx: Context) -> None:
    """List webhooks (removed ones too) with their deliveries by state; never a secret.

    Example: glucosestream alerts webhook list --json
    """
    store = open_webhook_store(ctx.settings.lake)
    hooks = store.webhooks()
    names = store.external_ids(h.patient_key for h in hooks if h.patient_key is not None)
    counts = open_outbox(ctx.settings.lake).counts()
    rows = [_webhook_row(h, names, counts.get(h.webhook_id, {})) for h in hooks]
    ctx.emit({"webhooks": rows}, _webhook_table(rows) if rows else "no webhooks yet")


@webhook.command("remove")
@click.argument("webhook_id")
@common
def webhook_remove(ctx: Context, webhook_id: str) -> None:
    """Remove a webhook (by its id from `alerts webhook list`): nothing more is sent to it and
    its pending deliveries are cancelled.

    Example: glucosestream alerts webhook remove wh_3f9a0c12d4e5f6a7b8c9
    """
    now = dt.datetime.now(dt.UTC)
    store = open_webhook_store(ctx.settings.lake)
    hook, cancelled = store.remove(webhook_id.strip(), at=now)
    already = hook.disabled_at is not None and hook.disabled_at < now
    done = "was already removed" if already else "removed"
    ctx.emit(
        {
            "webhook_id": hook.webhook_id,
            "url": hook.url,
            "disabled_at": _when(hook.disabled_at),
            "cancelled": cancelled,
        },
        f"webhook {hook.webhook_id} ({hook.url}) {done} at {_when(hook.disabled_at)}; "
        f"{cancelled} pending deliveries cancelled",
    )


def _known_patient(ctx: Context, patient_id: str) -> str:
    """The key of a patient the lake has ingested (NotFound otherwise: a typo must not make a
    webhook that never fires)."""
    if not patient_id.strip():
        raise ConfigError("--patient is empty; pass the patient's id as ingested")
    key = patient_key(load_secret(ctx.settings), patient_id)
    if key not in set(open_metadata(ctx.settings.lake).patient_keys()):
        raise NotFound("no patient with that id in this lake; check --patient (the id as ingested)")
    return key


def _alert_row(alert: AlertRow, names: dict[str, str]) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id,
        "patient": names.get(alert.patient_key, "?"),
        "kind": alert.kind,
        "state": alert.state,
        "level": alert.level,
        "fired_at": _when(alert.fired_at),
        "reading_ts": _when(alert.reading_ts),
        "glucose_mg_dl": alert.glucose_mg_dl,
        "cleared_at": _when(alert.cleared_at),
        "acked_at": _when(alert.acked_at),
        "acked_by": alert.acked_by,
        "suppressed": alert.suppressed,
        "snoozed_until": _when(alert.snoozed_until),
        "deliveries": {state: alert.deliveries.get(state, 0) for state in OUTBOX_STATES},
    }


def _alert_table(rows: list[dict[str, Any]]) -> str:
    header = ["alert_id", "patient", "kind", "state", "fired", "mg/dL", "cleared", "acked"]
    cells = [[*header, "deliveries"]]
    for row in rows:
        glucose = row["glucose_mg_dl"]
        kind = row["kind"] + (f" ({row['level']})" if row["level"] else "")
        state = row["state"] + (" suppressed" if row["suppressed"] else "")
        sent = ", ".join(f"{n} {s}" for s, n in row["deliveries"].items() if n) or "-"
        cells.append(
            [
                row["alert_id"],
                row["patient"],
                kind,
                state,
                row["fired_at"],
                "-" if glucose is None else f"{glucose:g}",
                row["cleared_at"] or "-",
                row["acked_at"] or "-",
                sent,
            ]
        )
    return _table(cells)


def _webhook_row(hook: Webhook, names: dict[str, str], counts: dict[str, int]) -> dict[str, Any]:
    patient = _EVERY_PATIENT if hook.patient_key is None else names.get(hook.patient_key, "?")
    return {
        "webhook_id": hook.webhook_id,
        "url": hook.url,
        "patient": patient,
        "created_at": _when(hook.created_at),
        "created_by": hook.created_by,
        "disabled_at": _when(hook.disabled_at),
        "deliveries": {state: counts.get(state, 0) for state in OUTBOX_STATES},
    }


def _webhook_table(rows: list[dict[str, Any]]) -> str:
    header = ["webhook_id", "patient", "created", "removed", "pending", "delivered", "dead", "url"]
    cells = [header]
    for row in rows:
        deliveries = row["deliveries"]
        waiting = deliveries["pending"] + deliveries["delivering"]
        cells.append(
            [
                row["webhook_id"],
                row["patient"],
                row["created_at"],
                row["disabled_at"] or "-",
                str(waiting),
                str(deliveries["delivered"]),
                str(deliveries["dead"]),
                row["url"],
            ]
        )
    return _table(cells)


def _table(cells: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = ("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells)
    return "\n".join(line.rstrip() for line in lines)


def _when(at: dt.datetime | None) -> str | None:
    return at.isoformat(timespec="seconds") if at is not None else None
