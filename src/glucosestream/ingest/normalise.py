"""Validate and normalise raw rows: ``normalize.sql``, or its vectorised fast path when the input
allows it (see ``fastpath``). Both give the same table: one row per input row, in line order,
with its reason (NULL: good) and whether it is a duplicate."""

from __future__ import annotations

import datetime as dt
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.config import Settings
from glucosestream.engines import Engine, open_engine, read_sql
from glucosestream.ingest.fastpath import FastPathParams, normalise_fast
from glucosestream.readings import (
    DIRECTIONS,
    EARLIEST_READING_AT,
    FUTURE_SKEW,
    MAX_RATE_MG_DL_MIN,
    MG_DL_PER_MMOL_L,
    ReadingFlag,
)

__all__ = [
    "CARRIED_SCHEMA",
    "carry_repeated",
    "normalise",
    "normalise_params",
    "run_normalize_sql",
]


def normalise_params(settings: Settings, received_at: dt.datetime) -> FastPathParams:
    """The parameters of ``normalize.sql`` (and of its fast path) under ``settings``, for rows
    received at ``received_at`` (the batch's ``ingested_at``): a reading may be dated from
    ``readings.EARLIEST_READING_AT`` to ``received_at`` + ``readings.FUTURE_SKEW``."""
    return FastPathParams(
        default_unit="mg/dL",
        earliest=EARLIEST_READING_AT,
        latest=received_at + FUTURE_SKEW,
        scan_flag=int(ReadingFlag.SCAN),
        # the narrower of ingest's and the gate's ranges: a reading answered "accepted" is one
        # the gate will publish (issue 13, finding 3), never one it sets aside later
        min_mg_dl=max(settings.ingest.min_mg_dl, settings.quality.min_mg_dl),
        max_mg_dl=min(settings.ingest.max_mg_dl, settings.quality.max_mg_dl),
        mg_per_mmol=MG_DL_PER_MMOL_L,
        directions=list(DIRECTIONS),
        max_rate_mg_dl_min=MAX_RATE_MG_DL_MIN,
    )


# What an earlier chunk of the same file tells ``normalize.sql`` about repeated local times.
CARRIED_SCHEMA: Final = pa.schema(
    [
        pa.field("patient_key", pa.string()),
        pa.field("device_id", pa.string()),
        pa.field("tz", pa.string()),
        pa.field("day", pa.date32()),
        pa.field("reached", pa.timestamp("us")),
    ]
)


def normalise(
    engine: Engine | None,
    settings: Settings,
    incoming: pa.Table,
    time_formats: tuple[str, ...],
    carried: pa.Table | None = None,
    *,
    received_at: dt.datetime,
) -> pa.Table:
    """``normalize.sql`` over the rows; its vectorised equivalent when the input allows it.
    ``carried`` (``CARRIED_SCHEMA``): the repeated local times earlier chunks reached;
    ``received_at``: when the rows were received (see ``normalise_params``)."""
    incoming = _with_trend_text(incoming)
    fast = normalise_fast(incoming, normalise_params(settings, received_at))
    if fast is not None:
        return fast  # no local times, so nothing carried matters
    own = engine is None
    engine = open_engine(settings.engine) if engine is None else engine
    try:
        return run_normalize_sql(
            engine, settings, incoming, time_formats, carried, received_at=received_at
        )
    finally:
        if own:
            engine.close()


def carry_repeated(checked: pa.Table, carried: pa.Table | None) -> pa.Table | None:
    """``carried`` updated with the repeated local times of ``checked`` (None: none so far)."""
    times = checked["repeated_local_time"]
    if times.null_count == len(times):
        return carried
    rows = checked.filter(pc.is_valid(times))
    plain = {name: rows[name].cast(pa.string()) for name in ("patient_key", "device_id", "tz")}
    local = rows["repeated_local_time"].cast(pa.timestamp("us"))
    new = pa.table({**plain, "day": local.cast(pa.date32()), "reached": local})
    if carried is not None:
        new = pa.concat_tables([carried, new])
    keys = ["patient_key", "device_id", "tz", "day"]
    latest = new.group_by(keys).aggregate([("reached", "max")])
    return latest.rename_columns([*keys, "reached"]).cast(CARRIED_SCHEMA)


def run_normalize_sql(
    engine: Engine,
    settings: Settings,
    incoming: pa.Table,
    time_formats: tuple[str, ...],
    carried: pa.Table | None = None,
    *,
    received_at: dt.datetime,
) -> pa.Table:
    """``normalize.sql`` itself: the definition of the rules, for any input."""
    incoming = _with_trend_text(incoming)
    glucose = incoming["glucose"]
    if glucose.type != pa.string():  # a typed column (Parquet): the query reads text
        index = incoming.schema.get_field_index("glucose")
        incoming = incoming.set_column(index, "glucose", glucose.cast(pa.string()))
    params = normalise_params(settings, received_at)
    return engine.query(
        read_sql("glucosestream.ingest", "normalize.sql"),
        {
            "incoming": incoming,
            "carried": CARRIED_SCHEMA.empty_table() if carried is None else carried,
        },
        time_formats=list(time_formats),
        **{k: getattr(params, k) for k in params.__slots__},
    )


def _with_trend_text(incoming: pa.Table) -> pa.Table:
    """The rows with their trend columns as plain text (the query reads text), empty when a
    caller left them out."""
    n = incoming.num_rows
    for name in ("direction", "rate"):
        column = incoming[name] if name in incoming.column_names else pa.nulls(n, pa.string())
        if column.type != pa.string():
            column = column.cast(pa.string())
        if name in incoming.column_names:
            incoming = incoming.set_column(incoming.schema.get_field_index(name), name, column)
        else:
            incoming = incoming.append_column(name, column)
    return incoming
