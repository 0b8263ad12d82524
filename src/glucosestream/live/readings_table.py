"""The ``live_readings`` table: the durable copy of the live window.

``LiveStore.insert`` runs inside ``RequestLedger.record_batch``'s transaction, so a batch's
recent readings are stored exactly when the batch and its requests are recorded. Only readings
of the last ``LIVE_KEPT`` (by ``ts``, from the batch's ingest time) are stored: an upload of old
history goes to the lake through a run, not to followers. The key (patient_key, device_id, ts)
is inserted or ignored: the first arrival wins, as in a run. A run's publish marks the rows of
the batches it loaded as settled (``settled_run_id``) and deletes the others it is done with
(``lake.metadata``). ``recent`` is what a starting app seeds its ``LiveWindow`` with
(``live_state``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from glucosestream.clock import Clock, utc_now
from glucosestream.config import LakeSettings, Settings
from glucosestream.lake import LIVE_READINGS_KEPT, Store, live_readings, metadata_engine
from glucosestream.live.committed import CommittedBatch
from glucosestream.live.window import LiveReading, LiveWindow, readings_of

__all__ = ["LIVE_KEPT", "LiveStore", "live_state", "open_live_store"]

# How far back a batch's readings are stored (by ts): the day the publish keeps (it deletes
# older rows).
LIVE_KEPT: Final = LIVE_READINGS_KEPT
_ROWS_PER_INSERT: Final = 5_000


class LiveStore(Store):
    """The ``live_readings`` rows: inserted with their batch, read at start."""

    def insert(self, con: sa.Connection, batch: CommittedBatch) -> None:
        """Store the batch's readings of the last ``LIVE_KEPT`` in the caller's transaction
        (``con``); a key already stored is left as it is (first arrival wins)."""
        rows = readings_of(batch.batch_id, batch.readings, since=batch.ingested_at - LIVE_KEPT)
        values = [_row(r, batch.ingested_at) for r in rows]
        insert = _insert_ignoring_stored_keys(con)
        for start in range(0, len(values), _ROWS_PER_INSERT):
            con.execute(insert, values[start : start + _ROWS_PER_INSERT])

    def recent(self, since: dt.datetime) -> list[LiveReading]:
        """Every stored reading from ``since`` on, ascending ts."""
        c = live_readings.c
        query = sa.select(live_readings).where(c.ts >= since).order_by(c.ts, c.device_id)
        with self._tx() as con:
            return [_reading(row) for row in con.execute(query)]


def open_live_store(settings: LakeSettings) -> LiveStore:
    return LiveStore(metadata_engine(settings))


def _insert_ignoring_stored_keys(con: sa.Connection) -> Any:
    """An INSERT of ``live_readings`` rows that skips keys already stored (SQLite, PostgreSQL)."""
    if con.dialect.name == "postgresql":
        return postgresql.insert(live_readings).on_conflict_do_nothing()
    if con.dialect.name == "sqlite":
        return sqlite.insert(live_readings).on_conflict_do_nothing()
    return live_readings.insert().prefix_with("IGNORE")  # MySQL's spelling


def _row(reading: LiveReading, ingested_at: dt.datetime) -> dict[str, Any]:
    return {
        "patient_key": reading.patient_key,
        "device_id": reading.device_id,
        "ts": reading.ts,
        "glucose_mg_dl": reading.glucose_mg_dl,
        "flags": reading.flags,
        "tz": reading.tz,
        "direction": reading.direction,
        "rate_mg_dl_min": reading.rate_mg_dl_min,
        "batch_id": reading.batch_id,
        "ingested_at": ingested_at,
    }


def _reading(row: sa.Row[Any]) -> LiveReading:
    return LiveReading(
        patient_key=row.patient_key,
        device_id=row.device_id,
        ts=_utc(row.ts),
        glucose_mg_dl=row.glucose_mg_dl,
        flags=row.flags,
        tz=row.tz,
        direction=row.direction,
        rate_mg_dl_min=row.rate_mg_dl_min,
        batch_id=row.batch_id,
        settled=row.settled_run_id is not None,
        settled_run_id=row.settled_run_id,
    )


def _utc(at: dt.datetime) -> dt.datetime:
    """A stored instant as UTC (SQLite gives it back without its zone)."""
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)


def live_state(settings: Settings, clock: Clock = utc_now) -> tuple[LiveWindow, LiveStore]:
    """An app's live window (the last ``LIVE_KEPT``) seeded from the store, and the store."""
    store = open_live_store(settings.lake)
    window = LiveWindow(LIVE_KEPT / dt.timedelta(hours=1), clock=clock)
    window.seed(store.recent(clock() - LIVE_KEPT))
    return window, store
