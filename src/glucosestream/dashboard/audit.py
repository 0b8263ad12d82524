"""The access audit trail of one patient, as lines for ``glucosestream audit --patient``."""

from __future__ import annotations

from glucosestream.config import Settings
from glucosestream.lake.access_store import open_access

__all__ = ["audit_lines"]


def audit_lines(settings: Settings, patient_key: str, *, limit: int = 1000) -> list[str]:
    """Who read this patient's data, when and what, newest first: one tab-separated line each
    (time UTC, token id, role, action, resource)."""
    entries = open_access(settings.lake).access_entries(patient_key, limit=limit)
    return [
        "\t".join((e.at.isoformat(), e.token_id, e.role, e.action, e.resource)) for e in entries
    ]
