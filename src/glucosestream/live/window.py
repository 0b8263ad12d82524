"""The live window: every patient's readings of the last hours, in memory, for the read API,
the patient page and the alerts.

HTTP ingest adds each committed batch (``add`` is an ``IngestService`` ``on_committed`` hook, so
a reading is here before its request is answered); at start the window is seeded from the
``live_readings`` table (``LiveStore.recent``), which holds the same rows durably. A reading is
keyed by (patient_key, device_id, ts) and the first arrival wins, as in a run
(``pipeline/first_arrival.py``): a later copy of a key (a retried upload, another batch) is
ignored. When a run publishes, ``settle`` marks the readings of the batches it loaded or
rejected as settled by that run; the read side then takes them from the published run instead
(``published.live_merge``). Readings older than ``hours`` are forgotten.

Thread-safe: one lock, held only for dictionary and list operations (no I/O). Reads the clock.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.clock import Clock, utc_now
from glucosestream.live.committed import CommittedBatch

__all__ = ["LiveReading", "LiveWindow"]

_COLUMNS = ("patient_key", "device_id", "ts", "glucose_mg_dl", "flags", "tz")
_TREND = ("direction", "rate_mg_dl_min")
_INSTANT = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True, slots=True)
class LiveReading:
    """One accepted reading as the live parts see it. ``settled``: a published run loaded (or
    rejected) its batch; ``settled_run_id``: that run, when known (a reading seeded from an
    older store may be settled without one)."""

    patient_key: str
    device_id: str
    ts: dt.datetime
    glucose_mg_dl: float
    flags: int
    tz: str
    direction: str | None
    rate_mg_dl_min: float | None
    batch_id: str
    settled: bool
    settled_run_id: str | None = None


@dataclass(slots=True)
class _Patient:
    """One patient's readings: by key, and their keys in (ts, device_id) order."""

    by_key: dict[tuple[str, dt.datetime], LiveReading] = field(default_factory=dict)
    order: list[tuple[dt.datetime, str]] = field(default_factory=list)

    def add(self, reading: LiveReading) -> bool:
        key = (reading.device_id, reading.ts)
        if key in self.by_key:
            return False  # the first arrival wins
        self.by_key[key] = reading
        bisect.insort(self.order, (reading.ts, reading.device_id))
        return True

    def forget_before(self, cutoff: dt.datetime) -> None:
        cut = bisect.bisect_left(self.order, (cutoff, ""))
        for ts, device_id in self.order[:cut]:
            del self.by_key[(device_id, ts)]
        del self.order[:cut]

    def readings(self, since: dt.datetime | None) -> list[LiveReading]:
        start = 0 if since is None else bisect.bisect_left(self.order, (since, ""))
        return [self.by_key[(device_id, ts)] for ts, device_id in self.order[start:]]


class LiveWindow:
    """The last ``hours`` of every patient's accepted readings (one per app)."""

    def __init__(self, hours: float, *, clock: Clock = utc_now) -> None:
        self.hours = hours
        self._clock = clock
        self._lock = threading.Lock()
        self._patients: dict[str, _Patient] = {}
        self._unsettled: dict[str, set[tuple[str, str, dt.datetime]]] = {}  # by batch id

    def add(self, batch: CommittedBatch) -> None:
        """Add a committed batch's readings (those of the last ``hours``)."""
        self.seed(readings_of(batch.batch_id, batch.readings, since=self._cutoff()))

    def seed(self, rows: Iterable[LiveReading]) -> None:
        """Add readings (at start, from ``LiveStore.recent``); the first arrival of a key wins."""
        cutoff = self._cutoff()
        with self._lock:
            for reading in rows:
                if reading.ts < cutoff:
                    continue
                patient = self._patients.setdefault(reading.patient_key, _Patient())
                if patient.add(reading) and not reading.settled:
                    key = (reading.patient_key, reading.device_id, reading.ts)
                    self._unsettled.setdefault(reading.batch_id, set()).add(key)

    def settle(self, batch_ids: Iterable[str], run_id: str | None = None) -> None:
        """Mark the readings of these batches settled by run ``run_id`` (a published run loaded
        or rejected them): an ``on_published`` hook."""
        with self._lock:
            for batch_id in batch_ids:
                for patient_key, device_id, ts in self._unsettled.pop(batch_id, ()):
                    patient = self._patients.get(patient_key)
                    reading = None if patient is None else patient.by_key.get((device_id, ts))
                    if patient is not None and reading is not None:
                        patient.by_key[(device_id, ts)] = dataclasses.replace(
                            reading, settled=True, settled_run_id=run_id
                        )

    def recent(self, patient_key: str, since: dt.datetime | None = None) -> list[LiveReading]:
        """The patient's readings from ``since`` on (at most the last ``hours``), ascending ts."""
        cutoff = self._cutoff()
        with self._lock:
            patient = self._patients.get(patient_key)
            if patient is None:
                return []
            self._forget(patient_key, patient, cutoff)
            return patient.readings(cutoff if since is None else max(since, cutoff))

    def unsettled(self, patient_key: str) -> list[LiveReading]:
        """The patient's readings no published run has settled yet, ascending ts."""
        return [r for r in self.recent(patient_key) if not r.settled]

    def patients(self) -> list[str]:
        """The patients with readings in the window, sorted."""
        cutoff = self._cutoff()
        with self._lock:
            for key, patient in list(self._patients.items()):
                self._forget(key, patient, cutoff)
            return sorted(self._patients)

    def last_reading_at(self, patient_key: str) -> dt.datetime | None:
        """The patient's newest reading time in the window (None: none)."""
        readings = self.recent(patient_key)
        return readings[-1].ts if readings else None

    def _cutoff(self) -> dt.datetime:
        return self._clock() - dt.timedelta(hours=self.hours)

    def _forget(self, key: str, patient: _Patient, cutoff: dt.datetime) -> None:
        """Drop the patient's readings before ``cutoff`` (the lock is held)."""
        if patient.order and patient.order[0][0] < cutoff:
            for ts, device_id in patient.order[: bisect.bisect_left(patient.order, (cutoff, ""))]:
                batch_id = patient.by_key[(device_id, ts)].batch_id
                pending = self._unsettled.get(batch_id)
                if pending is not None:
                    pending.discard((key, device_id, ts))
                    if not pending:
                        del self._unsettled[batch_id]
            patient.forget_before(cutoff)
        if not patient.order:
            del self._patients[key]


def readings_of(
    batch_id: str | None,
    readings: pa.Table,
    *,
    since: dt.datetime | None = None,
    settled_run_id: str | None = None,
) -> list[LiveReading]:
    """Readings (``READING_SCHEMA``) as ``LiveReading``s, those before ``since`` left out:
    a committed batch's (``batch_id``), or, with ``batch_id`` None, rows each naming its own
    batch (a published run's, ``settled_run_id``: settled by that run)."""
    if since is not None and readings.num_rows:
        readings = readings.filter(pc.greater_equal(readings["ts"], pa.scalar(since, _INSTANT)))
    n = readings.num_rows
    if n == 0:
        return []
    columns = [readings[name].to_pylist() for name in _COLUMNS]
    trend = [
        readings[name].to_pylist() if name in readings.column_names else [None] * n
        for name in _TREND
    ]
    batches = [batch_id] * n if batch_id is not None else readings["batch_id"].to_pylist()
    settled = settled_run_id is not None
    return [
        LiveReading(
            patient_key=sys.intern(p),  # one copy of each key, zone and batch id in memory
            device_id=sys.intern(d),
            ts=ts,
            glucose_mg_dl=g,
            flags=f,
            tz=sys.intern(tz),
            direction=direction,
            rate_mg_dl_min=rate,
            batch_id=sys.intern(b),
            settled=settled,
            settled_run_id=settled_run_id,
        )
        for p, d, ts, g, f, tz, direction, rate, b in zip(*columns, *trend, batches, strict=True)
    ]
