"""The rows `serve` keeps in the metadata store for a patient beyond a run's (live readings,
alerts, webhook deliveries), as a run's closing and an erasure change them: each function runs
inside the caller's transaction."""

from __future__ import annotations

import datetime as dt
from typing import Final

import sqlalchemy as sa

from glucosestream.lake.metadata_schema import (
    alert_events,
    alert_rules,
    alert_snoozes,
    alerts,
    batches,
    live_readings,
    webhook_outbox,
    webhooks,
)

__all__ = ["LIVE_READINGS_KEPT", "forget_always_on", "settle_live_readings"]

# How long ``live_readings`` keeps a reading (its ``ts``); each run's closing deletes older rows.
LIVE_READINGS_KEPT: Final = dt.timedelta(hours=24)


def settle_live_readings(con: sa.Connection, run_id: str, finished_at: dt.datetime) -> None:
    """In a run's closing transaction: its loaded batches' live readings are settled by it (a
    run that did not publish loaded none), its rejected batches' are deleted (never
    published), and so are those older than ``LIVE_READINGS_KEPT``."""
    of_batches = sa.select(batches.c.batch_id)
    loaded = of_batches.where(batches.c.loaded_run_id == run_id)
    rejected = of_batches.where(batches.c.rejected_run_id == run_id)
    con.execute(
        live_readings.update()
        .where(live_readings.c.batch_id.in_(loaded))
        .values(settled_run_id=run_id)
    )
    con.execute(live_readings.delete().where(live_readings.c.batch_id.in_(rejected)))
    con.execute(live_readings.delete().where(live_readings.c.ts < finished_at - LIVE_READINGS_KEPT))


def forget_always_on(con: sa.Connection, patient_key: str) -> None:
    """A patient's unpublished readings, alerts with their history (append-only but for
    erasure, as the access log's patient rows), snoozes and rules, the webhook deliveries of
    their alerts (a body holds their external id and glucose values) and the webhooks for them
    alone (a URL may name them)."""
    theirs = sa.select(alerts.c.alert_id).where(alerts.c.patient_key == patient_key)
    con.execute(webhook_outbox.delete().where(webhook_outbox.c.alert_id.in_(theirs)))
    for table in (alert_events, alerts, alert_snoozes, alert_rules, live_readings):
        con.execute(table.delete().where(table.c.patient_key == patient_key))
    con.execute(webhooks.delete().where(webhooks.c.patient_key == patient_key))
