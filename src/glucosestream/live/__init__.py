"""Readings accepted and not yet published: what a follower sees before the next run.

The live unit sits below ingest (which feeds it) and the read API (which merges it with the
published readings), so both can use it. ``trend`` is the one definition of a reading's
direction, trend number and rate; ``window`` the in-memory window of the last hours;
``readings_table`` its durable copy, the ``live_readings`` table (``LiveStore``).
"""

from glucosestream.live.committed import CommittedBatch
from glucosestream.live.readings_table import LIVE_KEPT, LiveStore, live_state, open_live_store
from glucosestream.live.trend import (
    DIRECTIONS,
    MAX_GAP_MIN,
    TrendPoint,
    delta_between,
    direction_for_rate,
    direction_of,
    rate_between,
    rate_of,
    rate_range,
    trend_number,
)
from glucosestream.live.window import LiveReading, LiveWindow, readings_of

__all__ = [
    "DIRECTIONS",
    "LIVE_KEPT",
    "MAX_GAP_MIN",
    "CommittedBatch",
    "LiveReading",
    "LiveStore",
    "LiveWindow",
    "TrendPoint",
    "delta_between",
    "direction_for_rate",
    "direction_of",
    "live_state",
    "open_live_store",
    "rate_between",
    "rate_of",
    "rate_range",
    "readings_of",
    "trend_number",
]
