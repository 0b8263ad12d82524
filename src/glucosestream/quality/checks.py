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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.config import QualitySettings
from glucosestream.events import DAILY_EVENT_COLUMNS
from glucosestream.quality.duplicate_sensor import check_duplicate_sensor
from glucosestream.quality.event_key import EVENT_IDENTITY, event_identity
from glucosestream.quality.staged import CheckResult, StagedRun
from glucosestream.readings import in_order

__all__ = [
    "CHECKS",
    "READING_KEY",
    "BatchCounts",
    "RunAccounts",
    "check_reconciliation",
    "combine",
    "in_key_order",
    "repeats_previous_key",
    "run_checks",
]

READING_KEY: Final = ("patient_key", "device_id", "ts")  # what identifies a reading
_BAND_SUM_TOLERANCE: Final = 1e-9
_TOTAL_TOLERANCE: Final = 1e-9  # relative, for insulin_total_u = bolus_u + basal_u
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
    events_accepted: int = 0  # the manifest's events.accepted
    event_rows: int = 0  # the rows its events file holds


@dataclass(frozen=True, slots=True)
class RunAccounts:
    """The counts of a whole run that must reconcile."""

    batches: Mapping[str, BatchCounts]
    incoming_rows: int
    new_rows: int
    duplicates_at_merge: int
    set_aside_rows: int = 0
    events_incoming: int = 0
    events_new: int = 0
    events_duplicates: int = 0  # at the merge: incoming - set aside - new
    events_set_aside: int = 0


def _result(name: str, failed: int, detail: str, batch_ids: list[str] | None = None) -> CheckResult:
    return CheckResult(
        name, failed == 0, failed, detail if failed else "ok", tuple(sorted(batch_ids or ()))
    )


def check_unique_readings(run: StagedRun, settings: QualitySettings) -> CheckResult:
    rows = run.all_readings
    if in_key_order(rows):  # a repeated key is on neighbouring rows: no hash table needed
        repeats = repeats_previous_key(rows).to_numpy(zero_copy_only=False)
        repeated = int(np.count_nonzero(repeats[1:] & ~repeats[:-1]))
    else:
        keys = rows.select(list(READING_KEY))
        counts = keys.group_by(list(READING_KEY)).aggregate([([], "count_all")])
        repeated = counts.filter(pc.greater(counts["count_all"], 1)).num_rows
    return _result(
        "unique_readings",
        repeated,
        f"{repeated} (patient_key, device_id, ts) keys occur more than once",
    )


def check_every_reading_lands(run: StagedRun, settings: QualitySettings) -> CheckResult:
    """Every incoming reading's key is in the lake after the merge (published before, or new
    now): the merge may drop a reading only as a duplicate of one that is there. This is what
    makes the run's count of merge duplicates (incoming - set aside - new) a measurement."""
    if run.incoming is None or run.incoming.num_rows == 0:
        return _result("every_reading_lands", 0, "")
    if _same_keys_in_order(run.incoming, run.all_readings):
        lost = 0
    else:
        keys = list(READING_KEY)
        lost = (
            run.incoming.select(keys)
            .join(run.all_readings.select(keys), keys, join_type="left anti")
            .num_rows
        )
    return _result(
        "every_reading_lands",
        lost,
        f"{lost} incoming readings are neither new nor already in the lake",
    )


def check_every_event_lands(run: StagedRun, settings: QualitySettings) -> CheckResult:
    """Every incoming event is in the lake after the merge, published before or new now (as
    ``check_every_reading_lands``: the run's event duplicates are then a measurement)."""
    if run.incoming_events is None or run.all_events is None or not run.incoming_events.num_rows:
        return _result("every_event_lands", 0, "")
    keys = list(EVENT_IDENTITY)
    lost = (
        event_identity(run.incoming_events)
        .select(keys)
        .join(event_identity(run.all_events).select(keys), keys, join_type="left anti")
        .num_rows
    )
    return _result(
        "every_event_lands", lost, f"{lost} incoming events are neither new nor already in the lake"
    )


def _same_keys_in_order(incoming: pa.Table, lake: pa.Table) -> bool:
    """Whether both tables are in key order and ``incoming``'s distinct keys are ``lake``'s
    keys, row for row (a full run: nothing was published before). Then every incoming key is
    in ``lake`` without a hash join; False leaves the answer to the join."""
    if not (in_key_order(incoming) and in_key_order(lake)):
        return False
    distinct = incoming.filter(pc.invert(repeats_previous_key(incoming)))
    if distinct.num_rows != lake.num_rows:
        return False
    return all(pc.all(pc.equal(distinct[name], lake[name])).as_py() for name in READING_KEY)


def in_key_order(rows: pa.Table) -> bool:
    """Whether the rows are sorted by ``READING_KEY`` (ascending, no null key part): one
    comparison of each row with the one before it, no sort."""
    return in_order(rows, READING_KEY)


def repeats_previous_key(rows: pa.Table, key: Sequence[str] = READING_KEY) -> pa.ChunkedArray:
    """Whether each row's ``key`` (a reading's by default) equals the previous row's (a null
    key part equals a null one, as keys group in SQL); False for the first row, and no nulls.
    On rows in key order, the rows a key repeats on are exactly its second and later
    occurrences."""
    n = rows.num_rows
    parts = [_equals_previous(rows[name]) for name in key]
    same = parts[0]
    for part in parts[1:]:
        same = pc.and_(same, part)
    first = [pa.array([False] if n else [], pa.bool_())]
    return pa.chunked_array(first + same.chunks, pa.bool_())


def _equals_previous(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """From the second value on: whether it equals the one before it (null equals null)."""
    this, previous = column.slice(1), column.slice(0, max(len(column) - 1, 0))
    equal = pc.equal(this, previous)
    if column.null_count:
        equal = pc.or_kleene(equal, pc.and_(pc.is_null(this), pc.is_null(previous)))
    return pc.fill_null(equal, False)


def check_daily_bounds(run: StagedRun, settings: QualitySettings) -> CheckResult:
    """Each day with readings has its percentages in 0-100 and bands summing to 100; a day
    without readings (a day of events only) has no glucose figures."""
    daily = run.daily
    if daily.num_rows == 0:
        return _result("daily_bounds", 0, "")
    glucose = pc.greater(daily["readings"], 0)
    bad = pc.less(daily["readings"], 0)
    for name in _BANDS:
        out = pc.or_(pc.less(daily[name], 0.0), pc.greater(daily[name], 100.0))
        bad = pc.or_(bad, pc.and_(glucose, pc.fill_null(out, True)))
    total = pc.add(pc.add(daily["pct_below_70"], daily["pct_70_180"]), daily["pct_above_180"])
    off = pc.greater(pc.abs(pc.subtract(total, 100.0)), _BAND_SUM_TOLERANCE)
    bad = pc.or_(bad, pc.and_(glucose, pc.fill_null(off, True)))
    bad = pc.or_(bad, pc.and_(pc.invert(glucose), pc.is_valid(daily["pct_70_180"])))
    failed = int(pc.sum(bad).as_py() or 0)
    return _result(
        "daily_bounds",
        failed,
        f"{failed} patient-days with a percentage outside 0-100, bands not summing to 100, "
        "or glucose figures without readings",
    )


def check_daily_event_totals(run: StagedRun, settings: QualitySettings) -> CheckResult:
    """A day's insulin and carbohydrate totals are >= 0, its automated share within 0-100,
    and its total insulin the bolus plus the basal where both are known."""
    daily = run.daily
    if daily.num_rows == 0 or "bolus_u" not in daily.column_names:
        return _result("daily_event_totals", 0, "")
    bad = pc.fill_null(pc.less(daily[DAILY_EVENT_COLUMNS[0]], 0), False)
    for name in DAILY_EVENT_COLUMNS[1:]:
        bad = pc.or_(bad, pc.fill_null(pc.less(daily[name], 0), False))
    over = pc.fill_null(pc.greater(daily["automated_pct"], 100.0), False)
    total = pc.add(daily["bolus_u"], daily["basal_u"])
    gap = pc.abs(pc.subtract(daily["insulin_total_u"], total))
    uneven = pc.greater(gap, pc.multiply(pc.add(pc.abs(total), 1.0), _TOTAL_TOLERANCE))
    unknown = pc.and_(pc.is_valid(total), pc.is_null(daily["insulin_total_u"]))
    bad = pc.or_(pc.or_(bad, over), pc.or_(pc.fill_null(uneven, False), unknown))
    failed = int(pc.sum(bad).as_py() or 0)
    return _result(
        "daily_event_totals",
        failed,
        f"{failed} patient-days with a negative insulin or carbohydrate total, an automated "
        "share over 100 %, or insulin_total_u other than bolus_u + basal_u",
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
    accepted rows (readings and events), and every incoming row (reading or event) is new, a
    duplicate or set aside."""
    bad = [
        batch_id
        for batch_id, c in run.batches.items()
        if c.received != c.accepted + c.duplicates + c.quarantined
        or c.accepted != c.rows
        or c.events_accepted != c.event_rows
    ]
    merge_gap = run.incoming_rows - (run.new_rows + run.duplicates_at_merge + run.set_aside_rows)
    event_gap = run.events_incoming - (
        run.events_new + run.events_duplicates + run.events_set_aside
    )
    return _result(
        "reconciliation",
        len(bad) + abs(merge_gap) + abs(event_gap),
        f"{len(bad)} batches where received != accepted + duplicates + quarantined or a "
        f"file does not hold its accepted rows; merge off by {merge_gap} readings and "
        f"{event_gap} events",
        bad,
    )


CHECKS: Final[tuple[Callable[[StagedRun, QualitySettings], CheckResult], ...]] = (
    check_unique_readings,
    check_every_reading_lands,
    check_every_event_lands,
    check_daily_bounds,
    check_daily_event_totals,
    check_complete_days,
    check_duplicate_sensor,
)


def run_checks(run: StagedRun, settings: QualitySettings) -> list[CheckResult]:
    return [check(run, settings) for check in CHECKS]


def combine(per_bucket: Sequence[Sequence[CheckResult]]) -> list[CheckResult]:
    """One result per check over all buckets: failed rows add up, blamed batches unite, and
    the details of the failing buckets are kept (of a warning's buckets, when none failed)."""
    by_name: dict[str, list[CheckResult]] = {}
    for results in per_bucket:
        for result in results:
            by_name.setdefault(result.name, []).append(result)
    out = []
    for name, results in by_name.items():
        failed = [r for r in results if not r.passed]
        said = failed or [r for r in results if r.warning]  # a warning's findings add up too
        rows = sum(r.failed_rows for r in said)
        detail = "; ".join(dict.fromkeys(r.detail for r in said)) if said else "ok"
        batches = sorted({b for r in failed for b in r.batch_ids})
        out.append(CheckResult(name, not failed, rows, detail, tuple(batches)))
    return out
