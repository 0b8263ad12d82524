"""Which basal rate a pump delivered when: basal segments to non-overlapping intervals. PURE.

A pump's basal record is a list of segments (``events``: kind ``basal``; device events
``pump_suspend`` / ``pump_resume``). ``basal_delivery`` turns them into intervals of known
delivery, at most one at any instant for a patient, by these rules (docs/metrics.md, "Insulin
and carbohydrate", says why):

* **Rate.** ``suspended`` segments and ``pump_suspend`` events deliver 0 U/h. Others deliver
  ``rate_u_h``, or, without a rate, ``units`` over their duration. A segment with neither is
  not placed (its delivery is unknown). ``injection`` rows are not segments (a pen dose).
* **Timed segments** carry ``duration_min``: they run [ts, ts + duration), at most
  ``MAX_DURATION_MIN``.
* **Open segments** carry no duration (a pump's rate changes, as CareLink lists them): each
  lasts until the next open segment of the same device; the device's last one until the last
  instant the device is known to run (its newest event, or the end of its newest timed
  segment); at most ``OPEN_SEGMENT_MAX`` (25 hours, the longest local day, so a rate recorded
  at every midnight covers the day clocks go back on) either way: a longer silence is missing
  data, not a day on one rate.
* **A suspension without a duration** lasts until the device's next ``pump_resume`` or next
  open segment (same fallback and cap); then it counts as timed.
* **Precedence.** A timed segment (temporary, automated, a suspension) overrides the open rate
  while it runs, and the open rate applies again when it ends (a pump returns to its schedule
  after a temporary rate). Among timed segments, and among open ones, the later start wins (a
  new temporary rate replaces the running one), even one of no known length (a zero-length
  temporary rate cancels the running one). This is per patient, so two uploads of the
  same pump under two device ids are counted once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.events import MAX_DURATION_MIN
from glucosestream.readings import in_order

__all__ = [
    "BASAL_DELIVERY_SCHEMA",
    "OPEN_SEGMENT_MAX",
    "BasalIntervals",
    "basal_delivery",
    "basal_intervals",
    "delivering_subtype",
    "sorted_events",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_US_PER_MIN: Final = 60_000_000
OPEN_SEGMENT_MAX: Final = dt.timedelta(hours=25)
_OPEN_MAX_US: Final = OPEN_SEGMENT_MAX // dt.timedelta(microseconds=1)
_NONE: Final = -1

BASAL_DELIVERY_SCHEMA: Final = pa.schema(
    [
        pa.field("patient_key", pa.string(), nullable=False),
        pa.field("tz", pa.string(), nullable=False),
        pa.field("start_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("end_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("rate_u_h", pa.float64(), nullable=False),
        pa.field("subtype", pa.string(), nullable=False),  # of the segment delivering
    ]
)
_ORDER: Final = (
    "patient_key", "device_id", "ts", "kind", "subtype", "units", "rate_u_h", "duration_min",
    "carbs_g",
)  # fmt: skip


def sorted_events(events: pa.Table) -> pa.Table:
    """The events in one total order (patient, device, time, kind, subtype, amounts), so that
    every result built from them, ties and floating-point sums included, is the same whatever
    order the rows were read in. Rows already in (patient, device, time) order, as the lake
    keeps them, are only reordered where several share that key."""
    if not in_order(events, _ORDER[:3]):
        return events.sort_by([(name, "ascending") for name in _ORDER])
    n = events.num_rows
    same = np.ones(max(n - 1, 0), np.bool_)
    for name in _ORDER[:3]:
        column = events[name]
        same &= np.asarray(pc.equal(column.slice(1), column.slice(0, n - 1)).to_numpy(), np.bool_)
    tied = np.flatnonzero(np.append(same, False) | np.append(False, same))
    if tied.size == 0:
        return events
    order = pc.sort_indices(events.take(tied), [(name, "ascending") for name in _ORDER])
    index = np.arange(n)
    index[tied] = tied[np.asarray(order.to_numpy(), np.int64)]
    return events.take(index)


def _floats(column: pa.ChunkedArray | pa.Array) -> FloatArray:
    return np.asarray(pc.fill_null(column, np.nan).to_numpy(), np.float64)


def _is(column: pa.ChunkedArray | pa.Array, value: str) -> BoolArray:
    return np.asarray(pc.fill_null(pc.equal(column, value), False).to_numpy(), np.bool_)


def _codes(column: pa.ChunkedArray | pa.Array) -> IntArray:
    encoded = pc.dictionary_encode(column).combine_chunks()
    return np.asarray(encoded.indices.to_numpy(), np.int64)


@dataclass(frozen=True, slots=True)
class _Segments:
    """Segments as arrays: their event row, device and patient codes, start and end (us)."""

    row: IntArray
    patient: IntArray
    device: IntArray
    start: IntArray
    end: IntArray

    def take(self, rows: IntArray | BoolArray) -> _Segments:
        return _Segments(
            *(a[rows] for a in (self.row, self.patient, self.device, self.start, self.end))
        )

    def placed(self) -> _Segments:
        return self.take(self.end > self.start)


def _first_after(b_group: IntArray, b_t: IntArray, q_group: IntArray, q_t: IntArray) -> IntArray:
    """For each query, the index of the first ``b`` of its group with a time strictly after
    its own, else ``_NONE``; ``b`` sorted by (group, time)."""
    nb = b_t.size
    group, t = np.concatenate([b_group, q_group]), np.concatenate([b_t, q_t])
    is_query = np.concatenate([np.zeros(nb, np.int8), np.ones(q_t.size, np.int8)])
    order = np.lexsort((is_query, t, group))  # at an equal time, b first: not "after"
    big = np.iinfo(np.int64).max
    b_at = np.where(order < nb, order, big)
    following = np.minimum.accumulate(b_at[::-1])[::-1]  # b indices rise along the order
    queries = order >= nb
    found, index = following[queries], order[queries] - nb
    ok = found != big
    ok[ok] = b_group[found[ok]] == q_group[index[ok]]
    out = np.full(q_t.size, _NONE, np.int64)
    out[index] = np.where(ok, found, _NONE)
    return out


def _last_at_or_before(
    b_group: IntArray, b_t: IntArray, q_group: IntArray, q_t: IntArray
) -> IntArray:
    """For each query, the index of the last ``b`` of its group with a time at or before its
    own, else ``_NONE``; ``b`` sorted by (group, time)."""
    nb = b_t.size
    group, t = np.concatenate([b_group, q_group]), np.concatenate([b_t, q_t])
    is_query = np.concatenate([np.zeros(nb, np.int8), np.ones(q_t.size, np.int8)])
    order = np.lexsort((is_query, t, group))  # at an equal time, b first: "at or before"
    seen = np.maximum.accumulate(np.where(order < nb, order, _NONE))
    queries = order >= nb
    found, index = seen[queries], order[queries] - nb
    ok = found != _NONE
    ok[ok] = b_group[found[ok]] == q_group[index[ok]]
    out = np.full(q_t.size, _NONE, np.int64)
    out[index] = np.where(ok, found, _NONE)
    return out


def _pick(values: IntArray, index: IntArray, missing: IntArray | int) -> IntArray:
    """``values[index]`` where ``index`` is not ``_NONE``, else ``missing``."""
    found = index != _NONE
    out = np.array(np.broadcast_to(missing, index.shape), np.int64)
    out[found] = values[index[found]]
    return out


def _ordered(s: _Segments, group: IntArray) -> _Segments:
    """``s`` sorted by (group, start, event row): ``group`` is ``s.patient`` or ``s.device``."""
    g, t, row = group, s.start, s.row
    later = (g[1:] > g[:-1]) | (
        (g[1:] == g[:-1]) & ((t[1:] > t[:-1]) | ((t[1:] == t[:-1]) & (row[1:] > row[:-1])))
    )
    if bool(np.all(later)):
        return s
    return s.take(np.lexsort((row, t, g)))


def _end_at_next(s: _Segments, marks: _Segments, last_known: IntArray) -> _Segments:
    """``s`` (sorted by device) ending at the first of ``marks`` (sorted by device) of the same
    device strictly after its start, else when the device is last known to run; at most
    ``OPEN_SEGMENT_MAX`` after its start."""
    j = _first_after(marks.device, marks.start, s.device, s.start)
    end = _pick(marks.start, j, last_known[s.device])
    return _Segments(s.row, s.patient, s.device, s.start, np.minimum(end, s.start + _OPEN_MAX_US))


def _clip_to_next(s: _Segments) -> _Segments:
    """``s`` sorted by patient, each ending no later than the patient's next start."""
    s = _ordered(s, s.patient)
    following = np.append(s.start[1:], np.iinfo(np.int64).max)
    same = np.append(s.patient[1:] == s.patient[:-1], False)
    end = np.where(same, np.minimum(s.end, following), s.end)
    return _Segments(s.row, s.patient, s.device, s.start, end).placed()


def _covering(s: _Segments, patient: IntArray, at: IntArray) -> IntArray:
    """The segment of ``s`` (disjoint within a patient, sorted by patient) running at each
    (patient, instant), else ``_NONE``."""
    j = _last_at_or_before(s.patient, s.start, patient, at)
    return np.where(_pick(s.end, j, np.iinfo(np.int64).min) > at, j, _NONE)


def _overlay(timed: _Segments, open_: _Segments) -> tuple[IntArray, IntArray, IntArray]:
    """Intervals of one delivering segment each (its event row, start, end), sorted by patient
    and start: a patient with only timed or only open segments keeps them as they are (each
    kind is disjoint already); the others go through ``_sweep``."""
    mixed = np.intersect1d(timed.patient, open_.patient)
    alone_t, alone_o = ~np.isin(timed.patient, mixed), ~np.isin(open_.patient, mixed)
    parts = [_sweep(timed.take(~alone_t), open_.take(~alone_o))]
    for s in (timed.take(alone_t), open_.take(alone_o)):
        parts.append((s.patient, s.start, s.end, s.row))
    patient, start, end, row = (np.concatenate(column) for column in zip(*parts, strict=True))
    order = np.lexsort((start, patient))
    return row[order], start[order], end[order]


def _sweep(timed: _Segments, open_: _Segments) -> tuple[IntArray, ...]:
    """(patient, start, end, row) of the parts of each patient's timeline cut at every
    segment's start and end, each given to the timed segment running then, else the open one;
    parts with neither are left out, neighbouring parts of one segment joined again."""
    patient = np.concatenate([timed.patient, timed.patient, open_.patient, open_.patient])
    t = np.concatenate([timed.start, timed.end, open_.start, open_.end])
    order = np.lexsort((t, patient))
    patient, t = patient[order], t[order]
    part = np.flatnonzero((patient[1:] == patient[:-1]) & (t[1:] > t[:-1]))
    p, a, b = patient[part], t[part], t[part + 1]
    in_timed, in_open = _covering(timed, p, a), _covering(open_, p, a)
    row = _pick(timed.row, in_timed, _pick(open_.row, in_open, _NONE))
    keep = row != _NONE
    p, row, a, b = p[keep], row[keep], a[keep], b[keep]
    if row.size == 0:
        return p, a, b, row
    joined = np.append(False, (row[1:] == row[:-1]) & (a[1:] == b[:-1]))
    first = np.flatnonzero(~joined)
    last = np.append(first[1:] - 1, row.size - 1)
    return p[first], a[first], b[last], row[first]


@dataclass(frozen=True, slots=True)
class _Rows:
    """The event columns the rules read, as arrays, one entry per (sorted) event row."""

    patient: IntArray
    device: IntArray
    ts: IntArray
    duration_us: IntArray  # -1: no duration given
    rate: FloatArray  # NaN: not placed
    basal: BoolArray  # a basal segment (kind basal, not an injection)
    suspend: BoolArray  # a suspended segment or a pump_suspend event
    resume: BoolArray  # a pump_resume event


def _rows(events: pa.Table) -> _Rows:
    kind, subtype = events["kind"], events["subtype"]
    basal = _is(kind, "basal") & ~_is(subtype, "injection")
    device_event = _is(kind, "device")
    suspend = (basal & _is(subtype, "suspended")) | (device_event & _is(subtype, "pump_suspend"))
    minutes = np.minimum(_floats(events["duration_min"]), MAX_DURATION_MIN)
    timed = ~np.isnan(minutes)
    duration_us = np.where(timed, np.round(np.nan_to_num(minutes) * _US_PER_MIN), -1)
    rate = _floats(events["rate_u_h"])
    units = _floats(events["units"])
    with np.errstate(divide="ignore", invalid="ignore"):
        from_units = np.where(timed & (minutes > 0), units / (minutes / 60.0), np.nan)
    rate = np.where(np.isnan(rate), from_units, rate)
    rate = np.where(suspend, 0.0, np.where(basal, rate, np.nan))
    device_key = pc.binary_join_element_wise(events["patient_key"], events["device_id"], "\x1f")
    return _Rows(
        patient=_codes(events["patient_key"]),
        device=_codes(device_key),
        ts=np.asarray(pc.cast(events["ts"], pa.int64()).to_numpy(), np.int64),
        duration_us=duration_us.astype(np.int64),
        rate=rate,
        basal=basal,
        suspend=suspend,
        resume=device_event & _is(subtype, "pump_resume"),
    )


def _last_known(r: _Rows, events: pa.Table) -> IntArray:
    """Per device: the last instant it is known to run (its newest pump event, or the end of
    its newest timed segment or extended bolus). ``events`` in ``sorted_events`` order, so
    each device's rows are together."""
    kind = events["kind"]
    pump = _is(kind, "basal") | _is(kind, "bolus") | _is(kind, "device")
    known = np.where(pump, r.ts + np.maximum(r.duration_us, 0), np.iinfo(np.int64).min)
    out = np.full(int(r.device.max(initial=-1)) + 1, np.iinfo(np.int64).min, np.int64)
    if r.device.size:
        first = np.flatnonzero(np.append(True, r.device[1:] != r.device[:-1]))
        out[r.device[first]] = np.maximum.reduceat(known, first)
    return out


def _segments(r: _Rows, rows: BoolArray) -> _Segments:
    at = np.flatnonzero(rows)
    end = np.where(r.duration_us[at] >= 0, r.ts[at] + r.duration_us[at], r.ts[at])
    return _Segments(at, r.patient[at], r.device[at], r.ts[at], end)


@dataclass(frozen=True, slots=True)
class BasalIntervals:
    """Intervals of known basal delivery: the event row delivering (an index into the events
    given), start and end (us since the epoch), rate (U/h); sorted by patient and time."""

    row: IntArray
    start_us: IntArray
    end_us: IntArray
    rate_u_h: FloatArray


def basal_intervals(events: pa.Table) -> BasalIntervals:
    """The intervals of known basal delivery of ``events`` (EVENT_SCHEMA rows in
    ``sorted_events`` order), by the rules of the module docstring."""
    r = _rows(events)
    placed = ~np.isnan(r.rate)
    timed = r.duration_us >= 0
    last_known = _last_known(r, events)
    open_rows = _segments(r, placed & r.basal & ~r.suspend & ~timed)
    open_rows = _ordered(open_rows, open_rows.device)
    open_ = _end_at_next(open_rows, open_rows, last_known)
    stops = _segments(r, placed & r.suspend & ~timed)
    marks = _segments(r, (placed & r.basal & ~r.suspend & ~timed) | r.resume)
    stops = _end_at_next(_ordered(stops, stops.device), _ordered(marks, marks.device), last_known)
    given = _segments(r, placed & timed & (r.basal | r.suspend))
    both = zip(_fields(given), _fields(stops), strict=True)
    timed_all = _clip_to_next(_Segments(*(np.concatenate(pair) for pair in both)))
    row, start, end = _overlay(timed_all, _clip_to_next(open_))
    return BasalIntervals(row, start, end, r.rate[row])


def basal_delivery(events: pa.Table) -> pa.Table:
    """``BASAL_DELIVERY_SCHEMA`` rows: each patient's intervals of known basal delivery, by
    the rules of the module docstring, sorted by patient and time (``events``: EVENT_SCHEMA
    rows, any kinds, any order)."""
    events = sorted_events(events)
    intervals = basal_intervals(events)
    take = pa.array(intervals.row)
    return pa.table(
        {
            "patient_key": pc.take(events["patient_key"], take),
            "tz": pc.take(events["tz"], take),
            "start_at": pa.array(intervals.start_us, pa.timestamp("us", tz="UTC")),
            "end_at": pa.array(intervals.end_us, pa.timestamp("us", tz="UTC")),
            "rate_u_h": pa.array(intervals.rate_u_h),
            "subtype": pc.take(delivering_subtype(events), take),
        }
    ).cast(BASAL_DELIVERY_SCHEMA)


def _fields(s: _Segments) -> tuple[IntArray, ...]:
    return (s.row, s.patient, s.device, s.start, s.end)


def delivering_subtype(events: pa.Table) -> pa.ChunkedArray:
    """The subtype of the segment a row is: ``suspended`` for a pump_suspend event; a basal
    row without a subtype is read as ``scheduled``."""
    suspended = pc.and_(
        pc.equal(events["kind"], "device"), pc.equal(events["subtype"], "pump_suspend")
    )
    subtype = pc.if_else(pc.fill_null(suspended, False), "suspended", events["subtype"])
    return pc.fill_null(subtype, "scheduled")
