"""One pass over every patient's recent published readings, once per run: each patient's
rolling summary rows (their current and previous window's period metrics, shaped like
``results.patient_summaries``) and when their newest published batch was received.

The readings are read a chunk of patients at a time (patients with close last days together,
so a chunk reads no further back than its members need) and each chunk's windows computed in
one ``metrics.compute_period_metrics`` call, as the pipeline computes periods: about the cost
of one published period per patient, not of one request per patient. Rows computed here are
not audited (no run wrote them).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.dashboard.clinic_windows import READ_BACK, ReportWindows, windows_of
from glucosestream.metrics import compute_period_metrics
from glucosestream.published import PublishedRun

__all__ = ["ClinicPass", "clinic_pass", "warm_clinic_pass"]

_CACHED: Final = "clinic-pass"  # its name in a run's cache
CHUNK_PATIENTS: Final = 250  # patients whose readings are held at once (~2.5 M for 30 days)
_ON_REQUEST: Final = "on-request"  # run_id of rows no run wrote (as published.period_results)
_PERIODS: Final = pa.schema(
    [("patient_key", pa.string()), ("period_start", pa.date32()), ("period_end", pa.date32())]
)


@dataclass(frozen=True, slots=True)
class ClinicPass:
    summaries: pa.Table  # two rows per patient with readings: window "current", "previous"
    uploads: dict[str, dt.datetime]  # newest ingested_at of the patient's readings read


def clinic_pass(run: PublishedRun, *, now: dt.datetime) -> ClinicPass:
    """The pass over the run, made on first use and cached on it."""
    return run.cached(_CACHED, partial(_make, run, now))


def warm_clinic_pass(previous: PublishedRun | None, run: PublishedRun, *, now: dt.datetime) -> bool:
    """Make ``run``'s pass before requests get ``run`` (``PublishedLake.adopt_newest``), when
    ``previous`` had one (someone uses triage); whether it did."""
    if previous is None or not run.is_published or not previous.cached_names(_CACHED):
        return False
    clinic_pass(run, now=now)
    return True


def _make(run: PublishedRun, now: dt.datetime) -> ClinicPass:
    daily = run.daily_index()
    keys = sorted(set(daily.table["patient_key"].to_pylist()), key=lambda k: (daily.last_day(k), k))
    tables: list[pa.Table] = []
    uploads: dict[str, dt.datetime] = {}
    for i in range(0, len(keys), CHUNK_PATIENTS):
        chunk = keys[i : i + CHUNK_PATIENTS]
        first = min(daily.last_day(k) for k in chunk)
        readings = run.readings(chunk, dt.datetime.combine(first, dt.time(), dt.UTC) - READ_BACK)
        if readings.num_rows:
            table, newest = _chunk(readings, now)
            tables.append(table)
            uploads.update(newest)
    summaries = pa.concat_tables(tables, promote_options="default") if tables else pa.table({})
    return ClinicPass(summaries, uploads)


def _newest(readings: pa.Table) -> list[dict[str, Any]]:
    """Per patient: the newest reading's ts and tz, and the newest ingested_at."""
    agg = readings.group_by("patient_key").aggregate([("ts", "max"), ("ingested_at", "max")])
    joined = readings.select(["patient_key", "ts", "tz"]).join(agg, "patient_key")
    newest = joined.filter(pc.equal(joined["ts"], joined["ts_max"]))
    seen: dict[str, dict[str, Any]] = {}
    for row in newest.to_pylist():
        seen.setdefault(row["patient_key"], row)
    return [seen[k] for k in sorted(seen)]


def _chunk(readings: pa.Table, now: dt.datetime) -> tuple[pa.Table, dict[str, dt.datetime]]:
    rows: list[dict[str, Any]] = []
    uploads: dict[str, dt.datetime] = {}
    for newest in _newest(readings):
        key = newest["patient_key"]
        windows = windows_of(pa.table({"ts": [newest["ts"]], "tz": [newest["tz"]]}))
        if windows is not None:
            rows += _window_rows(key, windows)
        uploads[key] = newest["ingested_at_max"]
    periods = pa.Table.from_pylist(
        [{k: r[k] for k in _PERIODS.names} for r in rows], schema=_PERIODS
    )
    metrics = compute_period_metrics(readings, periods, run_id=_ON_REQUEST, computed_at=now)
    for name in ("window", "partial_day", "last_reading_at", "audited"):
        metrics = metrics.append_column(name, pa.array([r[name] for r in rows]))
    return metrics, uploads


def _window_rows(key: str, windows: ReportWindows) -> list[dict[str, Any]]:
    return [
        {
            "patient_key": key,
            "period_start": start,
            "period_end": end,
            "window": window,
            "partial_day": windows.partial_day,
            "last_reading_at": windows.last_reading_at,
            "audited": False,
        }
        for window, (start, end) in windows.spans().items()
    ]
