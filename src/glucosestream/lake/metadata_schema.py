"""The tables of the metadata store (SQLAlchemy Core), in one ``METADATA``.

Pipeline state (patients, batches, runs, check_results) is used through ``metadata``; access
state (tokens and the patients they are bound to, clinics, the access log, the privacy ledger)
through ``access_store``. The access log and the privacy ledger are append-only: no code path
updates or deletes their rows.

No stored value is a credential: a token is kept as its SHA-256 (a bearer token is hashed before
it is looked up), and the SHA-1 a Nightscout uploader sends as ``api-secret`` only as an
HMAC-SHA256 of it under the lake's access key (``token_api_secrets``). ``LEGACY_METADATA`` holds
tables an older release made, read once to migrate them and then dropped.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "LEGACY_METADATA",
    "METADATA",
    "access_log",
    "alert_events",
    "alert_rules",
    "alert_snoozes",
    "alerts",
    "batches",
    "check_results",
    "clinic_patients",
    "devices",
    "ingest_requests",
    "lake_keys",
    "legacy_token_sha1",
    "live_readings",
    "patient_labels",
    "patients",
    "privacy_ledger",
    "run_snapshots",
    "runs",
    "set_aside",
    "token_api_secrets",
    "token_patients",
    "tokens",
    "webhook_outbox",
    "webhooks",
]

METADATA = sa.MetaData()

patients = sa.Table(
    "patients",
    METADATA,
    sa.Column("patient_key", sa.String(64), primary_key=True),
    sa.Column("external_id", sa.String(256), nullable=False),
    sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
)
# A display label for a patient (a name or record number set by the clinic), shown beside the id
# as ingested to those entitled to the patient. Kept here only, never in the lake's tables or
# files; erased with the patient (``MetadataStore.forget_patient``).
patient_labels = sa.Table(
    "patient_labels",
    METADATA,
    sa.Column("patient_key", sa.String(64), primary_key=True),
    sa.Column("label", sa.String(256), nullable=False),
    sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("set_by", sa.String(16), nullable=False),
)
# Every device (keyed pseudonym of its serial) that published readings came from, per patient.
devices = sa.Table(
    "devices",
    METADATA,
    sa.Column("patient_key", sa.String(64), primary_key=True),
    sa.Column("device_id", sa.String(64), primary_key=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("first_reading_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("registered_run_id", sa.String(64), nullable=False),
)
batches = sa.Table(
    "batches",
    METADATA,
    sa.Column("batch_id", sa.String(64), primary_key=True),
    sa.Column("source_name", sa.String(1024), nullable=False),
    sa.Column("source_sha256", sa.String(64), nullable=False, index=True),
    sa.Column("format", sa.String(32), nullable=False),
    sa.Column("received", sa.Integer, nullable=False),
    sa.Column("accepted", sa.Integer, nullable=False),
    sa.Column("duplicates", sa.Integer, nullable=False),
    sa.Column("quarantined", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("loaded_run_id", sa.String(64), nullable=True, index=True),
    sa.Column("rejected_run_id", sa.String(64), nullable=True, index=True),
    sa.Column("rejected_reason", sa.Text, nullable=True),
)
# One row per HTTP request accepted (idempotency key = SHA-256 of what was posted): the batch it
# landed in and its own accounting, so a re-post of the same body changes nothing.
ingest_requests = sa.Table(
    "ingest_requests",
    METADATA,
    sa.Column("request_sha256", sa.String(64), primary_key=True),
    sa.Column("batch_id", sa.String(64), nullable=False, index=True),
    sa.Column("received", sa.Integer, nullable=False),
    sa.Column("accepted", sa.Integer, nullable=False),
    sa.Column("duplicates", sa.Integer, nullable=False),
    sa.Column("quarantined", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
runs = sa.Table(
    "runs",
    METADATA,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("report", sa.Text, nullable=True),
)
# The Iceberg snapshot of each table a published run recorded (a table without data yet: no
# row), written in the transaction that marks the run published. Readers use the last
# published run's rows. Until issue 14 these were columns of ``runs`` (``<table>_snapshot_id``,
# one per table): database.py moves them here when it opens an older store.
run_snapshots = sa.Table(
    "run_snapshots",
    METADATA,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("table_name", sa.String(64), primary_key=True),
    sa.Column("snapshot_id", sa.BigInteger, nullable=False),
)
check_results = sa.Table(
    "check_results",
    METADATA,
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("check_name", sa.String(64), nullable=False),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("failed_rows", sa.Integer, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
)
# Each reading a published run set aside (quality.row_checks): its keys, batch and reason, no
# glucose value. Written in the publish transaction, so a run that did not publish recorded none.
set_aside = sa.Table(
    "set_aside",
    METADATA,
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("batch_id", sa.String(64), nullable=False, index=True),
    sa.Column("patient_key", sa.String(64), nullable=False, index=True),
    sa.Column("device_id", sa.String(64), nullable=False),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=True),
    sa.Column("reason", sa.String(64), nullable=False),
)
tokens = sa.Table(
    "tokens",
    METADATA,
    sa.Column("token_sha256", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("clinic_id", sa.String(128), nullable=True),
    sa.Column("label", sa.String(256), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # Nullable, so a store an older release made gains them on open (database.py).
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
)
# Nightscout uploaders send the SHA-1 of their secret (``api-secret``). Kept: HMAC-SHA256 of that
# SHA-1 under the lake's access key, so the token is found from the header and nothing stored
# can be sent as one.
token_api_secrets = sa.Table(
    "token_api_secrets",
    METADATA,
    sa.Column("api_secret_hmac", sa.String(64), primary_key=True),
    sa.Column("token_sha256", sa.String(64), nullable=False, index=True),
)
# Keys the lake keeps in its database: only when the metadata store is a database URL (shared
# by every server on it); a SQLite store keeps its access key in a file beside it instead.
lake_keys = sa.Table(
    "lake_keys",
    METADATA,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("key_hex", sa.String(128), nullable=False),
)
token_patients = sa.Table(
    "token_patients",
    METADATA,
    sa.Column("token_sha256", sa.String(64), primary_key=True),
    sa.Column("patient_key", sa.String(64), primary_key=True, index=True),
)
clinic_patients = sa.Table(
    "clinic_patients",
    METADATA,
    sa.Column("clinic_id", sa.String(128), primary_key=True),
    sa.Column("patient_key", sa.String(64), primary_key=True, index=True),
)
access_log = sa.Table(
    "access_log",
    METADATA,
    sa.Column("entry_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("token_id", sa.String(16), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("patient_key", sa.String(64), nullable=True, index=True),
    sa.Column("resource", sa.String(512), nullable=False),
)
privacy_ledger = sa.Table(
    "privacy_ledger",
    METADATA,
    sa.Column("entry_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("dataset", sa.String(128), nullable=False, index=True),
    sa.Column("epsilon", sa.Float, nullable=False),
    sa.Column("mechanism", sa.String(128), nullable=False),
    sa.Column("query", sa.String(512), nullable=False),
    sa.Column("token_id", sa.String(16), nullable=False),
)

# Always on (issue 17) ---------------------------------------------------------------------------
# The readings HTTP ingest accepted in the last hours, written in the transaction that records
# their batch (first arrival wins, as in a run). Those no run has settled yet are what followers
# see before the next publish; all of them are the recent history alerts are evaluated on after
# a restart. A run's publish sets ``settled_run_id`` on the rows of the batches it loaded and
# deletes those of batches it rejected; rows older than a day are deleted.
live_readings = sa.Table(
    "live_readings",
    METADATA,
    sa.Column("patient_key", sa.String(64), primary_key=True),
    sa.Column("device_id", sa.String(64), primary_key=True),
    sa.Column("ts", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("glucose_mg_dl", sa.Float, nullable=False),
    sa.Column("flags", sa.Integer, nullable=False),
    sa.Column("tz", sa.String(64), nullable=False),
    sa.Column("direction", sa.String(32), nullable=True),
    sa.Column("rate_mg_dl_min", sa.Float, nullable=True),
    sa.Column("batch_id", sa.String(64), nullable=False, index=True),
    sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("settled_run_id", sa.String(64), nullable=True),
    sa.Index("ix_live_readings_patient_ts", "patient_key", "ts"),
    sa.Index("ix_live_readings_ts", "ts"),  # the publish deletes those older than a day
)
# A patient's alert thresholds where they differ from the defaults (alerts/rules.py);
# patient_key "*" is the site's default for every patient.
alert_rules = sa.Table(
    "alert_rules",
    METADATA,
    sa.Column("patient_key", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("threshold_mg_dl", sa.Float, nullable=True),
    sa.Column("minutes", sa.Float, nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_by", sa.String(16), nullable=False),
)
# One row per alert episode. At most one active episode per patient and kind: the partial unique
# index makes a second fire (another thread, a restart, a retry) fail instead of firing twice.
alerts = sa.Table(
    "alerts",
    METADATA,
    sa.Column("alert_id", sa.String(32), primary_key=True),
    sa.Column("patient_key", sa.String(64), nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # active | cleared
    sa.Column("level", sa.String(16), nullable=True),  # stale data: warning | urgent
    sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reading_ts", sa.DateTime(timezone=True), nullable=True),
    sa.Column("glucose_mg_dl", sa.Float, nullable=True),
    sa.Column("detail", sa.Text, nullable=False),  # JSON: forecast, rate, minutes stale
    sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("cleared_glucose_mg_dl", sa.Float, nullable=True),
    sa.Column("acked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("acked_by", sa.String(16), nullable=True),
    sa.Column("suppressed", sa.Boolean, nullable=False),  # fired while snoozed: not delivered
    sa.Index(
        "ux_alerts_one_active",
        "patient_key",
        "kind",
        unique=True,
        sqlite_where=sa.text("state = 'active'"),
        postgresql_where=sa.text("state = 'active'"),
    ),
)
alert_snoozes = sa.Table(
    "alert_snoozes",
    METADATA,
    sa.Column("patient_key", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("until", sa.DateTime(timezone=True), nullable=False),
    sa.Column("by", sa.String(16), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)
# The alert history, append-only like the access log: fired, escalated, cleared, acked, snoozed,
# suppressed; actor "system", "cli" or a token id.
alert_events = sa.Table(
    "alert_events",
    METADATA,
    sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("alert_id", sa.String(32), nullable=False, index=True),
    sa.Column("patient_key", sa.String(64), nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
)
# Where alerts are delivered. The signing secret is kept sealed under the lake's access key
# (alerts/webhooks.py), never as it was given: nothing stored can sign a delivery by itself.
webhooks = sa.Table(
    "webhooks",
    METADATA,
    sa.Column("webhook_id", sa.String(32), primary_key=True),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("patient_key", sa.String(64), nullable=True),  # NULL: every patient
    sa.Column("secret_sealed", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(16), nullable=False),
    sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
)
# The transactional outbox: one row per (webhook, alert event), written in the transaction that
# fires or clears the alert; delivery_id is the Standard Webhooks ``webhook-id`` (the
# idempotency key, the same on every retry) and the body is sent byte-identical each time.
webhook_outbox = sa.Table(
    "webhook_outbox",
    METADATA,
    sa.Column("delivery_id", sa.String(40), primary_key=True),
    sa.Column("webhook_id", sa.String(32), nullable=False, index=True),
    sa.Column("alert_id", sa.String(32), nullable=False, index=True),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column(
        "state", sa.String(16), nullable=False
    ),  # pending|delivering|delivered|dead|cancelled
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("claimed_by", sa.String(64), nullable=True),
    sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_status", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    sa.UniqueConstraint("webhook_id", "alert_id", "event", "seq"),
    sa.Index("ix_webhook_outbox_due", "state", "next_attempt_at"),
)

LEGACY_METADATA = sa.MetaData()
# Until issue 13: each token's plain SHA-1, which the api-secret header accepted as it was
# stored. Rekeyed into ``token_api_secrets`` and dropped when a store is opened.
legacy_token_sha1 = sa.Table(
    "token_sha1",
    LEGACY_METADATA,
    sa.Column("token_sha1", sa.String(40), primary_key=True),
    sa.Column("token_sha256", sa.String(64), nullable=False),
)
