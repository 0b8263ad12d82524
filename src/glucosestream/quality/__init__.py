"""Quality: declarative checks over staged data (``checks``, PURE) and the gate that decides
whether a run may publish (``gate``)."""

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
from glucosestream.quality.gate import QualityReport, evaluate

__all__ = [
    "BatchCounts",
    "CheckResult",
    "QualityReport",
    "RunAccounts",
    "StagedRun",
    "check_reconciliation",
    "combine",
    "evaluate",
    "run_checks",
]
