"""A patient's period results for a page: the audited rows when the window is a published
period, else computed on the fly and marked as not audited.

The pipeline writes ``results.period_metrics``, ``results.episodes`` and ``results.agp_profile``
for every *closed* fixed fortnight (``pipeline.periods``), after the quality gate. A window that
is exactly one such period (its first day a period start, 14 days, a row published) is shown
from those tables. The pipeline also writes each patient's rolling summary
(``results.patient_summaries``: the last 14 complete days and the 14 before): a window that is
exactly one of those takes its consensus figures from that audited row, and its episodes and
AGP curves (not stored for rolling windows) are computed from the same published readings. Any
other window, for example one the viewer picked, is computed from the published readings as
one window: its numbers cannot be assembled from period rows (CV, MAGE and the percentile curves
do not add up across periods), and it is labelled "not yet audited".

``catalog_results`` is the same rule for the whole catalog of a window (a summary): the
consensus set from the audited row when the window has one, the research catalog (never
stored) computed from the readings; else all of it computed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.metrics import (
    ALL,
    CONSENSUS,
    PERIOD_METRICS_SCHEMA,
    agp_profile,
    compute_period_metrics,
    episode_rows,
)
from glucosestream.metrics.result_schemas import metric_field
from glucosestream.metrics.summary import json_value, window_metrics
from glucosestream.pipeline.periods import PERIOD_DAYS, closed_periods, period_start
from glucosestream.published.pinned_run import PublishedRun

__all__ = [
    "CatalogResults",
    "PeriodResults",
    "audited_periods",
    "catalog_results",
    "is_fixed_period",
    "period_results",
]

_ON_REQUEST: Final = "on-request"  # run_id of rows computed for a page: no run owns them
_PERIOD_SCHEMA: Final = pa.schema(
    [("patient_key", pa.string()), ("period_start", pa.date32()), ("period_end", pa.date32())]
)


@dataclass(frozen=True, slots=True)
class PeriodResults:
    """One row of period metrics, the episodes and the AGP curves of a window of local days.

    ``audited`` tells whether they are the published rows of a closed period (written by run
    ``audited_by``) or were computed now from the published readings."""

    start: dt.date
    end: dt.date
    audited: bool
    audited_by: str | None
    metrics: pa.Table
    episodes: pa.Table
    agp: pa.Table


def is_fixed_period(start: dt.date, end: dt.date) -> bool:
    """Whether ``start``..``end`` is exactly one of the pipeline's fixed fortnights."""
    return period_start(start) == start and (end - start).days == PERIOD_DAYS - 1


def period_results(
    run: PublishedRun,
    patient_key: str,
    start: dt.date,
    end: dt.date,
    *,
    readings: pa.Table,
    now: dt.datetime,
) -> PeriodResults:
    """The audited rows of ``start``..``end`` if it is a published period, else the same
    results computed from ``readings`` (the patient's published readings of the window)."""
    metrics = _period_row(run, patient_key, start, end)
    if metrics is not None:
        return PeriodResults(
            start,
            end,
            audited=True,
            audited_by=metrics["run_id"][0].as_py(),
            metrics=metrics,
            episodes=run.results("episodes", patient_key, period_start=start),
            agp=run.results("agp", patient_key, period_start=start),
        )
    window = pa.table(
        {"patient_key": [patient_key], "period_start": [start], "period_end": [end]},
        _PERIOD_SCHEMA,
    )
    episodes = episode_rows(readings, window, run_id=_ON_REQUEST, computed_at=now)
    agp = agp_profile(readings, window, run_id=_ON_REQUEST, computed_at=now)
    metrics = _rolling_row(run, patient_key, start, end)
    if metrics is not None:  # a rolling window: its figures audited, its curves drawn now
        audited_by = metrics["run_id"][0].as_py()
        return PeriodResults(start, end, True, audited_by, metrics, episodes, agp)
    computed = compute_period_metrics(readings, window, run_id=_ON_REQUEST, computed_at=now)
    return PeriodResults(start, end, False, None, computed, episodes, agp)


@dataclass(frozen=True, slots=True)
class CatalogResults:
    """Every metric of the catalog (``spec.ALL``, JSON-ready by name) of a window; ``audited``:
    its consensus set is the published row of run ``audited_by``."""

    audited: bool
    audited_by: str | None
    metrics: dict[str, Any]


def catalog_results(
    run: PublishedRun, patient_key: str, start: dt.date, end: dt.date, *, readings: pa.Table
) -> CatalogResults:
    """The catalog of ``start``..``end``: the consensus set from the audited row if the window is
    a published period, the rest (or all, if not) computed from ``readings``."""
    row = _audited_row(run, patient_key, start, end)
    if row is None:
        return CatalogResults(False, None, window_metrics(readings, start, end, ALL))
    published = row.slice(0, 1).to_pylist()[0]
    consensus = {n: json_value(n, published[metric_field(n).name]) for n in CONSENSUS}
    research = window_metrics(readings, start, end, [n for n in ALL if n not in consensus])
    metrics = {n: consensus[n] if n in consensus else research[n] for n in ALL}
    return CatalogResults(True, published["run_id"], metrics)


def _audited_row(
    run: PublishedRun, patient_key: str, start: dt.date, end: dt.date
) -> pa.Table | None:
    """The published consensus row of ``start``..``end`` (``PERIOD_METRICS_SCHEMA``), if the
    window is a published period or one of the patient's rolling summary windows."""
    row = _period_row(run, patient_key, start, end)
    return row if row is not None else _rolling_row(run, patient_key, start, end)


def _period_row(
    run: PublishedRun, patient_key: str, start: dt.date, end: dt.date
) -> pa.Table | None:
    """The published period_metrics row of ``start``..``end``, if it is a published period."""
    if not is_fixed_period(start, end):
        return None
    rows = run.results("periods", patient_key, period_start=start)
    return rows if rows.num_rows else None


def _rolling_row(
    run: PublishedRun, patient_key: str, start: dt.date, end: dt.date
) -> pa.Table | None:
    """The rolling summary row (``results.patient_summaries``: the patient's last 14 complete
    days, or the 14 before) whose window is exactly ``start``..``end``, as period_metrics."""
    summaries = run.summaries([patient_key])
    same = pc.and_(
        pc.equal(summaries["period_start"], pa.scalar(start, pa.date32())),
        pc.equal(summaries["period_end"], pa.scalar(end, pa.date32())),
    )
    rows = summaries.filter(same)
    return rows.select(PERIOD_METRICS_SCHEMA.names).slice(0, 1) if rows.num_rows else None


def audited_periods(run: PublishedRun, patient_key: str) -> list[tuple[dt.date, dt.date]]:
    """The patient's closed periods with data, oldest first: those the run's results tables
    hold audited (by the pipeline's rule, ``pipeline.periods.closed_periods``)."""
    days = run.daily_index().patient_days(patient_key).select(["patient_key", "date"])
    closed = closed_periods(days, frozenset({patient_key}), None)
    starts, ends = closed["period_start"].to_pylist(), closed["period_end"].to_pylist()
    return list(zip(starts, ends, strict=True))
