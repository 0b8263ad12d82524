"""The group commit of HTTP ingest requests, shared by the ASGI routes and the Lambda handler.

A request reaches the service already authenticated (``request_credentials``), parsed and
checked against the token's rights (``request_parts``, ``upload_rights``), as one ``Part``. The
service hands it to the group committer; its answer is sent only after the raw batch holding
its readings is durable (fsynced, committed by its manifest) and recorded in the metadata store
with the request's idempotency key, the SHA-256 of what was posted.

Requests flushed together never share a fate. Their rows are checked together, with nothing
written yet; if that fails, the group is split in halves, and halves again, until the requests
whose rows fail alone are found: each gets its own error (422), and the others are checked and
written together as if those had never come. A failure to write (the lake, the metadata store)
is no request's fault and is answered to every request of the batch; the batch and its requests
are recorded in one transaction after the batch is committed, so a request is in the ledger only
if its readings are in a committed batch.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import pyarrow as pa

from glucosestream.clock import Clock, utc_now
from glucosestream.config import Settings
from glucosestream.engines import open_engine
from glucosestream.errors import EngineOverloaded, GlucoseStreamError, InvalidInput
from glucosestream.ingest.accept import write_batch
from glucosestream.ingest.batch import (
    BuiltBatch,
    Part,
    build_batch,
    check_parts,
)
from glucosestream.ingest.bodies import shown_error
from glucosestream.ingest.group_commit import GroupCommitter
from glucosestream.ingest.ingest_report import IngestReport, PartResult
from glucosestream.ingest.ledger import RequestLedger, RequestRecord, open_ledger
from glucosestream.ingest.request_parts import parse_waiting
from glucosestream.lake import BatchRecord, open_metadata
from glucosestream.live import CommittedBatch

__all__ = [
    "IngestService",
    "RequestOutcome",
    "RowError",
]

log = logging.getLogger(__name__)

# At most this many requests share one raw batch (≤ 640,000 readings at the request limit).
MAX_REQUESTS_PER_FLUSH: Final = 64


@dataclass(frozen=True, slots=True)
class RowError:
    """One quarantined reading of a request: its 0-based index in the posted array, and why."""

    index: int
    reason: str


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    report: IngestReport
    row_errors: tuple[RowError, ...]
    event_errors: tuple[RowError, ...] = ()  # each quarantined event (index: its record's)


class IngestService:
    """One per app (or Lambda container): the request ledger, the engine and the group committer."""

    def __init__(
        self,
        settings: Settings,
        *,
        now: Clock = utc_now,
        on_committed: Sequence[Callable[[CommittedBatch], None]] = (),
    ) -> None:
        """``on_committed``: called with each batch once it is recorded, before its requests
        are answered (``live.CommittedBatch``); a hook that raises is logged, never answered."""
        self.settings = settings
        self._on_committed = tuple(on_committed)
        self._ledger: RequestLedger = open_ledger(settings.lake)
        self._engine = open_engine(settings.engine)  # used by the leader only: one at a time
        self._metadata = open_metadata(settings.lake)  # opened once, not per flush
        self._now = now
        self.committer: GroupCommitter[Part, RequestOutcome] = GroupCommitter(
            self._flush, max_items=MAX_REQUESTS_PER_FLUSH
        )

    # committing ------------------------------------------------------------------------------
    def ingest(self, part: Part) -> RequestOutcome:
        """Commit one request and wait for it (callers without an event loop)."""
        return self.committer.submit(part)

    def _flush(self, parts: Sequence[Part]) -> list[RequestOutcome | Exception]:
        """Each request's outcome, or its own error (see the module docstring)."""
        parts = parse_waiting(parts)
        earlier = self._ledger.find([p.sha256 for p in parts])
        fresh: dict[str, Part] = {}
        for part in parts:
            if part.sha256 not in earlier and _holds_anything(part):
                fresh.setdefault(part.sha256, part)
        results: dict[str, PartResult | Exception] = {}
        if fresh:
            built, failed = self._build_apart(list(fresh.values()))
            results.update(failed)
            for group, batch in built:
                try:
                    results.update(self._write(group, batch))
                except Exception as err:  # the lake's failure, not a request's: all of the batch
                    results.update(dict.fromkeys((p.sha256 for p in group), err))
        outcomes: list[RequestOutcome | Exception] = []
        answered: set[str] = set()
        for part in parts:
            result = results.get(part.sha256)
            if isinstance(result, Exception):
                outcomes.append(result)
            elif result is not None and part.sha256 not in answered:
                answered.add(part.sha256)
                outcomes.append(_outcome(result))
            elif result is not None:
                outcomes.append(_repeat(part, result.report.batch_id, result.report.received))
            elif part.sha256 in earlier:
                record = earlier[part.sha256]
                outcomes.append(_repeat(part, record.batch_id, record.received))
            else:
                outcomes.append(_repeat(part, None, 0))  # nothing in it to keep
        return outcomes

    def _build(self, parts: Sequence[Part]) -> BuiltBatch:
        """The parts' rows checked and made into one batch; nothing is written."""
        rows = check_parts(self.settings, parts, engine=self._engine, now=self._now)
        return build_batch(rows, parts)

    def _build_apart(
        self, parts: list[Part]
    ) -> tuple[list[tuple[list[Part], BuiltBatch]], dict[str, Exception]]:
        """The parts as one batch; if that fails, the parts that fail alone set apart with their
        own error and the rest as one batch (each its own if they fail only together)."""
        try:
            return [(parts, self._build(parts))], {}
        except Exception as err:
            if len(parts) == 1:
                return [], {parts[0].sha256: _request_error(err)}
            log.warning(
                "group commit: checking %d requests together failed (%s); checking them apart",
                len(parts),
                type(err).__name__,
            )
        good, failed = self._bisect(parts)
        if not failed:  # every half passes, the whole does not: each request on its own
            built: list[tuple[list[Part], BuiltBatch]] = []
            for part in parts:
                alone, error = self._build_apart([part])
                built += alone
                failed.update(error)
            return built, failed
        built, more = self._build_apart(good) if good else ([], {})
        return built, {**failed, **more}

    def _bisect(self, parts: list[Part]) -> tuple[list[Part], dict[str, Exception]]:
        """Halve ``parts`` (whose check failed) until each part that fails alone is found."""
        good: list[Part] = []
        failed: dict[str, Exception] = {}
        middle = len(parts) // 2
        for half in (parts[:middle], parts[middle:]):
            try:
                self._build(half)
            except Exception as err:
                if len(half) == 1:
                    failed[half[0].sha256] = _request_error(err)
                else:
                    more_good, more_failed = self._bisect(half)
                    good += more_good
                    failed.update(more_failed)
            else:
                good += half
        return good, failed

    def _write(self, parts: Sequence[Part], batch: BuiltBatch) -> dict[str, PartResult]:
        """Write one checked batch (``accept.write_batch``), recording the batch and its
        requests together. A failure after the manifest leaves a committed batch that the next
        run registers from its manifest; a retried request then lands in a new batch and its
        readings are merged once (first arrival wins, ``pipeline/first_arrival.py``)."""

        def record(batch_record: BatchRecord, results: list[PartResult]) -> None:
            at = self._now()
            rows = [_ledger_row(p.sha256, r, at) for p, r in zip(parts, results, strict=True)]
            committed = CommittedBatch(batch_record.batch_id, batch.readings, at)
            self._ledger.record_batch(batch_record, rows, live=committed)  # live rows with it
            self._committed(committed)

        results = write_batch(
            self.settings,
            batch,
            parts=len(parts),
            started=time.perf_counter(),
            metadata=self._metadata,
            record=record,
        )
        return {p.sha256: r for p, r in zip(parts, results, strict=True)}

    def _committed(self, committed: CommittedBatch) -> None:
        """Tell the hooks; the batch is durable already, so a failing hook fails no request."""
        for hook in self._on_committed:
            try:
                hook(committed)
            except Exception:
                log.exception("an on_committed hook failed for batch %s", committed.batch_id)


def _request_error(err: Exception) -> Exception:
    """What a request whose rows fail to be checked on their own is answered: its own error
    when it says what to fix (4xx) or that trying again may help (the store was busy), else
    422 naming what failed. Nothing of it was written. Running out of memory or disk is no
    request's fault: 503, retryable (an uploader retries it; it would drop a 4xx's readings)."""
    if isinstance(err, GlucoseStreamError) and (err.status < 500 or err.retryable):
        return err  # its own 4xx, or a retryable fault such as EngineOverloaded (503)
    if isinstance(err, MemoryError | OSError):  # the server's state, not the request's data
        return EngineOverloaded(
            f"the server could not check this request now ({type(err).__name__}); nothing of "
            "it was written: try again later",
        )
    log.error("a request's readings could not be checked", exc_info=err)
    return InvalidInput(
        f"its readings could not be checked ({type(err).__name__}: {shown_error(err)}); nothing of "
        "this request was written, and requests sent with it were not affected; correct or "
        "remove the reading the message names and post again",
        source="request",
    )


def _ledger_row(sha256: str, result: PartResult, at: dt.datetime) -> RequestRecord:
    r = result.report
    return RequestRecord(
        sha256,
        r.batch_id or "",
        r.received,
        r.accepted,
        r.duplicates,
        r.quarantined,
        at,
    )


def _outcome(result: PartResult) -> RequestOutcome:
    events = result.event_quarantine
    return RequestOutcome(
        result.report,
        _row_errors(result.quarantine),
        () if events is None else _row_errors(events),
    )


def _row_errors(quarantine: pa.Table) -> tuple[RowError, ...]:
    lines, reasons = quarantine["line"].to_pylist(), quarantine["reason"].to_pylist()
    return tuple(
        RowError(int(line) - 1, str(reason)) for line, reason in zip(lines, reasons, strict=True)
    )


def _holds_anything(part: Part) -> bool:
    """Whether the part has a reading, an event or a devicestatus document to keep."""
    tables = (part.parsed.rows, part.parsed.events, part.devicestatus)
    return any(t is not None and t.num_rows for t in tables)


def _repeat(part: Part, batch_id: str | None, received: int) -> RequestOutcome:
    """A request already ingested (or with nothing to keep): it changes nothing. Its events
    (as posted again) are all duplicates."""
    events = 0 if part.parsed.events is None else part.parsed.events.num_rows
    report = IngestReport(
        source=part.source,
        format=part.fmt,
        received=received,
        accepted=0,
        duplicates=received,
        quarantined=0,
        patients=0,
        top_reasons=(),
        batch_id=None,
        already_ingested_as=batch_id,
        duration_ms=0,
        events_received=events if batch_id is not None else 0,
        events_duplicates=events if batch_id is not None else 0,
    )
    return RequestOutcome(report, ())
