"""Exporters of synthetic cohorts: the project's tabular formats (one file for the cohort) and
the device formats users upload (one file per patient, and for Nightscout a treatments file
and, for a pump, a profile beside it). Renderers are PURE (bytes out); only
``glucosestream.synth.export`` writes files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from glucosestream.synth.exporters import (
    dexcom,
    fhir,
    libreview,
    nightscout,
    profile_json,
    tidepool,
    treatments_json,
)
from glucosestream.synth.exporters.patient import LoggedEvent, PatientRecord, patients_of
from glucosestream.synth.exporters.tabular import TABULAR_FORMATS, TabularWriter

__all__ = [
    "DEVICE_FORMATS",
    "TABULAR_FORMATS",
    "DeviceFormat",
    "LoggedEvent",
    "PatientRecord",
    "TabularWriter",
    "patients_of",
]


def _none(event: LoggedEvent) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class DeviceFormat:
    """A device format: the suffix and renderer of a patient's export; which logged events it
    holds (``carries``); for a format keeping events in a file of their own, that file's
    suffix and renderer (None when the patient logged none); and for one keeping a pump's
    basal schedule in a profile, the profile's (None when the patient has no pump)."""

    suffix: str
    render: Callable[[PatientRecord], bytes]
    carries: Callable[[LoggedEvent], bool] = _none
    events_suffix: str | None = None
    render_events: Callable[[PatientRecord], bytes | None] | None = None
    profile_suffix: str | None = None
    render_profile: Callable[[PatientRecord], bytes | None] | None = None


def _nightscout_carries(event: LoggedEvent) -> bool:
    return treatments_json.carries(event) or profile_json.carries(event)


DEVICE_FORMATS: Final[dict[str, DeviceFormat]] = {
    "dexcom": DeviceFormat(dexcom.SUFFIX, dexcom.render, dexcom.carries),
    "libreview": DeviceFormat(libreview.SUFFIX, libreview.render, libreview.carries),
    "nightscout": DeviceFormat(
        nightscout.SUFFIX,
        nightscout.render,
        _nightscout_carries,
        treatments_json.SUFFIX,
        treatments_json.render,
        profile_json.SUFFIX,
        profile_json.render,
    ),
    "tidepool": DeviceFormat(tidepool.SUFFIX, tidepool.render, tidepool.carries),
    "fhir": DeviceFormat(fhir.SUFFIX, fhir.render, fhir.carries),
}
