"""The vectorised fast path of ``normalize.sql``, for the common input. PURE.

Most inputs need none of the query's harder parts: every time carries an offset (or is a typed
instant), every zone is known, there are no scans, no parser-found problems, every unit is known
and every value is plausible. For such an input this module computes exactly what
``normalize.sql`` would (same columns, same values, same order), with Arrow and NumPy and no
SQL. It returns None as soon as any row falls outside that case; the caller then runs the query,
which stays the one definition of the rules. ``tests/test_ingest_fastpath*.py`` check both give
identical results.

Equivalence notes. Times are read by Arrow's ISO 8601 cast only when every one has seconds
(Arrow also takes ``HH:MMZ``, which DuckDB refuses); anything Arrow refuses (local times, a
lowercase ``z``, spaces, 24:00, more than microseconds) goes to the query. Glucose text is read by
Arrow's cast, which refuses surrounding spaces and digit separators (the query decides those).
Units are compared as the query does: spaces removed, ASCII case ignored (DuckDB's ``trim``
removes spaces only, so a tab is kept and makes the unit unknown).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["FastPathParams", "constant_strings", "dictionary_codes", "normalise_fast"]

_INSTANT = pa.timestamp("us", tz="UTC")
_SECONDS_COLON_AT = 16  # "YYYY-MM-DDTHH:MM:SS": the colon before the seconds
_COLON = ord(":")
_UNITS = {"mg/dl": "mg/dL", "mmol/l": "mmol/L"}


@dataclass(frozen=True, slots=True)
class FastPathParams:
    """The query's parameters (see ``normalise.normalise_params``)."""

    default_unit: str
    earliest: dt.datetime
    latest: dt.datetime
    scan_flag: int
    min_mg_dl: float
    max_mg_dl: float
    mg_per_mmol: float
    directions: list[str]  # the direction names kept (any other is dropped)
    max_rate_mg_dl_min: float  # a rate beyond it either way is dropped


def normalise_fast(incoming: pa.Table, params: FastPathParams) -> pa.Table | None:
    """What ``normalize.sql`` returns for ``incoming``, or None when the query must decide."""
    plain = _plain_rows(incoming, params)
    if plain is None:
        return None
    patient, lines = plain
    ts = _instants(incoming["time"], incoming["instant"])
    units = _units(incoming["unit"], params.default_unit)
    value = _values(incoming["glucose"])
    rate = _rates(incoming["rate"], params.max_rate_mg_dl_min)
    if ts is None or units is None or value is None or rate is None:
        return None
    micros = ts.cast(pa.int64()).to_numpy()
    with np.errstate(over="ignore", invalid="ignore"):  # inf or NaN: out of range just below
        mg_dl = np.where(units[1], value * params.mg_per_mmol, value)
    if not _all_in_range(micros, value, mg_dl, params):
        return None
    device, _ = dictionary_codes(incoming["device_id"])
    n = incoming.num_rows
    none = pa.nulls(n, pa.string())
    return pa.table(
        {
            "line": pa.array(lines),
            "reason": none,
            "duplicate": pa.array(_duplicates(patient, device, micros, lines)),
            "source": incoming["source"],
            "patient_key": incoming["patient_key"],
            "device_id": incoming["device_id"],
            "ts": ts,
            "glucose_mg_dl": pa.array(mg_dl),
            "original_value": pa.array(value),
            "original_unit": units[0],
            "flags": incoming["flags"],
            "tz": incoming["tz"],
            "raw_time": none,  # only quarantined rows carry their text, and there are none
            "raw_glucose": none,
            "repeated_local_time": pa.nulls(n, pa.timestamp("us")),  # no local times here
            "direction": _directions(incoming["direction"], params.directions),
            "rate_mg_dl_min": rate,
        }
    )


def _plain_rows(
    incoming: pa.Table, params: FastPathParams
) -> tuple[np.ndarray, npt.NDArray[np.int64]] | None:
    """(patient codes, lines) when no row has a problem the query must judge: none flagged by
    its parser, no missing patient, flags or line, every zone known, no scan (scans need the
    neighbour search), lines in order (the output is in line order); else None."""
    n = incoming.num_rows
    if n == 0 or incoming["problem"].null_count != n:
        return None
    if incoming["flags"].null_count or incoming["line"].null_count:
        return None
    if not pc.all(incoming["tz_ok"], skip_nulls=False).as_py():
        return None  # an unknown zone: the query quarantines the row, whatever its time
    patient, null_patient = dictionary_codes(incoming["patient_key"])
    if null_patient is not None:
        return None
    flags = incoming["flags"].to_numpy()
    lines = incoming["line"].to_numpy()
    if (flags & params.scan_flag).any() or (n > 1 and not (np.diff(lines) > 0).all()):
        return None
    return patient, lines


def _all_in_range(
    micros: npt.NDArray[np.int64],
    value: npt.NDArray[np.float64],
    mg_dl: npt.NDArray[np.float64],
    params: FastPathParams,
) -> bool:
    """Every time within the plausible window and every value a number in the glucose range."""
    earliest, latest = (_micros(t) for t in (params.earliest, params.latest))
    return not (
        micros.min() < earliest
        or micros.max() > latest
        or np.isnan(value).any()
        or (mg_dl < params.min_mg_dl).any()
        or (mg_dl > params.max_mg_dl).any()
    )


def _micros(at: dt.datetime) -> int:
    return int(pa.scalar(at, _INSTANT).cast(pa.int64()).as_py())


def _instants(time: pa.ChunkedArray, instant: pa.ChunkedArray) -> pa.Array | None:
    """Every row's instant: all typed, or all ISO 8601 text with seconds and an offset."""
    if instant.null_count == 0:
        return instant.combine_chunks().cast(_INSTANT)
    if instant.null_count != len(instant):
        return None  # mixed typed and text times
    if pa.types.is_dictionary(time.type):
        time = time.cast(time.type.value_type)
    if time.null_count or not pa.types.is_string(time.type):
        return None
    if not all(_colon_at_seconds(chunk) for chunk in time.chunks):
        return None
    try:
        return pc.cast(time, _INSTANT).combine_chunks()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None  # a local time, or text only the query reads


def _colon_at_seconds(chunk: pa.Array) -> bool:
    """Whether every string of ``chunk`` has a colon at byte ``_SECONDS_COLON_AT``, read from the
    array's buffers. Bytes, not characters: the two differ only after a non-ASCII character,
    and text with one there is not ISO 8601, so the cast that follows refuses it either way."""
    if len(chunk) == 0:
        return True
    _, offsets_buffer, data_buffer = chunk.buffers()
    offsets = np.frombuffer(offsets_buffer, np.int32)[chunk.offset : chunk.offset + len(chunk) + 1]
    starts = offsets[:-1]
    if data_buffer is None or (offsets[1:] - starts <= _SECONDS_COLON_AT).any():
        return False
    data = np.frombuffer(data_buffer, np.uint8)
    return bool((data[starts + _SECONDS_COLON_AT] == _COLON).all())


def _values(glucose: pa.ChunkedArray) -> np.ndarray | None:
    """The glucose values as float64 (no missing one), or None."""
    if pa.types.is_dictionary(glucose.type):
        glucose = glucose.cast(glucose.type.value_type)
    if glucose.null_count:
        return None
    try:
        values = pc.cast(glucose, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    result: np.ndarray = values.to_numpy()
    return result


def _directions(direction: pa.ChunkedArray, names: list[str]) -> pa.ChunkedArray:
    """Each row's direction when it is one of ``names``, else null."""
    known = pc.is_in(direction, value_set=pa.array(names, pa.string()))
    return pc.if_else(known, direction, pa.scalar(None, pa.string()))


def _rates(rate: pa.ChunkedArray, max_rate: float) -> pa.ChunkedArray | None:
    """Each row's rate as a number, null when none was sent, it is not finite or beyond
    ``max_rate`` either way; None when some text is no number Arrow reads (the query decides)."""
    if rate.null_count == len(rate):
        return pa.chunked_array([pa.nulls(len(rate), pa.float64())])
    try:
        numbers = pc.cast(rate, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    kept = pc.less_equal(pc.abs(numbers), max_rate)  # NaN and inf compare false or beyond
    return pc.if_else(pc.fill_null(kept, False), numbers, pa.scalar(None, pa.float64()))


def _units(unit: pa.ChunkedArray, default_unit: str) -> tuple[pa.Array, np.ndarray] | None:
    """Each row's unit as the query names it, and whether it is mmol/L; None for an unknown."""
    encoded = unit if pa.types.is_dictionary(unit.type) else pc.dictionary_encode(unit)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.unify_dictionaries().combine_chunks()
    names: list[str] = []
    for raw in [*encoded.dictionary.to_pylist(), None]:
        text = (raw or "").strip(" ") or default_unit
        name = _UNITS.get(_ascii_lower(text.replace(" ", "")))
        if name is None:
            return None
        names.append(name)
    indices = pc.fill_null(encoded.indices, len(names) - 1)
    values = pa.array(names, pa.string())
    mmol = np.array([name == "mmol/L" for name in names])[indices.to_numpy()]
    return pa.DictionaryArray.from_arrays(indices, values), mmol


def constant_strings(value: str, n: int) -> pa.DictionaryArray:
    """``n`` copies of ``value`` as a dictionary array: one string, ``n`` zero indices."""
    return pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, np.int32)), pa.array([value], pa.string())
    )


def _ascii_lower(text: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in text)


def dictionary_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, int | None]:
    """Integer codes of a string column (equal strings, equal codes) and the code of null.

    A dictionary column may hold null as a dictionary value, or the same string twice (several
    inputs mapped to one pseudonym): both are folded here, chunk by chunk.
    """
    canonical: dict[str | None, int] = {}
    parts: list[np.ndarray] = []
    for chunk in column.chunks:
        encoded = chunk if pa.types.is_dictionary(chunk.type) else pc.dictionary_encode(chunk)
        values = [*encoded.dictionary.to_pylist(), None]
        remap = np.array([canonical.setdefault(v, len(canonical)) for v in values], np.int64)
        indices = pc.fill_null(encoded.indices, len(values) - 1).to_numpy()
        parts.append(remap[indices])
    codes = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    null = canonical.get(None)
    return codes, null if null is not None and bool((codes == null).any()) else None


def _duplicates(
    patients: np.ndarray, devices: np.ndarray, micros: np.ndarray, lines: np.ndarray
) -> np.ndarray:
    """A later row (by line) with the key (patient, device, instant) of an earlier one."""
    patient, device = patients, devices
    n = len(micros)
    starts = np.ones(n, dtype=bool)
    starts[1:] = (patient[1:] != patient[:-1]) | (device[1:] != device[:-1])
    pair = patient * (int(device.max()) + 1) + device
    contiguous = len(np.unique(pair[starts])) == int(starts.sum())
    if contiguous and (starts[1:] | (micros[1:] > micros[:-1])).all():
        return np.zeros(n, dtype=bool)  # each device's rows together and strictly in time order
    order = np.lexsort((lines, micros, device, patient))
    same = np.zeros(n, dtype=bool)
    p, d, t = patient[order], device[order], micros[order]
    same[1:] = (p[1:] == p[:-1]) & (d[1:] == d[:-1]) & (t[1:] == t[:-1])
    duplicate = np.empty(n, dtype=bool)
    duplicate[order] = same
    return duplicate
