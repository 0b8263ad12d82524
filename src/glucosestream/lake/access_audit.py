"""The access audit trail in the metadata store (append-only): who read what, and every login
to the pages. No code path updates or deletes an entry."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from glucosestream.lake.database import Store
from glucosestream.lake.metadata_schema import access_log

__all__ = ["AccessAudit", "AccessEntry"]


@dataclass(frozen=True, slots=True)
class AccessEntry:
    at: dt.datetime
    token_id: str
    role: str
    action: str
    patient_key: str | None
    resource: str


class AccessAudit(Store):
    def log_access(self, entry: AccessEntry) -> None:
        with self._tx() as con:
            con.execute(access_log.insert(), [_row(entry)])

    def access_entries(
        self, patient_key: str | None = None, limit: int = 100, *, action: str | None = None
    ) -> list[AccessEntry]:
        """Entries newest first: of one patient's data, and/or of one action (``login``)."""
        query = sa.select(access_log).order_by(access_log.c.entry_id.desc()).limit(limit)
        if patient_key is not None:
            query = query.where(access_log.c.patient_key == patient_key)
        if action is not None:
            query = query.where(access_log.c.action == action)
        with self._tx() as con:
            return [
                AccessEntry(r.at, r.token_id, r.role, r.action, r.patient_key, r.resource)
                for r in con.execute(query)
            ]


def _row(entry: AccessEntry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in entry.__slots__}
