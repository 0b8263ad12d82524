"""The FHIR R4 resources of one patient's export, as the HL7 CGM guide profiles them. PURE.

Each function returns bundle entries (``fullUrl``, ``resource``, ``request``) for a
``transaction`` Bundle posted to the guide's ``$submit-cgm-bundle``: a POST per resource, each
named by a ``urn:uuid`` that references inside the bundle use. The uuids are derived (uuid5)
from the patient key and what the resource is, so exporting the same data twice gives the same
bundle, and a receiver that keeps client identifiers can tell a resubmission.

Codes, units and profiles: ``exports.fhir_codes``. No resource carries a name, birth date or
serial number: the lake has none. The patient is an identifier only (the id as ingested, or the
patient key when the export is pseudonymous); a device is its pseudonym and its source format.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import uuid
from collections.abc import Iterator, Mapping
from typing import Any, Final

import pyarrow as pa

from glucosestream.exports.fhir_codes import (
    CATEGORY_LABORATORY,
    CGM_IG,
    DAYS_OF_WEAR,
    GLUCOSE_CV,
    GMI,
    LOINC,
    MEAN_GLUCOSE,
    PROFILES,
    READING,
    REPORT_CATEGORY,
    SENSOR_ACTIVE,
    SUMMARY_PANEL,
    TIME_IN_RANGES,
    TIMES_IN_RANGES,
    UCUM,
    Code,
)
from glucosestream.readings import MG_DL_PER_MMOL_L, ReadingFlag, Unit

__all__ = [
    "KEY_SYSTEM",
    "Entry",
    "device_entry",
    "patient_entry",
    "reading_entries",
    "report_entry",
    "resource_url",
    "summary_entries",
    "transaction_bundle",
]

Entry = dict[str, Any]
# The identifier system of a patient named by its pseudonym (``--pseudonymous``) and of a device.
KEY_SYSTEM: Final = "urn:glucosestream:patient-key"
DEVICE_SYSTEM: Final = "urn:glucosestream:device-key"
_NAMESPACE: Final = uuid.UUID("5b0b1a52-8d64-4c2e-9a43-2f7f1f3e6a10")  # this export's uuid5 space
# Decimal places written: percentages with two (the guide: "at least two decimal places").
_PLACES: Final = {"%": 2, "mg/dL": 1, "mmol/L": 2, "d": 1}


def resource_url(patient_key: str, *parts: object) -> str:
    """The ``urn:uuid`` of a resource of a patient (deterministic)."""
    name = "/".join([patient_key, *(str(p) for p in parts)])
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, name)}"


def _entry(url: str, resource: dict[str, Any]) -> Entry:
    return {
        "fullUrl": url,
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }


def _meta(profile: str) -> dict[str, Any]:
    return {"profile": [f"{CGM_IG}/StructureDefinition/{PROFILES[profile]}"]}


def _concept(code: Code) -> dict[str, Any]:
    return {"coding": [{"system": LOINC, "code": code.code}]}


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": round(value, _PLACES.get(unit, 2)), "unit": unit, "system": UCUM, "code": unit}


def patient_entry(patient_key: str, identity: str, *, pseudonymous: bool) -> Entry:
    """The Patient: an identifier only. An id as ingested of the form ``system|value`` (read
    from a FHIR identifier) is written back as that system and value."""
    if pseudonymous:
        identifier = {"system": KEY_SYSTEM, "value": identity}
    elif "|" in identity and identity.split("|", 1)[0]:
        system, value = identity.split("|", 1)
        identifier = {"system": system, "value": value}
    else:
        identifier = {"value": identity.split("|", 1)[-1]}
    resource = {"resourceType": "Patient", "identifier": [identifier]}
    return _entry(resource_url(patient_key, "patient"), resource)


def device_entry(patient_key: str, device_id: str, source: str) -> Entry:
    """A CGM Device: its pseudonym as identifier and the source format it came in as name."""
    resource = {
        "resourceType": "Device",
        "meta": _meta("device"),
        "identifier": [{"system": DEVICE_SYSTEM, "value": device_id}],
        "deviceName": [{"name": f"CGM sensor ({source} export)", "type": "user-friendly-name"}],
    }
    return _entry(resource_url(patient_key, "device", device_id), resource)


def reading_entries(readings: pa.Table, patient_key: str, unit: Unit) -> Iterator[Entry]:
    """One CGM sensor reading Observation per row of ``readings`` (the canonical schema). The
    value is the one received when it came in ``unit``, else converted; a reading the device
    reported as "Low"/"High" has comparator ``<=``/``>=``; a fingerstick calibration entry is
    not a sensor reading and is left out."""
    code, profile = READING[unit], _meta(f"reading:{unit}")
    subject = {"reference": resource_url(patient_key, "patient")}
    devices: dict[str, dict[str, str]] = {}  # each device's reference, made once
    columns = [
        readings[name].to_pylist()
        for name in ("ts", "device_id", "glucose_mg_dl", "original_value", "original_unit", "flags")
    ]
    for ts, device_id, mg_dl, original, original_unit, flags in zip(*columns, strict=True):
        value = original if original_unit == unit else _in_unit(mg_dl, unit)
        quantity = _quantity(value, unit)
        if flags & ReadingFlag.CALIBRATION:  # a fingerstick, not a sensor reading
            continue
        if flags & ReadingFlag.SENSOR_LOW:
            quantity["comparator"] = "<="
        elif flags & ReadingFlag.SENSOR_HIGH:
            quantity["comparator"] = ">="
        moment = _instant(ts)
        resource = {
            "resourceType": "Observation",
            "meta": profile,
            "status": "final",
            "category": [{"coding": [CATEGORY_LABORATORY]}],
            "code": _concept(code),
            "subject": subject,
            "device": devices.get(device_id)
            or devices.setdefault(
                device_id, {"reference": resource_url(patient_key, "device", device_id)}
            ),
            "effectiveDateTime": moment,
            "valueQuantity": quantity,
        }
        yield _entry(resource_url(patient_key, "reading", device_id, moment), resource)


def _in_unit(mg_dl: float, unit: Unit) -> float:
    return mg_dl if unit == "mg/dL" else mg_dl / MG_DL_PER_MMOL_L


def _instant(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def summary_entries(
    patient_key: str,
    metrics: Mapping[str, Any],
    period: tuple[dt.date, dt.date],
    unit: Unit,
) -> list[Entry]:
    """The CGM summary panel and its six members for the local days ``period`` (both counted):
    mean glucose, times in ranges (five components), GMI, CV, days of wear, sensor active %.
    ``metrics``: a period-metrics row (``metrics.result_schemas.PERIOD_METRICS_SCHEMA``
    columns). A metric without a value is written with a ``dataAbsentReason``."""
    base = _summary_base(patient_key, period)
    mean = metrics.get("mean_mg_dl")
    members = [
        ("mean", _valued(base, MEAN_GLUCOSE[unit], f"mean:{unit}", _converted(mean, unit))),
        ("ranges", _times_in_ranges(base, metrics)),
        ("gmi", _valued(base, GMI, "gmi", metrics.get("gmi_pct"))),
        ("cv", _valued(base, GLUCOSE_CV, "cv", metrics.get("cv_pct"))),
        ("wear", _valued(base, DAYS_OF_WEAR, "wear", metrics.get("days"))),
        ("active", _valued(base, SENSOR_ACTIVE, "active", metrics.get("active_pct"))),
    ]
    tag = f"{period[0]}/{period[1]}"
    entries = [_entry(resource_url(patient_key, "summary", tag, n), r) for n, r in members]
    panel = {
        **base,
        "meta": _meta("summary"),
        "code": _concept(SUMMARY_PANEL),
        "hasMember": [{"reference": e["fullUrl"]} for e in entries],
    }
    return [_entry(resource_url(patient_key, "summary", tag), panel), *entries]


def _summary_base(patient_key: str, period: tuple[dt.date, dt.date]) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [CATEGORY_LABORATORY]}],
        "subject": {"reference": resource_url(patient_key, "patient")},
        "effectivePeriod": {"start": period[0].isoformat(), "end": period[1].isoformat()},
    }


def _converted(mean_mg_dl: object, unit: Unit) -> float | None:
    number = _number(mean_mg_dl)
    return None if number is None else _in_unit(number, unit)


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _valued(base: dict[str, Any], code: Code, profile: str, value: object) -> dict[str, Any]:
    resource = {**base, "meta": _meta(profile), "code": _concept(code)}
    resource.update(_value_or_absent(code, value))
    return resource


def _value_or_absent(code: Code, value: object) -> dict[str, Any]:
    number = _number(value)
    if number is None or code.unit is None:
        reason = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
        return {"dataAbsentReason": {"coding": [{"system": reason, "code": "not-applicable"}]}}
    return {"valueQuantity": _quantity(number, code.unit)}


def _times_in_ranges(base: dict[str, Any], metrics: Mapping[str, Any]) -> dict[str, Any]:
    components = [
        {"code": _concept(r.code), **_value_or_absent(r.code, metrics.get(r.metric))}
        for r in TIME_IN_RANGES
    ]
    return {
        **base,
        "meta": _meta("ranges"),
        "code": _concept(TIMES_IN_RANGES),
        "component": components,
    }


def report_entry(
    patient_key: str,
    pdf: bytes,
    period: tuple[dt.date, dt.date],
    *,
    summary_url: str | None,
    issued_at: dt.datetime,
) -> Entry:
    """The CGM summary PDF report (the AGP report of ``period``) as a DiagnosticReport; its
    ``result`` is the summary panel when the summary covers the same days."""
    resource: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "meta": _meta("report"),
        "status": "final",
        "category": [{"coding": [REPORT_CATEGORY]}],
        "code": _concept(SUMMARY_PANEL),
        "subject": {"reference": resource_url(patient_key, "patient")},
        "effectivePeriod": {"start": period[0].isoformat(), "end": period[1].isoformat()},
        "issued": _instant(issued_at),
        "presentedForm": [
            {
                "contentType": "application/pdf",
                "data": base64.b64encode(pdf).decode("ascii"),
                "title": f"AGP report {period[0]} to {period[1]}",
            }
        ],
    }
    if summary_url is not None:
        resource["result"] = [{"reference": summary_url}]
    tag = f"{period[0]}/{period[1]}"
    return _entry(resource_url(patient_key, "report", tag), resource)


def transaction_bundle(entries: list[Entry], timestamp: dt.datetime) -> dict[str, Any]:
    """The transaction Bundle of the guide's ``$submit-cgm-bundle`` holding ``entries``."""
    return {
        "resourceType": "Bundle",
        "meta": _meta("bundle"),
        "type": "transaction",
        "timestamp": _instant(timestamp),
        "entry": entries,
    }
