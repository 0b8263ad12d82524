"""Alerts: evaluated on each patient's newest readings as they arrive, kept with their history,
delivered by webhook.

``rules`` holds the definitions (defaults and per-patient overrides), ``forecast`` the AR2
forecast behind urgent low soon, ``evaluate`` the PURE decision (which alerts fire, escalate or
clear on a patient's window of readings), ``store`` the alerts, their history and the
transaction that also queues their deliveries, ``engine`` the thread that evaluates each
committed batch off the ingest path. ``changes`` is what the store writes and the webhook outbox
delivers. Definitions and their sources: docs/alerts.md.
"""

from glucosestream.alerts.changes import KINDS, AlertChange
from glucosestream.alerts.forecast import ar2
from glucosestream.alerts.rules import DEFAULT_RULES, Rule, Rules, rules_for

__all__ = ["DEFAULT_RULES", "KINDS", "AlertChange", "Rule", "Rules", "ar2", "rules_for"]
