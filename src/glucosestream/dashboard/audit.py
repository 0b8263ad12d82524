"""The access audit trail, as lines for ``glucosestream audit``: the reads of one patient's data,
and the logins to the pages (failed ones with the client's address and why)."""

from __future__ import annotations

from glucosestream.config import Settings
from glucosestream.lake import open_access

__all__ = ["audit_lines", "login_lines"]


def audit_lines(settings: Settings, patient_key: str, *, limit: int = 1000) -> list[str]:
    """Who read this patient's data, when and what, newest first: one tab-separated line each
    (time UTC, token id, role, action, resource)."""
    entries = open_access(settings.lake).audit.access_entries(patient_key, limit=limit)
    return [
        "\t".join((e.at.isoformat(), e.token_id, e.role, e.action, e.resource)) for e in entries
    ]


def login_lines(settings: Settings, *, limit: int = 1000) -> list[str]:
    """Logins to the pages, newest first: one tab-separated line each (time UTC, token id or
    ``-``, role or ``failed``, where from and, for a failure, why; never the token tried)."""
    entries = open_access(settings.lake).audit.access_entries(limit=limit, action="login")
    return ["\t".join((e.at.isoformat(), e.token_id, e.role, e.resource)) for e in entries]
