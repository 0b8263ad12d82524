"""Source formats: each module turns one kind of input into *raw rows* (see ``rows``).

One module per source: ``dexcom`` (Clarity CSV), ``libreview`` (LibreView CSV), ``carelink``
(Medtronic CareLink CSV), ``nightscout`` (entries JSON and CSV; its treatments in
``nightscout_treatments``, profiles' basal schedules in ``nightscout_profile``), ``tidepool``
(datums; its events in ``tidepool_events``), ``fhir`` (HL7 FHIR CGM bundles and observations;
events in ``fhir_events``) and ``tabular`` (plain CSV, JSON lines, JSON, Parquet); ``delimited``
holds what the text exports share, ``jsontext`` reads JSON within its documented depth limit,
and ``detect`` tells them apart. Readings become raw rows (``rows``); insulin, carbs and the
other events become raw event rows (``event_rows``).

Parsers check structure only (a file that cannot be read at all raises ``InvalidInput`` naming
the line; no other exception leaves a parser, whatever the bytes); the values are validated by
``ingest``, which quarantines bad rows with a reason.
Names, birth dates and other preamble cells are never read into raw rows.
"""

from __future__ import annotations

from glucosestream.formats.detect import FORMATS, Detected, detect, detect_format, read_raw_rows
from glucosestream.formats.rows import RAW_COLUMNS, RAW_SCHEMA, TREND_SCHEMA, ParsedFile, decoded
from glucosestream.formats.tabular import raw_rows_from_records

__all__ = [
    "FORMATS",
    "RAW_COLUMNS",
    "RAW_SCHEMA",
    "TREND_SCHEMA",
    "Detected",
    "ParsedFile",
    "decoded",
    "detect",
    "detect_format",
    "raw_rows_from_records",
    "read_raw_rows",
]
