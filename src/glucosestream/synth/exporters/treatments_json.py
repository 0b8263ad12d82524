"""Nightscout treatments JSON, as ``GET /api/v1/treatments.json`` returns it (see
../shared/samples/nightscout/cgm_format_nightscout_treatments.json): a JSON array, newest first,
one document per treatment with ``_id`` (a 24-hex ObjectId), ``eventType``, ``created_at`` (UTC
ISO with milliseconds), ``enteredBy``, ``insulin`` and ``carbs`` (null when absent),
``duration`` (minutes) where it has one, and ``utcOffset`` (minutes). PURE.

A Nightscout site keeps treatments in their own collection beside the entries, so synth writes
them to their own file, ``<patient_id>_treatments.json``, beside ``<patient_id>_entries.json``
(the manifest names it). Documents, as careportal and the uploaders write them:

    Meal Bolus          a meal's bolus with the carbohydrates announced to it (insulin, carbs)
    Correction Bolus    a bolus without carbohydrates (insulin)
    Carb Correction     rescue carbohydrates for a low (carbs)
    Exercise            a bout of exercise (duration; careportal has no intensity)

Not written: a pump's scheduled basal (it lives in the site's profile, not in treatments) and
a pen's long-acting injection (Nightscout has no eventType for it).
"""

from __future__ import annotations

import json
from typing import Any, Final

import numpy as np

from glucosestream.synth.exporters.nightscout import iso_ms
from glucosestream.synth.exporters.patient import (
    LoggedEvent,
    PatientRecord,
    json_number,
    utc_offset_min,
)

__all__ = ["ENTERED_BY", "SUFFIX", "carries", "render"]

SUFFIX: Final = "_treatments.json"
ENTERED_BY: Final = "xDrip+"


def carries(event: LoggedEvent) -> bool:
    """Whether a Nightscout treatments export holds ``event``."""
    return event.kind in ("bolus", "carbs", "exercise")


def render(patient: PatientRecord) -> bytes | None:
    """The treatments of one patient's site, or None: the patient logged none."""
    docs = _documents(patient)
    if not docs:
        return None
    times = np.array([d.pop("_time_us") for d in docs], dtype=np.int64)
    stamps = iso_ms(times)
    offsets = utc_offset_min(times, patient.zone).tolist()
    rng = np.random.default_rng([patient.seed, patient.index, 5])
    ids = rng.integers(0, 2**48, size=(len(docs), 2))
    out = []
    for i in range(len(docs) - 1, -1, -1):
        doc = {
            "_id": f"{int(ids[i, 0]):012x}{int(ids[i, 1]):012x}",
            "enteredBy": ENTERED_BY,
            "eventType": docs[i]["eventType"],
            "created_at": stamps[i],
            "insulin": docs[i].get("insulin"),
            "carbs": docs[i].get("carbs"),
            "utcOffset": offsets[i],
        }
        doc.update({k: v for k, v in docs[i].items() if k not in doc})
        out.append(doc)
    return (json.dumps(out, indent=2) + "\n").encode("utf-8")


def _documents(patient: PatientRecord) -> list[dict[str, Any]]:
    """One document per treatment, oldest first; a meal's bolus and its carbohydrates (same
    instant) make one Meal Bolus."""
    docs: list[dict[str, Any]] = []
    meals: dict[int, dict[str, Any]] = {}
    for event in patient.events:
        doc = _document(event)
        if doc is None:
            continue
        if doc["eventType"] == "Meal Bolus":
            earlier = meals.get(event.time_us)
            if earlier is not None:
                earlier.update({k: v for k, v in doc.items() if v is not None})
                continue
            meals[event.time_us] = doc
        docs.append(doc)
    return docs


def _document(event: LoggedEvent) -> dict[str, Any] | None:
    if event.kind == "bolus" and event.units is not None:
        insulin = json_number(event.units)
        if event.purpose == "meal":
            return {"_time_us": event.time_us, "eventType": "Meal Bolus", "insulin": insulin}
        return {"_time_us": event.time_us, "eventType": "Correction Bolus", "insulin": insulin}
    if event.kind == "carbs" and event.carbs_g is not None:
        kind = "Meal Bolus" if event.subtype == "meal" else "Carb Correction"
        return {"_time_us": event.time_us, "eventType": kind, "carbs": json_number(event.carbs_g)}
    if event.kind == "exercise" and event.duration_min is not None:
        return {
            "_time_us": event.time_us,
            "eventType": "Exercise",
            "duration": round(event.duration_min),
        }
    return None
