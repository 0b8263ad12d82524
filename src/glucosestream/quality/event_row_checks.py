"""Row checks of events: an event the pipeline must not publish is set aside alone. PURE.

The events' counterpart of ``row_checks``: before a run merges a bucket's events into
curated.events, each event that fails a check is set aside with the name of the first check it
fails (``SET_ASIDE_SCHEMA``, the same keys as a set-aside reading, no amount), and the rest go
on. Ingest applies the same bounds (``events``: kinds, subtypes, ``MAX_*`` limits; readings'
``EARLIEST_READING_AT`` and ``FUTURE_SKEW``), so an event ingest accepts today passes all of
them but a finger-stick outside the gate's glucose range (``QualitySettings``, as for readings).
They hold the gate for batches written by an older ingest or by hand.

The checks' names start with ``event_`` so the set-aside rows of readings and of events, kept
in the same metadata table, stay apart by reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.config import QualitySettings
from glucosestream.events import (
    EVENT_KINDS,
    INTENSITIES,
    KIND_SUBTYPES,
    MAX_BASAL_RATE_U_H,
    MAX_BOLUS_U,
    MAX_CARBS_G,
    MAX_DURATION_MIN,
    MAX_KETONE_MMOL_L,
    MAX_SEGMENT_U,
)
from glucosestream.quality.row_checks import (
    ROW_CHECKS,
    RowCheck,
    SetAsideRows,
    row_check_results,
    set_aside_rows,
)
from glucosestream.quality.staged import CheckResult
from glucosestream.readings import EARLIEST_READING_AT, FUTURE_SKEW

__all__ = ["EVENT_ROW_CHECKS", "event_row_check_results", "set_aside_events"]

# The amount each kind must have (a basal segment: its rate or its delivered units).
_REQUIRED: Final = {
    "bolus": ("units",),
    "basal": ("rate_u_h", "units"),
    "carbs": ("carbs_g",),
    "smbg": ("glucose_mg_dl",),
    "ketone": ("ketone_mmol_l",),
}
_AMOUNTS: Final = ("units", "rate_u_h", "duration_min", "carbs_g", "glucose_mg_dl", "ketone_mmol_l")


def _in(column: pa.ChunkedArray, values: tuple[str, ...]) -> pa.ChunkedArray:
    return pc.is_in(column, value_set=pa.array(values, pa.string()))


def _unknown_kind(rows: pa.Table, settings: QualitySettings) -> pa.ChunkedArray:
    kind, subtype = rows["kind"], rows["subtype"]
    bad = pc.invert(pc.fill_null(_in(kind, EVENT_KINDS), False))
    for name, allowed in KIND_SUBTYPES.items():
        wrong = pc.and_kleene(pc.equal(kind, name), pc.invert(_in(subtype, allowed)))
        bad = pc.or_(bad, pc.fill_null(pc.and_kleene(wrong, pc.is_valid(subtype)), False))
    intensity = rows["intensity"]
    known = pc.fill_null(_in(intensity, INTENSITIES), True)
    odd = pc.and_(pc.is_valid(intensity), pc.invert(known))
    return pc.or_(bad, odd)


def _implausible_amount(rows: pa.Table, settings: QualitySettings) -> pa.ChunkedArray:
    kind = rows["kind"]
    bad = pc.is_in(kind, value_set=pa.array([], pa.string()))  # all False, no nulls
    for name in _AMOUNTS:  # present, each amount is a finite number >= 0
        value = rows[name]
        wrong = pc.or_(pc.invert(pc.is_finite(value)), pc.less(value, 0.0))
        bad = pc.or_(bad, pc.fill_null(wrong, False))
    for name, required in _REQUIRED.items():
        given = pc.is_valid(rows[required[0]])
        for other in required[1:]:
            given = pc.or_(given, pc.is_valid(rows[other]))
        bad = pc.or_(bad, pc.and_(pc.fill_null(pc.equal(kind, name), False), pc.invert(given)))
    injection = pc.fill_null(pc.equal(rows["subtype"], "injection"), False)
    basal_limit = pc.if_else(injection, MAX_BOLUS_U, MAX_SEGMENT_U)
    units_limit = pc.if_else(pc.fill_null(pc.equal(kind, "basal"), False), basal_limit, MAX_BOLUS_U)
    g = rows["glucose_mg_dl"]
    beyond = (
        pc.greater(rows["units"], units_limit),
        pc.greater(rows["rate_u_h"], MAX_BASAL_RATE_U_H),
        pc.greater(rows["duration_min"], MAX_DURATION_MIN),
        pc.greater(rows["carbs_g"], MAX_CARBS_G),
        pc.greater(rows["ketone_mmol_l"], MAX_KETONE_MMOL_L),
        pc.or_(pc.less(g, settings.min_mg_dl), pc.greater(g, settings.max_mg_dl)),
    )
    for over in beyond:
        bad = pc.or_(bad, pc.fill_null(over, False))
    return bad


def _as_event_check(check: RowCheck, name: str, detail: str) -> RowCheck:
    """A readings' row check that reads only ``tz``, ``ts`` and ``ingested_at`` (columns an
    event has too), named for events."""
    return dataclasses.replace(check, name=name, detail=detail)


_ZONE, _, _EARLY, _FUTURE, _ = ROW_CHECKS
# In order: an event's reason is the first check it fails.
EVENT_ROW_CHECKS: Final = (
    _as_event_check(
        _ZONE,
        "event_known_zone",
        "events whose tz is not an IANA zone (a zone name spelt as in the IANA database)",
    ),
    RowCheck(
        "event_known_kind",
        "events whose kind, subtype or intensity is not one the event schema names "
        "(glucosestream.events)",
        _unknown_kind,
    ),
    _as_event_check(
        _EARLY,
        "event_plausible_time",
        f"events dated before {EARLIEST_READING_AT:%Y-%m-%d} (a clock reset or a shifted export)",
    ),
    _as_event_check(
        _FUTURE,
        "event_no_future",
        f"events dated more than {FUTURE_SKEW.total_seconds() / 60:g} minutes after they were "
        "received (a device clock or time-zone error; check --tz)",
    ),
    RowCheck(
        "event_plausible_amount",
        f"events whose amount is missing, negative, not a number or beyond the plausible "
        f"limits (a bolus over {MAX_BOLUS_U:g} U, a basal rate over {MAX_BASAL_RATE_U_H:g} U/h, "
        f"over {MAX_CARBS_G:g} g of carbs, longer than {MAX_DURATION_MIN / 60:g} h, a "
        "finger-stick outside the gate's glucose range)",
        _implausible_amount,
    ),
)


def set_aside_events(events: pa.Table, settings: QualitySettings) -> SetAsideRows:
    """Split ``events`` (``events.EVENT_SCHEMA``) into the rows every check passes and the
    keys and reason of the rest."""
    return set_aside_rows(events, settings, EVENT_ROW_CHECKS)


def event_row_check_results(set_aside_by_reason: Mapping[str, int]) -> list[CheckResult]:
    """One passed result per event row check, saying how many events it set aside."""
    return row_check_results(set_aside_by_reason, EVENT_ROW_CHECKS)
