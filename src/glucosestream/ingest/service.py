"""The HTTP ingest path, shared by the ASGI routes and the Lambda handler.

A request is authenticated, its body parsed into raw rows and checked against the token's
patients (an uploader may post only for the patients it is bound to: otherwise 403 and nothing
is written), then handed to the group committer. Its response is sent only after the raw batch
holding its readings is durable (fsynced, committed by its manifest) and recorded in the
metadata store with the request's idempotency key, the SHA-256 of what was posted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.access import (
    Principal,
    authenticate,
    authenticate_api_secret,
    authorize_read,
    record_access,
)
from glucosestream.clock import Clock, utc_now
from glucosestream.config import Settings
from glucosestream.engines import open_engine
from glucosestream.errors import Forbidden, InvalidInput
from glucosestream.formats import ParsedFile, raw_rows_from_records
from glucosestream.formats.nightscout import read_nightscout_entries
from glucosestream.ingest.accept import IngestReport, Part, PartResult, accept_parts
from glucosestream.ingest.group_commit import GroupCommitter
from glucosestream.ingest.identity import load_secret, patient_key
from glucosestream.ingest.ledger import RequestLedger, RequestRecord, open_ledger
from glucosestream.lake import open_lakehouse, open_metadata
from glucosestream.lake.access_store import open_access

__all__ = ["MAX_READINGS_PER_REQUEST", "IngestService", "RequestOutcome", "RowError"]

MAX_READINGS_PER_REQUEST: Final = 10_000
# At most this many requests share one raw batch (≤ 640,000 readings at the request limit).
MAX_REQUESTS_PER_FLUSH: Final = 64
# A token's principal is reused for this long: a token deleted (its patient forgotten) still
# works on a running server for at most this many seconds.
TOKEN_CACHE_S: Final = 5.0
_TOKEN_CACHE_SIZE: Final = 1024
_UPLOAD_ROLES: Final = frozenset({"admin", "uploader"})
_SHOWN_INDICES: Final = 5
_DECODER: Final = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class RowError:
    """One quarantined reading of a request: its 0-based index in the posted array, and why."""

    index: int
    reason: str


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    report: IngestReport
    row_errors: tuple[RowError, ...]


class IngestService:
    """One per app (or Lambda container): the stores, the engine and the group committer."""

    def __init__(self, settings: Settings, *, now: Clock = utc_now) -> None:
        self.settings = settings
        self.access = open_access(settings.lake)
        self._ledger: RequestLedger = open_ledger(settings.lake)
        self._secret = load_secret(settings)
        self._engine = open_engine(settings.engine)  # used by the leader only: one at a time
        self._metadata = open_metadata(settings.lake)  # opened once, not per flush
        self._now = now
        self._principals: dict[tuple[str, str], tuple[Principal, float]] = {}
        self.committer: GroupCommitter[Part, RequestOutcome] = GroupCommitter(
            self._flush, max_items=MAX_REQUESTS_PER_FLUSH
        )

    # authentication ------------------------------------------------------------------------
    def bearer_principal(self, authorization: str | None) -> Principal:
        scheme, _, token = (authorization or "").partition(" ")
        bearer = token.strip() if scheme.lower() == "bearer" else None
        if not bearer:
            return authenticate(self.access, bearer)  # raises: no token
        return self._cached(("bearer", bearer), lambda: authenticate(self.access, bearer))

    def _cached(self, key: tuple[str, str], lookup: Callable[[], Principal]) -> Principal:
        """A token's principal, looked up at most once per ``TOKEN_CACHE_S`` (one SQLite
        transaction fewer per request); unknown tokens are never cached."""
        at = time.monotonic()
        hit = self._principals.get(key)
        if hit is not None and at - hit[1] < TOKEN_CACHE_S:
            return hit[0]
        principal = lookup()
        if len(self._principals) >= _TOKEN_CACHE_SIZE:
            self._principals.clear()
        self._principals[key] = (principal, at)
        return principal

    def nightscout_principal(
        self, api_secret: str | None, token: str | None, authorization: str | None
    ) -> Principal:
        """``api-secret`` header (SHA-1 of the token), else ``?token=``, else a bearer token."""
        if api_secret:
            secret = api_secret
            return self._cached(
                ("api-secret", secret), lambda: authenticate_api_secret(self.access, secret)
            )
        if token:
            query_token = token
            return self._cached(("bearer", token), lambda: authenticate(self.access, query_token))
        return self.bearer_principal(authorization)

    # parsing ---------------------------------------------------------------------------------
    def readings_part(self, principal: Principal, body: bytes) -> Part:
        """``{"readings": [...]}`` as raw rows, after checking the token may post every row."""
        _require_upload_role(principal)
        document = _json(body, 'send {"readings": [...]}')
        readings = document.get("readings") if isinstance(document, dict) else None
        if not isinstance(readings, list):
            raise InvalidInput('expected a JSON object {"readings": [...]}', source="request")
        _check_items(readings, "readings")
        rows = raw_rows_from_records(readings, source="request")
        self._authorize_rows(principal, rows)
        sha256 = hashlib.sha256(b"v1/readings\x00" + body).hexdigest()
        return Part(ParsedFile(rows), "http", "json", sha256)

    def entries_part(self, principal: Principal, body: bytes) -> Part:
        """Nightscout entries for the one patient the uploader token is bound to."""
        _require_upload_role(principal)
        key = bound_patient(principal)
        document = _json(body, "send a JSON array of Nightscout entries")
        entries = document if isinstance(document, list) else [document]
        _check_items(entries, "entries")
        parsed = read_nightscout_entries(entries, source="request")
        sha256 = hashlib.sha256(f"api/v1/entries\x00{key}\x00".encode() + body).hexdigest()
        return Part(parsed, "nightscout-api", "nightscout", sha256, patient_key=key)

    def _authorize_rows(self, principal: Principal, rows: pa.Table) -> None:
        if principal.role == "admin":
            return
        ids = [i for i in pc.unique(rows["patient_id"]).to_pylist() if i and i.strip()]
        refused = [i for i in ids if not principal.may_upload(patient_key(self._secret, i))]
        if not refused:
            return
        where = pc.is_in(rows["patient_id"], pa.array(refused, pa.string()))
        indices = [int(line) - 1 for line in rows["line"].filter(where).to_pylist()]
        shown = ", ".join(str(i) for i in indices[:_SHOWN_INDICES])
        more = f" and {len(indices) - _SHOWN_INDICES} more" if len(indices) > _SHOWN_INDICES else ""
        raise Forbidden(
            f"readings at index {shown}{more} are for patients this token may not upload for; "
            "nothing was written (use a token bound to those patients, or remove the readings)"
        )

    # committing ------------------------------------------------------------------------------
    def ingest(self, part: Part) -> RequestOutcome:
        """Commit one request and wait for it (callers without an event loop)."""
        return self.committer.submit(part)

    def _flush(self, parts: Sequence[Part]) -> list[RequestOutcome]:
        earlier = self._ledger.find([p.sha256 for p in parts])
        fresh: dict[str, Part] = {}
        for part in parts:
            if part.sha256 not in earlier and part.parsed.rows.num_rows:
                fresh.setdefault(part.sha256, part)
        results: dict[str, PartResult] = {}
        if fresh:
            accepted = accept_parts(
                self.settings,
                list(fresh.values()),
                engine=self._engine,
                now=self._now,
                metadata=self._metadata,
            )
            results = dict(zip(fresh, accepted, strict=True))
            at = self._now()
            self._ledger.record([_ledger_row(k, r, at) for k, r in results.items()])
        outcomes: list[RequestOutcome] = []
        answered: set[str] = set()
        for part in parts:
            result = results.get(part.sha256)
            if result is not None and part.sha256 not in answered:
                answered.add(part.sha256)
                outcomes.append(_outcome(result))
            elif result is not None:
                outcomes.append(_repeat(part, result.report.batch_id, result.report.received))
            elif part.sha256 in earlier:
                record = earlier[part.sha256]
                outcomes.append(_repeat(part, record.batch_id, record.received))
            else:
                outcomes.append(_repeat(part, None, 0))  # nothing in it was a reading
        return outcomes

    # reading ---------------------------------------------------------------------------------
    def read_patient_readings(
        self, principal: Principal, patient: str | None, since: dt.datetime | None
    ) -> tuple[str, pa.Table]:
        """The published curated readings of the patient named (or the token's one patient)."""
        key = patient or bound_patient(principal)
        if not (principal.role == "uploader" and key in principal.patient_keys):
            authorize_read(self.access, principal, key)
        published = open_metadata(self.settings.lake).published()
        snapshot_id = None if published is None else published.readings_snapshot_id
        table = open_lakehouse(self.settings.lake).read_readings(snapshot_id, [key], since)
        record_access(
            self.access, principal, "read", "api/v1/entries", at=self._now(), patient_key=key
        )
        return key, table


def bound_patient(principal: Principal) -> str:
    """The one patient a token is bound to; Nightscout requests name no patient."""
    if len(principal.patient_keys) == 1:
        return next(iter(principal.patient_keys))
    bound = len(principal.patient_keys)
    raise InvalidInput(
        f"Nightscout entries name no patient, and this {principal.role} token is bound to "
        f"{bound} patients, not exactly one; use a token bound to one patient"
        + (" (or ?patient=<patient_key> to read)" if principal.role != "uploader" else ""),
        source="request",
    )


def _require_upload_role(principal: Principal) -> None:
    if principal.role not in _UPLOAD_ROLES:
        raise Forbidden(
            f"a {principal.role} token may not upload readings; use an uploader or admin token"
        )


def _json(body: bytes, expected: str) -> Any:
    """The body's JSON: msgspec's decoder (about twice as fast; the same values for what it
    takes), else the standard library's, which takes what msgspec refuses (NaN, a BOM, UTF-16,
    lone surrogates) and words the error when it is not JSON at all."""
    try:
        return _DECODER.decode(body)
    except msgspec.DecodeError:
        pass
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidInput(
            f"the body is not valid JSON ({err}); {expected}", source="request"
        ) from err


def _check_items(items: list[Any], name: str) -> None:
    if not items:
        raise InvalidInput(f"the request has no {name}; send at least one", source="request")
    if len(items) > MAX_READINGS_PER_REQUEST:
        raise InvalidInput(
            f"the request has {len(items):,} {name}; at most {MAX_READINGS_PER_REQUEST:,} a "
            "request: split it",
            source="request",
        )
    bad = next((i for i, item in enumerate(items) if not isinstance(item, dict)), None)
    if bad is not None:
        raise InvalidInput(f"{name}[{bad}] is not a JSON object; send one object per reading")


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
    q = result.quarantine
    errors = tuple(
        RowError(int(line) - 1, str(reason))
        for line, reason in zip(q["line"].to_pylist(), q["reason"].to_pylist(), strict=True)
    )
    return RequestOutcome(result.report, errors)


def _repeat(part: Part, batch_id: str | None, received: int) -> RequestOutcome:
    """A request already ingested (or with no readings): it changes nothing."""
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
    )
    return RequestOutcome(report, ())
