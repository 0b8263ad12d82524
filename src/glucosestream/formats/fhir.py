"""HL7 FHIR R4 CGM data (the CGM implementation guide, ``hl7.fhir.uv.cgm`` STU 1).

Layouts: a ``Bundle`` (the IG's ``$submit-cgm-bundle`` transaction, or any collection or
search set) whose ``entry[].resource`` holds the resources; a single resource; or NDJSON, one
resource a line (bulk data export).

Readings are ``Observation`` resources coded with LOINC

    99504-3   CGM sensor reading, mass per volume    valueQuantity in mg/dL (UCUM ``mg/dL``)
    105272-9  CGM sensor reading, moles per volume   valueQuantity in mmol/L (UCUM ``mmol/L``)

with ``effectiveDateTime`` (or ``effectiveInstant``) as the time. A quantity whose unit does not
match its code, or an observation whose status is ``entered-in-error`` or ``cancelled``, is
quarantined with that reason. A ``comparator`` of ``<``/``<=`` (``>``/``>=``) marks a value below
(above) the sensor's range: the reading is flagged ``SENSOR_LOW`` (``SENSOR_HIGH``).

Blood glucose observations (2339-0 and the like: a meter or a lab, not a sensor), carbohydrate
intake and insulin administrations are events (``fhir_events``; the CGM IG itself has none).
Every other resource is skipped: ``Patient`` and ``Device`` (names, birth dates, serial
numbers; only used to resolve references) and summary observations (mean glucose, times in
ranges, GMI, …).

The patient id is the referenced ``Patient``'s first identifier (``system|value``, or the
value alone when it has no system) when the bundle holds it, else the reference
(``Patient/123``). The device is the referenced ``Device``'s serial number (or the bundle's only
``Device``), else the reference. The line of a reading is its 1-based entry index (its line in
NDJSON).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from glucosestream.errors import InvalidInput
from glucosestream.formats.delimited import read_text
from glucosestream.formats.event_rows import EventBuilder
from glucosestream.formats.fhir_events import (
    LOINC,
    Origin,
    add_resource_events,
    as_list,
    as_mapping,
)
from glucosestream.formats.jsontext import decode_json, field_text
from glucosestream.formats.rows import ParsedFile, RowBuilder
from glucosestream.readings import ReadingFlag

__all__ = ["fhir_document", "looks_like_fhir", "read_fhir"]

# hl7.fhir.uv.cgm 1.0.0: CGM sensor reading profiles, mass and molar, with their UCUM units.
SENSOR_READING_UNITS: Final = {"99504-3": "mg/dL", "105272-9": "mmol/L"}
_RETRACTED: Final = frozenset({"entered-in-error", "cancelled"})
_COMPARATOR_FLAGS: Final = {
    "<": ReadingFlag.SENSOR_LOW,
    "<=": ReadingFlag.SENSOR_LOW,
    ">": ReadingFlag.SENSOR_HIGH,
    ">=": ReadingFlag.SENSOR_HIGH,
}

Resource = Mapping[str, Any]


def looks_like_fhir(document: object) -> bool:
    """Whether a parsed JSON document (or the first line of NDJSON) is a FHIR resource."""
    return isinstance(document, Mapping) and isinstance(document.get("resourceType"), str)


def read_fhir(path: Path) -> ParsedFile:
    source = str(path)
    return _read_resources(_resources(read_text(path, "FHIR document"), source))


def fhir_document(document: object, source: str) -> ParsedFile:
    """The rows of a FHIR JSON document already decoded (a resource or a Bundle)."""
    return _read_resources(_resources_of(document, source))


def _read_resources(resources: list[tuple[int, Resource]]) -> ParsedFile:
    index = _reference_index([r for _, r in resources])
    devices = [r for _, r in resources if r.get("resourceType") == "Device"]
    only_device = devices[0] if len(devices) == 1 else None
    rows, events = RowBuilder(), EventBuilder()
    skipped = 0
    for line, resource in resources:
        unit = _sensor_unit(resource)
        if unit is None:
            origin = Origin(_patient_id(resource, index), _device_id(resource, index, only_device))
            if not add_resource_events(events, line, resource, origin):
                skipped += 1
            continue
        quantity = as_mapping(resource.get("valueQuantity"))
        received_unit = field_text(quantity.get("code") or quantity.get("unit"))
        rows.add(
            line,
            time=field_text(resource.get("effectiveDateTime") or resource.get("effectiveInstant")),
            glucose=field_text(quantity.get("value")),
            unit=received_unit,
            patient_id=_patient_id(resource, index),
            device_id=_device_id(resource, index, only_device),
            flags=_COMPARATOR_FLAGS.get(str(quantity.get("comparator")), 0),
            problem=_problem(resource, unit, received_unit),
        )
    return ParsedFile(rows.table(), skipped=skipped, events=events.table() if events else None)


def _resources(text: str, source: str) -> list[tuple[int, Resource]]:
    """Each resource with its line: entry index in a bundle, line number in NDJSON."""
    try:
        document = decode_json(text, source=source)
    except json.JSONDecodeError:
        return _ndjson(text, source)
    return _resources_of(document, source)


def _resources_of(document: object, source: str) -> list[tuple[int, Resource]]:
    if not isinstance(document, Mapping) or not looks_like_fhir(document):
        raise InvalidInput("not a FHIR resource (no resourceType)", source=source)
    if document["resourceType"] != "Bundle":
        return [(1, document)]
    entries = document.get("entry")
    return [
        (number, {**entry["resource"], "_fullUrl": entry.get("fullUrl")})
        for number, entry in enumerate(entries if isinstance(entries, list) else [], start=1)
        if isinstance(entry, Mapping) and isinstance(entry.get("resource"), Mapping)
    ]


def _ndjson(text: str, source: str) -> list[tuple[int, Resource]]:
    resources: list[tuple[int, Resource]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            resource = decode_json(line, source=source, line=number)
        except json.JSONDecodeError as err:
            raise InvalidInput(
                f"not valid JSON ({err.msg}); each line must be one FHIR resource",
                source=source,
                line=number,
            ) from err
        if not looks_like_fhir(resource):
            raise InvalidInput("not a FHIR resource (no resourceType)", source=source, line=number)
        resources.append((number, resource))
    return resources


def _reference_index(resources: list[Resource]) -> dict[str, Resource]:
    index: dict[str, Resource] = {}
    for resource in resources:
        if resource.get("id"):
            index[f"{resource.get('resourceType')}/{resource['id']}"] = resource
        if resource.get("_fullUrl"):
            index[str(resource["_fullUrl"])] = resource
    return index


def _sensor_unit(resource: Resource) -> str | None:
    """The unit a CGM sensor-reading Observation must have; None for anything else."""
    if resource.get("resourceType") != "Observation":
        return None
    for coding in as_list(as_mapping(resource.get("code")).get("coding")):
        code = as_mapping(coding).get("code")
        if as_mapping(coding).get("system") == LOINC and isinstance(code, str):
            unit = SENSOR_READING_UNITS.get(code)
            if unit is not None:
                return unit
    return None


def _problem(resource: Resource, expected_unit: str, received_unit: object) -> str | None:
    status = resource.get("status")
    if isinstance(status, str) and status in _RETRACTED:
        return f"observation status is {status}"
    if str(received_unit).replace(" ", "").lower() != expected_unit.lower():
        return f"the unit does not match the LOINC code (expected {expected_unit})"
    return None


def _patient_id(resource: Resource, index: dict[str, Resource]) -> str | None:
    reference = field_text(as_mapping(resource.get("subject")).get("reference"))
    if not reference:
        return None
    for identifier in as_list(as_mapping(index.get(reference)).get("identifier")):
        value = as_mapping(identifier).get("value")
        if isinstance(value, str) and value:
            system = field_text(as_mapping(identifier).get("system"))
            return f"{system}|{value}" if system else value
    return reference


def _device_id(
    resource: Resource, index: dict[str, Resource], only_device: Resource | None
) -> str | None:
    reference = field_text(as_mapping(resource.get("device")).get("reference"))
    device = index.get(reference) if reference else only_device
    if device is not None and device.get("serialNumber"):
        return str(device["serialNumber"])
    return reference or None
