"""The alert engine: evaluates each committed batch's patients off the ingest path.

``submit`` is an ``IngestService`` on_committed hook: it only puts the batch on a queue, so an
upload is answered without waiting for alerts. One thread takes the batches (all those waiting
at once, grouped by patient), reads each patient's window from the live window and their alert
state from the store (one read for up to ``GROUP_SIZE`` patients), runs the PURE ``evaluate``,
records the changes (``AlertStore.apply``: one transaction for the group, with the webhook
outbox's ``enqueue`` in it) and calls ``on_change`` (the delivery worker's wake-up) when
something was recorded.

Every ``TICK_S`` seconds the same thread evaluates the patients whose newest reading is older
than the shortest stale-data rule, and those with an active alert: stale data is noticed
without a reading arriving, and escalates; a snooze that ran out needs no work (it is compared
with the time at each evaluation). ``start`` first evaluates every patient of the window and
every patient with an active alert (``evaluate_all``), so after a restart a still-true
condition is kept and a stale episode escalates, and the store's unique index keeps anything
from firing twice.

An error while evaluating one patient is logged (without glucose values) and the thread goes
on with the next: alerts of the other patients never wait for it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final, Protocol

import pyarrow.compute as pc

from glucosestream.alerts.changes import AlertChange
from glucosestream.alerts.evaluate import WindowReading, evaluate
from glucosestream.alerts.rules import rules_for
from glucosestream.alerts.store import AlertStore, Enqueue
from glucosestream.clock import Clock, utc_now
from glucosestream.config import Settings
from glucosestream.live import CommittedBatch

__all__ = ["TICK_S", "AlertEngine", "ReadingWindow"]

log = logging.getLogger(__name__)

TICK_S: Final = 30.0  # how often stale data is looked for
GROUP_SIZE: Final = 500  # patients per read of the store and per transaction
STALE_CHECK_MIN: Final = 5.0  # the shortest stale-data rule allowed (alerts.rules)
_STOP_WAIT_S: Final = 10.0


class ReadingWindow(Protocol):
    """What the engine uses of the live window (``live.LiveWindow`` has it)."""

    def recent(
        self, patient_key: str, since: dt.datetime | None = None
    ) -> Sequence[WindowReading]: ...
    def patients(self) -> list[str]: ...
    def last_reading_at(self, patient_key: str) -> dt.datetime | None: ...


class _EvaluateAll:
    """The queue's marker for "evaluate every patient" (the start)."""


class AlertEngine:
    def __init__(
        self,
        settings: Settings,
        window: ReadingWindow,
        store: AlertStore,
        *,
        enqueue: Enqueue,
        on_change: Callable[[], None] = lambda: None,
        clock: Clock = utc_now,
        tick_s: float = TICK_S,
    ) -> None:
        self._settings = settings.alerts
        self._window = window
        self._store = store
        self._enqueue = enqueue
        self._on_change = on_change
        self._clock = clock
        self._tick_s = tick_s
        self._queue: queue.SimpleQueue[CommittedBatch | _EvaluateAll | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def submit(self, batch: CommittedBatch) -> None:
        """The on_committed hook: queue the batch, never wait."""
        self._queue.put_nowait(batch)

    def start(self) -> None:
        """Start the thread; its first work is ``evaluate_all``."""
        if self._thread is not None:
            return
        self._queue.put_nowait(_EvaluateAll())
        self._thread = threading.Thread(target=self._run, name="alert-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish the batches already queued, then stop the thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put_nowait(None)
        thread.join(_STOP_WAIT_S)
        if thread.is_alive():
            log.warning("alert engine did not stop within %.0f s", _STOP_WAIT_S)

    def evaluate_all(self) -> list[AlertChange]:
        """Evaluate every patient of the window and every patient with an active alert."""
        keys = set(self._window.patients()) | set(self._store.active_patients())
        return self._evaluate(sorted(keys))

    def tick(self) -> list[AlertChange]:
        """Evaluate the patients stale data may concern: no reading for the shortest stale
        rule's minutes, or an active alert (to escalate or clear it)."""
        now = self._clock()
        quiet = now - dt.timedelta(minutes=STALE_CHECK_MIN)
        keys = set(self._store.active_patients())
        for key in self._window.patients():
            last = self._window.last_reading_at(key)
            if last is None or last <= quiet:
                keys.add(key)
        return self._evaluate(sorted(keys))

    def evaluate_patient(self, patient_key: str) -> list[AlertChange]:
        """Evaluate one patient now and record the changes; the changes recorded."""
        return self._evaluate([patient_key])

    def _evaluate(self, patient_keys: Sequence[str]) -> list[AlertChange]:
        """Evaluate the patients and record their changes, ``GROUP_SIZE`` patients to a read
        of the store and a transaction; call ``on_change`` when something was recorded."""
        applied: list[AlertChange] = []
        for start in range(0, len(patient_keys), GROUP_SIZE):
            group = patient_keys[start : start + GROUP_SIZE]
            try:
                changes = self._changes_of(group)
                if changes:
                    applied.extend(self._store.apply(changes, enqueue=self._enqueue))
            except Exception as err:  # the store failed: the next group, the next tick, again
                log.error(  # the name only: a store error quotes its rows (keys, glucose)
                    "recording alerts of %d patients failed (%s); they are evaluated again",
                    len(group),
                    _error_name(err),
                )
        if applied:
            log.info("alerts changed=%d", len(applied))
            self._on_change()
        return applied

    def _changes_of(self, patient_keys: Sequence[str]) -> list[AlertChange]:
        now = self._clock()
        since = now - dt.timedelta(hours=self._settings.window_h)
        states = self._store.patients_alerts(patient_keys)
        out: list[AlertChange] = []
        for key in patient_keys:
            state = states[key]
            try:
                out.extend(
                    evaluate(
                        self._window.recent(key, since),
                        rules_for(key, state.rule_rows, self._settings),
                        state.active,
                        now,
                        patient_key=key,
                        snoozed_until=state.snoozed_until,
                        fresh_min=self._settings.fresh_min,
                    )
                )
            except Exception:  # one patient's failure must not stop the others' alerts
                log.exception("alert evaluation failed for one patient; the others go on")
        return out

    def _run(self) -> None:
        next_tick = time.monotonic() + self._tick_s
        while True:
            items: list[CommittedBatch | _EvaluateAll | None] = []
            with contextlib.suppress(queue.Empty):  # empty: a whole tick without work
                items.append(self._queue.get(timeout=max(0.0, next_tick - time.monotonic())))
            items.extend(self._drain())
            if any(isinstance(item, _EvaluateAll) for item in items):
                self._safely(self.evaluate_all)
            keys = {k for item in items if isinstance(item, CommittedBatch) for k in _keys(item)}
            if keys:
                self._safely(functools.partial(self._evaluate, sorted(keys)))
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + self._tick_s
                self._safely(self.tick)
            if any(item is None for item in items):
                return

    def _drain(self) -> list[CommittedBatch | _EvaluateAll | None]:
        """Everything queued now, so the batches waiting are evaluated as one group."""
        items: list[CommittedBatch | _EvaluateAll | None] = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def _safely(self, step: Callable[[], object]) -> None:
        try:
            step()
        except Exception as err:  # the thread must outlive a failing store or window
            log.error("alert engine step failed (%s); it goes on", _error_name(err))


def _keys(batch: CommittedBatch) -> list[str]:
    """The patients of a batch."""
    if batch.readings.num_rows == 0 or "patient_key" not in batch.readings.column_names:
        return []
    keys: list[str] = pc.unique(batch.readings["patient_key"]).to_pylist()
    return keys


def _error_name(err: BaseException) -> str:
    """What a log may say of an error here: its class and its cause's, never its text (a
    metadata store error quotes the statement's parameters: patient keys and glucose values)."""
    cause = err.__cause__
    return type(err).__name__ + (f" from {type(cause).__name__}" if cause is not None else "")
