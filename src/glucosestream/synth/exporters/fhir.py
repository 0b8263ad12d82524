"""HL7 FHIR CGM bundle (IG ``hl7.fhir.uv.cgm`` 1.0.0, FHIR R4; see ../shared/samples/fhir_cgm).

One ``transaction`` Bundle per patient, as posted to ``$submit-cgm-bundle``: a Patient (with the
external identifier, name and birth date that ingest must strip), a Device (serial number), and
one CGM Sensor Reading Observation per reading: LOINC 99504-3 with UCUM ``mg/dL`` (mass), or
105272-9 with ``mmol/L`` to one decimal (molar) for patients in mmol/L zones.
``effectiveDateTime`` carries the local offset (``2026-01-05T10:15:00-05:00``). Readings the
sensor clamped carry ``valueQuantity.comparator`` ``<=`` (LOW, 40 mg/dL) or ``>=`` (HIGH, 400).
Entries use ``urn:uuid:`` full URLs, referenced from ``subject`` and ``device``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Final

import numpy as np

from glucosestream.readings import ReadingFlag
from glucosestream.synth.exporters.patient import PatientRecord, local_strings, to_mmol_l

__all__ = ["SUFFIX", "render"]

SUFFIX: Final = "_fhir.json"
_IG: Final = "http://hl7.org/fhir/uv/cgm/StructureDefinition/"
_UCUM: Final = "http://unitsofmeasure.org"
_LOINC: Final = "http://loinc.org"
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
    bits = rng.integers(0, 2**63, size=(patient.time_us.size + 3, 2))
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
    for urn, when, quantity in zip(
        urns[3:], _effective(patient), _quantities(patient), strict=True
    ):
        entries.append(
            _entry(urn, _observation(patient.mmol, patient_urn, device_urn, when, quantity))
        )
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


def _effective(patient: PatientRecord) -> list[str]:
    """Local times with their UTC offset, e.g. 2026-01-05T10:15:00-05:00."""
    local = patient.local("%Y-%m-%dT%H:%M:%S")
    out = []
    for stamp, minutes in zip(local, patient.utc_offset_min().tolist(), strict=True):
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
