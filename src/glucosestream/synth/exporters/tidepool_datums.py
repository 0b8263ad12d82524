"""Tidepool datums of a patient's logged events, for the same JSON array as its ``cbg`` datums
(TidepoolApi docs/device-data/data-types: bolus, basal, wizard, food, insulin,
physicalActivity). PURE.

A pump user's (``therapy``: ``pump``) pump uploads its records under the pump's ``deviceId``:
``bolus`` ``normal`` (units in ``normal``), ``basal`` ``scheduled`` segments (``rate`` U/h,
``duration`` ms, ``scheduleName``) and, for a meal, the bolus calculator's ``wizard`` record
(``carbInput`` grams, ``bolus`` naming its bolus by id). What a patient logs by hand goes under
the CGM's ``deviceId``: pen doses as ``insulin`` (``dose.total`` Units, ``formulation.simple.
actingType`` ``rapid`` or ``long``), carbohydrates as ``food`` (``nutrition.carbohydrate.net``
grams; a pump user's rescue carbohydrates too) and exercise as ``physicalActivity``
(``duration`` in minutes, ``reportedIntensity``).
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from glucosestream.synth.exporters.patient import (
    LoggedEvent,
    PatientRecord,
    json_number,
    local_strings,
    utc_offset_min,
)

__all__ = ["carries", "event_datums"]

_ISO_MS: Final = "%Y-%m-%dT%H:%M:%S.000Z"
_LOCAL: Final = "%Y-%m-%dT%H:%M:%S"
_SCHEDULE: Final = "Standard"


def carries(event: LoggedEvent) -> bool:
    """Whether a Tidepool export holds ``event`` (all the logged kinds synth simulates)."""
    return event.kind in ("bolus", "basal", "carbs", "exercise")


def event_datums(
    patient: PatientRecord, cgm_device_id: str, upload_id: str
) -> list[dict[str, Any]]:
    """The patient's event datums, in time order (each with the common fields)."""
    pump = any(e.kind == "basal" and e.subtype == "scheduled" for e in patient.events)
    rng = np.random.default_rng([patient.seed, patient.index, 6])
    pump_id = f"InsOmn-{int(rng.integers(10**8, 10**9))}"
    events = [e for e in patient.events if carries(e)]
    bits = rng.integers(0, 2**63, size=(len(events), 2))
    ids = [f"{int(a):016x}{int(b):016x}" for a, b in bits.tolist()]
    bolus_ids = {e.time_us: ids[i] for i, e in enumerate(events) if _is_meal_bolus(e)}
    times = np.array([e.time_us for e in events], dtype=np.int64)
    utc = local_strings(times, "UTC", _ISO_MS)
    local = local_strings(times, patient.zone, _LOCAL)
    offsets = utc_offset_min(times, patient.zone).tolist()
    datums = []
    for i, event in enumerate(events):
        body, by_pump = _body(event, pump, bolus_ids)
        datums.append(
            {
                **body,
                "deviceId": pump_id if by_pump else cgm_device_id,
                "deviceTime": local[i],
                "id": ids[i],
                "time": utc[i],
                "timezoneOffset": offsets[i],
                "uploadId": upload_id,
            }
        )
    return datums


def _is_meal_bolus(event: LoggedEvent) -> bool:
    return event.kind == "bolus" and event.purpose == "meal"


def _body(event: LoggedEvent, pump: bool, bolus_ids: dict[int, str]) -> tuple[dict[str, Any], bool]:
    """The type-specific fields of an event's datum, and whether the pump recorded it."""
    units = json_number(event.units) if event.units is not None else None
    if event.kind == "bolus" and pump:
        return {"type": "bolus", "subType": "normal", "normal": units}, True
    if event.kind == "bolus" or (event.kind == "basal" and event.subtype == "injection"):
        acting = "rapid" if event.kind == "bolus" else "long"
        return {
            "type": "insulin",
            "dose": {"total": units, "units": "Units"},
            "formulation": {"simple": {"actingType": acting}},
        }, False
    if event.kind == "basal":
        return {
            "type": "basal",
            "deliveryType": "scheduled",
            "rate": event.rate_u_h,
            "duration": round((event.duration_min or 0.0) * 60_000),
            "scheduleName": _SCHEDULE,
        }, True
    if event.kind == "carbs" and pump and event.subtype == "meal":
        wizard: dict[str, Any] = {"type": "wizard", "carbInput": _grams(event), "units": "mmol/L"}
        if event.time_us in bolus_ids:
            wizard["bolus"] = bolus_ids[event.time_us]
        return wizard, True
    if event.kind == "carbs":
        net = {"net": _grams(event), "units": "grams"}
        return {"type": "food", "nutrition": {"carbohydrate": net}}, False
    return {
        "type": "physicalActivity",
        "duration": {"units": "minutes", "value": _number(event.duration_min)},
        "reportedIntensity": event.intensity,
    }, False


def _grams(event: LoggedEvent) -> float | int | None:
    return _number(event.carbs_g)


def _number(value: float | None) -> float | int | None:
    return None if value is None else json_number(value)
