"""A cohort's readings as flat arrays sorted by (patient, time), with per-patient offsets. PURE.

This is the layout the compiled kernels work on (DESIGN.md, "what made the fast version
fast"): patients are found by comparing neighbouring ids when the input is already sorted by id
(the lake writes it so), by dictionary codes otherwise; times are sorted within each patient
only where they are not already; readings sharing a timestamp are collapsed by comparing
neighbours, never by hashing.

``time_s`` is *wall-clock* seconds (a zoned timestamp is converted to its zone's local time),
so a calendar day is ``time_s // 86_400``; readings without a glucose value are dropped, but a
patient with none still has a (empty) slot so it gets a row of NaN.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.errors import InvalidInput
from glucosestream.localclock import wall_clock_times
from glucosestream.metrics.kernels.cohort_scan import (
    non_decreasing,
    per_instant,
    scan_readings,
    sort_times_within,
)
from glucosestream.metrics.reference.series import PatientSeries

__all__ = [
    "ALIASES",
    "Cohort",
    "Readings",
    "cohort_slices",
    "patient_runs",
    "prepare_cohort",
    "wall_clock_seconds",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
ALIASES = (("id", "time", "gl"), ("patient_key", "ts", "glucose_mg_dl"))
_UNITS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


@dataclass(frozen=True, slots=True)
class Readings:
    """Patient ``p``'s readings are ``time_s[offsets[p]:offsets[p + 1]]`` (and glucose);
    ``distinct`` is True when each patient's times are known to be distinct (then the views
    per instant are the readings themselves, and no pass is needed to find that out)."""

    offsets: IntArray
    time_s: IntArray
    glucose_mg_dl: FloatArray
    distinct: bool = False

    def as_tuple(self) -> tuple[IntArray, IntArray, FloatArray]:
        """The arrays as read-only views: kernels are compiled for one array type only."""
        return _read_only(self.offsets), _read_only(self.time_s), _read_only(self.glucose_mg_dl)

    def patient(self, p: int) -> PatientSeries:
        lo, hi = int(self.offsets[p]), int(self.offsets[p + 1])
        return PatientSeries(self.time_s[lo:hi], self.glucose_mg_dl[lo:hi])

    def patients(self, first: int, stop: int) -> Readings:
        """Patients ``first`` to ``stop - 1``, their readings viewed, not copied."""
        lo, hi = int(self.offsets[first]), int(self.offsets[stop])
        return Readings(
            self.offsets[first : stop + 1] - lo,
            self.time_s[lo:hi],
            self.glucose_mg_dl[lo:hi],
            self.distinct,
        )

    def mean_per_instant(self) -> Readings:
        if self.distinct:
            return self
        return Readings(*per_instant(*self.as_tuple(), False), distinct=True)

    def last_per_instant(self) -> Readings:
        if self.distinct:
            return self
        return Readings(*per_instant(*self.as_tuple(), True), distinct=True)


@dataclass(frozen=True, slots=True)
class Cohort:
    """Patient ids (strings, ascending) and their readings."""

    ids: pa.Array
    readings: Readings

    @property
    def size(self) -> int:
        return len(self.ids)


def _read_only(a: npt.NDArray[np.generic]) -> npt.NDArray[Any]:
    view = a.view()
    view.flags.writeable = False
    return view


def wall_clock_seconds(column: pa.ChunkedArray | pa.Array) -> IntArray:
    """Seconds since 1970-01-01 of the wall-clock time (local time for zoned timestamps)."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        column = pc.strptime(column, format="%Y-%m-%d %H:%M:%S", unit="s")
    if not pa.types.is_timestamp(column.type):
        raise InvalidInput(f"column time has type {column.type}; expected a timestamp")
    column = wall_clock_times(column)
    per_second = _UNITS_PER_SECOND[column.type.unit]
    raw = pc.cast(column, pa.int64())
    chunks = raw.chunks if isinstance(raw, pa.ChunkedArray) else [raw]
    if raw.null_count or per_second == 1:
        return np.asarray(raw.to_numpy(), dtype=np.int64) // per_second
    out = np.empty(len(raw), dtype=np.int64)  # one array: each chunk divided straight into it
    at = 0
    for chunk in chunks:
        np.floor_divide(chunk.to_numpy(), per_second, out=out[at : at + len(chunk)])
        at += len(chunk)
    return out


def _columns(table: pa.Table) -> tuple[pa.ChunkedArray, pa.ChunkedArray, pa.ChunkedArray]:
    names = set(table.column_names)
    found = next((a for a in ALIASES if set(a) <= names), None)
    if found is None:
        raise InvalidInput(
            f"columns {sorted(names)} lack id, time, gl (or patient_key, ts, glucose_mg_dl); "
            "rename the columns"
        )
    return table[found[0]], table[found[1]], table[found[2]]


def _run_starts(ids: pa.ChunkedArray) -> IntArray:
    """Row numbers where the id differs from the row before (neighbour comparison only)."""
    found = [np.zeros(1, dtype=np.int64)]
    base = 0
    for chunk in ids.chunks:
        if len(chunk) > 1:
            if pa.types.is_dictionary(chunk.type):
                codes = np.asarray(chunk.indices.to_numpy(zero_copy_only=False))
                changed = codes[1:] != codes[:-1]
            else:
                changed = pc.not_equal(chunk[1:], chunk[:-1]).to_numpy(zero_copy_only=False)
            found.append(np.flatnonzero(changed).astype(np.int64) + base + 1)
        if len(chunk) and base:
            found.append(np.array([base], dtype=np.int64))  # re-checked below
        base += len(chunk)
    return np.unique(np.concatenate(found))


def _values_at(column: pa.ChunkedArray, rows: IntArray) -> pa.Array:
    """``column[rows]`` (``rows`` ascending) as one plain array, taken chunk by chunk: a take
    on the whole chunked column would first concatenate all of its chunks (0.2 s for 40
    million ids)."""
    bounds = np.cumsum([0] + [len(chunk) for chunk in column.chunks])
    cuts = np.searchsorted(rows, bounds)
    parts = []
    for k, chunk in enumerate(column.chunks):
        if cuts[k + 1] > cuts[k]:
            part = chunk.take(pa.array(rows[cuts[k] : cuts[k + 1]] - bounds[k]))
            parts.append(part.dictionary_decode() if pa.types.is_dictionary(part.type) else part)
    return pa.concat_arrays(parts) if parts else pa.array([], column.type)


def _runs(ids: pa.ChunkedArray) -> tuple[pa.Array, IntArray] | None:
    """(ids, offsets) if equal ids are contiguous and in ascending order, else None."""
    n = len(ids)
    if n == 0:
        return pa.array([], pa.string()), np.zeros(1, dtype=np.int64)
    starts = _run_starts(ids)
    run_ids = _values_at(ids, starts)
    if len(run_ids) > 1:
        same = pc.equal(run_ids[1:], run_ids[:-1]).to_numpy(zero_copy_only=False)
        if same.any():  # a chunk boundary inside one patient's rows
            keep = np.concatenate(([True], ~same))
            starts, run_ids = starts[keep], run_ids.filter(pa.array(keep))
        if len(run_ids) > 1 and not pc.all(pc.less(run_ids[:-1], run_ids[1:])).as_py():
            return None
    return run_ids, np.append(starts, n).astype(np.int64)


def _by_codes(encoded: pa.ChunkedArray) -> tuple[pa.Array, IntArray, IntArray | None]:
    """(ids ascending, offsets, stable permutation putting dictionary-encoded rows in id order,
    or None if they already are)."""
    encoded = encoded.unify_dictionaries()
    dictionary = encoded.chunk(0).dictionary if encoded.num_chunks else pa.array([], pa.string())
    indices = np.concatenate(
        [np.asarray(c.indices.to_numpy(zero_copy_only=False)) for c in encoded.chunks]
        or [np.zeros(0, dtype=np.int64)]
    )
    order = np.asarray(pc.sort_indices(dictionary).to_numpy(), dtype=np.int64)
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    codes = rank[indices]
    counts = np.bincount(codes, minlength=order.size)
    present = counts > 0
    offsets = np.concatenate(([0], np.cumsum(counts[present]))).astype(np.int64)
    permutation = None if non_decreasing(_read_only(codes)) else np.argsort(codes, kind="stable")
    return dictionary.take(pa.array(order[present])), offsets, permutation


def _id_column(table: pa.Table) -> pa.ChunkedArray:
    id_col = _columns(table)[0]
    if id_col.null_count:
        raise InvalidInput(f"{id_col.null_count} readings have no id; fill or drop them")
    if not pa.types.is_dictionary(id_col.type) and not pa.types.is_string(id_col.type):
        id_col = pc.cast(id_col, pa.string())
    return id_col


def _cleaned(ids: pa.Array, offsets: IntArray, t: IntArray, g: FloatArray) -> Cohort:
    """The cohort once rows are grouped by patient: times sorted within each patient, readings
    without a glucose value dropped."""
    ids = pc.cast(ids, pa.string())
    in_order, distinct, n_missing = scan_readings(_read_only(offsets), _read_only(t), _read_only(g))
    if not in_order:
        t, g = t.copy(), g.copy()  # never sort the caller's buffers in place
        sort_times_within(offsets, t, g)
    if n_missing:
        missing = np.isnan(g)
        kept = np.concatenate(([0], np.cumsum(~missing)))
        offsets = kept[offsets].astype(np.int64)
        t, g = t[~missing], g[~missing]
    return Cohort(ids, Readings(offsets, t, g, distinct=in_order and distinct and not n_missing))


def _time_and_glucose(table: pa.Table) -> tuple[IntArray, FloatArray]:
    _, time_col, gl_col = _columns(table)
    t = wall_clock_seconds(time_col)
    return t, np.asarray(pc.cast(gl_col, pa.float64()).to_numpy(), dtype=np.float64)


def prepare_cohort(table: pa.Table) -> Cohort:
    """Sort, group and clean ``table`` (``id, time, gl`` or the canonical names)."""
    id_col = _id_column(table)
    found = _runs(id_col)
    t, g = _time_and_glucose(table)
    if found is None:
        encoded = id_col if pa.types.is_dictionary(id_col.type) else pc.dictionary_encode(id_col)
        ids, offsets, order = _by_codes(encoded)
        if order is not None:
            t, g = t[order], g[order]
    else:
        ids, offsets = found
    return _cleaned(ids, offsets, t, g)


def patient_runs(table: pa.Table) -> tuple[pa.Array, IntArray] | None:
    """(ids, offsets) when the rows are grouped by ascending id, else None; found by comparing
    neighbouring rows (dictionary codes where the ids are encoded), never by hashing."""
    return _runs(_id_column(table))


def cohort_slices(
    table: pa.Table, max_rows: int, runs: tuple[pa.Array, IntArray] | None = None
) -> Iterator[Cohort]:
    """``prepare_cohort(table)`` as consecutive cohorts of whole patients, each of at most
    ``max_rows`` rows or one patient, when the rows are already grouped by ascending id (as the
    lake and the exporters write them; ``runs``, if given, is ``patient_runs(table)`` already
    found); else the whole cohort at once. Working on one slice at a time keeps the arrays built
    from the table small and their memory reused."""
    found = runs or (patient_runs(table) if table.num_rows > max_rows else None)
    if found is None:
        yield prepare_cohort(table)
        return
    ids, offsets = found
    lo = 0
    while lo < len(ids):
        hi = max(int(np.searchsorted(offsets, offsets[lo] + max_rows, side="right")) - 1, lo + 1)
        part = table.slice(int(offsets[lo]), int(offsets[hi] - offsets[lo]))
        yield _cleaned(ids[lo:hi], offsets[lo : hi + 1] - offsets[lo], *_time_and_glucose(part))
        lo = hi
