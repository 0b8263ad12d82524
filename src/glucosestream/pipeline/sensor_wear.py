"""Sensor sessions: the wear periods of each device, inferred from the readings.

Most exports say nothing about when a sensor was put on or taken off, so a session is inferred:
a maximal run of one device's sensor readings (calibration entries excluded) in which no two
consecutive readings are ``SESSION_BREAK_MIN`` minutes or more apart. A sensor change leaves
at least its warm-up without readings (Dexcom G6 2 h, FreeStyle Libre 2/3 1 h, Dexcom G7
30 min), so changes of the first two are always found and a G7 swapped within the hour is not;
a signal loss of an hour or more splits a wear period in two. docs/decisions.md has the reasons.

Incremental runs never read a session's readings again to extend it: the published sessions
are folded with the new readings as summaries. Only late readings that land
*inside* a published session (which may split one of its gaps) make the run read that
session's readings from the lake again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.readings import ReadingFlag

__all__ = [
    "SENSOR_SESSIONS_SCHEMA",
    "SESSION_BREAK_MIN",
    "SessionInputs",
    "infer_sessions",
    "session_inputs",
]

# The shortest warm-up that still separates two sensors of most devices (FreeStyle Libre 2/3:
# 60 min; Dexcom G6: 120 min), see the module docstring.
SESSION_BREAK_MIN: Final = 60

_US_PER_MIN: Final = 60_000_000
_US_PER_HOUR: Final = 60 * _US_PER_MIN
# A gap over 15 minutes is a signal loss: three missed 5-minute readings, and the duration
# the 2023 consensus asks of an episode.
_SIGNAL_LOSS_MIN: Final = 15
_SUMMARY_COLUMNS: Final = (
    "patient_key",
    "device_id",
    "session_start",
    "session_end",
    "readings",
    "longest_gap_min",
    "gaps_over_15_min",
)

# The rows of curated.sensor_sessions (its table: pipeline.table_registry).
SENSOR_SESSIONS_SCHEMA: Final = pa.schema(
    [
        pa.field("patient_key", pa.string(), nullable=False),
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("session_start", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("session_end", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("end_date", pa.date32(), nullable=False),  # UTC day of session_end
        pa.field("duration_h", pa.float64(), nullable=False),
        pa.field("readings", pa.int64(), nullable=False),
        pa.field("longest_gap_min", pa.float64(), nullable=False),
        pa.field("gaps_over_15_min", pa.int64(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("computed_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
_PIECES: Final = pa.schema([SENSOR_SESSIONS_SCHEMA.field(c) for c in _SUMMARY_COLUMNS])


@dataclass(frozen=True, slots=True)
class SessionInputs:
    """What one bucket's sessions are folded from: published summaries and readings."""

    stored: pa.Table
    readings: pa.Table


def session_inputs(
    stored: pa.Table,
    new: pa.Table,
    read_curated: Callable[[tuple[str, ...], dt.datetime], pa.Table],
) -> SessionInputs:
    """The summaries and readings an incremental run folds: every published session in the
    replaced scope stays a summary, except for a device whose new readings fall inside one of
    its sessions; that device's sessions from the first such session on are rebuilt from their
    readings (``read_curated(keys, since)``: published readings of those patients)."""
    inside = _sessions_hit_inside(stored, new)
    if inside.num_rows == 0:
        return SessionInputs(stored, new)
    since: dt.datetime = pc.min(inside["session_start"]).as_py()
    keys = tuple(sorted(set(inside["patient_key"].to_pylist())))
    first = inside.group_by(["patient_key", "device_id"]).aggregate([("session_start", "min")])
    curated = read_curated(keys, since)
    rebuilt = _rows_of_pairs(curated, first, "ts", keep_from=True)
    kept = _rows_of_pairs(stored, first, "session_start", keep_from=False)
    rebuilt = rebuilt.select(new.column_names).cast(new.schema)
    return SessionInputs(kept, pa.concat_tables([new, rebuilt]))


def infer_sessions(inputs: SessionInputs, *, run_id: str, computed_at: dt.datetime) -> pa.Table:
    """The sessions the summaries and sensor readings make, in the table's schema."""
    sensor = pc.equal(
        pc.bit_wise_and(inputs.readings["flags"], pa.scalar(int(ReadingFlag.CALIBRATION))), 0
    )
    readings = inputs.readings.filter(sensor)
    n = readings.num_rows
    pieces = pa.concat_tables(
        [
            inputs.stored.select(list(_SUMMARY_COLUMNS)).cast(_PIECES),
            pa.table(
                {
                    "patient_key": readings["patient_key"],
                    "device_id": readings["device_id"],
                    "session_start": readings["ts"],
                    "session_end": readings["ts"],
                    "readings": pa.repeat(pa.scalar(1, pa.int64()), n),
                    "longest_gap_min": pa.repeat(pa.scalar(0.0), n),
                    "gaps_over_15_min": pa.repeat(pa.scalar(0, pa.int64()), n),
                },
                schema=_PIECES,
            ),
        ]
    )
    folded = _fold(pieces)
    start, end = folded["session_start"], folded["session_end"]
    hours = pc.divide(
        pc.cast(pc.cast(pc.subtract(end, start), pa.int64()), pa.float64()), _US_PER_HOUR
    )
    rows = folded.num_rows
    return pa.table(
        {
            "patient_key": folded["patient_key"],
            "device_id": folded["device_id"],
            "session_start": start,
            "session_end": end,
            "end_date": pc.cast(end, pa.date32()),
            "duration_h": hours,
            "readings": folded["readings"],
            "longest_gap_min": folded["longest_gap_min"],
            "gaps_over_15_min": folded["gaps_over_15_min"],
            "run_id": pa.array([run_id] * rows, pa.string()),
            "computed_at": pa.array([computed_at] * rows, pa.timestamp("us", tz="UTC")),
        },
        schema=SENSOR_SESSIONS_SCHEMA,
    )


def _fold(pieces: pa.Table) -> pa.Table:
    """Fold pieces (summaries, or one reading each) into sessions. Pieces never overlap (a
    reading inside a published session makes ``session_inputs`` rebuild that session), so a
    piece joins the session before it when it starts less than a break after the previous
    piece of its device ends. One sort by (patient, device, start), then O(n) array passes."""
    if pieces.num_rows == 0:
        return _PIECES.empty_table()
    pieces = pieces.combine_chunks()
    patients = pieces["patient_key"].chunk(0).dictionary_encode()
    devices = pieces["device_id"].chunk(0).dictionary_encode()
    pair = patients.indices.to_numpy().astype(np.int64) * len(devices.dictionary)
    pair += devices.indices.to_numpy()
    first_us = pieces["session_start"].cast(pa.int64()).to_numpy()
    order = np.lexsort((first_us, pair))
    pair, first_us = pair[order], first_us[order]
    last_us = pieces["session_end"].cast(pa.int64()).to_numpy()[order]
    gap_us = np.zeros_like(first_us)
    gap_us[1:] = first_us[1:] - last_us[:-1]
    starts = np.ones(first_us.size, dtype=bool)
    starts[1:] = (pair[1:] != pair[:-1]) | (gap_us[1:] >= SESSION_BREAK_MIN * _US_PER_MIN)
    inner_gap_us = np.where(starts, 0, gap_us)
    heads = np.flatnonzero(starts)
    tails = np.append(heads[1:], first_us.size) - 1

    def per_session(column: str) -> npt.NDArray[Any]:
        return np.asarray(pieces[column].to_numpy())[order]

    longest_min = np.maximum(
        np.maximum.reduceat(per_session("longest_gap_min"), heads),
        np.maximum.reduceat(inner_gap_us, heads) / _US_PER_MIN,
    )
    losses = np.add.reduceat(per_session("gaps_over_15_min"), heads) + np.add.reduceat(
        (inner_gap_us > _SIGNAL_LOSS_MIN * _US_PER_MIN).astype(np.int64), heads
    )
    timestamp = pa.timestamp("us", tz="UTC")
    return pa.table(
        {
            "patient_key": pieces["patient_key"].take(order[heads]),
            "device_id": pieces["device_id"].take(order[heads]),
            "session_start": pa.array(first_us[heads]).cast(timestamp),
            "session_end": pa.array(last_us[tails]).cast(timestamp),
            "readings": np.add.reduceat(per_session("readings"), heads),
            "longest_gap_min": longest_min.astype(np.float64),
            "gaps_over_15_min": losses,
        },
        schema=_PIECES,
    )


def _sessions_hit_inside(stored: pa.Table, new: pa.Table) -> pa.Table:
    """Published sessions with a new reading strictly between their first and last."""
    if stored.num_rows == 0 or new.num_rows == 0:
        return stored.slice(0, 0)
    joined = new.select(["patient_key", "device_id", "ts"]).join(
        stored.select(["patient_key", "device_id", "session_start", "session_end"]),
        keys=["patient_key", "device_id"],
    )
    hit = pc.and_(
        pc.greater(joined["ts"], joined["session_start"]),
        pc.less(joined["ts"], joined["session_end"]),
    )
    return joined.filter(hit)


def _rows_of_pairs(rows: pa.Table, first: pa.Table, column: str, *, keep_from: bool) -> pa.Table:
    """Rows of the (patient, device) pairs in ``first``: with ``keep_from`` those at or after
    the pair's first hit session, otherwise every row except those (other pairs included)."""
    joined = rows.join(first, keys=["patient_key", "device_id"], join_type="left outer")
    from_hit = pc.fill_null(pc.greater_equal(joined[column], joined["session_start_min"]), False)
    return joined.filter(from_hit if keep_from else pc.invert(from_hit)).drop_columns(
        ["session_start_min"]
    )
