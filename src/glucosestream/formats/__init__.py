"""Source formats: each module turns one kind of input into *raw rows*.

Raw rows are an Arrow table of strings, one row per received reading, with the columns of
``RAW_COLUMNS``: where the reading came from (``line``) and its fields as received. Parsers
check structure only (a file that cannot be read at all raises ``InvalidInput`` naming the line);
the values are validated by ``ingest``, which quarantines bad rows with a reason.
"""

from __future__ import annotations

from glucosestream.formats.detect import FORMATS, detect_format, read_raw_rows
from glucosestream.formats.tabular import RAW_COLUMNS, raw_rows_from_records

__all__ = ["FORMATS", "RAW_COLUMNS", "detect_format", "raw_rows_from_records", "read_raw_rows"]
