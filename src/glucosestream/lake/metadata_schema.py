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
    "batches",
    "check_results",
    "clinic_patients",
    "devices",
    "ingest_requests",
    "lake_keys",
    "legacy_token_sha1",
    "patients",
    "privacy_ledger",
    "run_snapshots",
    "runs",
    "set_aside",
    "token_api_secrets",
    "token_patients",
    "tokens",
]

METADATA = sa.MetaData()

patients = sa.Table(
    "patients",
    METADATA,
    sa.Column("patient_key", sa.String(64), primary_key=True),
    sa.Column("external_id", sa.String(256), nullable=False),
    sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
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

LEGACY_METADATA = sa.MetaData()
# Until issue 13: each token's plain SHA-1, which the api-secret header accepted as it was
# stored. Rekeyed into ``token_api_secrets`` and dropped when a store is opened.
legacy_token_sha1 = sa.Table(
    "token_sha1",
    LEGACY_METADATA,
    sa.Column("token_sha1", sa.String(40), primary_key=True),
    sa.Column("token_sha256", sa.String(64), nullable=False),
)
