"""The lake: the raw zone (immutable batch files), the Iceberg catalog with the curated and
results tables, and the metadata store (patients, batches, runs, checks, tokens).

Layout of a lake folder::

    <root>/raw/batches/<batch_id>/   readings.parquet, quarantine.parquet, manifest.json
    <root>/warehouse/                Iceberg data and metadata (curated.*, results.*)
    <root>/_state/                   catalog.db, metadata.db, pseudonym.key (not data: protect it)
"""

from __future__ import annotations

from glucosestream.lake.catalog import Lakehouse, open_lakehouse
from glucosestream.lake.metadata import MetadataStore, open_metadata
from glucosestream.lake.storage import Storage, open_storage
from glucosestream.lake.zones import RawBatch, RawZone

__all__ = [
    "Lakehouse",
    "MetadataStore",
    "RawBatch",
    "RawZone",
    "Storage",
    "open_lakehouse",
    "open_metadata",
    "open_storage",
]
