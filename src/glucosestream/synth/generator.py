"""Seeded, vectorised cohorts: physiology -> sensor -> Arrow tables, a chunk of patients at a
time. PURE: no I/O, no clock.

Each patient draws everything (parameters, daily behaviour, sensor sessions, noise) from its
own generator seeded by (cohort seed, patient index), so patient 7 is the same person in a
10-patient and in a 10,000-patient cohort, and a spec always gives the same readings. A chunk
holds as many patients as fit a fixed budget of grid cells, so memory does not grow with the
cohort; the model steps through time once per chunk with numpy arrays across its patients.

Beside the readings, each chunk keeps what the model simulated and an export of the real
devices would show (``simulated_events``: boluses, basal, carbohydrates, exercise); recording
them changes no reading.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from glucosestream.errors import ConfigError
from glucosestream.synth import schedule, sensor
from glucosestream.synth.fictional_identity import Identity, identity_of
from glucosestream.synth.grid import Grid, make_grid
from glucosestream.synth.physiology import DoseLog, simulate
from glucosestream.synth.profiles import (
    DEVICES,
    PROFILES,
    SUBTYPES,
    ZONES,
    PatientParams,
    Profile,
    draw_params,
    n_param_draws,
)
from glucosestream.synth.sensor import SENSOR_MAX_MG_DL, SENSOR_MIN_MG_DL, SensorOutput
from glucosestream.synth.simulated_events import SIMULATED_EVENT_SCHEMA, build_events

__all__ = [
    "PROFILES",
    "READINGS_SCHEMA",
    "SENSOR_MAX_MG_DL",
    "SENSOR_MIN_MG_DL",
    "SIMULATED_EVENT_SCHEMA",
    "Chunk",
    "CohortSpec",
    "generate_chunks",
    "generate_events",
    "simulate_chunks",
]

INTERVALS_MIN: Final = (1, 5, 15)
# Grid cells (steps x patients) per chunk: about 100 MB of working arrays at most.
_CHUNK_CELLS: Final = 1 << 22
_MAX_CHUNK_PATIENTS: Final = 1024

# Strings repeated on every reading of a patient are dictionary-encoded (values: string).
_PER_PATIENT: Final = pa.dictionary(pa.int32(), pa.string())
READINGS_SCHEMA: Final = pa.schema(
    [
        pa.field("patient_id", _PER_PATIENT, nullable=False),
        pa.field("device_id", _PER_PATIENT, nullable=False),
        pa.field("time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("glucose_mg_dl", pa.int64(), nullable=False),
        pa.field("tz", _PER_PATIENT, nullable=False),
        # glucosestream.readings.ReadingFlag bits: SENSOR_LOW (value 40), SENSOR_HIGH (400)
        pa.field("flags", pa.int32(), nullable=False),
        # the patient's sub-population, e.g. healthy, t2d_basal, t1d_poor
        pa.field("profile", _PER_PATIENT, nullable=False),
    ]
)


@dataclass(frozen=True, slots=True)
class CohortSpec:
    patients: int
    days: int
    profile: Profile = "mixed"
    interval_min: int = 5
    seed: int = 0
    start: dt.date = dt.date(2026, 1, 5)


@dataclass(frozen=True, slots=True)
class Chunk:
    """Readings of a chunk of whole patients, with what exporters need to know about them.

    ``session_start_us``: per patient (rows), the UTC start (epoch us, with the session's
    reading phase) of each of its sensor sessions, including some before or after the window.
    ``events``: the simulated events (``simulated_events.SIMULATED_EVENT_SCHEMA``) of the
    chunk's patients, sorted by patient and time.
    """

    readings: pa.Table
    events: pa.Table
    identities: tuple[Identity, ...]
    zones: tuple[str, ...]
    devices: tuple[str, ...]
    subtypes: tuple[str, ...]
    session_start_us: npt.NDArray[np.int64]


def generate_chunks(spec: CohortSpec) -> Iterator[pa.Table]:
    """Yield the cohort as Arrow tables of whole patients, in patient order.

    Columns: patient_id, device_id, time (UTC), glucose_mg_dl (int), tz, flags, profile.
    """
    for chunk in simulate_chunks(spec, events=False):
        readings = chunk.readings
        del chunk  # keep one chunk alive at a time, not two, while the next is made
        yield readings
        del readings


def generate_events(spec: CohortSpec) -> Iterator[pa.Table]:
    """Yield the cohort's simulated events (``SIMULATED_EVENT_SCHEMA``), chunk by chunk, in
    patient order: the same patients as ``generate_chunks`` gives, with their doses, meals,
    rescues and exercise (``logged`` says which an export shows)."""
    for chunk in simulate_chunks(spec):
        events = chunk.events
        del chunk
        yield events


def simulate_chunks(spec: CohortSpec, *, events: bool = True) -> Iterator[Chunk]:
    """Like ``generate_chunks``, with each chunk's identities, sensor sessions and, unless
    ``events`` is False (its table is then empty), simulated events."""
    _check(spec)
    grid = make_grid(spec.start, spec.days, spec.interval_min, ZONES)
    per_chunk = max(1, min(_MAX_CHUNK_PATIENTS, _CHUNK_CELLS // grid.n))
    for first in range(0, spec.patients, per_chunk):
        indices = np.arange(first, min(spec.patients, first + per_chunk), dtype=np.int64)
        yield _simulate(spec, grid, indices, events)


def _check(spec: CohortSpec) -> None:
    if spec.profile not in PROFILES:
        raise ConfigError(f"unknown profile {spec.profile!r}; use one of {', '.join(PROFILES)}")
    if spec.interval_min not in INTERVALS_MIN:
        raise ConfigError(
            f"interval_min={spec.interval_min} is not a CGM sampling interval; use 1, 5 or 15"
        )
    if spec.patients < 1 or spec.days < 1:
        raise ConfigError(
            f"a cohort needs at least 1 patient and 1 day (got {spec.patients} patients, "
            f"{spec.days} days)"
        )


@dataclass(frozen=True, slots=True)
class _Draws:
    params: npt.NDArray[np.float64]
    day_u: npt.NDArray[np.float64]
    day_z: npt.NDArray[np.float64]
    session_u: npt.NDArray[np.float64]
    session_z: npt.NDArray[np.float64]
    noise: npt.NDArray[np.float32]


def _draw(spec: CohortSpec, grid: Grid, indices: npt.NDArray[np.int64]) -> _Draws:
    """Every random number of a chunk, from each patient's own generator (a loop per patient,
    a few numpy calls each)."""
    size, days, sessions = indices.size, spec.days + 2, sensor.max_sessions(spec.days)
    params = np.empty((size, n_param_draws()))
    day_u = np.empty((size, days, schedule.DAY_UNIFORMS + sensor.DAY_UNIFORMS))
    day_z = np.empty((size, days, schedule.DAY_NORMALS))
    session_u = np.empty((size, sessions, sensor.SESSION_DRAWS))
    session_z = np.empty((size, sessions, sensor.SESSION_DRAWS))
    noise = np.empty((size, 2, grid.n), dtype=np.float32)
    for row, index in enumerate(indices.tolist()):
        rng = np.random.default_rng([spec.seed, index])
        params[row] = rng.standard_normal(params.shape[1])
        day_u[row] = rng.random(day_u.shape[1:])
        day_z[row] = rng.standard_normal(day_z.shape[1:])
        session_u[row] = rng.random(session_u.shape[1:])
        session_z[row] = rng.standard_normal(session_z.shape[1:])
        noise[row] = rng.standard_normal((2, grid.n), dtype=np.float32)
    return _Draws(
        params, day_u, day_z, session_u, session_z, np.ascontiguousarray(noise.transpose(1, 2, 0))
    )


def _simulate(
    spec: CohortSpec, grid: Grid, indices: npt.NDArray[np.int64], keep_events: bool
) -> Chunk:
    draws = _draw(spec, grid, indices)
    params = draw_params(spec.profile, indices, draws.params)
    split = schedule.DAY_UNIFORMS
    inputs = schedule.build_inputs(params, grid, draws.day_u[:, :, :split], draws.day_z)
    log = DoseLog() if keep_events else None
    ig, unit_noise = simulate(params, grid, inputs, draws.noise, log=log)
    identities = tuple(
        identity_of(spec.seed, int(i), DEVICES[int(d)])
        for i, d in zip(indices.tolist(), params.device.tolist(), strict=True)
    )
    zones = tuple(ZONES[int(z)] for z in params.zone)
    labels = ([i.patient_id for i in identities], [i.device_serial for i in identities], zones)
    events = (
        build_events(params, grid, inputs, log, labels)
        if log is not None
        else SIMULATED_EVENT_SCHEMA.empty_table()
    )
    del inputs, log
    out = sensor.read_sensor(
        params, grid, ig, unit_noise, (draws.day_u[:, :, split:], draws.session_u, draws.session_z)
    )
    interval_us = spec.interval_min * 60_000_000
    session_start_us = grid.start_us + np.rint(out.session_start_min * 60e6).astype(np.int64)
    return Chunk(
        readings=_table(params, identities, out, grid.start_us, interval_us),
        events=events,
        identities=identities,
        zones=zones,
        devices=tuple(DEVICES[int(d)].name for d in params.device),
        subtypes=tuple(SUBTYPES[int(s)] for s in params.subtype),
        session_start_us=session_start_us + out.offset_s * 1_000_000,
    )


def _table(
    params: PatientParams,
    identities: tuple[Identity, ...],
    out: SensorOutput,
    start_us: int,
    interval_us: int,
) -> pa.Table:
    """Rows of the reported readings, patient-major. String columns are dictionary-encoded
    (one entry per patient of the chunk): no string is copied per reading."""
    codes = out.patient.astype(np.int32)
    offset_us = out.offset_s[out.patient, out.session] * 1_000_000
    time_us = start_us + out.sample.astype(np.int64) * interval_us + offset_us

    def per_patient(values: list[str]) -> pa.DictionaryArray:
        # A dictionary must hold each value once (zones and profiles repeat across patients):
        # pyarrow's Parquet writer emits stray bytes for a dictionary with repeated values.
        unique, inverse = np.unique(np.array(values, dtype=object), return_inverse=True)
        indices = pa.array(inverse.astype(np.int32)[codes])
        return pa.DictionaryArray.from_arrays(indices, pa.array(unique.tolist(), type=pa.string()))

    return pa.Table.from_arrays(
        [
            per_patient([i.patient_id for i in identities]),
            per_patient([i.device_serial for i in identities]),
            pa.array(time_us, type=pa.timestamp("us", tz="UTC")),
            pa.array(out.glucose_mg_dl.astype(np.int64)),
            per_patient([ZONES[int(z)] for z in params.zone]),
            pa.array(out.flags.astype(np.int32)),
            per_patient([SUBTYPES[int(s)] for s in params.subtype]),
        ],
        schema=READINGS_SCHEMA,
    )
