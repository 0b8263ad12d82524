"""Validate and normalise raw rows: ``normalize.sql``, or its vectorised fast path when the input
allows it (see ``fastpath``). Both give the same table: one row per input row, in line order,
with its reason (NULL: good) and whether it is a duplicate."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from glucosestream.config import Settings
from glucosestream.engines import Engine, open_engine, read_sql
from glucosestream.ingest.fastpath import FastPathParams, normalise_fast
from glucosestream.readings import MG_DL_PER_MMOL_L, ReadingFlag

__all__ = [
    "EARLIEST_READING_AT",
    "LATEST_READING_AT",
    "normalise",
    "normalise_params",
    "run_normalize_sql",
]

# Instants outside these are typing or clock errors (year 99999 parses); the earliest allows
# exports whose dates were shifted to anonymise them (a public Dexcom sample is set in 1961).
EARLIEST_READING_AT = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
LATEST_READING_AT = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)


def normalise_params(settings: Settings) -> FastPathParams:
    """The parameters of ``normalize.sql`` (and of its fast path) under ``settings``."""
    return FastPathParams(
        default_unit="mg/dL",
        earliest=EARLIEST_READING_AT,
        latest=LATEST_READING_AT,
        scan_flag=int(ReadingFlag.SCAN),
        min_mg_dl=settings.ingest.min_mg_dl,
        max_mg_dl=settings.ingest.max_mg_dl,
        mg_per_mmol=MG_DL_PER_MMOL_L,
    )


def normalise(
    engine: Engine | None, settings: Settings, incoming: pa.Table, time_formats: tuple[str, ...]
) -> pa.Table:
    """``normalize.sql`` over the rows; its vectorised equivalent when the input allows it."""
    fast = normalise_fast(incoming, normalise_params(settings))
    if fast is not None:
        return fast
    own = engine is None
    engine = open_engine(settings.engine) if engine is None else engine
    try:
        return run_normalize_sql(engine, settings, incoming, time_formats)
    finally:
        if own:
            engine.close()


def run_normalize_sql(
    engine: Engine, settings: Settings, incoming: pa.Table, time_formats: tuple[str, ...]
) -> pa.Table:
    """``normalize.sql`` itself: the definition of the rules, for any input."""
    glucose = incoming["glucose"]
    if glucose.type != pa.string():  # a typed column (Parquet): the query reads text
        index = incoming.schema.get_field_index("glucose")
        incoming = incoming.set_column(index, "glucose", glucose.cast(pa.string()))
    params = normalise_params(settings)
    return engine.query(
        read_sql("glucosestream.ingest", "normalize.sql"),
        {"incoming": incoming},
        time_formats=list(time_formats),
        **{k: getattr(params, k) for k in params.__slots__},
    )
