"""``GET /api/v1/status.json`` (and ``/api/v1/status``): the server status Nightscout clients ask
for before they upload or follow.

The document has the shape cgm-remote-monitor's ``lib/api/status.js`` answers with (read at
github.com/nightscout/cgm-remote-monitor 7e0e77f): ``status``, ``name``, ``version``,
``serverTime`` (ISO 8601), ``serverTimeEpoch`` (ms), ``apiEnabled``, ``careportalEnabled``,
``boluscalcEnabled``, ``settings`` (``units``, ``thresholds`` with ``bgHigh``, ``bgTargetTop``,
``bgTargetBottom``, ``bgLow``, the stale-data alarms ``alarmTimeagoWarn(Mins)`` and
``alarmTimeagoUrgent(Mins)``, ``enable``), ``extendedSettings``, ``authorized`` and
``runtimeState``. ``version`` is a Nightscout release number (``NIGHTSCOUT_COMPAT_VERSION``),
since some uploaders gate features on it; ``glucosestreamVersion`` says what really answers.

No authentication: the document holds no patient data (``authorized`` is always null: this
server issues no Nightscout JWTs). The thresholds are the alert defaults every patient starts
with (``alerts.rules``: urgent low 55, high 250) and the consensus target range 70-180
(``metrics.thresholds``); the stale-data minutes are ``settings.alerts``'. Reads the clock.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.metadata
from typing import Any, Final

from fastapi import APIRouter, Request

from glucosestream.alerts.rules import HIGH_MG_DL, URGENT_LOW_MG_DL
from glucosestream.clock import Clock
from glucosestream.config import Settings
from glucosestream.metrics.thresholds import TAR_LEVEL1_MG_DL, TBR_LEVEL1_MG_DL

__all__ = ["NIGHTSCOUT_COMPAT_VERSION", "router", "status_document"]

router = APIRouter(tags=["nightscout"])

# The cgm-remote-monitor release this API follows (package.json at 7e0e77f, 2026-04-29).
NIGHTSCOUT_COMPAT_VERSION: Final = "15.0.7"
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def status_document(settings: Settings, now: dt.datetime) -> dict[str, Any]:
    """The status document at ``now`` (module docstring)."""
    alerts = settings.alerts
    return {
        "status": "ok",
        "name": "GlucoseStream",
        "version": NIGHTSCOUT_COMPAT_VERSION,
        "glucosestreamVersion": _own_version(),
        "serverTime": now.astimezone(dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "serverTimeEpoch": (now - _EPOCH) // dt.timedelta(milliseconds=1),
        "apiEnabled": True,
        "careportalEnabled": False,
        "boluscalcEnabled": False,
        "settings": {
            "units": "mg/dl",
            "customTitle": "GlucoseStream",
            "thresholds": {
                "bgHigh": HIGH_MG_DL,
                "bgTargetTop": TAR_LEVEL1_MG_DL,
                "bgTargetBottom": TBR_LEVEL1_MG_DL,
                "bgLow": URGENT_LOW_MG_DL,
            },
            "alarmTimeagoWarn": True,
            "alarmTimeagoWarnMins": alerts.stale_warn_min,
            "alarmTimeagoUrgent": True,
            "alarmTimeagoUrgentMins": alerts.stale_urgent_min,
            "enable": [],
        },
        "extendedSettings": {},
        "authorized": None,
        "runtimeState": "loaded",
    }


@functools.cache
def _own_version() -> str:
    try:
        return importlib.metadata.version("glucosestream")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@router.get("/api/v1/status.json")
@router.get("/api/v1/status", include_in_schema=False)
async def get_status(request: Request) -> dict[str, Any]:
    """The server's status as Nightscout clients read it (no token needed, no patient data)."""
    clock: Clock = request.app.state.clock
    settings: Settings = request.app.state.settings
    return status_document(settings, clock())
