"""The request ledger: one row per HTTP ingest request, keyed by the SHA-256 of what was posted.

It makes re-posting idempotent under group commit, where many requests share one raw batch (so
the batch's own ``source_sha256`` cannot name each of them): a request whose key is here, in a
batch no run has rejected, is answered with the batch it landed in and changes nothing.

A group commit records its batch and the requests in it in one transaction (``record_batch``),
after the batch is committed in the raw zone: a request is in the ledger exactly when its batch
is recorded, and never when its flush failed. The batch's recent readings go into
``live_readings`` in the same transaction (``live.LiveStore.insert``), so what followers see
before the next run is exactly what was recorded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from glucosestream.config import LakeSettings
from glucosestream.lake import (
    BatchRecord,
    Store,
    batches,
    ingest_requests,
    insert_batch,
    metadata_engine,
)
from glucosestream.live import CommittedBatch, LiveStore

__all__ = ["RequestLedger", "RequestRecord", "open_ledger"]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    request_sha256: str
    batch_id: str
    received: int
    accepted: int
    duplicates: int
    quarantined: int
    created_at: dt.datetime


class RequestLedger(Store):
    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(engine)
        self._live = LiveStore(engine)

    def find(self, request_sha256s: Sequence[str]) -> dict[str, RequestRecord]:
        """The requests already ingested, by key, leaving out those in rejected batches."""
        if not request_sha256s:
            return {}
        query = (
            sa.select(ingest_requests)
            .join(batches, batches.c.batch_id == ingest_requests.c.batch_id)
            .where(
                ingest_requests.c.request_sha256.in_(sorted(set(request_sha256s))),
                batches.c.rejected_run_id.is_(None),
            )
        )
        with self._tx() as con:
            return {r.request_sha256: RequestRecord(**r._asdict()) for r in con.execute(query)}

    def record(self, records: Sequence[RequestRecord]) -> None:
        """Add requests; a key seen before (its batch since rejected) is pointed at the new one."""
        if not records:
            return
        with self._tx() as con:
            _insert_requests(con, records)

    def record_batch(
        self,
        batch: BatchRecord,
        records: Sequence[RequestRecord],
        *,
        live: CommittedBatch | None = None,
    ) -> None:
        """Record a raw batch and the requests it holds together (one transaction): both or
        neither. The batch row is the one ``MetadataStore.add_batch`` writes. ``live``: the
        batch's accepted readings, whose recent ones go into ``live_readings`` with them."""
        with self._tx() as con:
            insert_batch(con, batch)  # a run's discover may have registered it already
            if records:
                _insert_requests(con, records)
            if live is not None:
                self._live.insert(con, live)


def _insert_requests(con: sa.Connection, records: Sequence[RequestRecord]) -> None:
    keys = [r.request_sha256 for r in records]
    con.execute(ingest_requests.delete().where(ingest_requests.c.request_sha256.in_(keys)))
    con.execute(
        ingest_requests.insert(),
        [{name: getattr(r, name) for name in r.__slots__} for r in records],
    )


def open_ledger(settings: LakeSettings) -> RequestLedger:
    return RequestLedger(metadata_engine(settings))
