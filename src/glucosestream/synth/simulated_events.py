"""The simulated events: what the model gave and the patients did beside their glucose. PURE.

One row per event, in the columns of ``glucosestream.events.EVENT_SCHEMA`` that a device or a
patient fills (before ingest: external ids, no batch), plus two of synth's own:

    purpose   bolus: ``meal`` (with or without a correction part) or ``correction``;
              carbs: ``meal`` or ``rescue`` (glucose tablets for a felt low); else NULL
    logged    whether the patient or a device recorded it; exports carry only logged events

Per patient (``therapy`` says who takes insulin how):
- bolus ``normal``: every bolus the model gave, units as delivered (rounded to the device);
- basal: a pump's ``scheduled`` segments (the set rate, from each local midnight to the next,
  none longer than a day, with the units delivered), or a pen's long-acting ``injection``
  once a day at ``therapy.INJECTION_HOUR`` local time (units);
- carbs ``meal``, logged: the grams the patient announced (counted, whole grams) at the time of
  the meal's bolus; a missed bolus logs none;
- carbs ``meal``, not logged: what was eaten, when it was eaten (the truth a log can miss);
- carbs ``correction``: each rescue (``physiology.RESCUE_GRAMS``), logged;
- exercise: each bout, its minutes and intensity (``schedule.INTENSITY_EDGES``), logged.
Times are simulation steps (UTC). Rows are sorted by patient (``patient_id``'s dictionary codes
are the chunk's rows), then time, then kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from glucosestream.synth.grid import MINUTES_PER_DAY, Grid
from glucosestream.synth.physiology import RESCUE_GRAMS, DoseLog, basal_u_per_day
from glucosestream.synth.profiles import PatientParams
from glucosestream.synth.schedule import INTENSITY_EDGES, Inputs
from glucosestream.synth.therapy import INJECTION_HOUR, REGIMENS

__all__ = ["SIMULATED_EVENT_SCHEMA", "build_events"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

_PER_PATIENT: Final = pa.dictionary(pa.int32(), pa.string())
SIMULATED_EVENT_SCHEMA: Final = pa.schema(
    [
        pa.field("patient_id", _PER_PATIENT, nullable=False),
        pa.field("device_id", _PER_PATIENT, nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("tz", _PER_PATIENT, nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("subtype", pa.string()),
        pa.field("units", pa.float64()),
        pa.field("rate_u_h", pa.float64()),
        pa.field("duration_min", pa.float64()),
        pa.field("carbs_g", pa.float64()),
        pa.field("intensity", pa.string()),
        pa.field("purpose", pa.string()),
        pa.field("logged", pa.bool_(), nullable=False),
    ]
)
# (kind, subtype, purpose) of each kind of row, in the order rows of one instant are listed.
_SORTS: Final = (
    ("basal", "scheduled", None),
    ("basal", "injection", None),
    ("carbs", "meal", "meal"),
    ("bolus", "normal", "meal"),
    ("bolus", "normal", "correction"),
    ("carbs", "correction", "rescue"),
    ("exercise", None, None),
)
_INTENSITIES: Final = ("low", "medium", "high")
_MAX_SEGMENT_MIN: Final = MINUTES_PER_DAY


@dataclass(slots=True)
class _Rows:
    """Columns of a set of rows of one sort (numpy, one entry per row)."""

    sort: int
    step: IntArray
    patient: IntArray
    units: FloatArray | None = None
    rate_u_h: FloatArray | None = None
    duration_min: FloatArray | None = None
    carbs_g: FloatArray | None = None
    intensity: IntArray | None = None
    logged: bool = True


def build_events(
    params: PatientParams,
    grid: Grid,
    inputs: Inputs,
    log: DoseLog,
    labels: tuple[Sequence[str], Sequence[str], Sequence[str]],
) -> pa.Table:
    """The simulated events of a chunk. ``labels``: per patient (chunk row), the external
    patient id, the device serial and the home zone."""
    parts = [
        *_boluses(inputs, log),
        *_meals(inputs),
        _rescues(log),
        _exercise(grid, inputs),
        *_basal(params, grid),
    ]
    return _table(parts, grid, labels)


def _steps(steps: list[int], patients: list[npt.NDArray[np.intp]]) -> tuple[IntArray, IntArray]:
    if not patients:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    sizes = [p.size for p in patients]
    return np.repeat(np.asarray(steps, np.int64), sizes), np.concatenate(patients).astype(np.int64)


def _boluses(inputs: Inputs, log: DoseLog) -> list[_Rows]:
    step, patient = _steps(log.bolus_steps, log.bolus_patients)
    units = np.concatenate(log.bolus_units) if log.bolus_units else np.empty(0)
    meal = inputs.announced_g[step, patient] > 0
    units = np.round(units, 2)
    return [
        _Rows(3, step[meal], patient[meal], units=units[meal]),
        _Rows(4, step[~meal], patient[~meal], units=units[~meal]),
    ]


def _meals(inputs: Inputs) -> list[_Rows]:
    announced_step, announced_patient = np.nonzero(inputs.announced_g)
    eaten_step, eaten_patient = np.nonzero(inputs.carbs_g)
    return [
        _Rows(
            2,
            announced_step,
            announced_patient,
            carbs_g=inputs.announced_g[announced_step, announced_patient].astype(np.float64),
        ),
        _Rows(
            2,
            eaten_step,
            eaten_patient,
            carbs_g=np.round(
                inputs.carbs_g[eaten_step, eaten_patient].astype(np.float64), 1
            ).astype(np.float64),
            logged=False,
        ),
    ]


def _rescues(log: DoseLog) -> _Rows:
    step, patient = _steps(log.rescue_steps, log.rescue_patients)
    return _Rows(5, step, patient, carbs_g=np.full(step.size, RESCUE_GRAMS))


def _exercise(grid: Grid, inputs: Inputs) -> _Rows:
    """Each run of consecutive exercising steps of a patient is one bout (exercise is sparse:
    its cells are found once, then split into runs)."""
    step, patient = np.nonzero(inputs.exercise > 0)
    order = np.lexsort((step, patient))
    step, patient = step[order], patient[order]
    first = np.ones(step.size, dtype=bool)
    first[1:] = (patient[1:] != patient[:-1]) | (step[1:] != step[:-1] + 1)
    starts = np.flatnonzero(first)
    lengths = np.diff(np.append(starts, step.size))
    step, patient = step[starts], patient[starts]
    return _Rows(
        6,
        step,
        patient,
        duration_min=(lengths * grid.dt_min).astype(np.float64),
        intensity=np.searchsorted(
            np.asarray(INTENSITY_EDGES), inputs.exercise[step, patient], side="right"
        ),
    )


def _basal(params: PatientParams, grid: Grid) -> list[_Rows]:
    regimen = np.asarray(REGIMENS)[params.subtype]
    daily_u = basal_u_per_day(params)
    pump = np.flatnonzero(regimen == "pump")
    pen = np.flatnonzero(np.isin(regimen, ("basal_pen", "pens")))
    segments: list[tuple[IntArray, IntArray, IntArray]] = []
    injections: list[tuple[IntArray, IntArray]] = []
    for z in np.unique(params.zone).tolist():
        in_zone = params.zone == z
        starts, lengths = _segments(grid, z)
        for p in pump[in_zone[pump]].tolist():
            segments.append((starts, lengths, np.full(starts.size, p, np.int64)))
        steps = _injection_steps(grid, z)
        for p in pen[in_zone[pen]].tolist():
            injections.append((steps, np.full(steps.size, p, np.int64)))
    rows: list[_Rows] = []
    if segments:
        starts, lengths, patient = (np.concatenate(c) for c in zip(*segments, strict=True))
        rate = np.round(daily_u[patient] / 24.0, 2)
        hours = lengths * grid.dt_min / 60.0
        rows.append(
            _Rows(
                0,
                starts,
                patient,
                units=np.round(rate * hours, 4),
                rate_u_h=rate,
                duration_min=(lengths * grid.dt_min).astype(np.float64),
            )
        )
    if injections:
        steps, patient = (np.concatenate(c) for c in zip(*injections, strict=True))
        rows.append(_Rows(1, steps, patient, units=daily_u[patient]))
    return rows


def _segments(grid: Grid, zone: int) -> tuple[IntArray, IntArray]:
    """Basal segments in ``zone``: starts at the grid's start and at each local midnight, and
    a day longer than 24 hours (the autumn clock change) split at 24 hours."""
    day = np.floor(grid.local_min[:, zone] / MINUTES_PER_DAY)
    starts = np.concatenate([[0], np.flatnonzero(np.diff(day) != 0) + 1]).astype(np.int64)
    max_steps = _MAX_SEGMENT_MIN // grid.dt_min
    lengths = np.diff(np.append(starts, grid.n))
    long = lengths > max_steps
    if long.any():
        starts = np.sort(np.concatenate([starts, starts[long] + max_steps]))
        lengths = np.diff(np.append(starts, grid.n))
    return starts, lengths.astype(np.int64)


def _injection_steps(grid: Grid, zone: int) -> IntArray:
    """The grid steps of the daily long-acting injection in ``zone``."""
    first = grid.first_local_day(zone)
    days = np.arange(first, first + grid.n // grid.steps_per_day + 2, dtype=np.float64)
    steps = grid.step_of_local_minute(zone, days * MINUTES_PER_DAY + INJECTION_HOUR * 60.0)
    return np.unique(steps[steps < grid.n])


def _table(
    parts: list[_Rows], grid: Grid, labels: tuple[Sequence[str], Sequence[str], Sequence[str]]
) -> pa.Table:
    step = np.concatenate([r.step for r in parts]).astype(np.int64)
    patient = np.concatenate([r.patient for r in parts]).astype(np.int64)
    sort = np.concatenate([np.full(r.step.size, r.sort, np.int64) for r in parts])
    order = np.lexsort((sort, step, patient))

    def column(name: str, fill: float = np.nan) -> pa.Array:
        values = [
            getattr(r, name) if getattr(r, name) is not None else np.full(r.step.size, fill)
            for r in parts
        ]
        data = np.concatenate(values).astype(np.float64)[order]
        return pa.array(data, pa.float64(), mask=np.isnan(data))

    def coded(values: tuple[str | None, ...], codes: IntArray) -> pa.Array:
        names = pa.array(list(values), pa.string())
        return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), names).cast(pa.string())

    def per_patient(values: Sequence[str]) -> pa.DictionaryArray:
        # Each value once in the dictionary (pyarrow's Parquet writer needs it, generator._table)
        unique, inverse = np.unique(np.array(list(values), dtype=object), return_inverse=True)
        indices = pa.array(inverse.astype(np.int32)[patient[order]])
        return pa.DictionaryArray.from_arrays(indices, pa.array(unique.tolist(), pa.string()))

    sorts = sort[order]
    intensity = np.concatenate(
        [r.intensity if r.intensity is not None else np.full(r.step.size, -1) for r in parts]
    )[order]
    logged = np.concatenate([np.full(r.step.size, r.logged) for r in parts])[order]
    ts_us = grid.start_us + step[order] * (grid.dt_min * 60_000_000)
    kinds = tuple(s[0] for s in _SORTS)
    return pa.Table.from_arrays(
        [
            pa.DictionaryArray.from_arrays(  # ids are unique: the codes are the chunk rows
                pa.array(patient[order].astype(np.int32)), pa.array(list(labels[0]), pa.string())
            ),
            per_patient(labels[1]),
            pa.array(ts_us, pa.timestamp("us", tz="UTC")),
            per_patient(labels[2]),
            coded(kinds, sorts),
            coded(tuple(s[1] for s in _SORTS), sorts),
            column("units"),
            column("rate_u_h"),
            column("duration_min"),
            column("carbs_g"),
            pa.array([None, *_INTENSITIES], pa.string()).take(pa.array(intensity + 1)),
            coded(tuple(s[2] for s in _SORTS), sorts),
            pa.array(logged, pa.bool_()),
        ],
        schema=SIMULATED_EVENT_SCHEMA,
    )
