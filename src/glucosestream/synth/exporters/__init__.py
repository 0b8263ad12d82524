"""Exporters of synthetic cohorts: the project's tabular formats (one file for the cohort) and
the device formats users upload (one file per patient, and for Nightscout a treatments file
beside it). Renderers are PURE (bytes out); only ``glucosestream.synth.export`` writes files.
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
    holds (``carries``); and, for a format keeping events in a file of their own, that file's
    suffix and renderer (None when the patient logged none)."""

    suffix: str
    render: Callable[[PatientRecord], bytes]
    carries: Callable[[LoggedEvent], bool] = _none
    events_suffix: str | None = None
    render_events: Callable[[PatientRecord], bytes | None] | None = None


DEVICE_FORMATS: Final[dict[str, DeviceFormat]] = {
    "dexcom": DeviceFormat(dexcom.SUFFIX, dexcom.render, dexcom.carries),
    "libreview": DeviceFormat(libreview.SUFFIX, libreview.render, libreview.carries),
    "nightscout": DeviceFormat(
        nightscout.SUFFIX,
        nightscout.render,
        treatments_json.carries,
        treatments_json.SUFFIX,
        treatments_json.render,
    ),
    "tidepool": DeviceFormat(tidepool.SUFFIX, tidepool.render, tidepool.carries),
    "fhir": DeviceFormat(fhir.SUFFIX, fhir.render, fhir.carries),
}
