"""The lake: the raw zone (immutable batch files), the Iceberg catalog with the tables of the
registry it is opened with, and the metadata store (patients, batches, runs and the snapshots
they published, checks; tokens, clinics, the audit trail and the privacy ledger).

The bottom layer of the stages: it imports only ``config``, ``errors``, ``readings``,
``events``, ``clock`` and third-party code (scripts/import_layers.py). It names no table's
schema: the registry above it (``pipeline.table_registry``) does. Other packages import from
here, never from a submodule.

Layout of a lake folder::

    <root>/raw/batches/<batch_id>/   readings.parquet, manifest.json, and when they have rows
                                     quarantine.parquet, events.parquet, event_quarantine.parquet,
                                     devicestatus.parquet (Nightscout devicestatus, kept raw)
    <root>/warehouse/                Iceberg data and metadata (curated.*, results.*)
    <root>/_state/                   catalog.db, metadata.db, pseudonym.key (not data: protect it)
"""

from __future__ import annotations

from pyiceberg.manifest import DataFile

from glucosestream.lake.access_audit import AccessAudit, AccessEntry
from glucosestream.lake.access_store import AccessStores, open_access
from glucosestream.lake.always_on_rows import LIVE_READINGS_KEPT
from glucosestream.lake.catalog import Lakehouse, open_lakehouse
from glucosestream.lake.clinic_store import ClinicStore
from glucosestream.lake.database import (
    Store,
    create_private_file,
    metadata_engine,
    private_state_path,
)
from glucosestream.lake.lock import HeldLock, run_lock, spanning_lease, take_run_lease
from glucosestream.lake.maintenance import MaintenanceReport, maintain
from glucosestream.lake.metadata import (
    BatchRecord,
    CheckRow,
    DeviceRecord,
    MetadataStore,
    PublishedSnapshots,
    insert_batch,
    open_metadata,
)
from glucosestream.lake.metadata_schema import (
    alert_events,
    alert_rules,
    alert_snoozes,
    alerts,
    batches,
    ingest_requests,
    live_readings,
    patients,
    webhook_outbox,
    webhooks,
)
from glucosestream.lake.patient_directory import (
    LABEL_MAX_CHARS,
    LABEL_PATTERN,
    PatientDirectory,
    PatientIdentity,
    checked_label,
    open_patient_directory,
)
from glucosestream.lake.privacy_ledger import PrivacyLedger
from glucosestream.lake.row_estimates import readings_since
from glucosestream.lake.run_lease import RunLease, open_lease
from glucosestream.lake.scope import Scope
from glucosestream.lake.staging_zone import StagingZone, TableWriter
from glucosestream.lake.storage import Storage, open_storage
from glucosestream.lake.table_spec import TableRegistry, TableSpec, WriteMode
from glucosestream.lake.token_store import TokenRecord, TokenStore
from glucosestream.lake.zones import (
    DEVICESTATUS_SCHEMA,
    EVENT_QUARANTINE_SCHEMA,
    QUARANTINE_SCHEMA,
    RawBatch,
    RawZone,
)

__all__ = [
    "DEVICESTATUS_SCHEMA",
    "EVENT_QUARANTINE_SCHEMA",
    "LABEL_MAX_CHARS",
    "LABEL_PATTERN",
    "LIVE_READINGS_KEPT",
    "QUARANTINE_SCHEMA",
    "AccessAudit",
    "AccessEntry",
    "AccessStores",
    "BatchRecord",
    "CheckRow",
    "ClinicStore",
    "DataFile",
    "DeviceRecord",
    "HeldLock",
    "Lakehouse",
    "MaintenanceReport",
    "MetadataStore",
    "PatientDirectory",
    "PatientIdentity",
    "PrivacyLedger",
    "PublishedSnapshots",
    "RawBatch",
    "RawZone",
    "RunLease",
    "Scope",
    "StagingZone",
    "Storage",
    "Store",
    "TableRegistry",
    "TableSpec",
    "TableWriter",
    "TokenRecord",
    "TokenStore",
    "WriteMode",
    "alert_events",
    "alert_rules",
    "alert_snoozes",
    "alerts",
    "batches",
    "checked_label",
    "create_private_file",
    "ingest_requests",
    "insert_batch",
    "live_readings",
    "maintain",
    "metadata_engine",
    "open_access",
    "open_lakehouse",
    "open_lease",
    "open_metadata",
    "open_patient_directory",
    "open_storage",
    "patients",
    "private_state_path",
    "readings_since",
    "run_lock",
    "spanning_lease",
    "take_run_lease",
    "webhook_outbox",
    "webhooks",
]
