"""Tidepool ``cbg`` data, as the Tidepool API stores and exports it (see ../shared/samples/tidepool,
from TidepoolApi docs/device-data/data-types/cbg.md and oor-values.md).

A JSON array of ``cbg`` datums: ``units`` always ``mmol/L`` with ``value`` = mg/dL / 18.01559,
unrounded (Tidepool's own factor); ``time`` UTC ISO with milliseconds; ``deviceTime`` the local
display time without a zone; ``timezoneOffset`` in minutes; ``sampleInterval`` in ms; ``deviceId``,
``id``, ``guid``, ``uploadId``. Out-of-range readings are the threshold minus (LOW) or plus (HIGH)
one mg/dL, with an ``annotations`` entry ``bg/out-of-range`` giving the threshold in mg/dL.

The patient's logged events (``tidepool_datums``: bolus, basal, wizard, insulin, food,
physicalActivity) are datums of the same array, in time order with the ``cbg`` datums.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Final

import numpy as np

from glucosestream.readings import ReadingFlag
from glucosestream.synth.exporters.patient import PatientRecord
from glucosestream.synth.exporters.tidepool_datums import carries, event_datums
from glucosestream.synth.sensor import SENSOR_MAX_MG_DL, SENSOR_MIN_MG_DL

__all__ = ["MG_DL_PER_MMOL_L_TIDEPOOL", "SUFFIX", "carries", "render"]

SUFFIX: Final = "_tidepool.json"
MG_DL_PER_MMOL_L_TIDEPOOL: Final = 18.01559  # Tidepool's conversion (cbg.md)
_DEVICE_PREFIX: Final = {
    "Dexcom G6": "DexG6MobRec",
    "Dexcom G7": "DexG7MobRec",
    "FreeStyle Libre 2": "AbbottFreeStyleLibre2",
    "FreeStyle Libre 3": "AbbottFreeStyleLibre3",
}


def render(patient: PatientRecord) -> bytes:
    """The cbg datums of one patient."""
    rng = np.random.default_rng([patient.seed, patient.index, 4])
    bits = rng.integers(0, 2**63, size=(patient.time_us.size + 1, 4))
    upload_id = f"{int(bits[-1, 0]):016x}{int(bits[-1, 1]):016x}"
    device_id = f"{_DEVICE_PREFIX[patient.device]}_{patient.identity.device_serial}"
    times = patient.utc("%Y-%m-%dT%H:%M:%S.000Z")
    local = patient.local("%Y-%m-%dT%H:%M:%S")
    offsets = patient.utc_offset_min().tolist()
    low = ((patient.flags & int(ReadingFlag.SENSOR_LOW)) != 0).tolist()
    high = ((patient.flags & int(ReadingFlag.SENSOR_HIGH)) != 0).tolist()
    data: list[dict[str, Any]] = []
    for i, mg_dl in enumerate(patient.glucose_mg_dl.tolist()):
        datum: dict[str, Any] = {
            "type": "cbg",
            "units": "mmol/L",
            "value": mg_dl / MG_DL_PER_MMOL_L_TIDEPOOL,
            "sampleInterval": patient.interval_min * 60_000,
            "clockDriftOffset": 0,
            "conversionOffset": 0,
            "deviceId": device_id,
            "deviceTime": local[i],
            "guid": str(uuid.UUID(int=(int(bits[i, 0]) << 64) | int(bits[i, 1]))),
            "id": f"{int(bits[i, 2]):016x}{int(bits[i, 3]):016x}",
            "time": times[i],
            "timezoneOffset": offsets[i],
            "uploadId": upload_id,
        }
        if low[i] or high[i]:
            threshold = SENSOR_MIN_MG_DL if low[i] else SENSOR_MAX_MG_DL
            datum["value"] = (threshold + (-1 if low[i] else 1)) / MG_DL_PER_MMOL_L_TIDEPOOL
            datum["annotations"] = [
                {"code": "bg/out-of-range", "value": "low" if low[i] else "high",
                 "threshold": threshold}
            ]  # fmt: skip
        data.append(datum)
    events = event_datums(patient, device_id, upload_id)
    if events:
        when = [*patient.time_us.tolist(), *(e.time_us for e in patient.events if carries(e))]
        order = np.argsort(np.asarray(when, dtype=np.int64), kind="stable")
        everything = [*data, *events]
        data = [everything[i] for i in order.tolist()]
    return (json.dumps(data, indent=2) + "\n").encode("utf-8")
