"""What triage reads of each patient: their rolling summary (the consensus metrics of their
current and previous window, written at publish: ``results.patient_summaries``, read through
``PublishedRun.summaries``; ``rolling_summaries`` is the one place that says where the rows
come from), and when they last uploaded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.dashboard.clinic_pass import clinic_pass
from glucosestream.dashboard.clinic_windows import Window
from glucosestream.live import LiveWindow
from glucosestream.published import PublishedLake, PublishedRun

__all__ = ["last_uploads", "rolling_summaries", "summary_rows"]


def rolling_summaries(run: PublishedRun, patient_keys: Iterable[str]) -> pa.Table:
    """The current and previous window's row of each patient (a patient without published
    readings has none). The run's whole table is read once and kept on the run (two small
    rows a patient), so each request filters it in memory."""
    table = run.cached("clinic-summaries", run.summaries)
    wanted = pa.array(sorted(set(patient_keys)), pa.string())
    return table.filter(pc.is_in(table["patient_key"], wanted))


def summary_rows(
    run: PublishedRun, patient_keys: Iterable[str]
) -> dict[str, dict[Window, dict[str, Any]]]:
    """``rolling_summaries`` as ``{patient_key: {"current": row, "previous": row}}``."""
    out: dict[str, dict[Window, dict[str, Any]]] = {}
    for row in rolling_summaries(run, patient_keys).to_pylist():
        out.setdefault(row["patient_key"], {})[row["window"]] = row
    return out


def last_uploads(
    published: PublishedLake,
    live: LiveWindow,
    run: PublishedRun,
    patient_keys: Iterable[str],
) -> dict[str, dt.datetime]:
    """When each patient's newest batch was received: the batches behind their readings in the
    live window (uploads of the last hours, published or not; ``batches.created_at``), else the
    newest ``ingested_at`` of their last published day's readings (``clinic_pass``). A patient
    with neither is left out."""
    keys = sorted(set(patient_keys))
    recent: dict[str, set[str]] = {}
    for key in keys:
        batch_ids = {r.batch_id for r in live.recent(key)}
        if batch_ids:
            recent[key] = batch_ids
    wanted = sorted(set().union(*recent.values())) if recent else []
    records = published.metadata.batch_records(wanted) if wanted else {}
    published_at = clinic_pass(run).uploads
    out: dict[str, dt.datetime] = {}
    for key in keys:
        received = [_utc(records[b].created_at) for b in recent.get(key, ()) if b in records]
        candidates = [*received, *([published_at[key]] if key in published_at else [])]
        if candidates:
            out[key] = max(candidates)
    return out


def _utc(at: dt.datetime) -> dt.datetime:
    """A stored instant as aware UTC (SQLite returns it naive)."""
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)
