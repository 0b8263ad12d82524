"""One patient's readings as an export sees them: identity, zone, device, local wall clock. PURE.

Device exports are per person (one Clarity or LibreView file, one Nightscout site, one FHIR
bundle), so the device exporters render ``PatientRecord``s cut from a generated chunk, with the
patient's logged simulated events (``LoggedEvent``: what a device or the patient recorded).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.readings import MG_DL_PER_MMOL_L
from glucosestream.synth.fictional_identity import Identity
from glucosestream.synth.generator import Chunk

__all__ = [
    "MMOL_ZONES",
    "LoggedEvent",
    "PatientRecord",
    "format_units",
    "json_number",
    "patients_of",
    "to_mmol_l",
    "utc_offset_min",
]

IntArray = npt.NDArray[np.int64]

# Home zones whose patients' devices display mmol/L (the UK and Australia use mmol/L; the US
# and Germany mostly mg/dL), so every cohort exercises both units.
MMOL_ZONES: Final = frozenset({"Europe/London", "Australia/Sydney"})
_EXPORT_DELAY_US: Final = 9 * 3600 * 10**6  # exported 9 hours after the last reading


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One logged simulated event (``simulated_events``): kind, subtype, purpose and amounts."""

    time_us: int
    kind: str
    subtype: str | None
    purpose: str | None
    units: float | None
    rate_u_h: float | None
    duration_min: float | None
    carbs_g: float | None
    intensity: str | None


@dataclass(frozen=True, slots=True)
class PatientRecord:
    """A patient's readings (time-ordered) and what the export knows about them.

    ``session_start_us``: UTC starts of the sensor sessions that have readings here.
    ``exported_at_us``: when the export was "made" (derived from the data, not a clock).
    """

    index: int
    seed: int
    identity: Identity
    zone: str
    device: str
    subtype: str
    interval_min: int
    time_us: IntArray
    glucose_mg_dl: IntArray
    flags: IntArray
    session_start_us: IntArray
    exported_at_us: int
    events: tuple[LoggedEvent, ...] = ()

    @property
    def mmol(self) -> bool:
        return self.zone in MMOL_ZONES

    def local(self, fmt: str) -> list[str]:
        """Each reading's local wall-clock time, formatted with strftime ``fmt``."""
        return local_strings(self.time_us, self.zone, fmt)

    def utc(self, fmt: str) -> list[str]:
        """Each reading's UTC time, formatted with strftime ``fmt``."""
        seconds = pa.array(self.time_us // 10**6, type=pa.timestamp("s"))
        return list(pc.strftime(seconds, format=fmt).to_pylist())

    def utc_offset_min(self) -> IntArray:
        """Each reading's offset of local time from UTC, in minutes (DST-aware)."""
        return utc_offset_min(self.time_us, self.zone)


def utc_offset_min(time_us: IntArray, zone: str) -> IntArray:
    """The offset of local time in ``zone`` from UTC at each instant, in minutes."""
    stamps = pa.array(time_us, type=pa.timestamp("us", tz=zone))
    local_us = pc.local_timestamp(stamps).cast(pa.int64()).to_numpy()
    return np.asarray((local_us - time_us) // 60_000_000, dtype=np.int64)


def json_number(value: float) -> float | int:
    """An amount for a JSON export: a whole number as an integer (``25``, not ``25.0``), else
    rounded to two decimals."""
    rounded = round(value, 2)
    return int(rounded) if rounded == int(rounded) else rounded


def format_units(value: float) -> str:
    """An amount as a device export prints it: at most two decimals, no trailing zeros."""
    return f"{round(value, 2):g}"


def local_strings(time_us: IntArray, zone: str, fmt: str) -> list[str]:
    """Format UTC epoch microseconds as local wall-clock strings in ``zone`` (no offset)."""
    stamps = pa.array(time_us // 10**6 * 10**6, type=pa.timestamp("us", tz=zone))
    wall = pc.local_timestamp(stamps).cast(pa.timestamp("s"))
    return list(pc.strftime(wall, format=fmt).to_pylist())


def to_mmol_l(glucose_mg_dl: IntArray) -> npt.NDArray[np.float64]:
    """mg/dL to mmol/L with the project's factor (readings.MG_DL_PER_MMOL_L)."""
    return np.asarray(glucose_mg_dl / MG_DL_PER_MMOL_L, dtype=np.float64)


def patients_of(chunk: Chunk, *, seed: int, interval_min: int) -> Iterator[PatientRecord]:
    """Split a chunk (patient-major rows) into one record per patient with readings."""
    table = chunk.readings
    ids = table["patient_id"].combine_chunks()
    codes = ids.indices.to_numpy() if isinstance(ids, pa.DictionaryArray) else None
    if codes is None:
        raise TypeError("generated chunks carry patient_id as a dictionary column")
    time_us = table["time"].cast(pa.int64()).to_numpy()
    glucose = table["glucose_mg_dl"].to_numpy().astype(np.int64)
    flags = table["flags"].to_numpy().astype(np.int64)
    bounds = np.searchsorted(codes, np.arange(len(chunk.identities) + 1))
    events = _logged_events(chunk)
    for p, identity in enumerate(chunk.identities):
        lo, hi = int(bounds[p]), int(bounds[p + 1])
        if hi == lo:
            continue
        starts = chunk.session_start_us[p]
        used = (starts <= time_us[hi - 1]) & (
            np.append(starts[1:], np.iinfo(np.int64).max) > time_us[lo]
        )
        yield PatientRecord(
            index=_identity_index(identity),
            seed=seed,
            identity=identity,
            zone=chunk.zones[p],
            device=chunk.devices[p],
            subtype=chunk.subtypes[p],
            interval_min=interval_min,
            time_us=time_us[lo:hi],
            glucose_mg_dl=glucose[lo:hi],
            flags=flags[lo:hi],
            session_start_us=starts[used],
            exported_at_us=int(time_us[hi - 1]) + _EXPORT_DELAY_US,
            events=events.get(p, ()),
        )


def _logged_events(chunk: Chunk) -> dict[int, tuple[LoggedEvent, ...]]:
    """The logged events of each patient (chunk row) of ``chunk``."""
    table = chunk.events.filter(chunk.events["logged"])
    codes = table["patient_id"].combine_chunks().indices.to_pylist()
    columns = {name: table[name].to_pylist() for name in _EVENT_FIELDS}
    times = table["ts"].cast(pa.int64()).to_pylist()
    out: dict[int, list[LoggedEvent]] = {}
    for i, code in enumerate(codes):
        values = {name: columns[name][i] for name in _EVENT_FIELDS}
        out.setdefault(code, []).append(LoggedEvent(time_us=times[i], **values))
    return {code: tuple(events) for code, events in out.items()}


_EVENT_FIELDS: Final = (
    "kind",
    "subtype",
    "purpose",
    "units",
    "rate_u_h",
    "duration_min",
    "carbs_g",
    "intensity",
)


def _identity_index(identity: Identity) -> int:
    """0-based cohort index from the external id (P00001 -> 0)."""
    return int(identity.patient_id[1:]) - 1
