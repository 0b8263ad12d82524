"""Row checks: a reading the pipeline must not (or cannot) publish is set aside alone. PURE.

A raw batch may hold rows an older ingest, or other settings, let in: a zone that is not an IANA
zone, a glucose that is not a finite number, a time outside the plausible range, a value outside
this gate's limits. Each such row is set aside *before* the run merges and computes anything,
with the name of the first check it fails as its reason; the rest of its batch (which may hold
other clients' requests, see ``ingest.group_commit``) goes on. Nothing here names a batch at
fault: only a fault of the batch's own can (its file does not hold what it accepted:
``checks.check_reconciliation``; its files cannot be read: ``pipeline.discovery.discover``).

The checks use the bounds ingest applies (``readings``), so a row ingest accepts today passes
all but ``glucose_range``, whose limits are the gate's own (``QualitySettings``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.config import QualitySettings
from glucosestream.quality.staged import CheckResult
from glucosestream.readings import EARLIEST_READING_AT, FUTURE_SKEW, is_known_zone

__all__ = [
    "ROW_CHECKS",
    "SET_ASIDE_SCHEMA",
    "RowCheck",
    "SetAsideRows",
    "count_set_aside",
    "row_check_results",
    "set_aside_rows",
]

# The keys of a set-aside row and why: enough to find it in its raw batch, no glucose value.
SET_ASIDE_SCHEMA: Final = pa.schema(
    [
        pa.field("batch_id", pa.string(), nullable=False),
        pa.field("patient_key", pa.string(), nullable=False),
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC")),  # null only if the reading had none
        pa.field("reason", pa.string(), nullable=False),
    ]
)


@dataclass(frozen=True, slots=True)
class RowCheck:
    """A check of each reading: ``offending`` marks the rows that fail it (never null)."""

    name: str
    detail: str
    offending: Callable[[pa.Table, QualitySettings], pa.ChunkedArray | pa.Array]


def _unknown_zone(rows: pa.Table, settings: QualitySettings) -> pa.Array:
    zones = pc.fill_null(rows["tz"], "")
    unknown = [z for z in pc.unique(zones).to_pylist() if not is_known_zone(z)]
    return pc.is_in(zones, pa.array(unknown, pa.string()))


def _not_finite(rows: pa.Table, settings: QualitySettings) -> pa.ChunkedArray:
    return pc.fill_null(pc.invert(pc.is_finite(rows["glucose_mg_dl"])), True)


def _too_early(rows: pa.Table, settings: QualitySettings) -> pa.ChunkedArray:
    return pc.fill_null(pc.less(rows["ts"], pa.scalar(EARLIEST_READING_AT)), True)


def _in_the_future(rows: pa.Table, settings: QualitySettings) -> pa.ChunkedArray:
    latest = pc.add(rows["ingested_at"], pa.scalar(FUTURE_SKEW))
    return pc.fill_null(pc.greater(rows["ts"], latest), True)


def _outside_range(rows: pa.Table, settings: QualitySettings) -> pa.ChunkedArray:
    g = rows["glucose_mg_dl"]
    outside = pc.or_(pc.less(g, settings.min_mg_dl), pc.greater(g, settings.max_mg_dl))
    return pc.fill_null(outside, True)


# In order: a row's reason is the first check it fails.
ROW_CHECKS: Final = (
    RowCheck(
        "known_zone",
        "readings whose tz is not an IANA zone (a zone name spelt as in the IANA database)",
        _unknown_zone,
    ),
    RowCheck("finite_glucose", "readings whose glucose is not a finite number", _not_finite),
    RowCheck(
        "plausible_time",
        f"readings dated before {EARLIEST_READING_AT:%Y-%m-%d} (a clock reset or a shifted export)",
        _too_early,
    ),
    RowCheck(
        "no_future_readings",
        f"readings dated more than {FUTURE_SKEW.total_seconds() / 60:g} minutes after they "
        "were received (a device clock or time-zone error; check --tz)",
        _in_the_future,
    ),
    RowCheck(
        "glucose_range",
        "readings outside the gate's glucose range (GLUCOSESTREAM_QUALITY__MIN_MG_DL / "
        "__MAX_MG_DL)",
        _outside_range,
    ),
)


@dataclass(frozen=True, slots=True)
class SetAsideRows:
    """The readings that go on (``kept``), and the keys and reason of those set aside."""

    kept: pa.Table
    set_aside: pa.Table  # SET_ASIDE_SCHEMA


def count_set_aside(set_aside: pa.Table) -> dict[tuple[str, str], int]:
    """Rows of a ``SET_ASIDE_SCHEMA`` table per (batch_id, reason)."""
    if set_aside.num_rows == 0:
        return {}
    grouped = set_aside.group_by(["batch_id", "reason"]).aggregate([([], "count_all")])
    return {
        (b, r): n
        for b, r, n in zip(
            grouped["batch_id"].to_pylist(),
            grouped["reason"].to_pylist(),
            grouped["count_all"].to_pylist(),
            strict=True,
        )
    }


def set_aside_rows(
    readings: pa.Table, settings: QualitySettings, checks: Sequence[RowCheck] = ROW_CHECKS
) -> SetAsideRows:
    """Split ``readings`` (canonical schema) into the rows every check passes and the rest
    (``checks``: the events' are ``event_row_checks.EVENT_ROW_CHECKS``)."""
    if readings.num_rows == 0:
        return SetAsideRows(readings, SET_ASIDE_SCHEMA.empty_table())
    reason = pa.nulls(readings.num_rows, pa.string())
    for check in checks:
        failing = pc.and_(pc.is_null(reason), check.offending(readings, settings))
        reason = pc.if_else(failing, pa.scalar(check.name), reason)
    bad = pc.is_valid(reason)
    if not pc.any(bad).as_py():
        return SetAsideRows(readings, SET_ASIDE_SCHEMA.empty_table())
    aside = readings.filter(bad).select(["batch_id", "patient_key", "device_id", "ts"])
    aside = aside.append_column("reason", pc.filter(reason, bad))
    return SetAsideRows(readings.filter(pc.invert(bad)), aside.cast(SET_ASIDE_SCHEMA))


def row_check_results(
    set_aside_by_reason: Mapping[str, int], checks: Sequence[RowCheck] = ROW_CHECKS
) -> list[CheckResult]:
    """One passed result per row check, saying how many rows it set aside over the run."""
    results = []
    for check in checks:
        n = set_aside_by_reason.get(check.name, 0)
        detail = f"{n} set aside: {check.detail}" if n else "ok"
        results.append(CheckResult(check.name, True, 0, detail, set_aside=n))
    return results
