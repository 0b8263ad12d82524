"""HL7 FHIR CGM bundle (IG ``hl7.fhir.uv.cgm`` 1.0.0, FHIR R4; see ../shared/samples/fhir_cgm).

One ``transaction`` Bundle per patient, as posted to ``$submit-cgm-bundle``: a Patient (with the
external identifier, name and birth date that ingest must strip), a Device (serial number), and
one CGM Sensor Reading Observation per reading: LOINC 99504-3 with UCUM ``mg/dL`` (mass), or
105272-9 with ``mmol/L`` to one decimal (molar) for patients in mmol/L zones.
``effectiveDateTime`` carries the local offset (``2026-01-05T10:15:00-05:00``). Readings the
sensor clamped carry ``valueQuantity.comparator`` ``<=`` (LOW, 40 mg/dL) or ``>=`` (HIGH, 400).
Entries use ``urn:uuid:`` full URLs, referenced from ``subject`` and ``device``.

The patient's logged doses and carbohydrates follow the readings (the CGM guide has no events;
a bundle from an EHR or a health-device gateway carries them so): each bolus a
MedicationAdministration of "insulin aspart" and each long-acting pen injection one of "insulin
glargine" (``dosage.dose`` in UCUM ``[iU]``), each carbohydrate log an Observation LOINC 9059-7
"Carbohydrate intake Estimated" in ``g``. A pump's basal segments and exercise are not written.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from glucosestream.readings import ReadingFlag
from glucosestream.synth.exporters.patient import (
    LoggedEvent,
    PatientRecord,
    json_number,
    local_strings,
    to_mmol_l,
    utc_offset_min,
)

__all__ = ["SUFFIX", "carries", "render"]

SUFFIX: Final = "_fhir.json"
_IG: Final = "http://hl7.org/fhir/uv/cgm/StructureDefinition/"
_UCUM: Final = "http://unitsofmeasure.org"
_LOINC: Final = "http://loinc.org"
_CARB_INTAKE: Final = {
    "system": "http://loinc.org",
    "code": "9059-7",
    "display": "Carbohydrate intake Estimated",
}
_RAPID_INSULIN: Final = "insulin aspart"
_LONG_INSULIN: Final = "insulin glargine"
PATIENT_ID_SYSTEM: Final = "urn:glucosestream:synth:patient-id"
_CATEGORY: Final = [
    {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "laboratory",
            }
        ]
    }
]


def render(patient: PatientRecord) -> bytes:
    """The transaction Bundle of one patient."""
    rng = np.random.default_rng([patient.seed, patient.index, 5])
    logged = [e for e in patient.events if carries(e)]
    bits = rng.integers(0, 2**63, size=(patient.time_us.size + 3 + len(logged), 2))
    urns = [f"urn:uuid:{uuid.UUID(int=(int(a) << 64) | int(b))}" for a, b in bits.tolist()]
    patient_urn, device_urn, bundle_id = urns[0], urns[1], urns[2][9:]
    ident = patient.identity
    entries: list[dict[str, Any]] = [
        _entry(
            patient_urn,
            {
                "resourceType": "Patient",
                "identifier": [
                    {"use": "official", "system": PATIENT_ID_SYSTEM, "value": ident.patient_id}
                ],
                "name": [{"family": ident.last_name, "given": [ident.first_name]}],
                "birthDate": ident.birth_date.isoformat(),
            },
        ),
        _entry(
            device_urn,
            {
                "resourceType": "Device",
                "meta": {"profile": [_IG + "cgm-device"]},
                "deviceName": [{"name": patient.device, "type": "user-friendly-name"}],
                "serialNumber": ident.device_serial,
            },
        ),
    ]
    readings = urns[3 : 3 + patient.time_us.size]
    for urn, when, quantity in zip(
        readings, _effective(patient.time_us, patient.zone), _quantities(patient), strict=True
    ):
        entries.append(
            _entry(urn, _observation(patient.mmol, patient_urn, device_urn, when, quantity))
        )
    times = np.array([e.time_us for e in logged], dtype=np.int64)
    for urn, when, event in zip(
        urns[3 + patient.time_us.size :], _effective(times, patient.zone), logged, strict=True
    ):
        entries.append(_entry(urn, _event_resource(event, patient_urn, when)))
    exported = local_strings(np.array([patient.exported_at_us]), "UTC", "%Y-%m-%dT%H:%M:%SZ")[0]
    bundle = {
        "resourceType": "Bundle",
        "id": bundle_id,
        "meta": {"profile": [_IG + "cgm-data-submission-bundle"]},
        "type": "transaction",
        "timestamp": exported,
        "entry": entries,
    }
    return (json.dumps(bundle, indent=1) + "\n").encode("utf-8")


def _entry(urn: str, resource: dict[str, Any]) -> dict[str, Any]:
    kind = resource["resourceType"]
    return {"fullUrl": urn, "resource": resource, "request": {"method": "POST", "url": kind}}


def _observation(
    mmol: bool, patient_urn: str, device_urn: str, when: str, quantity: dict[str, Any]
) -> dict[str, Any]:
    kind = "moles" if mmol else "mass"
    return {
        "resourceType": "Observation",
        "meta": {"profile": [f"{_IG}cgm-sensor-reading-{kind}-per-volume"]},
        "status": "final",
        "category": _CATEGORY,
        "code": {"coding": [{"system": _LOINC, "code": "105272-9" if mmol else "99504-3"}]},
        "subject": {"reference": patient_urn},
        "device": {"reference": device_urn},
        "effectiveDateTime": when,
        "valueQuantity": quantity,
    }


def carries(event: LoggedEvent) -> bool:
    """Whether the bundle holds ``event``: boluses, pen injections and carbohydrates."""
    if event.kind == "carbs":
        return event.carbs_g is not None
    injection = event.kind == "basal" and event.subtype == "injection"
    return (event.kind == "bolus" or injection) and event.units is not None


def _event_resource(event: LoggedEvent, patient_urn: str, when: str) -> dict[str, Any]:
    if event.kind == "carbs" and event.carbs_g is not None:
        grams = json_number(event.carbs_g)
        return {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [dict(_CARB_INTAKE)]},
            "subject": {"reference": patient_urn},
            "effectiveDateTime": when,
            "valueQuantity": {"value": grams, "unit": "g", "system": _UCUM, "code": "g"},
        }
    insulin = _RAPID_INSULIN if event.kind == "bolus" else _LONG_INSULIN
    units = json_number(event.units or 0.0)
    return {
        "resourceType": "MedicationAdministration",
        "status": "completed",
        "medicationCodeableConcept": {"text": insulin},
        "subject": {"reference": patient_urn},
        "effectiveDateTime": when,
        "dosage": {"dose": {"value": units, "unit": "U", "system": _UCUM, "code": "[iU]"}},
    }


def _effective(time_us: npt.NDArray[np.int64], zone: str) -> list[str]:
    """Local times with their UTC offset, e.g. 2026-01-05T10:15:00-05:00."""
    local = local_strings(time_us, zone, "%Y-%m-%dT%H:%M:%S")
    out = []
    for stamp, minutes in zip(local, utc_offset_min(time_us, zone).tolist(), strict=True):
        sign = "-" if minutes < 0 else "+"
        out.append(f"{stamp}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}")
    return out


def _quantities(patient: PatientRecord) -> list[dict[str, Any]]:
    low = ((patient.flags & int(ReadingFlag.SENSOR_LOW)) != 0).tolist()
    high = ((patient.flags & int(ReadingFlag.SENSOR_HIGH)) != 0).tolist()
    if patient.mmol:
        values: list[float | int] = np.round(to_mmol_l(patient.glucose_mg_dl), 1).tolist()
        unit, code = "mmol/l", "mmol/L"
    else:
        values = patient.glucose_mg_dl.tolist()
        unit, code = "mg/dl", "mg/dL"
    out = []
    for value, is_low, is_high in zip(values, low, high, strict=True):
        quantity: dict[str, Any] = {"value": value, "unit": unit, "system": _UCUM, "code": code}
        if is_low or is_high:
            quantity = {"comparator": "<=" if is_low else ">=", **quantity}
        out.append(quantity)
    return out
