"""Alerts: evaluated on each patient's newest readings as they arrive, kept with their history,
delivered by webhook.

``rules`` holds the definitions (defaults and per-patient overrides), ``forecast`` the AR2
forecast behind urgent low soon, ``evaluate`` the PURE decision (which alerts fire, escalate or
clear on a patient's window of readings), ``store`` the alerts, their history and the
transaction that also queues their deliveries, ``engine`` the thread that evaluates each
committed batch off the ingest path. ``changes`` is what the store writes and the webhook outbox
delivers; ``webhooks``, ``outbox`` and ``delivery`` sign, queue and send it. Definitions and
their sources: docs/alerts.md.
"""

from glucosestream.alerts.changes import KINDS, AlertChange
from glucosestream.alerts.delivery import DeliveryWorker
from glucosestream.alerts.engine import AlertEngine
from glucosestream.alerts.evaluate import ActiveAlert, evaluate
from glucosestream.alerts.forecast import ar2
from glucosestream.alerts.outbox import OutboxStore, enqueue, open_outbox
from glucosestream.alerts.rules import DEFAULT_RULES, Rule, Rules, rules_for
from glucosestream.alerts.store import AlertEvent, AlertRow, AlertStore, open_alert_store
from glucosestream.alerts.webhooks import Webhook, WebhookStore, open_webhook_store

__all__ = [
    "DEFAULT_RULES",
    "KINDS",
    "ActiveAlert",
    "AlertChange",
    "AlertEngine",
    "AlertEvent",
    "AlertRow",
    "AlertStore",
    "DeliveryWorker",
    "OutboxStore",
    "Rule",
    "Rules",
    "Webhook",
    "WebhookStore",
    "ar2",
    "enqueue",
    "evaluate",
    "open_alert_store",
    "open_outbox",
    "open_webhook_store",
    "rules_for",
]
