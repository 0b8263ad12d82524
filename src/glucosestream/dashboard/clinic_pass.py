"""When each patient's newest published batch was received, for triage's "last upload": one
pass over every patient's last published day of readings, once per run, a chunk of patients
at a time (patients with close last days together, so a chunk reads no further back than its
members need). Uploads since the run are the live window's (``clinic_summary.last_uploads``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import partial
from typing import Final

from glucosestream.published import PublishedRun

__all__ = ["ClinicPass", "clinic_pass", "warm_clinic_pass"]

_CACHED: Final = "clinic-pass"  # its name in a run's cache
CHUNK_PATIENTS: Final = 500  # patients whose last days of readings are held at once
# Read back from a patient's last published (local) day: that day and the local clock's lead
# on UTC (a local day starts at most 14 h before its UTC date).
_READ_BACK: Final = dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class ClinicPass:
    uploads: dict[str, dt.datetime]  # newest ingested_at of the patient's last day's readings


def clinic_pass(run: PublishedRun) -> ClinicPass:
    """The pass over the run, made on first use and cached on it."""
    return run.cached(_CACHED, partial(_make, run))


def warm_clinic_pass(previous: PublishedRun | None, run: PublishedRun, *, now: dt.datetime) -> bool:
    """Make ``run``'s pass before requests get ``run`` (``PublishedLake.adopt_newest``), when
    ``previous`` had one (someone uses triage); whether it did. (``now``: as the other warmers.)"""
    if previous is None or not run.is_published or not previous.cached_names(_CACHED):
        return False
    clinic_pass(run)
    return True


def _make(run: PublishedRun) -> ClinicPass:
    daily = run.daily_index()
    keys = sorted(set(daily.table["patient_key"].to_pylist()), key=lambda k: (daily.last_day(k), k))
    uploads: dict[str, dt.datetime] = {}
    for i in range(0, len(keys), CHUNK_PATIENTS):
        chunk = keys[i : i + CHUNK_PATIENTS]
        first = min(daily.last_day(k) for k in chunk)
        since = dt.datetime.combine(first, dt.time(), dt.UTC) - _READ_BACK
        readings = run.readings(chunk, since).select(["patient_key", "ingested_at"])
        newest = readings.group_by("patient_key").aggregate([("ingested_at", "max")])
        keys_col = newest["patient_key"].to_pylist()
        times = newest["ingested_at_max"].to_pylist()
        uploads.update(zip(keys_col, times, strict=True))
    return ClinicPass(uploads)
