"""A request body as one ``Part`` of a raw batch: ``{"readings": [...]}`` or Nightscout entries.

Parsing is done within the limits of ``limits``/``bodies`` (size, item count, depth), and the
token's right to post each row (``upload_rights``) is checked before anything is queued. The
part's ``sha256`` is the request's idempotency key: the SHA-256 of what was posted, by route.
"""

from __future__ import annotations

import hashlib
from typing import Any

from glucosestream.access import Principal
from glucosestream.config import Settings
from glucosestream.errors import InvalidInput
from glucosestream.formats import ParsedFile, raw_rows_from_records
from glucosestream.formats.nightscout import read_nightscout_entries
from glucosestream.ingest.batch import Part
from glucosestream.ingest.bodies import check_depth, check_items, decode_body
from glucosestream.ingest.identity import load_secret
from glucosestream.ingest.upload_rights import check_rows_allowed, require_upload_role
from glucosestream.request_credentials import bound_patient

__all__ = ["RequestParser"]


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
        require_upload_role(principal)
        key = bound_patient(principal)
        document = decode_body(body, "send a JSON array of Nightscout entries")
        entries = document if isinstance(document, list) else [document]
        check_items(entries, "entries")
        check_depth(body, document, len(entries) + (1 if isinstance(document, list) else 0))
        parsed = read_nightscout_entries(entries, source="request")
        sha256 = hashlib.sha256(f"api/v1/entries\x00{key}\x00".encode() + body).hexdigest()
        return Part(parsed, "nightscout-api", "nightscout", sha256, patient_key=key), entries
