"""Nightscout profile JSON, as ``GET /api/v1/profile.json`` returns it (see
../shared/samples/nightscout/cgm_format_nightscout_profile.json): a JSON array of profile
documents, each with ``_id``, ``defaultProfile``, ``startDate`` (UTC ISO with milliseconds),
``mills``, ``enteredBy``, ``units`` and a ``store`` of named profiles, each with its
``timezone``, ``units`` and ``basal`` schedule (``time``, ``timeAsSeconds``, ``value`` in U/h).
PURE.

A Nightscout site keeps a pump's scheduled basal in its profile, not in treatments, so synth
writes a pump patient's basal as one profile document, ``<patient_id>_profile.json``, beside the
entries and treatments (the manifest's ``basal_profile`` names it): the simulated pump runs one
rate all day (``synth.simulated_events``), so the schedule is one entry at 00:00 in the
patient's zone, in force from the first simulated segment. Read back over the span of the
entries and treatments (``ingest.basal_profiles``), it gives a scheduled segment at each local
midnight at that rate. Patients without a pump get no profile.

The other settings a real profile holds (insulin sensitivity, carbohydrate ratio, targets) are
left out: nothing in the simulation sets them, and no reader uses them.
"""

from __future__ import annotations

import json
from typing import Final

import numpy as np

from glucosestream.synth.exporters.nightscout import iso_ms
from glucosestream.synth.exporters.patient import LoggedEvent, PatientRecord, json_number
from glucosestream.synth.exporters.treatments_json import ENTERED_BY

__all__ = ["PROFILE_NAME", "SUFFIX", "carries", "render"]

SUFFIX: Final = "_profile.json"
PROFILE_NAME: Final = "Default"


def carries(event: LoggedEvent) -> bool:
    """Whether a Nightscout profile holds ``event``: a pump's scheduled basal segment."""
    return event.kind == "basal" and event.subtype == "scheduled"


def render(patient: PatientRecord) -> bytes | None:
    """The profile of one pump patient's site, or None: the patient has no pump basal."""
    segments = [e for e in patient.events if carries(e) and e.rate_u_h is not None]
    if not segments:
        return None
    rates = {e.rate_u_h for e in segments}
    if len(rates) != 1:  # the simulated pump has one rate; a schedule of several would lie
        raise ValueError(f"a simulated pump with {len(rates)} basal rates; expected one")
    start_us = min(e.time_us for e in segments)
    start = iso_ms(np.array([start_us], dtype=np.int64))[0]
    rng = np.random.default_rng([patient.seed, patient.index, 6])
    ids = rng.integers(0, 2**48, size=2)
    rate = json_number(segments[0].rate_u_h or 0.0)
    document = {
        "_id": f"{int(ids[0]):012x}{int(ids[1]):012x}",
        "defaultProfile": PROFILE_NAME,
        "startDate": start,
        "mills": start_us // 1000,
        "created_at": start,
        "enteredBy": ENTERED_BY,
        "units": "mg/dl",
        "store": {
            PROFILE_NAME: {
                "timezone": patient.zone,
                "units": "mg/dl",
                "basal": [{"time": "00:00", "timeAsSeconds": 0, "value": rate}],
            }
        },
    }
    return (json.dumps([document], indent=2) + "\n").encode("utf-8")
