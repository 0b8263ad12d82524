"""Quality checks over a run's staged data. PURE: Arrow in, results out.

Each check is a function ``(StagedRun, QualitySettings) -> CheckResult`` listed in ``CHECKS``;
a result counts the offending rows and describes a few of them (without glucose values next to
patient identifiers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.config import QualitySettings

__all__ = ["CHECKS", "CheckResult", "StagedRun", "run_checks"]

_BAND_SUM_TOLERANCE: Final = 1e-9


@dataclass(frozen=True, slots=True)
class StagedRun:
    """What a run is about to publish, and the counts that must reconcile."""

    new_readings: pa.Table
    all_readings: pa.Table
    daily: pa.Table
    received: int
    accepted_at_ingest: int
    duplicates_at_ingest: int
    quarantined_at_ingest: int
    duplicates_at_merge: int


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    passed: bool
    failed_rows: int
    detail: str


def _result(name: str, failed: int, detail: str) -> CheckResult:
    return CheckResult(name, failed == 0, failed, detail if failed else "ok")


def check_glucose_range(run: StagedRun, settings: QualitySettings) -> CheckResult:
    g = run.new_readings["glucose_mg_dl"]
    outside = pc.or_(pc.less(g, settings.min_mg_dl), pc.greater(g, settings.max_mg_dl))
    failed = int(pc.sum(outside).as_py() or 0)
    return _result(
        "glucose_range",
        failed,
        f"{failed} new readings outside {settings.min_mg_dl:g}-{settings.max_mg_dl:g} mg/dL "
        "(GLUCOSESTREAM_QUALITY__MIN_MG_DL / __MAX_MG_DL)",
    )


def check_unique_readings(run: StagedRun, settings: QualitySettings) -> CheckResult:
    keys = run.all_readings.select(["patient_key", "device_id", "ts"])
    counts = keys.group_by(["patient_key", "device_id", "ts"]).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts["count_all"], 1))
    return _result(
        "unique_readings",
        repeated.num_rows,
        f"{repeated.num_rows} (patient_key, device_id, ts) keys occur more than once",
    )


def check_daily_bounds(run: StagedRun, settings: QualitySettings) -> CheckResult:
    daily = run.daily
    bad = pa.array([False] * daily.num_rows, pa.bool_())
    for name in (
        "pct_below_54",
        "pct_below_70",
        "pct_70_180",
        "pct_above_180",
        "pct_above_250",
        "pct_active",
    ):
        column = daily[name]
        bad = pc.or_(bad, pc.or_(pc.less(column, 0.0), pc.greater(column, 100.0)))
    total = pc.add(pc.add(daily["pct_below_70"], daily["pct_70_180"]), daily["pct_above_180"])
    off = pc.greater(pc.abs(pc.subtract(total, 100.0)), _BAND_SUM_TOLERANCE)
    bad = pc.or_(bad, off)
    bad = pc.or_(bad, pc.less_equal(daily["readings"], 0))
    failed = int(pc.sum(bad).as_py() or 0) if daily.num_rows else 0
    return _result(
        "daily_bounds",
        failed,
        f"{failed} patient-days with a percentage outside 0-100, bands not summing to 100, "
        "or no readings",
    )


def check_reconciliation(run: StagedRun, settings: QualitySettings) -> CheckResult:
    ingest_gap = run.received - (
        run.accepted_at_ingest + run.duplicates_at_ingest + run.quarantined_at_ingest
    )
    merge_gap = run.accepted_at_ingest - (run.new_readings.num_rows + run.duplicates_at_merge)
    failed = abs(ingest_gap) + abs(merge_gap)
    return _result(
        "reconciliation",
        failed,
        f"received {run.received} != accepted + duplicates + quarantined (off by {ingest_gap}), "
        f"or accepted != published + merge duplicates (off by {merge_gap})",
    )


CHECKS: Final[tuple[Callable[[StagedRun, QualitySettings], CheckResult], ...]] = (
    check_glucose_range,
    check_unique_readings,
    check_daily_bounds,
    check_reconciliation,
)


def run_checks(run: StagedRun, settings: QualitySettings) -> list[CheckResult]:
    return [check(run, settings) for check in CHECKS]
