"""Quality: row checks that set a bad reading or event aside alone (``row_checks``,
``event_row_checks``, PURE), what makes two events the same (``event_key``), declarative checks
over staged data (``checks``, PURE; ``duplicate_sensor``, a warning: the same sensor under two
identities) and the gate that decides whether a run may publish (``gate``)."""

from __future__ import annotations

from glucosestream.quality.checks import (
    READING_KEY,
    BatchCounts,
    RunAccounts,
    check_reconciliation,
    combine,
    in_key_order,
    repeats_previous_key,
    run_checks,
)
from glucosestream.quality.duplicate_sensor import recurring_pairs
from glucosestream.quality.event_key import EVENT_IDENTITY, event_identity
from glucosestream.quality.event_row_checks import (
    EVENT_ROW_CHECKS,
    event_row_check_results,
    set_aside_events,
)
from glucosestream.quality.gate import QualityReport
from glucosestream.quality.row_checks import (
    SET_ASIDE_SCHEMA,
    SetAsideRows,
    count_set_aside,
    row_check_results,
    set_aside_rows,
)
from glucosestream.quality.staged import CheckResult, StagedRun

__all__ = [
    "EVENT_IDENTITY",
    "EVENT_ROW_CHECKS",
    "READING_KEY",
    "SET_ASIDE_SCHEMA",
    "BatchCounts",
    "CheckResult",
    "QualityReport",
    "RunAccounts",
    "SetAsideRows",
    "StagedRun",
    "check_reconciliation",
    "combine",
    "count_set_aside",
    "event_identity",
    "event_row_check_results",
    "in_key_order",
    "recurring_pairs",
    "repeats_previous_key",
    "row_check_results",
    "run_checks",
    "set_aside_events",
    "set_aside_rows",
]
