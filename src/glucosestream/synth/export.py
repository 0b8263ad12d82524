"""Write a synthetic cohort to files, one chunk of patients at a time (the only I/O of synth).

Tabular formats (parquet, csv, jsonl) write one file at ``out``. Device formats (dexcom,
libreview, nightscout, tidepool, fhir) write a directory ``out`` with one export per patient,
named ``<patient_id><suffix>`` (e.g. ``P00001_clarity.csv``) as users upload them, and a
``manifest.tsv`` saying, for each file, the patient, home zone, device and unit: what the
export itself does not say (Clarity and LibreView times carry no zone).

The exports carry the patient's logged simulated events where the format has them
(``exporters``): Clarity, LibreView and Tidepool in the same file as the readings, Nightscout in
``<patient_id>_treatments.json`` beside the entries (as a site keeps its treatments collection
beside its entries) and a pump's scheduled basal in ``<patient_id>_profile.json`` (a site's
profile). The manifest's last three columns give how many events each patient's export holds
(``events``), the file holding them when it is not the row's file (``treatments``, else
empty) and the profile holding the basal schedule (``basal_profile``, else empty; ingest it
in the same command as the entries and treatments: ``ingest.basal_profiles``); there is still one
row per patient.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from glucosestream.errors import ConfigError
from glucosestream.synth.exporters import (
    DEVICE_FORMATS,
    TABULAR_FORMATS,
    PatientRecord,
    TabularWriter,
    patients_of,
)
from glucosestream.synth.generator import CohortSpec, simulate_chunks

__all__ = ["MANIFEST_NAME", "SYNTH_FORMATS", "SynthReport", "write_cohort"]

SYNTH_FORMATS: Final = (*TABULAR_FORMATS, *DEVICE_FORMATS)
MANIFEST_NAME: Final = "manifest.tsv"
# Formats with one unit whatever the patient's locale (Nightscout stores sgv in mg/dL, Tidepool
# stores mmol/L); the others follow the patient's zone (exporters.patient.MMOL_ZONES).
_UNITS: Final = {"nightscout": "mg/dL", "tidepool": "mmol/L"}
_MANIFEST_HEADER: Final = (
    "file\tpatient_id\ttz\tdevice\tdevice_id\tunit\tprofile\treadings\tevents\ttreatments"
    "\tbasal_profile\n"
)


@dataclass(frozen=True, slots=True)
class SynthReport:
    path: str
    format: str
    patients: int
    days: int
    readings: int
    duration_ms: int
    files: int = 1  # exports written: one per patient (device formats) or the cohort's file
    events: int = 0  # logged simulated events the device exports hold


def write_cohort(
    spec: CohortSpec,
    out: Path,
    fmt: str,
    *,
    on_chunk: Callable[[int], None] | None = None,
) -> SynthReport:
    """Generate ``spec`` and write it to ``out`` as ``fmt``; ``on_chunk`` gets readings so far."""
    if fmt not in SYNTH_FORMATS:
        raise ConfigError(
            f"synth cannot write format {fmt!r}; use one of {', '.join(SYNTH_FORMATS)}"
        )
    started = time.perf_counter()
    events = 0
    if fmt in DEVICE_FORMATS:
        readings, files, events = _write_device(spec, out, fmt, on_chunk)
    else:
        readings, files = _write_tabular(spec, out, fmt, on_chunk), 1
    return SynthReport(
        path=str(out),
        format=fmt,
        patients=spec.patients,
        days=spec.days,
        readings=readings,
        duration_ms=round((time.perf_counter() - started) * 1000),
        files=files,
        events=events,
    )


def _write_tabular(
    spec: CohortSpec, out: Path, fmt: str, on_chunk: Callable[[int], None] | None
) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    readings = 0
    with TabularWriter(out, fmt) as writer:
        for chunk in simulate_chunks(spec, events=False):  # tabular files hold readings
            writer.write(chunk.readings)
            readings += chunk.readings.num_rows
            del chunk  # free this chunk before the next one is made
            if on_chunk is not None:
                on_chunk(readings)
    return readings


def _write_device(
    spec: CohortSpec, out: Path, fmt: str, on_chunk: Callable[[int], None] | None
) -> tuple[int, int, int]:
    if out.exists() and not out.is_dir():
        raise ConfigError(
            f"{fmt} writes one file per patient into a directory, but {out} is a file; "
            "give --out a directory path"
        )
    out.mkdir(parents=True, exist_ok=True)
    device = DEVICE_FORMATS[fmt]
    readings = files = events = 0
    with (out / MANIFEST_NAME).open("w", encoding="utf-8", newline="\n") as manifest:
        manifest.write(_MANIFEST_HEADER)
        for chunk in simulate_chunks(spec):
            for patient in patients_of(chunk, seed=spec.seed, interval_min=spec.interval_min):
                name = f"{patient.identity.patient_id}{device.suffix}"
                (out / name).write_bytes(device.render(patient))
                held = sum(1 for e in patient.events if device.carries(e))
                treatments = _write_beside(out, patient, device.events_suffix, device.render_events)
                basal_profile = _write_beside(
                    out, patient, device.profile_suffix, device.render_profile
                )
                unit = _UNITS.get(fmt) or ("mmol/L" if patient.mmol else "mg/dL")
                manifest.write(
                    f"{name}\t{patient.identity.patient_id}\t{patient.zone}\t{patient.device}\t"
                    f"{patient.identity.device_serial}\t{unit}\t{patient.subtype}\t"
                    f"{patient.time_us.size}\t{held}\t{treatments}\t{basal_profile}\n"
                )
                files += 1
                events += held
            readings += chunk.readings.num_rows
            if on_chunk is not None:
                on_chunk(readings)
    return readings, files, events


def _write_beside(
    out: Path,
    patient: PatientRecord,
    suffix: str | None,
    render: Callable[[PatientRecord], bytes | None] | None,
) -> str:
    """Write a file a format keeps beside the patient's export (Nightscout's treatments, a
    pump's profile); its name, or "" (the format has none, or the patient nothing for it)."""
    if render is None or suffix is None:
        return ""
    data = render(patient)
    if data is None:
        return ""
    name = f"{patient.identity.patient_id}{suffix}"
    (out / name).write_bytes(data)
    return name
