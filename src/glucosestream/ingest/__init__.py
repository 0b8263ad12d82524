"""Ingest: validate → normalise units and time → pseudonymise → dedupe → raw zone.

Every received reading is accounted for: accepted into a raw batch, counted as a duplicate, or
quarantined with a reason (received = accepted + duplicates + quarantined, always). Events
(insulin, carbs, exercise, device events, finger-sticks, ketones, notes) likewise, and a note
with nothing kept is counted as dropped (``event_checks``, ``event_batch``). ``accept`` is the
entry point for files and for HTTP payloads (``basal_profiles``: several files at once, a Nightscout
profile laid over the others' days); ``api`` holds the HTTP routes (readings, and the
Nightscout entries, treatments and devicestatus uploads).
"""

from __future__ import annotations

from glucosestream.ingest.accept import IngestReport, ingest_path, ingest_records
from glucosestream.ingest.basal_profiles import ingest_paths

__all__ = ["IngestReport", "ingest_path", "ingest_paths", "ingest_records"]
