"""FHIR resources that are events: blood glucose and carbohydrate observations, insulin
administrations. The CGM IG's own examples carry none, and stay readings only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glucosestream.formats.detect import read_raw_rows

SAMPLES = Path(__file__).parent / "data" / "samples" / "fhir_cgm"
LOINC = "http://loinc.org"
WHEN = "2026-02-01T08:00:00+01:00"


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_the_cgm_ig_examples_carry_no_events(path):
    _, parsed = read_raw_rows(path, "fhir")
    assert parsed.events is None
    assert parsed.rows.num_rows > 0


def observation(code, value, unit, **extra):
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": WHEN,
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org"},
        **extra,
    }


def administration(name, value, unit, **extra):
    return {
        "resourceType": "MedicationAdministration",
        "status": "completed",
        "medicationCodeableConcept": {"text": name},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": WHEN,
        "dosage": {"dose": {"value": value, "unit": unit}},
        **extra,
    }


def read_bundle(tmp_path, resources):
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [{"system": "urn:clinic", "value": "MRN-7"}],
    }
    device = {"resourceType": "Device", "id": "d1", "serialNumber": "METER-42"}
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in [patient, device, *resources]],
    }
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    fmt, parsed = read_raw_rows(path)
    assert fmt == "fhir"
    return parsed


def test_blood_glucose_carbs_and_insulin_become_events(tmp_path):
    parsed = read_bundle(
        tmp_path,
        [
            observation("2339-0", 104, "mg/dL"),
            observation("14743-9", 6.1, "mmol/L"),
            observation("41653-7", 6.1, "mmol/L"),  # a mass code in a molar unit
            observation("9059-7", 45, "g"),
            observation("2339-0", 99, "mg/dL", status="entered-in-error"),
            observation("99504-3", 120, "mg/dL"),  # a CGM reading: a reading, not an event
            observation("2345-7", 90, "mg/dL"),  # serum glucose: not in the table
            administration("Insulin lispro 100 UNT/ML Injectable Solution", 4, "[iU]"),
            administration("Lantus SoloStar", 20, "U"),
            administration("insulin isophane / insulin regular 70/30", 12, "[iU]"),
            administration("Insulin (human)", 5, "[iU]"),
            administration("Humalog", 3, "mg"),
            administration("Regular strength aspirin", 300, "mg"),
            administration("metformin", 500, "mg"),
        ],
    )
    assert parsed.rows.num_rows == 1
    assert parsed.skipped == 2 + 3  # Patient, Device; serum glucose, aspirin, metformin
    rows = [
        (
            r["line"],
            r["kind"],
            r["subtype"],
            r["glucose"] or r["carbs_g"] or r["units"],
            r["unit"],
            r["problem"],
        )
        for r in parsed.events.to_pylist()
    ]
    assert rows == [
        (3, "smbg", None, "104", "mg/dL", None),
        (4, "smbg", None, "6.1", "mmol/L", None),
        (
            5,
            "smbg",
            None,
            "6.1",
            "mmol/L",
            "the unit does not match the LOINC code (expected mg/dL)",
        ),
        (6, "carbs", "meal", "45", None, None),
        (7, "smbg", None, "99", "mg/dL", "observation status is entered-in-error"),
        (10, "bolus", "normal", "4", None, None),
        (11, "basal", "injection", "20", None, None),
        (
            12,
            "bolus",
            "normal",
            "12",
            None,
            "an insulin whose names say both rapid and long-acting: bolus or basal is not known",
        ),
        (
            13,
            "bolus",
            "normal",
            "5",
            None,
            "an insulin whose names say neither rapid nor long-acting: bolus or basal is not known",
        ),
        (14, "bolus", "normal", "3", None, "an insulin dose in mg, not in units ([iU])"),
    ]
    first = parsed.events.to_pylist()[0]
    assert (first["patient_id"], first["device_id"], first["time"]) == (
        "urn:clinic|MRN-7",
        "METER-42",
        WHEN,
    )


def test_hostile_event_resources_are_problems_or_skipped(tmp_path):
    parsed = read_bundle(
        tmp_path,
        [
            observation("9059-7", "x" * 500, "g"),
            observation("9059-7", 30, "kcal"),
            {"resourceType": "Observation", "code": "2339-0", "valueQuantity": [1]},
            {"resourceType": "MedicationAdministration", "medicationCodeableConcept": ["insulin"]},
            administration("insulin aspart", {"value": 1}, "[iU]", effectivePeriod={"start": WHEN}),
        ],
    )
    rows = [
        (r["line"], r["kind"], r["carbs_g"] or r["units"], r["problem"])
        for r in parsed.events.to_pylist()
    ]
    assert rows == [
        (3, "carbs", None, "the value has 500 characters, not a number"),
        (4, "carbs", "30", "carbohydrate intake must be in grams (UCUM g)"),
        (7, "bolus", '{"value": 1}', None),  # ingest: not a number
    ]
    assert parsed.skipped == 2 + 2
