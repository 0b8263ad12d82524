"""Ingest: validate → normalise units and time → pseudonymise → dedupe → raw zone.

Every received reading is accounted for: accepted into a raw batch, counted as a duplicate, or
quarantined with a reason (received = accepted + duplicates + quarantined, always). ``accept``
is the entry point for files and for HTTP payloads; ``api`` holds the HTTP routes.
"""

from __future__ import annotations

from glucosestream.ingest.accept import IngestReport, ingest_path, ingest_records

__all__ = ["IngestReport", "ingest_path", "ingest_records"]
