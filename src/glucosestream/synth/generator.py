"""A seeded, vectorised CGM generator. PURE: no I/O, no clock.

Each patient gets a profile's parameters drawn from ranges, a home time zone, and a trace:
baseline + circadian swing + meal excursions (gamma-shaped absorption) + AR(1) noise, clipped
to the sensor range and rounded to whole mg/dL, with random sensor dropouts removed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["PROFILES", "SENSOR_MAX_MG_DL", "SENSOR_MIN_MG_DL", "CohortSpec", "generate_chunks"]

Profile = Literal["healthy", "t1d", "t2d", "mixed"]
PROFILES: Final = ("healthy", "t1d", "t2d", "mixed")

# Dexcom G6 / Libre reportable range (device labelling): 40-400 mg/dL.
SENSOR_MIN_MG_DL: Final = 40
SENSOR_MAX_MG_DL: Final = 400

_ZONES: Final = (
    "Europe/London",
    "America/New_York",
    "Europe/Berlin",
    "America/Los_Angeles",
    "Australia/Sydney",
    "UTC",
)

# (baseline mg/dL, circadian amplitude, meal peak mg/dL, noise SD, AR(1) coefficient)
_PARAMS: Final = {
    "healthy": ((92.0, 102.0), (4.0, 8.0), (25.0, 45.0), (4.0, 7.0), 0.9),
    "t2d": ((130.0, 165.0), (8.0, 15.0), (50.0, 90.0), (8.0, 14.0), 0.93),
    "t1d": ((120.0, 175.0), (10.0, 25.0), (70.0, 140.0), (18.0, 30.0), 0.96),
}
_MEAL_HOURS: Final = (7.5, 12.5, 19.0)
PATIENTS_PER_CHUNK: Final = 256


@dataclass(frozen=True, slots=True)
class CohortSpec:
    patients: int
    days: int
    profile: Profile = "mixed"
    interval_min: int = 5
    seed: int = 0
    start: dt.date = dt.date(2026, 1, 5)


def generate_chunks(spec: CohortSpec) -> Iterator[pa.Table]:
    """Yield the cohort as Arrow tables of whole patients, in patient order.

    Columns: patient_id, device_id, time (UTC), glucose_mg_dl (int), tz.
    """
    for first in range(0, spec.patients, PATIENTS_PER_CHUNK):
        last = min(spec.patients, first + PATIENTS_PER_CHUNK)
        yield pa.concat_tables(_patient(spec, index) for index in range(first, last))


def _patient(spec: CohortSpec, index: int) -> pa.Table:
    rng = np.random.default_rng([spec.seed, index])
    profile = _profile_of(spec, index, rng)
    base, amp, meal, noise_sd, phi = _draw(profile, rng)
    zone = _ZONES[index % len(_ZONES)]
    n = spec.days * 24 * 60 // spec.interval_min
    start = dt.datetime.combine(spec.start, dt.time(), tzinfo=dt.UTC)
    offset_s = int(rng.integers(0, spec.interval_min * 60))
    step_us = np.int64(spec.interval_min * 60 * 1_000_000)
    ts_us = np.int64(int(start.timestamp()) + offset_s) * 1_000_000 + np.arange(n) * step_us
    times = pa.array(ts_us, type=pa.timestamp("us", tz="UTC"))
    local = pc.local_timestamp(pa.array(ts_us, type=pa.timestamp("us", tz=zone)))
    local_us = local.cast(pa.int64()).to_numpy()
    hour = (local_us % 86_400_000_000) / 3_600_000_000.0
    day = local_us // 86_400_000_000
    glucose = base + amp * np.sin(2 * np.pi * (hour - 10.0) / 24.0)
    glucose += _meals(hour, day, meal, rng)
    glucose += _ar1_noise(n, noise_sd, phi, rng)
    if profile == "t1d":
        glucose -= _lows(n, spec.interval_min, rng)
    values = np.clip(np.rint(glucose), SENSOR_MIN_MG_DL, SENSOR_MAX_MG_DL).astype(np.int64)
    keep = _worn(n, spec.interval_min, rng)
    table = pa.table(
        {
            "patient_id": pa.array(np.full(n, f"P{index + 1:05d}")),
            "device_id": pa.array(np.full(n, f"SN{index + 1:05d}-1")),
            "time": times,
            "glucose_mg_dl": pa.array(values),
            "tz": pa.array(np.full(n, zone)),
        }
    )
    return table.filter(pa.array(keep))


def _profile_of(spec: CohortSpec, index: int, rng: np.random.Generator) -> str:
    if spec.profile != "mixed":
        return spec.profile
    return ("healthy", "t2d", "t1d")[int(rng.integers(0, 3))]


def _draw(profile: str, rng: np.random.Generator) -> tuple[float, float, float, float, float]:
    base, amp, meal, noise, phi = _PARAMS[profile]
    return (
        float(rng.uniform(base[0], base[1])),
        float(rng.uniform(amp[0], amp[1])),
        float(rng.uniform(meal[0], meal[1])),
        float(rng.uniform(noise[0], noise[1])),
        phi,
    )


def _meals(hour: np.ndarray, day: np.ndarray, peak: float, rng: np.random.Generator) -> np.ndarray:
    """Sum of gamma-shaped excursions (peak about 1 h after eating, back in about 3 h)."""
    days = np.unique(day)
    total = np.zeros_like(hour)
    for meal_hour in _MEAL_HOURS:
        shift = rng.normal(0.0, 0.6, size=days.size)
        size = peak * rng.uniform(0.5, 1.4, size=days.size)
        lookup = np.searchsorted(days, day)
        since = hour - (meal_hour + shift[lookup])
        since = np.where(since > 0, since, 0.0)
        total += size[lookup] * (since * np.e) * np.exp(-since)
    return total


def _ar1_noise(n: int, sd: float, phi: float, rng: np.random.Generator) -> np.ndarray:
    """AR(1) noise with stationary SD ``sd``, computed by an exact vectorised recurrence."""
    shocks = rng.normal(0.0, sd * np.sqrt(1.0 - phi * phi), size=n)
    powers = phi ** np.arange(n, dtype=np.float64)
    with np.errstate(under="ignore", divide="ignore", over="ignore", invalid="ignore"):
        # x_k = sum_j phi^(k-j) e_j, evaluated in blocks to keep phi^-j finite.
        out = np.empty(n)
        block = 256
        carry = 0.0
        for lo in range(0, n, block):
            hi = min(n, lo + block)
            p = powers[: hi - lo]
            acc = np.cumsum(shocks[lo:hi] / p) * p
            out[lo:hi] = acc + carry * phi * p
            carry = out[hi - 1]
    return out


def _lows(n: int, interval_min: int, rng: np.random.Generator) -> np.ndarray:
    """Occasional insulin-induced dips of 40-110 mg/dL lasting about an hour."""
    dip = np.zeros(n)
    per_day = 24 * 60 // interval_min
    width = max(1, 60 // interval_min)
    for centre in np.flatnonzero(rng.random(n) < 0.7 / per_day).tolist():
        lo, hi = max(0, int(centre) - width), min(n, int(centre) + width)
        shape = np.hanning(hi - lo + 2)[1:-1]
        dip[lo:hi] = np.maximum(dip[lo:hi], rng.uniform(40.0, 110.0) * shape)
    return dip


def _worn(n: int, interval_min: int, rng: np.random.Generator) -> np.ndarray:
    """Mask of readings kept: a few dropouts of 15 minutes to 3 hours."""
    keep = np.ones(n, dtype=bool)
    for _ in range(int(rng.integers(0, 4))):
        length = int(rng.integers(15, 180)) // interval_min
        begin = int(rng.integers(0, max(1, n - length)))
        keep[begin : begin + length] = False
    return keep
