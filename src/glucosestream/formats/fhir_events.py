"""FHIR R4 resources that are events, as raw event rows (``formats.event_rows``). PURE.

The HL7 CGM implementation guide (``hl7.fhir.uv.cgm`` 1.0.0) carries no events: its profiles
are sensor readings, summaries, the device and the patient. Bundles from elsewhere (an EHR, a
personal health device gateway) may carry these, which become events:

    Observation, LOINC
      2339-0   Glucose [Mass/volume] in Blood                         smbg (mg/dL)
      41653-7  Glucose [Mass/volume] in Capillary blood by Glucometer smbg (mg/dL)
      15074-8  Glucose [Moles/volume] in Blood                        smbg (mmol/L)
      14743-9  Glucose [Moles/volume] in Capillary blood by Glucometer smbg (mmol/L)
      9059-7   Carbohydrate intake Estimated                          carbs meal (g)
    MedicationAdministration of insulin, ``dosage.dose`` in units (UCUM ``[iU]`` or ``U``):
      a rapid- or short-acting insulin                                bolus normal
      a long- or intermediate-acting insulin                          basal injection

An insulin's action is read from the medication's names (its ``text`` and codings' ``display``):
FHIR names the drug, not its use, and no terminology server is at hand. An insulin whose names
say neither, or both (a premix), is quarantined with that reason rather than guessed. A value
whose unit does not fit its code, or a resource entered in error, is quarantined too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from glucosestream.formats.event_rows import EventBuilder
from glucosestream.formats.jsontext import field_text

__all__ = ["LOINC", "Origin", "add_resource_events", "as_list", "as_mapping"]

LOINC: Final = "http://loinc.org"
# LOINC glucose in blood (a meter, a lab) and its unit; a finger-stick is an smbg event.
BLOOD_GLUCOSE_UNITS: Final = {
    "2339-0": "mg/dL",
    "41653-7": "mg/dL",
    "15074-8": "mmol/L",
    "14743-9": "mmol/L",
}
CARBOHYDRATE_INTAKE: Final = "9059-7"
_INSULIN_UNITS: Final = frozenset({"[iu]", "u", "iu", "units", "unit"})
# Insulin names by action, as whole words: INN (after the word "insulin") and brand names.
_RAPID: Final = frozenset(
    {"lispro", "aspart", "glulisine", "regular"}
    | {"humalog", "novolog", "novorapid", "fiasp", "apidra", "lyumjev", "admelog", "afrezza"}
)
_LONG: Final = frozenset(
    {"glargine", "detemir", "degludec", "isophane", "nph"}
    | {"lantus", "toujeo", "basaglar", "semglee", "levemir", "tresiba"}
)
# Brand names say insulin by themselves; an INN such as "regular" only after "insulin".
_BRANDS: Final = frozenset(
    {"humalog", "novolog", "novorapid", "fiasp", "apidra", "lyumjev", "admelog", "afrezza"}
    | {"lantus", "toujeo", "basaglar", "semglee", "levemir", "tresiba"}
)
_WORD: Final = re.compile(r"[a-z0-9]+")
_RETRACTED: Final = frozenset({"entered-in-error", "cancelled", "not-done"})
_NUMBER_CHARS: Final = 32

Resource = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Origin:
    """Who and what a resource's events belong to, resolved by the bundle reader."""

    patient_id: str | None
    device_id: str | None


def add_resource_events(
    events: EventBuilder, line: int, resource: Resource, origin: Origin
) -> bool:
    """Adds the events of one resource; False when it holds none (it is skipped)."""
    kind = resource.get("resourceType")
    if kind == "Observation":
        return _observation(events, line, resource, origin)
    if kind == "MedicationAdministration":
        return _administration(events, line, resource, origin)
    return False


def _observation(events: EventBuilder, line: int, resource: Resource, origin: Origin) -> bool:
    codes = {
        field_text(as_mapping(c).get("code"))
        for c in as_list(as_mapping(resource.get("code")).get("coding"))
        if as_mapping(c).get("system") == LOINC
    }
    quantity = as_mapping(resource.get("valueQuantity"))
    value, problem = _number(quantity.get("value"))
    unit = field_text(quantity.get("code") or quantity.get("unit"))
    problem = problem or _retracted(resource)
    common = {
        "time": _time(resource),
        "patient_id": origin.patient_id,
        "device_id": origin.device_id,
    }
    glucose_unit = next((BLOOD_GLUCOSE_UNITS[c] for c in codes if c in BLOOD_GLUCOSE_UNITS), None)
    if glucose_unit is not None:
        if not problem and _squeezed(unit) != glucose_unit.lower():
            problem = f"the unit does not match the LOINC code (expected {glucose_unit})"
        events.add(line, kind="smbg", glucose=value, unit=unit, problem=problem, **common)
        return True
    if CARBOHYDRATE_INTAKE in codes:
        if not problem and _squeezed(unit) != "g":
            problem = "carbohydrate intake must be in grams (UCUM g)"
        events.add(line, kind="carbs", subtype="meal", carbs_g=value, problem=problem, **common)
        return True
    return False


def _administration(events: EventBuilder, line: int, resource: Resource, origin: Origin) -> bool:
    names = _medication_names(resource)
    if "insulin" not in names and not names & _BRANDS:
        return False
    rapid, long = bool(names & _RAPID), bool(names & _LONG)
    dose = as_mapping(as_mapping(resource.get("dosage")).get("dose"))
    units, problem = _number(dose.get("value"))
    unit = field_text(dose.get("code") or dose.get("unit"))
    problem = problem or _retracted(resource)
    if not problem and _squeezed(unit) not in _INSULIN_UNITS:
        problem = f"an insulin dose in {unit!s:.{_NUMBER_CHARS}}, not in units ([iU])"
    if not problem and rapid == long:
        action = "both rapid and long" if rapid else "neither rapid nor long"
        problem = f"an insulin whose names say {action}-acting: bolus or basal is not known"
    kind, subtype = ("basal", "injection") if long and not rapid else ("bolus", "normal")
    events.add(
        line,
        kind=kind,
        subtype=subtype,
        time=_time(resource),
        units=units,
        problem=problem,
        patient_id=origin.patient_id,
        device_id=origin.device_id,
    )
    return True


def _medication_names(resource: Resource) -> frozenset[str]:
    """The words of the medication's text and its codings' displays, lower case."""
    concept = as_mapping(resource.get("medicationCodeableConcept"))
    texts = [concept.get("text")]
    texts += [as_mapping(c).get("display") for c in as_list(concept.get("coding"))]
    return frozenset(_WORD.findall(" ".join(t for t in texts if isinstance(t, str)).lower()))


def _number(value: object) -> tuple[str | None, str | None]:
    text = field_text(value)
    if text is not None and len(text) > _NUMBER_CHARS:
        return None, f"the value has {len(text)} characters, not a number"
    return text, None


def _squeezed(unit: str | None) -> str:
    return (unit or "").replace(" ", "").lower()


def _retracted(resource: Resource) -> str | None:
    status = resource.get("status")
    if isinstance(status, str) and status in _RETRACTED:
        return f"{str(resource.get('resourceType')).lower()} status is {status}"
    return None


def _time(resource: Resource) -> str | None:
    for name in ("effectiveDateTime", "effectiveInstant", "occurrenceDateTime"):
        if resource.get(name):
            return field_text(resource[name])
    return field_text(as_mapping(resource.get("effectivePeriod")).get("start"))


def as_mapping(value: object) -> Mapping[str, Any]:
    """``value`` when it is a JSON object, else an empty one (a hostile document's wrong types
    read as absent fields)."""
    return value if isinstance(value, Mapping) else {}


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []
