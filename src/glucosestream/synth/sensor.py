"""What a CGM makes of interstitial glucose: sessions, calibration, noise, artefacts. PURE.

- Sessions: each sensor lasts its labelled wear (Dexcom G6/G7 10 days, FreeStyle Libre 14), some
  fail early; a new one is inserted after a short gap and reports nothing during its warm-up.
- Calibration: each session has a gain and an offset error and drifts over its life
  (Facchinetti A et al., "Modeling the glucose sensor error", IEEE Trans Biomed Eng
  2014;61:620: gain errors of a few percent, slow drift); the first day reads low and is
  noisier (the G6 "day 1" effect: Shah VN et al., Diabetes Technol Ther 2018;20:428).
- Noise: autocorrelated (AR(1), 20-minute correlation, generated with the physiology), its SD
  growing with glucose like the devices' mean absolute relative difference of about 9%.
- Compression lows: at night, lying on the sensor drops the reading by a third to a half for
  20-90 minutes (Baysal N et al., J Diabetes Sci Technol 2014;8:1091).
- Dropouts: signal losses of minutes to hours, and the odd long gap.
- Range: readings outside 40-400 mg/dL are reported as 40 flagged LOW or 400 flagged HIGH,
  whole mg/dL, as the devices' exports show them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from glucosestream.readings import ReadingFlag
from glucosestream.synth.grid import MINUTES_PER_DAY, Grid, window_cells
from glucosestream.synth.profiles import DEVICES, PatientParams

__all__ = [
    "DAY_UNIFORMS",
    "SENSOR_MAX_MG_DL",
    "SENSOR_MIN_MG_DL",
    "SESSION_DRAWS",
    "SensorOutput",
    "max_sessions",
    "read_sensor",
]

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

# Dexcom G6/G7 and FreeStyle Libre reportable range (device labelling).
SENSOR_MIN_MG_DL: Final = 40
SENSOR_MAX_MG_DL: Final = 400

_GAIN_SD: Final = 0.04
_OFFSET_SD_MG_DL: Final = 4.0
_DRIFT_SD_PER_DAY: Final = 0.006
_DAY1_BIAS: Final = -0.05
_DAY1_TAU_H: Final = 10.0
_NOISE_ABS_MG_DL: Final = 5.0
_NOISE_REL: Final = 0.055
_EARLY_FAILURE_P: Final = 0.08
_GAP_MEAN_MIN: Final = 120.0
_COMPRESSION_HOURS: Final = (0.5, 5.5)
_COMPRESSION_MIN: Final = (20.0, 90.0)
_COMPRESSION_DEPTH: Final = (0.3, 0.55)
_DROPOUT_MEAN_MIN: Final = 25.0
_LONG_GAP_P_PER_DAY: Final = 0.02
_LONG_GAP_MIN: Final = (120.0, 480.0)
_BLOCK: Final = 64

# Per-day uniforms: compression (occurs, start, length, depth), 3 dropouts (occurs, start,
# length) and a long gap (occurs, start, length). Per-session: 3 uniforms and 3 normals.
DAY_UNIFORMS: Final = 4 + 3 * 3 + 3
SESSION_DRAWS: Final = 4


def max_sessions(days: int) -> int:
    """Sessions a patient may need over ``days`` (the shortest session is 10 days, some fail)."""
    return days // 5 + 3


@dataclass(frozen=True, slots=True)
class SensorOutput:
    """The readings a chunk's devices reported, patient-major and time-ordered within a patient.

    Row arrays: ``patient`` (position in the chunk), ``sample`` (index on the sample grid),
    ``session`` (sensor session number), ``glucose_mg_dl`` and ``flags``. Per (patient,
    session): ``session_start_min`` (minutes from the grid start) and ``offset_s``, the phase
    of the session's readings in seconds.
    """

    patient: npt.NDArray[np.int32]
    sample: npt.NDArray[np.int32]
    session: npt.NDArray[np.int16]
    glucose_mg_dl: npt.NDArray[np.int16]
    flags: npt.NDArray[np.int8]
    session_start_min: FloatArray
    offset_s: IntArray


def read_sensor(
    params: PatientParams,
    grid: Grid,
    ig: Float32Array,
    unit_noise: Float32Array,
    draws: tuple[FloatArray, FloatArray, FloatArray],
) -> SensorOutput:
    """Turn interstitial glucose (samples x patients) into device readings.

    ``draws``: per-day uniforms (P, days, DAY_UNIFORMS), per-session uniforms and normals
    (P, sessions, SESSION_DRAWS).
    """
    day_u, session_u, session_z = draws
    interval = grid.dt_min * grid.sample_every
    samples = ig.shape[0]
    start_min, length_min, warmup_min = _sessions(params, session_u)
    first = np.ceil((start_min + warmup_min[:, None]) / interval).clip(0, samples).astype(np.int64)
    last = np.ceil((start_min + length_min) / interval).clip(0, samples).astype(np.int64)
    worn = _Worn(
        first=first,
        last=last,
        start_min=start_min,
        interval=interval,
        ig=np.ascontiguousarray(ig.T),
        unit_noise=np.ascontiguousarray(unit_noise.T),
        lost=_dropouts(params, day_u[:, :, 4:], samples, interval),
        compression=_compression(params, grid, day_u[:, :, :4], samples),
        calibration=session_z,
    )
    # Blocks of patients keep the temporaries small enough to stay in cache.
    parts = [worn.read(lo, min(lo + _BLOCK, params.size)) for lo in range(0, params.size, _BLOCK)]
    return SensorOutput(
        patient=np.concatenate([p[0] for p in parts]),
        sample=np.concatenate([p[1] for p in parts]),
        session=np.concatenate([p[2] for p in parts]),
        glucose_mg_dl=np.concatenate([p[3] for p in parts]),
        flags=np.concatenate([p[4] for p in parts]),
        session_start_min=start_min,
        offset_s=np.floor(session_u[:, :, 2] * interval * 60).astype(np.int64),
    )


@dataclass(frozen=True, slots=True)
class _Worn:
    """A chunk's sensor sessions and artefacts (per patient, per sample), read block by block."""

    first: IntArray
    last: IntArray
    start_min: FloatArray
    interval: int
    ig: Float32Array
    unit_noise: Float32Array
    lost: npt.NDArray[np.bool_]
    compression: Float32Array
    calibration: FloatArray

    def read(self, lo: int, hi: int) -> tuple[npt.NDArray[np.generic], ...]:
        """(patient, sample, session, glucose, flags) of patients ``lo``..``hi``, in order."""
        sessions = self.first.shape[1]
        # Cells of worn sensors after warm-up: windows in (patient, session) order, so the
        # cells come out patient-major and time-ordered.
        window, sample, _ = window_cells(
            self.first[lo:hi].ravel(), (self.last[lo:hi] - self.first[lo:hi]).ravel()
        )
        patient = window // sessions + lo
        flat = patient * self.ig.shape[1] + sample
        kept = ~self.lost.ravel()[flat]
        window, sample, patient, flat = window[kept], sample[kept], patient[kept], flat[kept]
        window += lo * sessions
        since_min = sample * self.interval - self.start_min.ravel()[window]
        reading = _calibrated(
            self.ig.ravel()[flat],
            self.unit_noise.ravel()[flat],
            self.calibration.reshape(-1, SESSION_DRAWS)[window],
            since_min,
        )
        reading *= self.compression.ravel()[flat]
        value = np.rint(reading)
        flags = np.where(value < SENSOR_MIN_MG_DL, int(ReadingFlag.SENSOR_LOW), 0) + np.where(
            value > SENSOR_MAX_MG_DL, int(ReadingFlag.SENSOR_HIGH), 0
        )
        value = np.clip(value, SENSOR_MIN_MG_DL, SENSOR_MAX_MG_DL).astype(np.int16)
        return (
            patient.astype(np.int32),
            sample.astype(np.int32),
            (window % sessions).astype(np.int16),
            value,
            flags.astype(np.int8),
        )


def _sessions(params: PatientParams, u: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Start and length (minutes from the grid start) of each session, and the warm-up."""
    days = np.array([d.session_days for d in DEVICES], dtype=np.float64)[params.device]
    warmup = np.array([d.warmup_min for d in DEVICES], dtype=np.float64)[params.device]
    full = days[:, None] * MINUTES_PER_DAY * np.ones_like(u[:, :, 0])
    early = u[:, :, 0] < _EARLY_FAILURE_P
    length = np.where(early, full * (u[:, :, 0] / _EARLY_FAILURE_P), full)
    gap = -np.log1p(-np.minimum(u[:, :, 1], 0.999)) * _GAP_MEAN_MIN
    # The first session began before the cohort window: a random phase of its life.
    phase = u[:, 0, 3] * length[:, 0]
    start = np.cumsum(length + gap, axis=1) - (length + gap) - phase[:, None]
    return start, length, warmup


def _calibrated(
    ig: Float32Array, unit_noise: Float32Array, z: FloatArray, since_min: FloatArray
) -> FloatArray:
    """Gain, offset and drift per session (``z``: its normals), day-1 bias, and noise whose SD
    grows with glucose."""
    day1 = np.exp(since_min / (-60.0 * _DAY1_TAU_H))
    gain = 1.0 + _GAIN_SD * z[:, 0] + _DRIFT_SD_PER_DAY * z[:, 2] * (since_min / MINUTES_PER_DAY)
    sd = np.sqrt(_NOISE_ABS_MG_DL**2 + (_NOISE_REL * ig) ** 2) * (1.0 + day1)
    return np.asarray(
        ig * gain * (1.0 + _DAY1_BIAS * day1) + _OFFSET_SD_MG_DL * z[:, 1] + sd * unit_noise
    )


def _compression(params: PatientParams, grid: Grid, u: FloatArray, samples: int) -> Float32Array:
    """Multiplicative factor (patients x samples, 1 = none): night-time dips with a 10-minute
    fall and recovery."""
    factor = np.ones((params.size, samples), dtype=np.float32)
    n_days = u.shape[1]
    lo, hi = _COMPRESSION_HOURS
    occurs = u[:, :, 0] < params["compression_per_night"][:, None]
    first = np.array([grid.first_local_day(int(z)) for z in params.zone], dtype=np.float64)
    minute = (first[:, None] + np.arange(n_days)[None, :]) * MINUTES_PER_DAY + 60.0 * (
        lo + (hi - lo) * u[:, :, 1]
    )
    step = np.full(minute.shape, grid.n, dtype=np.int64)
    for zone in np.unique(params.zone):
        rows = params.zone == zone
        step[rows] = grid.step_of_local_minute(int(zone), minute[rows])
    sample = -(-step // grid.sample_every)
    interval = grid.dt_min * grid.sample_every
    length_min = _COMPRESSION_MIN[0] + (_COMPRESSION_MIN[1] - _COMPRESSION_MIN[0]) * u[:, :, 2]
    length = np.maximum(np.rint(length_min / interval).astype(np.int64), 1)
    depth = _COMPRESSION_DEPTH[0] + (_COMPRESSION_DEPTH[1] - _COMPRESSION_DEPTH[0]) * u[:, :, 3]
    patient = np.broadcast_to(np.arange(params.size)[:, None], occurs.shape)
    window, cell, position = window_cells(sample[occurs], length[occurs])
    inside = cell < samples
    window, cell, position = window[inside], cell[inside], position[inside]
    minutes_in = position * interval
    minutes_left = length[occurs][window] * interval - minutes_in
    shape = np.minimum(np.minimum(minutes_in + interval, minutes_left) / 10.0, 1.0)
    factor[patient[occurs][window], cell] = (1.0 - depth[occurs][window] * shape).astype(np.float32)
    return factor


def _dropouts(
    params: PatientParams, u: FloatArray, samples: int, interval: int
) -> npt.NDArray[np.bool_]:
    """Mask of lost samples (patients x samples): up to three short signal losses a day and
    rare long gaps."""
    size, n_days, _ = u.shape
    lost = np.zeros((size, samples), dtype=np.bool_)
    per_day = MINUTES_PER_DAY // interval
    day0 = (np.arange(n_days) * per_day)[None, :]
    patient = np.broadcast_to(np.arange(size)[:, None], (size, n_days))
    for event in range(4):
        occur, start, length = u[:, :, 3 * event], u[:, :, 3 * event + 1], u[:, :, 3 * event + 2]
        if event < 3:
            happens = occur < params["dropouts_per_day"][:, None] / 3.0
            minutes = 5.0 - np.log1p(-np.minimum(length, 0.999)) * _DROPOUT_MEAN_MIN
        else:
            happens = occur < _LONG_GAP_P_PER_DAY
            minutes = _LONG_GAP_MIN[0] + (_LONG_GAP_MIN[1] - _LONG_GAP_MIN[0]) * length
        first = day0 + (start * per_day).astype(np.int64)
        count = np.maximum(np.rint(minutes / interval).astype(np.int64), 1)
        window, cell, _ = window_cells(first[happens], count[happens])
        inside = cell < samples
        lost[patient[happens][window[inside]], cell[inside]] = True
    return lost
