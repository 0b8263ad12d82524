"""What happened to an alert, as the store records it and the webhook outbox delivers it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Final, Literal

__all__ = ["KINDS", "AlertChange", "ChangeEvent"]

# Every alert kind; a clear is delivered as the kind + "_cleared".
KINDS: Final = (
    "urgent_low",
    "low",
    "high",
    "urgent_low_soon",
    "rising_fast",
    "falling_fast",
    "stale_data",
    "hypo_level2_episode",
)

ChangeEvent = Literal["fired", "escalated", "cleared"]


@dataclass(frozen=True, slots=True)
class AlertChange:
    """One fire, escalation or clear of one alert episode (``alert_id``), written with the
    alert in one transaction. ``seq`` orders the changes of one episode (fired 0, escalated 1,
    cleared 2); a change of a suppressed episode (fired while snoozed) is not delivered."""

    alert_id: str
    patient_key: str
    kind: str
    event: ChangeEvent
    seq: int
    at: dt.datetime  # the reading's time; for stale data, when it was detected
    glucose_mg_dl: float | None
    threshold_mg_dl: float | None
    direction: str | None = None
    level: str | None = None  # stale data: "warning" or "urgent"
    suppressed: bool = False
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def delivered_kind(self) -> str:
        """The ``kind`` a webhook body carries: ``low``, or ``low_cleared`` for a clear."""
        return f"{self.kind}_cleared" if self.event == "cleared" else self.kind
