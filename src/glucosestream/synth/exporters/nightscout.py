"""Nightscout entries JSON, as ``GET /api/v1/entries.json`` returns it (see
../shared/samples/nightscout): a JSON array, newest first, one ``sgv`` document per reading with
``_id`` (upper-case UUID, as the Loop/iOS uploader writes it), ``date`` (epoch ms), ``dateString``
and ``sysTime`` (UTC ISO with ``.000Z``), ``sgv``/``glucose``/``unfiltered``/``uncalibrated``
(mg/dL, always), ``direction`` (the trend arrow from the last five minutes), ``type``,
``sessionStartDate`` and ``utcOffset`` (minutes east of UTC at that reading).

Out of range: Nightscout's convention (the Share bridge and xDrip) is ``sgv`` 39 for LOW and
401 for HIGH; a parser maps them back to 40 flagged LOW and 400 flagged HIGH.
"""

from __future__ import annotations

import json
import uuid
from typing import Final

import numpy as np
import numpy.typing as npt

from glucosestream.readings import ReadingFlag
from glucosestream.synth.exporters.patient import PatientRecord

__all__ = ["HIGH_SGV", "LOW_SGV", "SUFFIX", "iso_ms", "render"]

SUFFIX: Final = "_entries.json"
LOW_SGV: Final = 39
HIGH_SGV: Final = 401
_ISO_MS: Final = "%Y-%m-%dT%H:%M:%S.000Z"
# Dexcom trend arrows by rate of change (mg/dL/min), upper edges from the steepest fall up.
_TRENDS: Final = (
    (-3.0, "DoubleDown"),
    (-2.0, "SingleDown"),
    (-1.0, "FortyFiveDown"),
    (1.0, "Flat"),
    (2.0, "FortyFiveUp"),
    (3.0, "SingleUp"),
    (np.inf, "DoubleUp"),
)
_TREND_MAX_GAP_MIN: Final = 15.0


def render(patient: PatientRecord) -> bytes:
    """The entries JSON of one patient's Nightscout site."""
    sgv = _sgv(patient)
    stamps = patient.utc(_ISO_MS)
    session = np.searchsorted(patient.session_start_us, patient.time_us, side="right") - 1
    starts_us = patient.session_start_us[np.maximum(session, 0)]
    starts = iso_ms(starts_us)
    offsets = patient.utc_offset_min().tolist()
    rng = np.random.default_rng([patient.seed, patient.index, 3])
    ids = rng.integers(0, 2**63, size=(sgv.size, 2))
    directions = _directions(patient)
    docs = []
    for i in range(sgv.size - 1, -1, -1):
        value = int(sgv[i])
        docs.append(
            {
                "_id": str(uuid.UUID(int=(int(ids[i, 0]) << 64) | int(ids[i, 1]))).upper(),
                "date": int(patient.time_us[i] // 1000),
                "dateString": stamps[i],
                "glucose": value,
                "direction": directions[i],
                "type": "sgv",
                "sessionStartDate": starts[i],
                "sgv": value,
                "unfiltered": value,
                "uncalibrated": value,
                "utcOffset": offsets[i],
                "sysTime": stamps[i],
            }
        )
    return (json.dumps(docs, indent=2) + "\n").encode("utf-8")


def _sgv(patient: PatientRecord) -> npt.NDArray[np.int64]:
    low = (patient.flags & int(ReadingFlag.SENSOR_LOW)) != 0
    high = (patient.flags & int(ReadingFlag.SENSOR_HIGH)) != 0
    return np.where(low, LOW_SGV, np.where(high, HIGH_SGV, patient.glucose_mg_dl))


def _directions(patient: PatientRecord) -> list[str]:
    minutes = np.diff(patient.time_us) / 60e6
    rate = np.diff(patient.glucose_mg_dl.astype(np.float64)) / np.maximum(minutes, 1e-9)
    edges = np.array([edge for edge, _ in _TRENDS])
    names = np.array([name for _, name in _TRENDS] + ["NONE"])
    code = np.searchsorted(edges, rate, side="left")
    code = np.where(minutes <= _TREND_MAX_GAP_MIN, code, len(_TRENDS))
    return ["NONE", *names[code].tolist()]


def iso_ms(time_us: npt.NDArray[np.int64]) -> list[str]:
    """UTC epoch microseconds as ISO 8601 with milliseconds and ``Z``."""
    ms = (time_us // 1000).astype("datetime64[ms]")
    return [f"{t}Z" for t in np.datetime_as_string(ms, unit="ms").tolist()]
