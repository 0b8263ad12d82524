"""The rolling summary a run writes for each patient it touches: ``results.patient_summaries``.
PURE.

Two rows per patient: ``current``, the last 14 complete local days (``metrics.report_window``
of the wall-clock time of the patient's newest reading: a partial newest day is named in
``partial_day`` and never counted), and ``previous``, the 14 days before. Each carries the
consensus set as ``results.period_metrics`` does (``metrics.compute_period_metrics`` of the same
readings, published definitions), and the newest reading's instant (``last_reading_at``). The
window follows the patient's data, not the calendar, so a patient no run touches keeps the rows
it has: they are still the last 14 complete days of its data. Triage and the pages read them
through ``PublishedRun.summaries``; any other window is ``published.window_summary``.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.localclock import wall_clock_times
from glucosestream.metrics import PERIOD_METRICS_SCHEMA, compute_period_metrics, report_window
from glucosestream.metrics.report_window import REPORT_DAYS

__all__ = [
    "PATIENT_SUMMARIES_SCHEMA",
    "ROLLING_HISTORY",
    "WINDOWS",
    "rolling_history_start",
    "rolling_summaries",
]

WINDOWS: Final = ("current", "previous")
# The readings a patient's two windows can hold begin at most 2 x 14 days and the partial day
# before its newest reading's local day, and a local day begins at most 14 hours before its
# UTC date: 30 days of history before the newest reading hold them all.
ROLLING_HISTORY: Final = dt.timedelta(days=2 * REPORT_DAYS + 2)
_KEYS: Final = ("patient_key", "period_start", "period_end")
_RUN: Final = ("run_id", "computed_at")
_METRIC_FIELDS: Final = [f for f in PERIOD_METRICS_SCHEMA if f.name not in (*_KEYS, *_RUN)]
PATIENT_SUMMARIES_SCHEMA: Final = pa.schema(
    [
        pa.field("patient_key", pa.string(), nullable=False),
        pa.field("window", pa.string(), nullable=False),  # current | previous
        pa.field("period_start", pa.date32(), nullable=False),
        pa.field("period_end", pa.date32(), nullable=False),
        pa.field("partial_day", pa.date32()),  # the newest day when it is not complete
        pa.field("last_reading_at", pa.timestamp("us", tz="UTC"), nullable=False),
        *_METRIC_FIELDS,
        *(PERIOD_METRICS_SCHEMA.field(name) for name in _RUN),
    ]
)


def rolling_summaries(
    readings: pa.Table, patient_keys: frozenset[str], *, run_id: str, computed_at: dt.datetime
) -> pa.Table:
    """``PATIENT_SUMMARIES_SCHEMA`` rows of ``patient_keys`` (those with readings), the current
    and previous window of each, from ``readings`` (canonical: ``patient_key, ts,
    glucose_mg_dl, tz``), which must hold every reading of those patients from
    ``ROLLING_HISTORY`` before their newest on."""
    newest = _newest(readings, patient_keys)
    if newest.num_rows == 0:
        return PATIENT_SUMMARIES_SCHEMA.empty_table()
    windows = _windows(newest)
    periods = windows.select(list(_KEYS))
    metrics = compute_period_metrics(readings, periods, run_id=run_id, computed_at=computed_at)
    columns = {name: windows[name] for name in PATIENT_SUMMARIES_SCHEMA.names[:6]}
    columns |= {f.name: metrics[f.name] for f in _METRIC_FIELDS}
    columns |= {name: metrics[name] for name in _RUN}
    return pa.table(columns).cast(PATIENT_SUMMARIES_SCHEMA)


def rolling_history_start(incoming: pa.Table, since: dt.datetime | None) -> dt.datetime | None:
    """Where an incremental run reads its patients' curated readings from, so that the rolling
    summary has them all: ``ROLLING_HISTORY`` before the newest incoming reading, or ``since``
    (the run's own history start) if earlier; None (everything) stays None."""
    if since is None or incoming.num_rows == 0:
        return since
    newest: dt.datetime = pc.max(incoming["ts"]).as_py()
    return min(since, newest - ROLLING_HISTORY)


def _newest(readings: pa.Table, patient_keys: frozenset[str]) -> pa.Table:
    """Per patient of ``patient_keys``: the newest instant and the newest wall-clock time
    (computed for every patient of ``readings``, then narrowed: filtering the readings first
    cost more than the aggregate)."""
    local = wall_clock_times(readings["ts"], readings["tz"])
    table = pa.table({"patient_key": readings["patient_key"], "ts": readings["ts"], "local": local})
    newest = table.group_by("patient_key").aggregate([("ts", "max"), ("local", "max")])
    keys = pa.array(sorted(patient_keys), pa.string())
    return newest.filter(pc.is_in(newest["patient_key"], value_set=keys)).sort_by("patient_key")


def _windows(newest: pa.Table) -> pa.Table:
    """Two rows per patient, current then previous: the window's days and the newest day's."""
    rows: dict[str, list[object]] = {name: [] for name in PATIENT_SUMMARIES_SCHEMA.names[:6]}
    span = dt.timedelta(days=REPORT_DAYS)
    for key, at, local in zip(
        newest["patient_key"].to_pylist(),
        newest["ts_max"].to_pylist(),
        newest["local_max"].to_pylist(),
        strict=True,
    ):
        current = report_window(local)
        starts = (current.start, current.start - span)
        for window, start in zip(WINDOWS, starts, strict=True):
            rows["patient_key"].append(key)
            rows["window"].append(window)
            rows["period_start"].append(start)
            rows["period_end"].append(start + span - dt.timedelta(days=1))
            rows["partial_day"].append(current.partial_day)
            rows["last_reading_at"].append(at)
    return pa.table(rows, pa.schema([PATIENT_SUMMARIES_SCHEMA.field(n) for n in rows]))
