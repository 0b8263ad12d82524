"""A request body as one ``Part`` of a raw batch: ``{"readings": [...]}``, or Nightscout
entries, treatments or devicestatus documents.

Parsing is done within the limits of ``limits``/``bodies`` (size, item count, depth), and the
token's right to post each row (``upload_rights``) is checked before anything is queued. The
part's ``sha256`` is the request's idempotency key: the SHA-256 of what was posted, by route.

A few Nightscout entries, each typed ``sgv`` (an uploader's usual POST), are checked as a body
when they arrive but made rows by the group commit, all the group's in one parse
(``parse_waiting``): one Arrow table a group, not one a request. Each such entry is one row
whatever it holds (a bad value is quarantined, never refused), so nothing a request is answered
depends on the entries it was parsed with.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Final

import pyarrow.compute as pc

from glucosestream.access import Principal
from glucosestream.config import Settings
from glucosestream.errors import InvalidInput
from glucosestream.formats import ParsedFile, raw_rows_from_records
from glucosestream.formats.nightscout import read_nightscout_entries, treatments_from_records
from glucosestream.ingest.batch import Part
from glucosestream.ingest.bodies import check_depth, check_items, decode_body
from glucosestream.ingest.devicestatus import devicestatus_rows
from glucosestream.ingest.identity import load_secret
from glucosestream.ingest.upload_rights import check_rows_allowed, require_upload_role
from glucosestream.request_credentials import bound_patient

__all__ = ["RequestParser", "parse_waiting"]

# At most this many entries, all typed sgv, wait for the group's parse (``parse_waiting``).
WAITING_ENTRIES: Final = 16
_UNPARSED: Final = ParsedFile(read_nightscout_entries([], source="request").rows)


class RequestParser:
    """One per app (or Lambda container): holds the pseudonym key the row check needs."""

    def __init__(self, settings: Settings) -> None:
        self._secret = load_secret(settings)

    def readings_part(self, principal: Principal, body: bytes) -> Part:
        """``{"readings": [...]}`` as raw rows, after checking the token may post every row."""
        require_upload_role(principal)
        document = decode_body(body, 'send {"readings": [...]}')
        readings = document.get("readings") if isinstance(document, dict) else None
        if not isinstance(readings, list):
            raise InvalidInput('expected a JSON object {"readings": [...]}', source="request")
        check_items(readings, "readings")
        check_depth(body, document, 2 + len(readings))
        rows = raw_rows_from_records(readings, source="request")
        check_rows_allowed(principal, rows, self._secret)
        sha256 = hashlib.sha256(b"v1/readings\x00" + body).hexdigest()
        return Part(ParsedFile(rows), "http", "json", sha256)

    def entries_part(self, principal: Principal, body: bytes) -> tuple[Part, list[Any]]:
        """Nightscout entries for the one patient the uploader token is bound to, and the
        entries as posted (Nightscout answers with them: see ``bodies.nightscout_echo``)."""
        key, entries = self._nightscout_documents(principal, body, "entries")
        sha256 = hashlib.sha256(f"api/v1/entries\x00{key}\x00".encode() + body).hexdigest()
        if len(entries) <= WAITING_ENTRIES and all(_typed_sgv(e) for e in entries):
            waiting = tuple(entries)
            return Part(
                _UNPARSED, "nightscout-api", "nightscout", sha256, key, entries=waiting
            ), entries
        parsed = read_nightscout_entries(entries, source="request")
        return Part(parsed, "nightscout-api", "nightscout", sha256, patient_key=key), entries

    def treatments_part(self, principal: Principal, body: bytes) -> tuple[Part, list[Any]]:
        """Nightscout treatments for the token's one patient (as entries), and the documents
        as posted. A document that is not a JSON object is a quarantined event, not a 422."""
        key, documents = self._nightscout_documents(principal, body, "treatments")
        sha256 = hashlib.sha256(f"api/v1/treatments\x00{key}\x00".encode() + body).hexdigest()
        parsed = treatments_from_records(documents)
        return Part(parsed, "nightscout-api", "nightscout", sha256, patient_key=key), documents

    def devicestatus_part(self, principal: Principal, body: bytes) -> tuple[Part, list[Any]]:
        """Nightscout devicestatus documents for the token's one patient, kept raw
        (``devicestatus``), and the documents as posted."""
        key, documents = self._nightscout_documents(principal, body, "devicestatus")
        sha256 = hashlib.sha256(f"api/v1/devicestatus\x00{key}\x00".encode() + body).hexdigest()
        part = Part(
            _UNPARSED,
            "nightscout-api",
            "devicestatus",
            sha256,
            patient_key=key,
            devicestatus=devicestatus_rows(documents),
        )
        return part, documents

    def _nightscout_documents(
        self, principal: Principal, body: bytes, name: str
    ) -> tuple[str, list[Any]]:
        """The token's one patient and the posted documents (an array, or one object),
        within the limits entries have."""
        require_upload_role(principal)
        key = bound_patient(principal)
        document = decode_body(body, f"send a JSON array of Nightscout {name}")
        if not isinstance(document, list | dict):
            raise InvalidInput(
                f"expected a JSON array of Nightscout {name} (or one object), not "
                f"{type(document).__name__}",
                source="request",
            )
        documents = document if isinstance(document, list) else [document]
        check_items(documents, name, objects_only=name != "treatments")
        check_depth(body, document, len(documents) + (1 if isinstance(document, list) else 0))
        return key, documents


def parse_waiting(parts: Sequence[Part]) -> list[Part]:
    """The parts, those whose entries wait (``Part.entries``) parsed: all in one parse, each
    part then taking its rows (one an entry, in order) with its own lines."""
    waiting = [p.entries for p in parts if p.entries is not None]
    if not waiting:
        return list(parts)
    rows = read_nightscout_entries([e for w in waiting for e in w], source="request").rows
    line = rows.schema.get_field_index("line")
    parsed: list[Part] = []
    start = 0
    for part in parts:
        if part.entries is None:
            parsed.append(part)
            continue
        mine = rows.slice(start, len(part.entries))
        if start:
            mine = mine.set_column(line, "line", pc.subtract(mine["line"], start))
        parsed.append(replace(part, parsed=ParsedFile(mine), entries=None))
        start += len(part.entries)
    return parsed


def _typed_sgv(entry: Any) -> bool:
    """An entry typed ``sgv``: parsed into exactly one row, whatever its fields hold."""
    return isinstance(entry, dict) and entry.get("type") == "sgv"
