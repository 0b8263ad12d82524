"""UTC instants on the patient's local wall clock, and their local calendar days. PURE.

The one place that turns (UTC instant, IANA zone) into local time; the daily SQL model, the
per-period results, the cohort calculator and the dashboard all use it, so they agree on every
reading's local day.

The rule for a zone that cannot be used: a null zone, or one that is not a key of the IANA
database usable by every stage (``readings.is_known_zone``), is read as **UTC**. Ingest already
sets aside readings with an unknown zone (``quality.row_checks``), so in the pipeline this only
matters for hand-made tables; falling back to UTC keeps one rule everywhere instead of some
callers raising and others guessing. A timestamp column typed with its own zone (for example a
pandas column in Europe/Paris or at a fixed offset) uses that zone, as Arrow reads it.
"""

from __future__ import annotations

from typing import Final, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.readings import is_known_zone

__all__ = ["FALLBACK_ZONE", "local_days", "usable_zone", "wall_clock_times"]

FALLBACK_ZONE: Final = "UTC"  # the zone of a reading whose zone is null or unknown
_UTC_NAMES: Final = frozenset({"UTC", "Etc/UTC", "+00:00", "Z"})  # wall clock = UTC itself

Column: TypeAlias = pa.Array | pa.ChunkedArray


def usable_zone(zone: str | None) -> str:
    """``zone`` if every stage can use it, else ``FALLBACK_ZONE`` (null or unknown zone)."""
    return zone if zone is not None and is_known_zone(zone) else FALLBACK_ZONE


def _wall_clock_of_type(ts: Column) -> Column:
    """Naive wall-clock time in the zone ``ts`` is typed with (chunks kept as they are)."""
    if ts.type.tz is None:
        return ts
    if ts.type.tz in _UTC_NAMES:
        return pc.cast(ts, pa.timestamp(ts.type.unit))
    return pc.local_timestamp(ts)


def wall_clock_times(ts: Column, zones: Column | None = None) -> Column:
    """Each instant of ``ts`` as naive wall-clock time (same unit) in its zone.

    ``zones`` gives one IANA zone per row (null or unknown: UTC, see the module docstring);
    without it the zone is the one ``ts`` is typed with (naive: UTC). Each distinct zone is
    converted once, with Arrow's zone rules (a per-row lookup would cost microseconds a row).
    The result is one array, or chunked like ``ts`` when ``zones`` is not given."""
    if zones is None:
        return _wall_clock_of_type(ts)
    ts = ts.combine_chunks() if isinstance(ts, pa.ChunkedArray) else ts
    unit = ts.type.unit
    utc = pc.cast(ts, pa.timestamp(unit)) if ts.type.tz is not None else ts
    zones = zones.combine_chunks() if isinstance(zones, pa.ChunkedArray) else zones
    encoded = pc.dictionary_encode(zones)  # each row's zone as a number: no string compares
    converted = [
        (code, zone)
        for code, zone in enumerate(encoded.dictionary.to_pylist())
        if usable_zone(zone) not in _UTC_NAMES
    ]
    if not converted:
        return utc
    codes = pc.fill_null(encoded.indices, -1).to_numpy()  # a null zone: -1, left as UTC
    raw = pc.fill_null(pc.cast(utc, pa.int64()), 0).to_numpy()
    out = raw.copy()
    for code, zone in converted:
        rows = np.flatnonzero(codes == code)
        instants = pa.array(raw[rows], pa.timestamp(unit, zone))
        out[rows] = pc.cast(pc.local_timestamp(instants), pa.int64()).to_numpy()
    mask = pc.is_null(utc).to_numpy(zero_copy_only=False) if utc.null_count else None
    return pa.array(out, pa.timestamp(unit), mask=mask)


def local_days(ts: Column, zones: Column | None = None) -> Column:
    """Each instant's local calendar day (date32), by the same rule as ``wall_clock_times``."""
    return pc.cast(wall_clock_times(ts, zones), pa.date32())
