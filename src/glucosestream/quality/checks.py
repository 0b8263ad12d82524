"""Quality checks over a run's staged data. PURE: Arrow in, results out.

A run stages its work one bucket of patients at a time. Before a bucket is merged, the row checks
(``rows``) set aside each reading the run must not publish, with its reason; the checks here then
audit what is staged. Each bucket check is a function ``(StagedRun, QualitySettings) ->
CheckResult`` listed in ``CHECKS``; ``combine`` merges a check's results over the buckets, and
``check_reconciliation`` audits the run's counts as a whole.
Only reconciliation names raw batches at fault (``batch_ids``: a batch whose file does not hold
what it accepted, a fault of the batch's own); the runner rejects those and publishes the rest.
Any other failure is a fault of the system and stops the run. Details never put glucose values
next to patient identifiers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.config import QualitySettings

__all__ = [
    "CHECKS",
    "BatchCounts",
    "CheckResult",
    "RunAccounts",
    "StagedRun",
    "check_reconciliation",
    "combine",
    "run_checks",
]

_BAND_SUM_TOLERANCE: Final = 1e-9
_BANDS: Final = (
    "pct_below_54",
    "pct_below_70",
    "pct_70_180",
    "pct_above_180",
    "pct_above_250",
    "pct_active",
)


@dataclass(frozen=True, slots=True)
class BatchCounts:
    """A raw batch's own account of itself (its manifest) and the rows it actually holds."""

    received: int
    accepted: int
    duplicates: int
    quarantined: int
    rows: int


@dataclass(frozen=True, slots=True)
class StagedRun:
    """What a run is about to publish for one bucket of patients."""

    new_readings: pa.Table
    all_readings: pa.Table
    daily: pa.Table
    days: pa.Table
    incoming: pa.Table | None = None  # the bucket's readings the merge took (after set-aside)


@dataclass(frozen=True, slots=True)
class RunAccounts:
    """The counts of a whole run that must reconcile."""

    batches: Mapping[str, BatchCounts]
    incoming_rows: int
    new_rows: int
    duplicates_at_merge: int
    set_aside_rows: int = 0


@dataclass(frozen=True, slots=True)
class CheckResult:
    """A check's outcome. ``failed_rows``: rows staged for publishing that fail it (then it did
    not pass); ``set_aside``: rows a row check kept out of the run (it passed: none is staged)."""

    name: str
    passed: bool
    failed_rows: int
    detail: str
    batch_ids: tuple[str, ...] = ()
    set_aside: int = 0


def _result(name: str, failed: int, detail: str, batch_ids: list[str] | None = None) -> CheckResult:
    return CheckResult(
        name, failed == 0, failed, detail if failed else "ok", tuple(sorted(batch_ids or ()))
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


def check_every_reading_lands(run: StagedRun, settings: QualitySettings) -> CheckResult:
    """Every incoming reading's key is in the lake after the merge (published before, or new
    now): the merge may drop a reading only as a duplicate of one that is there. This is what
    makes the run's count of merge duplicates (incoming - set aside - new) a measurement."""
    if run.incoming is None or run.incoming.num_rows == 0:
        return _result("every_reading_lands", 0, "")
    keys = ["patient_key", "device_id", "ts"]
    lost = run.incoming.select(keys).join(
        run.all_readings.select(keys), keys, join_type="left anti"
    )
    return _result(
        "every_reading_lands",
        lost.num_rows,
        f"{lost.num_rows} incoming readings are neither new nor already in the lake",
    )


def check_daily_bounds(run: StagedRun, settings: QualitySettings) -> CheckResult:
    daily = run.daily
    if daily.num_rows == 0:
        return _result("daily_bounds", 0, "")
    bad = pc.less_equal(daily["readings"], 0)
    for name in _BANDS:
        bad = pc.or_(bad, pc.or_(pc.less(daily[name], 0.0), pc.greater(daily[name], 100.0)))
    total = pc.add(pc.add(daily["pct_below_70"], daily["pct_70_180"]), daily["pct_above_180"])
    bad = pc.or_(bad, pc.greater(pc.abs(pc.subtract(total, 100.0)), _BAND_SUM_TOLERANCE))
    failed = int(pc.sum(bad).as_py() or 0)
    return _result(
        "daily_bounds",
        failed,
        f"{failed} patient-days with a percentage outside 0-100, bands not summing to 100, "
        "or no readings",
    )


def check_complete_days(run: StagedRun, settings: QualitySettings) -> CheckResult:
    missing = run.days.num_rows - run.daily.num_rows
    return _result(
        "complete_days",
        abs(missing),
        f"{run.days.num_rows} patient-days touched but {run.daily.num_rows} computed",
    )


def check_reconciliation(run: RunAccounts) -> CheckResult:
    """received = accepted + duplicates + quarantined per batch, each batch file holds its
    accepted rows, and every incoming row is new, a duplicate or set aside."""
    bad = [
        batch_id
        for batch_id, c in run.batches.items()
        if c.received != c.accepted + c.duplicates + c.quarantined or c.accepted != c.rows
    ]
    merge_gap = run.incoming_rows - (run.new_rows + run.duplicates_at_merge + run.set_aside_rows)
    return _result(
        "reconciliation",
        len(bad) + abs(merge_gap),
        f"{len(bad)} batches where received != accepted + duplicates + quarantined or the "
        f"file does not hold its accepted rows; merge off by {merge_gap}",
        bad,
    )


CHECKS: Final[tuple[Callable[[StagedRun, QualitySettings], CheckResult], ...]] = (
    check_unique_readings,
    check_every_reading_lands,
    check_daily_bounds,
    check_complete_days,
)


def run_checks(run: StagedRun, settings: QualitySettings) -> list[CheckResult]:
    return [check(run, settings) for check in CHECKS]


def combine(per_bucket: Sequence[Sequence[CheckResult]]) -> list[CheckResult]:
    """One result per check over all buckets: failed rows add up, blamed batches unite, and
    the details of the failing buckets are kept."""
    by_name: dict[str, list[CheckResult]] = {}
    for results in per_bucket:
        for result in results:
            by_name.setdefault(result.name, []).append(result)
    out = []
    for name, results in by_name.items():
        failed = [r for r in results if not r.passed]
        rows = sum(r.failed_rows for r in failed)
        detail = "; ".join(dict.fromkeys(r.detail for r in failed)) if failed else "ok"
        batches = sorted({b for r in failed for b in r.batch_ids})
        out.append(CheckResult(name, not failed, rows, detail, tuple(batches)))
    return out
