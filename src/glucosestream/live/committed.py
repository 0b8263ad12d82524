"""A batch of readings HTTP ingest has just committed, as the always-on parts receive it.

``IngestService`` calls its ``on_committed`` hooks with one ``CommittedBatch`` right after the
batch and its requests are recorded, in the committing thread and before any of its requests is
answered: a hook must be quick (put the batch on a queue, set a flag) and must not raise for
anyone's data. The live window, the alert engine and the run scheduler are such hooks.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pyarrow as pa

__all__ = ["CommittedBatch"]


@dataclass(frozen=True, slots=True)
class CommittedBatch:
    """The accepted readings of one committed raw batch (``READING_SCHEMA``, duplicates within
    the batch already dropped) and when it was ingested."""

    batch_id: str
    readings: pa.Table
    ingested_at: dt.datetime
