"""One pipeline run, with write-audit-publish.

1. recover: roll tables back to the last published snapshots (undo a crashed run);
2. discover raw batches not loaded yet (no new batch: nothing to do, and say so);
3. merge: keep each (patient_key, device_id, ts) once, first arrival wins;
4. transform: daily metrics for the patient-days the new readings touch;
5. audit: every quality check on the staged data;
6. publish: write both tables, then record their snapshot ids in one metadata transaction.
   Readers use only recorded snapshots, so a run that fails or dies before step 6 publishes
   nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Literal

import pyarrow as pa

from glucosestream.clock import Clock, utc_now
from glucosestream.config import Settings
from glucosestream.engines import open_engine, read_sql
from glucosestream.lake import RawZone, open_lakehouse, open_metadata
from glucosestream.lake.metadata import PublishedSnapshots
from glucosestream.metrics import compute_daily_metrics, touched_days
from glucosestream.quality import CheckResult, StagedRun, evaluate
from glucosestream.readings import READING_SCHEMA

__all__ = ["RunReport", "run_pipeline"]

log = logging.getLogger(__name__)

RunStatus = Literal["published", "noop", "failed"]


@dataclass(frozen=True, slots=True)
class RunReport:
    run_id: str
    status: RunStatus
    message: str
    batches: int
    readings_in: int
    readings_new: int
    duplicates: int
    patient_days: int
    checks: tuple[CheckResult, ...]
    recovered: bool
    duration_ms: int

    @property
    def failed_checks(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.checks if not c.passed)


def run_pipeline(
    settings: Settings,
    *,
    full_refresh: bool = False,
    now: Clock = utc_now,
) -> RunReport:
    """Run the pipeline once over the lake in ``settings``."""
    started = time.perf_counter()
    started_at = now()
    run_id = f"run-{started_at:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:6]}"
    meta = open_metadata(settings.lake)
    lake = open_lakehouse(settings.lake)
    published = meta.published()
    recovered = lake.recover(published)
    loaded = meta.loaded_batch_ids()
    pending = [
        b for b in RawZone(settings.lake.root_path).list_batches() if b.batch_id not in loaded
    ]
    meta.start_run(run_id, started_at)

    def finish(status: RunStatus, message: str, **counts: int) -> RunReport:
        return RunReport(
            run_id=run_id,
            status=status,
            message=message,
            batches=counts.get("batches", 0),
            readings_in=counts.get("readings_in", 0),
            readings_new=counts.get("readings_new", 0),
            duplicates=counts.get("duplicates", 0),
            patient_days=counts.get("patient_days", 0),
            checks=tuple(checks),
            recovered=recovered,
            duration_ms=round((time.perf_counter() - started) * 1000),
        )

    checks: list[CheckResult] = []
    if not pending and not full_refresh:
        report = finish("noop", "no new raw batches since the last run; nothing to do")
        meta.finish_run(run_id, status="noop", finished_at=now(), report=asdict(report))
        log.info("run run_id=%s status=noop", run_id)
        return report

    readings_snapshot = None if published is None else published.readings_snapshot_id
    incoming = _concat([b.readings() for b in pending])
    records = meta.batch_records([b.batch_id for b in pending])
    engine = open_engine(settings.engine)
    try:
        if full_refresh:
            keys = meta.patient_keys()
        else:
            keys = sorted(set(incoming["patient_key"].to_pylist()))
        curated = lake.read_readings(readings_snapshot, keys)
        new = engine.query(
            read_sql("glucosestream.pipeline", "merge.sql"),
            {"incoming": incoming, "curated": curated},
        ).cast(READING_SCHEMA)
        all_readings = _concat([curated, new])
        days = touched_days(engine, all_readings if full_refresh else new)
        daily = compute_daily_metrics(
            engine, all_readings, days, run_id=run_id, computed_at=started_at
        )
    finally:
        engine.close()

    staged = StagedRun(
        new_readings=new,
        all_readings=all_readings,
        daily=daily,
        received=sum(r.received for r in records.values()),
        accepted_at_ingest=sum(r.accepted for r in records.values()),
        duplicates_at_ingest=sum(r.duplicates for r in records.values()),
        quarantined_at_ingest=sum(r.quarantined for r in records.values()),
        duplicates_at_merge=incoming.num_rows - new.num_rows,
    )
    quality = evaluate(staged, settings.quality)
    checks = list(quality.checks)
    counts = {
        "batches": len(pending),
        "readings_in": incoming.num_rows,
        "readings_new": new.num_rows,
        "duplicates": staged.duplicates_at_merge,
        "patient_days": days.num_rows,
    }
    if not quality.passed:
        report = finish(
            "failed",
            f"quality gate failed ({', '.join(quality.failed)}); nothing was published",
            **counts,
        )
        meta.finish_run(
            run_id, status="failed", finished_at=now(), report=asdict(report), checks=checks
        )
        log.warning("run run_id=%s status=failed checks=%s", run_id, ",".join(quality.failed))
        return report

    readings_snapshot = lake.append_readings(new)
    daily_snapshot = lake.replace_daily(daily, _days_by_patient(days), everything=full_refresh)
    report = finish("published", "published", **counts)
    meta.finish_run(
        run_id,
        status="published",
        finished_at=now(),
        report=asdict(report),
        checks=checks,
        published=PublishedSnapshots(run_id, readings_snapshot, daily_snapshot),
        loaded_batch_ids=[b.batch_id for b in pending],
    )
    log.info(
        "run run_id=%s status=published batches=%d rows_in=%d rows_new=%d duplicates=%d "
        "patient_days=%d duration_ms=%d",
        run_id,
        report.batches,
        report.readings_in,
        report.readings_new,
        report.duplicates,
        report.patient_days,
        report.duration_ms,
    )
    return report


def _concat(tables: list[pa.Table]) -> pa.Table:
    if not tables:
        return READING_SCHEMA.empty_table()
    return pa.concat_tables([t.cast(READING_SCHEMA) for t in tables])


def _days_by_patient(days: pa.Table) -> dict[str, list[dt.date]]:
    grouped: dict[str, list[dt.date]] = defaultdict(list)
    for key, date in zip(days["patient_key"].to_pylist(), days["date"].to_pylist(), strict=True):
        grouped[key].append(date)
    return dict(grouped)
