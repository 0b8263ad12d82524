"""Nightscout devicestatus documents (pump, loop and uploader state that uploaders post to
``/api/v1/devicestatus``), kept raw: each document's JSON text in the raw batch of its request
(``devicestatus.parquet``), with its patient and when it was received. No run reads them and
nothing of them reaches the curated lake; erasing a patient removes theirs with the raw batches'
other rows. PURE."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any, Final

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["batch_devicestatus", "devicestatus_rows", "documents"]

_INSTANT: Final = pa.timestamp("us", tz="UTC")
_ENCODER: Final = msgspec.json.Encoder()


def devicestatus_rows(items: Sequence[Any]) -> pa.Table:
    """The posted documents as rows: ``line`` (1-based place in the request) and
    ``document`` (compact JSON text; a number that is not finite is written as null)."""
    return pa.table(
        {
            "line": pa.array(range(1, len(items) + 1), pa.int64()),
            "document": pa.array([_json_text(item) for item in items], pa.string()),
        }
    )


def _json_text(item: Any) -> str:
    try:
        return _ENCODER.encode(item).decode("utf-8")
    except (TypeError, ValueError, OverflowError):  # an integer beyond 64 bits, say
        return json.dumps(item, default=str)


def documents(rows: pa.Table | None) -> int:
    """How many documents ``rows`` holds (None: none)."""
    return 0 if rows is None else rows.num_rows


def batch_devicestatus(
    parts: Sequence[tuple[pa.Table | None, str | None]],
    offsets: Sequence[int],
    received_at: dt.datetime,
) -> pa.Table | None:
    """The parts' documents (each part's rows and patient key) as the batch keeps them
    (``lake.DEVICESTATUS_SCHEMA``'s columns), lines batch-wide (``offsets``: each part's
    first line - 1); None when there are none."""
    tables = []
    for (rows, patient_key), offset in zip(parts, offsets, strict=False):
        if rows is None or not rows.num_rows:
            continue
        n = rows.num_rows
        line = rows["line"].cast(pa.int64())
        tables.append(
            pa.table(
                {
                    "line": pc.add(line, offset) if offset else line,
                    "patient_key": pa.array([patient_key] * n, pa.string()),
                    "received_at": pa.repeat(pa.scalar(received_at, _INSTANT), n),
                    "document": rows["document"].cast(pa.string()),
                }
            )
        )
    return pa.concat_tables(tables) if tables else None
