"""Exporters of synthetic cohorts: the project's tabular formats (one file for the cohort) and
the device formats users upload (one file per patient). Renderers are PURE (bytes out); only
``glucosestream.synth.export`` writes files.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from glucosestream.synth.exporters import dexcom, fhir, libreview, nightscout, tidepool
from glucosestream.synth.exporters.patient import PatientRecord, patients_of
from glucosestream.synth.exporters.tabular import TABULAR_FORMATS, TabularWriter

__all__ = [
    "DEVICE_FORMATS",
    "TABULAR_FORMATS",
    "PatientRecord",
    "TabularWriter",
    "patients_of",
]

# format name -> (file-name suffix, renderer of one patient's export)
DEVICE_FORMATS: Final[dict[str, tuple[str, Callable[[PatientRecord], bytes]]]] = {
    "dexcom": (dexcom.SUFFIX, dexcom.render),
    "libreview": (libreview.SUFFIX, libreview.render),
    "nightscout": (nightscout.SUFFIX, nightscout.render),
    "tidepool": (tidepool.SUFFIX, tidepool.render),
    "fhir": (fhir.SUFFIX, fhir.render),
}
