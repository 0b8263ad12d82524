"""The patient page's "now" panel: the current glucose with its trend arrow, minutes since the
last reading, the stale-data warning, today's trace on the patient's local clock, and the
patient's alerts (active ones, and those whose webhook deliveries became dead letters).

``now_panel`` is PURE: it takes the merged readings (published and accepted-but-unpublished,
``published.live_merge``), the alerts and the instant, so its numbers are tested by hand.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Final, Literal, Protocol

import pyarrow as pa

from glucosestream.live import TrendPoint, direction_for_rate, rate_of
from glucosestream.localclock import usable_zone, wall_clock_times

__all__ = ["ARROWS", "KIND_LABELS", "NowPanel", "Stale", "alert_json", "now_panel"]

# The glyph Nightscout shows for each direction name: cgm-remote-monitor lib/plugins/direction.js
# (github.com/nightscout/cgm-remote-monitor, read at 7e0e77f).
ARROWS: Final[dict[str, str]] = {
    "NONE": "⇼",
    "DoubleUp": "⇈",
    "SingleUp": "↑",
    "FortyFiveUp": "↗",
    "Flat": "→",
    "FortyFiveDown": "↘",
    "SingleDown": "↓",
    "DoubleDown": "⇊",
    "NOT COMPUTABLE": "-",
    "RATE OUT OF RANGE": "⇕",
}

# What the page calls each alert kind (``alerts.KINDS``; docs/alerts.md defines them).
KIND_LABELS: Final[dict[str, str]] = {
    "urgent_low": "Urgent low",
    "low": "Low",
    "high": "High",
    "urgent_low_soon": "Urgent low soon",
    "rising_fast": "Rising fast",
    "falling_fast": "Falling fast",
    "stale_data": "No recent data",
    "hypo_level2_episode": "Level 2 hypoglycaemia episode",
}

Stale = Literal["warn", "urgent"]


class Reading(TrendPoint, Protocol):
    """What the panel uses of a reading (``live.LiveReading`` has it): the trend's, and the
    zone."""

    @property
    def tz(self) -> str: ...


@dataclass(frozen=True, slots=True)
class NowPanel:
    """One patient's panel at ``at``. ``minutes_ago`` and ``stale`` count from the newest
    reading (``stale``: ``warn`` from ``stale_warn_min``, ``urgent`` from ``stale_urgent_min``,
    and ``urgent`` when there is no reading at all); ``trace`` is today's local day."""

    at: dt.datetime
    glucose_mg_dl: float | None
    reading_at: dt.datetime | None
    direction: str | None
    arrow: str | None
    rate_mg_dl_min: float | None
    minutes_ago: float | None
    stale: Stale | None
    stale_warn_min: float
    stale_urgent_min: float
    trace: dict[str, Any]  # date (local), minute of the local day and mg/dL of each reading
    unpublished: int  # readings shown that no run has published yet
    alerts: list[dict[str, Any]]  # active alerts, newest first
    dead_letters: list[dict[str, Any]]  # alerts with a dead webhook delivery, newest first

    def as_json(self) -> dict[str, Any]:
        """The panel as JSON values (instants in ISO 8601 UTC)."""
        return {
            "at": self.at.isoformat(),
            "glucose_mg_dl": self.glucose_mg_dl,
            "reading_at": self.reading_at.isoformat() if self.reading_at else None,
            "direction": self.direction,
            "arrow": self.arrow,
            "rate_mg_dl_min": self.rate_mg_dl_min,
            "minutes_ago": self.minutes_ago,
            "stale": self.stale,
            "stale_warn_min": self.stale_warn_min,
            "stale_urgent_min": self.stale_urgent_min,
            "trace": self.trace,
            "unpublished": self.unpublished,
            "alerts": self.alerts,
            "dead_letters": self.dead_letters,
        }


def _stale(minutes: float | None, warn_min: float, urgent_min: float) -> Stale | None:
    if minutes is None or minutes >= urgent_min:
        return "urgent"
    return "warn" if minutes >= warn_min else None


def _previous(readings: Sequence[Reading], latest: Reading) -> Reading | None:
    """The reading of the latest's device just before it (the rate is computed from it)."""
    for reading in reversed(readings[:-1]):
        if reading.device_id == latest.device_id and reading.ts < latest.ts:
            return reading
    return None


def _trend(readings: Sequence[Reading]) -> tuple[str | None, float | None]:
    """The newest reading's direction and rate: the uploader's direction, else the direction
    of its rate (the uploader's, else computed from the device's previous reading)."""
    latest = readings[-1]
    rate = rate_of(latest, _previous(readings, latest))
    if latest.direction is not None:
        return latest.direction, rate
    return (direction_for_rate(rate) if rate is not None else None), rate


def _today(readings: Sequence[Reading], zone: str, at: dt.datetime) -> dict[str, Any]:
    """The readings of the local day ``at`` falls on in ``zone``, each on its own local clock."""
    today = at.astimezone(_zone_info(zone)).date()
    if not readings:
        return {"date": today.isoformat(), "minute": [], "mg_dl": []}
    ts = pa.array([r.ts for r in readings], pa.timestamp("us", "UTC"))
    local = wall_clock_times(ts, pa.array([r.tz for r in readings], pa.string()))
    midnight = dt.datetime.combine(today, dt.time())
    minutes, values = [], []
    for when, reading in zip(local.to_pylist(), readings, strict=True):
        if when.date() == today:
            minutes.append(round((when - midnight).total_seconds() / 60, 2))
            values.append(round(reading.glucose_mg_dl, 1))
    return {"date": today.isoformat(), "minute": minutes, "mg_dl": values}


def _zone_info(zone: str) -> dt.tzinfo:
    usable = usable_zone(zone)
    return dt.UTC if usable == "UTC" else zoneinfo.ZoneInfo(usable)


def alert_json(row: Any) -> dict[str, Any]:
    """One alert (``alerts.AlertRow``) as JSON values (instants in ISO 8601)."""
    out: dict[str, Any] = {}
    for item in fields(row):
        value = getattr(row, item.name)
        out[item.name] = value.isoformat() if isinstance(value, dt.datetime) else value
    return out


def now_panel(
    readings: Sequence[Reading],
    *,
    at: dt.datetime,
    unpublished: int,
    alerts: Sequence[Any],
    stale_warn_min: float,
    stale_urgent_min: float,
) -> NowPanel:
    """The panel from the patient's merged readings (oldest first) and alerts (newest first)."""
    active = [alert_json(a) for a in alerts if a.state == "active"]
    dead = [alert_json(a) for a in alerts if a.deliveries.get("dead", 0) > 0]
    ordered = sorted(readings, key=lambda r: r.ts)
    latest = ordered[-1] if ordered else None
    direction, rate = _trend(ordered) if ordered else (None, None)
    minutes = max(0.0, (at - latest.ts).total_seconds() / 60) if latest else None
    return NowPanel(
        at=at,
        glucose_mg_dl=latest.glucose_mg_dl if latest else None,
        reading_at=latest.ts if latest else None,
        direction=direction,
        arrow=ARROWS.get(direction) if direction else None,
        rate_mg_dl_min=round(rate, 2) if rate is not None else None,
        minutes_ago=round(minutes, 1) if minutes is not None else None,
        stale=_stale(minutes, stale_warn_min, stale_urgent_min),
        stale_warn_min=stale_warn_min,
        stale_urgent_min=stale_urgent_min,
        trace=_today(ordered, latest.tz if latest else "UTC", at),
        unpublished=unpublished,
        alerts=active,
        dead_letters=dead,
    )
