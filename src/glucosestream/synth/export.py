"""Write a synthetic cohort to files, one chunk of patients at a time (the only I/O of synth).

Tabular formats (parquet, csv, jsonl) write one file at ``out``. Device formats (dexcom,
libreview, nightscout, tidepool, fhir) write a directory ``out`` with one export per patient,
named ``<patient_id><suffix>`` (e.g. ``P00001_clarity.csv``) as users upload them, and a
``manifest.tsv`` saying, for each file, the patient, home zone, device and unit: what the
export itself does not say (Clarity and LibreView times carry no zone).
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
_MANIFEST_HEADER: Final = "file\tpatient_id\ttz\tdevice\tdevice_id\tunit\tprofile\treadings\n"


@dataclass(frozen=True, slots=True)
class SynthReport:
    path: str
    format: str
    patients: int
    days: int
    readings: int
    duration_ms: int
    files: int = 1


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
    if fmt in DEVICE_FORMATS:
        readings, files = _write_device(spec, out, fmt, on_chunk)
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
    )


def _write_tabular(
    spec: CohortSpec, out: Path, fmt: str, on_chunk: Callable[[int], None] | None
) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    readings = 0
    with TabularWriter(out, fmt) as writer:
        for chunk in simulate_chunks(spec):
            writer.write(chunk.readings)
            readings += chunk.readings.num_rows
            del chunk  # free this chunk before the next one is made
            if on_chunk is not None:
                on_chunk(readings)
    return readings


def _write_device(
    spec: CohortSpec, out: Path, fmt: str, on_chunk: Callable[[int], None] | None
) -> tuple[int, int]:
    if out.exists() and not out.is_dir():
        raise ConfigError(
            f"{fmt} writes one file per patient into a directory, but {out} is a file; "
            "give --out a directory path"
        )
    out.mkdir(parents=True, exist_ok=True)
    suffix, render = DEVICE_FORMATS[fmt]
    readings = files = 0
    with (out / MANIFEST_NAME).open("w", encoding="utf-8", newline="\n") as manifest:
        manifest.write(_MANIFEST_HEADER)
        for chunk in simulate_chunks(spec):
            for patient in patients_of(chunk, seed=spec.seed, interval_min=spec.interval_min):
                name = f"{patient.identity.patient_id}{suffix}"
                (out / name).write_bytes(render(patient))
                unit = _UNITS.get(fmt) or ("mmol/L" if patient.mmol else "mg/dL")
                manifest.write(
                    f"{name}\t{patient.identity.patient_id}\t{patient.zone}\t{patient.device}\t"
                    f"{patient.identity.device_serial}\t{unit}\t{patient.subtype}\t"
                    f"{patient.time_us.size}\n"
                )
                files += 1
            readings += chunk.readings.num_rows
            if on_chunk is not None:
                on_chunk(readings)
    return readings, files
