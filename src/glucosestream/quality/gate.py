"""The gate: a run publishes only if every check passed (the runner combines the buckets'
checks with reconciliation into one report)."""

from __future__ import annotations

from dataclasses import dataclass

from glucosestream.quality.staged import CheckResult

__all__ = ["QualityReport"]


@dataclass(frozen=True, slots=True)
class QualityReport:
    checks: tuple[CheckResult, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.checks if not c.passed)

    @property
    def culprits(self) -> frozenset[str]:
        """Raw batches blamed by the failed checks (empty: the fault is not in the data)."""
        return frozenset(b for c in self.checks if not c.passed for b in c.batch_ids)

    @property
    def attributable(self) -> bool:
        """True when every failed check names the batches that caused it."""
        return all(c.batch_ids for c in self.checks if not c.passed)
