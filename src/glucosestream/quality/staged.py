"""What a run stages for one bucket of patients, and what a check says of it (PURE records)."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

__all__ = ["CheckResult", "StagedRun"]


@dataclass(frozen=True, slots=True)
class StagedRun:
    """What a run is about to publish for one bucket of patients."""

    new_readings: pa.Table
    all_readings: pa.Table
    daily: pa.Table
    days: pa.Table
    incoming: pa.Table | None = None  # the bucket's readings the merge took (after set-aside)
    incoming_events: pa.Table | None = None  # the bucket's events the merge took (after set-aside)
    all_events: pa.Table | None = None  # the curated events the run read, and the new ones


@dataclass(frozen=True, slots=True)
class CheckResult:
    """A check's outcome. ``failed_rows``: rows staged for publishing that fail it (then it did
    not pass), or that a warning-level check flags while passing (``warning``: the run still
    publishes, and the detail says what was found); ``set_aside``: rows a row check kept out of
    the run (it passed: none is staged)."""

    name: str
    passed: bool
    failed_rows: int
    detail: str
    batch_ids: tuple[str, ...] = ()
    set_aside: int = 0

    @property
    def warning(self) -> bool:
        """Passed, with something to say: a warning-level check that found something."""
        return self.passed and self.detail != "ok"
