"""Tidepool datums that are events, as raw event rows (``formats.event_rows``). PURE.

Tidepool's data types (TidepoolApi docs/device-data/data-types) and what each becomes:

    bolus       subType normal -> bolus normal (``normal`` U); square -> bolus extended
                (``extended`` U over ``duration``); dual/square -> both, on the same line;
                automated -> bolus automatic (``normal``)
    basal       deliveryType scheduled | temp | automated | suspend -> basal scheduled |
                temporary | automated | suspended: ``rate`` U/h (a suspension: 0; a temp basal
                given as ``percent`` only: percent x the ``suppressed`` rate), ``duration``
    food        carbs meal: ``nutrition.carbohydrate.net`` (units ``grams``); a food with no
                carbohydrate (only its weight, ``amount``) is skipped
    wizard      carbs meal (``carbInput``, when given and not 0; ``carbUnits`` exchanges is
                quarantined). Its bolus is its own datum in an export (``bolus`` holds its id);
                a bolus embedded as an object (the upload form) is read as a bolus, same line
    smbg        smbg (``value`` in ``units``)
    bloodKetone ketone blood (``value``, mmol/L)
    insulin     a dose not from a pump (a pen, logged on a CGM receiver or meter):
                ``formulation.simple.actingType`` rapid | short -> bolus normal, intermediate |
                long -> basal injection, ``dose.total`` U (``dose.units`` Units); a dose whose
                formulation gives no acting type is quarantined, not guessed
    physicalActivity  exercise: ``duration`` ({value, units: seconds|minutes|hours}) and
                ``reportedIntensity`` (low|medium|high)
    deviceEvent reservoirChange -> device cartridge_change; prime of the ``cannula`` -> device
                site_change (a tubing prime is skipped); status suspended | resumed -> device
                pump_suspend (``duration``) | pump_resume. Alarms, calibrations, time changes
                and other device events are skipped.

Durations are milliseconds in Tidepool and minutes in events: converted here. ``time`` is the
UTC instant (``deviceTime``, local, only when it is missing), ``deviceId`` the device,
``_userId`` the patient, ``timezone`` the zone, as for ``cbg`` readings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from glucosestream.formats.event_rows import EventBuilder, EventSite
from glucosestream.formats.jsontext import field_text

__all__ = ["add_datum_events"]

_MS_PER_MIN: Final = 60_000
_DURATION_MINUTES: Final = {"seconds": 1 / 60, "minutes": 1.0, "hours": 60.0}
_BASAL_SUBTYPES: Final = {
    "scheduled": "scheduled",
    "temp": "temporary",
    "automated": "automated",
    "suspend": "suspended",
}
_BOLUS_SUBTYPES: Final = {"normal": "normal", "automated": "automatic"}
_STATUS_SUBTYPES: Final = {"suspended": "pump_suspend", "resumed": "pump_resume"}
_ACTING: Final = {
    "rapid": ("bolus", "normal"),
    "short": ("bolus", "normal"),
    "intermediate": ("basal", "injection"),
    "long": ("basal", "injection"),
}
# A number Tidepool stores is never longer than this as text; a longer value is not passed on.
_NUMBER_CHARS: Final = 32

Datum = Mapping[str, Any]


def add_datum_events(events: EventBuilder, line: int, datum: Datum) -> bool:
    """Adds the events of one datum; False when it holds none (it is skipped)."""
    mapper = _MAPPERS.get(str(datum.get("type")))
    if mapper is None:
        return False
    at = EventSite(
        events,
        line,
        field_text(datum.get("time") or datum.get("deviceTime")),
        field_text(datum.get("deviceId")),
        field_text(datum.get("_userId")),
        field_text(datum.get("timezone")),
    )
    return mapper(at, datum)


def _number(value: object, name: str) -> tuple[str | None, str | None]:
    """A datum's number as text (None when absent), and the problem of a value too long to be
    one (ingest checks the rest: a JSON object, ``"abc"``)."""
    text = field_text(value)
    if text is not None and len(text) > _NUMBER_CHARS:
        return None, f"{name} has {len(text)} characters, not a number"
    return text, None


def _scaled(value: object, factor: Any, name: str) -> tuple[str | None, str | None]:
    """A number times ``factor`` as text (durations to minutes); the problem of one that is no
    number."""
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, f"{name} is not a number: {field_text(value)!s:.{_NUMBER_CHARS}}"
    try:
        return repr(value * factor), None
    except OverflowError:
        return None, f"{name} is too large to be one"


def _ms_minutes(value: object) -> tuple[str | None, str | None]:
    return _scaled(value, 1 / _MS_PER_MIN, "duration (ms)")


def _bolus(at: EventSite, datum: Datum) -> bool:
    subtype = field_text(datum.get("subType"))
    if subtype in ("square", "dual/square"):
        if subtype == "dual/square":
            _add_number(at, "bolus", "normal", "units", datum.get("normal"), "normal")
        extended, problem = _number(datum.get("extended"), "extended")
        duration, late = _ms_minutes(datum.get("duration"))
        at.add("bolus", "extended", units=extended, duration_min=duration, problem=problem or late)
        return True
    named = _BOLUS_SUBTYPES.get(subtype or "", subtype)  # an unknown one: ingest quarantines
    _add_number(at, "bolus", named, "units", datum.get("normal"), "normal")
    return True


def _add_number(
    at: EventSite, kind: str, subtype: str | None, column: str, value: object, name: str
) -> None:
    text, problem = _number(value, name)
    at.add(kind, subtype, problem=problem, **{column: text})


def _basal(at: EventSite, datum: Datum) -> bool:
    delivery = field_text(datum.get("deliveryType"))
    subtype = _BASAL_SUBTYPES.get(delivery or "", delivery)
    rate, problem = _number(datum.get("rate"), "rate")
    if rate is None and problem is None:
        rate, problem = _basal_rate(datum, subtype)
    duration, late = _ms_minutes(datum.get("duration"))
    at.add("basal", subtype, rate_u_h=rate, duration_min=duration, problem=problem or late)
    return True


def _basal_rate(datum: Datum, subtype: str | None) -> tuple[str | None, str | None]:
    """The rate of a basal datum without one: 0 for a suspension; for a temp basal given as a
    percent, that share of the rate it suppressed."""
    if subtype == "suspended":
        return "0", None
    suppressed = datum.get("suppressed")
    percent = datum.get("percent")
    base = suppressed.get("rate") if isinstance(suppressed, Mapping) else None
    if _is_number(percent) and _is_number(base):
        return _scaled(percent, base, "percent")
    return None, None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _food(at: EventSite, datum: Datum) -> bool:
    nutrition = datum.get("nutrition")
    carbohydrate = nutrition.get("carbohydrate") if isinstance(nutrition, Mapping) else None
    if not isinstance(carbohydrate, Mapping):
        return False
    carbs, problem = _number(carbohydrate.get("net"), "nutrition.carbohydrate.net")
    units = carbohydrate.get("units")
    if units is not None and units != "grams":
        problem = problem or f"carbohydrate in {field_text(units)!s:.32}, not grams"
    at.add("carbs", "meal", carbs_g=carbs, problem=problem)
    return True


def _wizard(at: EventSite, datum: Datum) -> bool:
    carbs = datum.get("carbInput")
    added = False
    if carbs is not None and carbs != 0:
        text, problem = _number(carbs, "carbInput")
        if datum.get("carbUnits") == "exchanges":
            problem = problem or "carbInput is in exchanges, not grams"
        at.add("carbs", "meal", carbs_g=text, problem=problem)
        added = True
    bolus = datum.get("bolus")
    if isinstance(bolus, Mapping) and bolus.get("type") == "bolus":
        added = _bolus(at, bolus) or added
    return added


def _insulin(at: EventSite, datum: Datum) -> bool:
    dose = datum.get("dose")
    dose = dose if isinstance(dose, Mapping) else {}
    formulation = datum.get("formulation")
    simple = formulation.get("simple") if isinstance(formulation, Mapping) else None
    acting = field_text(simple.get("actingType")) if isinstance(simple, Mapping) else None
    kind, subtype = _ACTING.get(acting or "", ("bolus", None))
    units, problem = _number(dose.get("total"), "dose.total")
    if dose.get("units") not in (None, "Units"):
        problem = problem or f"dose in {field_text(dose.get('units'))!s:.32}, not Units"
    if subtype is None:
        problem = problem or "an insulin dose whose formulation gives no actingType"
    at.add(kind, subtype, units=units, problem=problem)
    return True


def _smbg(at: EventSite, datum: Datum) -> bool:
    glucose, problem = _number(datum.get("value"), "value")
    at.add("smbg", None, glucose=glucose, unit=field_text(datum.get("units")), problem=problem)
    return True


def _ketone(at: EventSite, datum: Datum) -> bool:
    ketone, problem = _number(datum.get("value"), "value")
    units = datum.get("units")
    if units is not None and str(units).lower() != "mmol/l":
        problem = problem or f"ketone in {field_text(units)!s:.32}, not mmol/L"
    at.add("ketone", "blood", ketone=ketone, problem=problem)
    return True


def _activity(at: EventSite, datum: Datum) -> bool:
    duration, problem = None, None
    given = datum.get("duration")
    if isinstance(given, Mapping):
        factor = _DURATION_MINUTES.get(str(given.get("units")))
        if factor is None:
            problem = f"duration in {field_text(given.get('units'))!s:.32}, not a time unit"
        else:
            duration, problem = _scaled(given.get("value"), factor, "duration")
    elif given is not None:
        problem = "duration is not a {value, units} object"
    intensity = field_text(datum.get("reportedIntensity"))
    at.add("exercise", None, duration_min=duration, intensity=intensity, problem=problem)
    return True


def _device_event(at: EventSite, datum: Datum) -> bool:
    subtype = datum.get("subType")
    if subtype == "reservoirChange":
        at.add("device", "cartridge_change")
    elif subtype == "prime" and datum.get("primeTarget") == "cannula":
        at.add("device", "site_change")
    elif subtype == "status" and _STATUS_SUBTYPES.get(field_text(datum.get("status")) or ""):
        duration, problem = _ms_minutes(datum.get("duration"))
        status = _STATUS_SUBTYPES[str(datum["status"])]
        at.add("device", status, duration_min=duration, problem=problem)
    else:
        return False
    return True


_MAPPERS: Final[dict[str, Callable[[EventSite, Datum], bool]]] = {
    "bolus": _bolus,
    "basal": _basal,
    "food": _food,
    "wizard": _wizard,
    "insulin": _insulin,
    "smbg": _smbg,
    "bloodKetone": _ketone,
    "physicalActivity": _activity,
    "deviceEvent": _device_event,
}
