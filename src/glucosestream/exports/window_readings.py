"""The published readings of a window of local days, patient by patient, and the ids patients
are exported under: what the OMOP and tidy exports read.

The window is local days ``start``..``end``, each optional (None: from the first reading, to
the newest). Every reading of those days is exported, a partial newest day included: the
summaries (``published.window_summary``) count complete days only, the readings are data.
Readings are read ``KEYS_PER_READ`` patients to a scan, so an export of the whole lake is a few
scans, and is held in memory one group of patients at a time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.config import Settings
from glucosestream.errors import NotFound
from glucosestream.lake import open_patient_directory
from glucosestream.localclock import local_days
from glucosestream.published import PublishedRun

__all__ = ["KEYS_PER_READ", "Window", "exported_ids", "readings_by_patient"]

KEYS_PER_READ: Final = 64
Window = tuple[dt.date | None, dt.date | None]


def exported_ids(
    settings: Settings, patient_keys: Sequence[str], identities: Mapping[str, str] | None
) -> dict[str, str]:
    """Each key's id in the export: ``identities`` when given (the command line resolves them,
    as ingested or the key with ``--pseudonymous``), else the id as ingested from the metadata
    store; ``NotFound`` for a key without one."""
    if identities is not None:
        missing = [key[:8] for key in patient_keys if key not in identities]
        if missing:
            raise NotFound(f"no export id for patients {', '.join(missing)}…")
        return {key: identities[key] for key in patient_keys}
    names = open_patient_directory(settings.lake).names(patient_keys)
    out = {}
    for key in patient_keys:
        found = names.get(key)
        if found is None or not found.external_id:
            raise NotFound(
                f"patient {key[:8]}… has no id as ingested in the metadata store; export with "
                "--pseudonymous, or re-ingest the patient"
            )
        out[key] = found.external_id
    return out


def readings_by_patient(
    run: PublishedRun, patient_keys: Sequence[str], window: Window
) -> Iterator[tuple[str, pa.Table]]:
    """Each patient's published readings of the window's local days (``local_date`` added),
    in time order, patients in the order given."""
    start, end = window
    since = dt.datetime.combine(start - dt.timedelta(days=1), dt.time(), dt.UTC) if start else None
    for first in range(0, len(patient_keys), KEYS_PER_READ):
        keys = list(patient_keys[first : first + KEYS_PER_READ])
        table = run.readings(keys, since)
        table = table.append_column("local_date", local_days(table["ts"], table["tz"]))
        if start or end:
            days = table["local_date"]
            keep = pc.and_(
                pc.greater_equal(days, start) if start else pc.is_valid(days),
                pc.less_equal(days, end) if end else pc.is_valid(days),
            )
            table = table.filter(keep)
        table = table.sort_by([("patient_key", "ascending"), ("ts", "ascending")])
        for key in keys:
            yield key, table.filter(pc.equal(table["patient_key"], key))
