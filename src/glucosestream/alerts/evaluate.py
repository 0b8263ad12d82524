"""Which alerts fire, escalate or clear for one patient, given their recent readings. PURE.

``evaluate`` looks at one patient's window of readings (ascending), the patient's rules, the
patient's active alerts and snoozes, and the time, and returns the changes to record. The
definitions are in ``alerts.rules`` and docs/alerts.md; the behaviour around them:

* **On the newest reading, of its device.** The glucose kinds, the rate, the forecast and the
  level 2 episode look only at the readings of the device of the newest reading, so two sensors
  are never mixed. Stale data looks at the newest reading of any device.
* **Once per episode.** A kind fires when its condition holds and no alert of that kind is
  active, and clears when the condition stops holding. A condition that cannot be told (no rate,
  no forecast: too few readings) changes nothing.
* **Only fresh readings fire.** A newest reading more than ``fresh_min`` minutes old when
  evaluated (a backfill, a reposted old body) can clear an alert but cannot fire one.
* **Stale data** fires at ``stale_data`` minutes without a reading (level ``warning``) and is
  escalated once, the same alert, at ``stale_urgent_min`` (level ``urgent``); a new reading
  clears it.
* **Acknowledged** alerts are not escalated; their clear is still delivered.
* **Snoozed** kinds still fire, but the alert is recorded ``suppressed`` (not delivered), and so
  are its escalation and its clear. An episode still on when its snooze has ended is fired
  again, the same alert and not suppressed (the store then delivers its fire, once).
* **The level 2 episode** is the metrics' own definition (``metrics.open_episode``: the
  episodes of ``metrics.reference.episodes`` on the same interpolation grid); the alert is
  active while an episode is still open at the newest grid point. It fires
  when the episode's first 15 minutes below 54 mg/dL are complete and clears when the episode
  ends (15 minutes back at or above 54, or a gap the grid does not bridge).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo

import numpy as np

from glucosestream.alerts.changes import AlertChange, ChangeEvent
from glucosestream.alerts.forecast import STEP_MIN, forecast
from glucosestream.alerts.rules import Rules
from glucosestream.live import TrendPoint, direction_of, rate_between, rate_range
from glucosestream.localclock import usable_zone
from glucosestream.metrics import open_episode
from glucosestream.readings import ReadingFlag

__all__ = ["ActiveAlert", "WindowReading", "alert_id_for", "evaluate"]

_EPOCH: Final = dt.datetime(1970, 1, 1)  # noqa: DTZ001 - wall-clock seconds are naive
_SEQ: Final[Mapping[ChangeEvent, int]] = {"fired": 0, "escalated": 1, "cleared": 2}


class WindowReading(TrendPoint, Protocol):
    """The fields of a live reading the evaluator reads (``live.LiveReading`` has them): the
    trend's, and the flags and zone."""

    @property
    def flags(self) -> int: ...
    @property
    def tz(self) -> str: ...


@dataclass(frozen=True, slots=True)
class ActiveAlert:
    """An alert episode that has fired and not cleared, as the store holds it."""

    alert_id: str
    kind: str
    level: str | None = None
    acked: bool = False
    suppressed: bool = False


@dataclass(frozen=True, slots=True)
class _Finding:
    """Whether a kind's condition holds on the newest reading (None: cannot be told)."""

    holds: bool | None
    glucose_mg_dl: float | None = None
    threshold_mg_dl: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def alert_id_for(patient_key: str, kind: str, fired_at: dt.datetime) -> str:
    """The id of the episode of ``kind`` fired at ``fired_at``: ``al_``, the time in
    milliseconds (hex, so ids sort by time) and a digest of what it is (32 characters). The same
    fire evaluated twice (another thread, a restart) gets the same id."""
    ms = int(fired_at.timestamp() * 1000)
    digest = hashlib.sha256(f"{patient_key}|{kind}|{fired_at.isoformat()}".encode()).hexdigest()
    return f"al_{ms:012x}{digest[:17]}"


def evaluate(
    readings: Sequence[WindowReading],
    rules: Rules,
    active: Mapping[str, ActiveAlert],
    now: dt.datetime,
    *,
    patient_key: str,
    snoozed_until: Mapping[str, dt.datetime] | None = None,
    fresh_min: float = 15.0,
) -> list[AlertChange]:
    """The changes for one patient: ``readings`` their window (ascending ``ts``), ``active``
    their active alerts by kind, ``snoozed_until`` their snoozes by kind."""
    if not readings:
        return []
    snoozes = snoozed_until or {}
    newest = readings[-1]
    device = [r for r in readings if r.device_id == newest.device_id]
    fresh = (now - newest.ts).total_seconds() <= fresh_min * 60.0
    out: list[AlertChange] = []
    for kind, finding in _findings(device, rules, now).items():
        holds = finding.holds if rules.enabled(kind) else False
        current = active.get(kind)
        if holds and current is None and fresh:
            snoozed = _snoozed(snoozes, kind, now)
            out.append(
                _fired(
                    patient_key,
                    kind,
                    newest.ts,
                    finding,
                    direction=_direction(device),
                    suppressed=snoozed,
                )
            )
        elif holds and current is not None and fresh and _snooze_over(current, snoozes, now):
            out.append(_late(patient_key, current, newest.ts, finding, _direction(device)))
        elif holds is False and current is not None:
            out.append(_cleared(patient_key, current, device, finding))
    out.extend(_stale_changes(patient_key, newest, rules, active.get("stale_data"), now, snoozes))
    return out


def _findings(
    device: Sequence[WindowReading], rules: Rules, now: dt.datetime
) -> dict[str, _Finding]:
    newest = device[-1]
    g = newest.glucose_mg_dl
    low_flag = bool(newest.flags & ReadingFlag.SENSOR_LOW)
    high_flag = bool(newest.flags & ReadingFlag.SENSOR_HIGH)
    urgent = rules.get("urgent_low").threshold_mg_dl or 0.0
    low = rules.get("low").threshold_mg_dl or 0.0
    high = rules.get("high").threshold_mg_dl or math.inf
    rates = _rates(device)
    findings = {
        "urgent_low": _Finding(g <= urgent or low_flag, g, urgent),
        "low": _Finding(g < low or low_flag, g, low),
        "high": _Finding(g > high or high_flag, g, high),
        "urgent_low_soon": _urgent_low_soon(device, rules, now, urgent_now=g <= urgent or low_flag),
        "rising_fast": _fast(rates, rules.get("rising_fast").rate_mg_dl_min, g, rising=True),
        "falling_fast": _fast(rates, rules.get("falling_fast").rate_mg_dl_min, g, rising=False),
        "hypo_level2_episode": _level2_episode(device, rules),
    }
    return findings


def _urgent_low_soon(
    device: Sequence[WindowReading], rules: Rules, now: dt.datetime, *, urgent_now: bool
) -> _Finding:
    rule = rules.get("urgent_low_soon")
    threshold = rule.threshold_mg_dl or 0.0
    g = device[-1].glucose_mg_dl
    if urgent_now:  # urgent low itself: the forecast's alert gives way to it
        return _Finding(False, g, threshold)
    steps = max(1, math.floor((rule.minutes or STEP_MIN) / STEP_MIN))
    points = [(r.ts, r.glucose_mg_dl) for r in device]
    predicted = forecast(points, now, steps)
    if predicted is None:
        return _Finding(None)
    detail = {"forecast_mg_dl": list(predicted), "step_min": STEP_MIN, "model": "ar2"}
    return _Finding(min(predicted) <= threshold, g, threshold, detail)


@dataclass(frozen=True, slots=True)
class _Rate:
    """What is known of the rate: a number, or a range an uploader's arrow gives."""

    lowest: float
    highest: float
    source: str


def _rates(device: Sequence[WindowReading]) -> list[_Rate]:
    """What is known of the rate, most trusted first: the uploader's rate, what the uploader's
    arrow says, the rate computed from the device's previous reading (``live.trend.
    rate_between``: none across a gap of more than 15 minutes)."""
    newest = device[-1]
    out: list[_Rate] = []
    if newest.rate_mg_dl_min is not None and math.isfinite(newest.rate_mg_dl_min):
        out.append(_Rate(newest.rate_mg_dl_min, newest.rate_mg_dl_min, "uploader"))
    arrow = rate_range(newest.direction)  # what the uploader's arrow says of the rate
    if arrow is not None:
        out.append(_Rate(arrow[0], arrow[1], "direction"))
    computed = rate_between(device[-2], newest) if len(device) > 1 else None
    if computed is not None:
        out.append(_Rate(computed, computed, "computed"))
    return out


def _fast(rates: Sequence[_Rate], threshold: float | None, g: float, *, rising: bool) -> _Finding:
    """Faster than ``threshold`` mg/dL/min up (``rising``) or down, by the first rate that
    tells (an arrow's range that straddles the threshold does not)."""
    if threshold is None:
        return _Finding(None)
    for rate in rates:
        lowest, highest = (rate.lowest, rate.highest) if rising else (-rate.highest, -rate.lowest)
        detail: dict[str, Any] = {"rate_source": rate.source}
        if rate.lowest == rate.highest:
            detail["rate_mg_dl_min"] = round(rate.lowest, 3)
        if lowest > threshold or (rate.source == "direction" and lowest >= threshold):
            return _Finding(True, g, None, detail)
        if highest <= threshold:
            return _Finding(False, g, None, detail)
    return _Finding(None)


def _wall_clock_s(reading: WindowReading) -> int:
    local = reading.ts.astimezone(ZoneInfo(usable_zone(reading.tz))).replace(tzinfo=None)
    return int((local - _EPOCH).total_seconds())


def _level2_episode(device: Sequence[WindowReading], rules: Rules) -> _Finding:
    """Whether an episode is open at the newest point of the device's grid (``metrics.
    open_episode``: the grid as the metrics build it, one value per instant, its own step)."""
    rule = rules.get("hypo_level2_episode")
    threshold = rule.threshold_mg_dl or 0.0
    g = device[-1].glucose_mg_dl
    minutes = rule.minutes or 15.0
    if all(r.glucose_mg_dl >= threshold for r in device):
        # no reading below: nor is any grid point (interpolated between readings), so no
        # episode is open; the grid, the costliest part of an evaluation, is not built
        return _Finding(False, g, threshold, {"minutes": minutes})
    times = np.array([_wall_clock_s(r) for r in device], dtype=np.int64)
    values = np.array([r.glucose_mg_dl for r in device], dtype=np.float64)
    found = open_episode(times, values, "hypo", threshold, min_duration_min=minutes)
    if found.open is None:
        return _Finding(None)
    return _Finding(found.open, g, threshold, {"grid_min": found.grid_min, "minutes": minutes})


def _stale_changes(
    patient_key: str,
    newest: WindowReading,
    rules: Rules,
    current: ActiveAlert | None,
    now: dt.datetime,
    snoozes: Mapping[str, dt.datetime],
) -> list[AlertChange]:
    """Fire at the warning minutes, escalate once at the urgent ones, clear on a new reading."""
    age_min = (now - newest.ts).total_seconds() / 60.0
    warn_min = rules.get("stale_data").minutes or 20.0
    stale = rules.enabled("stale_data") and age_min >= warn_min
    if not stale:
        if current is None:
            return []
        finding = _Finding(False, newest.glucose_mg_dl, None, {"minutes_since_reading": 0})
        return [_cleared(patient_key, current, [newest], finding)]
    level = "urgent" if age_min >= rules.stale_urgent_min else "warning"
    detail = {"minutes_since_reading": round(age_min, 1), "last_reading_at": newest.ts.isoformat()}
    finding = _Finding(True, None, None, detail)
    if current is None:
        snoozed = _snoozed(snoozes, "stale_data", now)
        return [_fired(patient_key, "stale_data", now, finding, level=level, suppressed=snoozed)]
    out: list[AlertChange] = []
    if _snooze_over(current, snoozes, now):
        out.append(_late(patient_key, current, now, finding, None))
        current = dataclasses.replace(current, suppressed=False)
    if level == "urgent" and current.level != "urgent" and not current.acked:
        suppressed = current.suppressed or _snoozed(snoozes, "stale_data", now)
        out.append(_stale_escalation(patient_key, current, now, finding, suppressed=suppressed))
    return out


def _stale_escalation(
    patient_key: str, current: ActiveAlert, now: dt.datetime, finding: _Finding, *, suppressed: bool
) -> AlertChange:
    return AlertChange(
        alert_id=current.alert_id,
        patient_key=patient_key,
        kind="stale_data",
        event="escalated",
        seq=_SEQ["escalated"],
        at=now,
        glucose_mg_dl=None,
        threshold_mg_dl=None,
        level="urgent",
        suppressed=suppressed,
        detail=finding.detail,
    )


def _snooze_over(
    current: ActiveAlert, snoozes: Mapping[str, dt.datetime], now: dt.datetime
) -> bool:
    """Whether an episode recorded while snoozed is still on after its snooze ended."""
    return current.suppressed and not _snoozed(snoozes, current.kind, now)


def _late(
    patient_key: str,
    current: ActiveAlert,
    at: dt.datetime,
    finding: _Finding,
    direction: str | None,
) -> AlertChange:
    """The fire of an episode that outlasted the snooze it fired in: delivered now, once."""
    return AlertChange(
        alert_id=current.alert_id,
        patient_key=patient_key,
        kind=current.kind,
        event="fired",
        seq=_SEQ["fired"],
        at=at,
        glucose_mg_dl=finding.glucose_mg_dl,
        threshold_mg_dl=finding.threshold_mg_dl,
        direction=direction,
        level=current.level,
        detail={**finding.detail, "after_snooze": True},
    )


def _snoozed(snoozes: Mapping[str, dt.datetime], kind: str, now: dt.datetime) -> bool:
    until = snoozes.get(kind)
    return until is not None and now < until


def _fired(
    patient_key: str,
    kind: str,
    at: dt.datetime,
    finding: _Finding,
    *,
    direction: str | None = None,
    level: str | None = None,
    suppressed: bool,
) -> AlertChange:
    return AlertChange(
        alert_id=alert_id_for(patient_key, kind, at),
        patient_key=patient_key,
        kind=kind,
        event="fired",
        seq=_SEQ["fired"],
        at=at,
        glucose_mg_dl=finding.glucose_mg_dl,
        threshold_mg_dl=finding.threshold_mg_dl,
        direction=direction,
        level=level,
        suppressed=suppressed,
        detail=finding.detail,
    )


def _direction(device: Sequence[WindowReading]) -> str | None:
    """The newest reading's arrow (``live.trend.direction_of``: the uploader's, else from the
    rate); None when there is none."""
    arrow = direction_of(device[-1], device[-2] if len(device) > 1 else None)
    return None if arrow == "NONE" else arrow


def _cleared(
    patient_key: str, current: ActiveAlert, device: Sequence[WindowReading], finding: _Finding
) -> AlertChange:
    newest = device[-1]
    return AlertChange(
        alert_id=current.alert_id,
        patient_key=patient_key,
        kind=current.kind,
        event="cleared",
        seq=_SEQ["cleared"],
        at=newest.ts,
        glucose_mg_dl=newest.glucose_mg_dl,
        threshold_mg_dl=finding.threshold_mg_dl,
        direction=_direction(device),
        level=current.level,
        suppressed=current.suppressed,
        detail=finding.detail,
    )
