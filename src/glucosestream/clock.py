"""The clock, injected: stages take a ``now`` callable so tests can fix time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

__all__ = ["Clock", "utc_now"]

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """The current instant, timezone-aware in UTC."""
    return dt.datetime.now(dt.UTC)
