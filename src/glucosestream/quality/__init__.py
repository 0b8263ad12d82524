"""Quality: row checks that set a bad reading aside alone (``row_checks``, PURE), declarative checks
over staged data (``checks``, PURE) and the gate that decides whether a run may publish
(``gate``)."""

from __future__ import annotations

from glucosestream.quality.checks import (
    BatchCounts,
    CheckResult,
    RunAccounts,
    StagedRun,
    check_reconciliation,
    combine,
    run_checks,
)
from glucosestream.quality.gate import QualityReport
from glucosestream.quality.row_checks import (
    SET_ASIDE_SCHEMA,
    SetAsideRows,
    count_set_aside,
    row_check_results,
    set_aside_rows,
)

__all__ = [
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
    "row_check_results",
    "run_checks",
    "set_aside_rows",
]
