"""The canonical reading: one Arrow schema, its units and flags. PURE.

Every stage after parsing speaks this schema. Glucose is stored in mg/dL (float64); a value that
arrived in mmol/L is converted with ``MG_DL_PER_MMOL_L`` and its original value and unit are kept.
``ts`` is the instant in UTC; ``tz`` is the IANA zone the device was in, which decides the
patient's local calendar day. ``direction`` and ``rate_mg_dl_min`` are the trend the uploader
sent with the reading (a Nightscout direction name, a rate of change), NULL when none was sent
or it was not one of ``DIRECTIONS`` / not a finite rate within ``MAX_RATE_MG_DL_MIN``: a bad
trend is dropped, never a reason to quarantine the reading. Raw batches and curated tables
written before these two columns existed read them as NULL.

The limits a reading must meet to be accepted are named here once (ingest quarantines a row
outside them, the quality gate checks the same bounds): the plausible time range, the length of
an identifier, and the zones known (``is_known_zone``; it reads the system's IANA database, once;
``check_zone`` names the closest zone to a typo).
"""

from __future__ import annotations

import datetime as dt
import difflib
import enum
import functools
import zoneinfo
from collections.abc import Sequence
from typing import Final, Literal

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.errors import ConfigError

__all__ = [
    "DIRECTIONS",
    "EARLIEST_READING_AT",
    "FUTURE_SKEW",
    "MAX_ID_CHARS",
    "MAX_RATE_MG_DL_MIN",
    "MG_DL_PER_MMOL_L",
    "READING_SCHEMA",
    "ReadingFlag",
    "Unit",
    "check_zone",
    "in_order",
    "is_known_zone",
    "known_zones",
    "mmol_l_to_mg_dl",
]

# Molar mass of glucose 180.156 g/mol: 1 mmol/L = 18.0156 mg/dL (DESIGN.md, canonical reading).
MG_DL_PER_MMOL_L: Final = 18.0156

Unit = Literal["mg/dL", "mmol/L"]

# The plausible time range of a reading (issue 13): none before 1990 (consumer CGM began in
# 1999; earlier dates are clock resets or shifted exports), none later than its receipt plus a
# device clock a few minutes fast. The quality gate's no_future_readings uses the same skew.
EARLIEST_READING_AT: Final = dt.datetime(1990, 1, 1, tzinfo=dt.UTC)
FUTURE_SKEW: Final = dt.timedelta(minutes=10)

# Characters in a patient id or a device id; longer is not an identifier (issue 13, a 100 MB
# device id). Ingest quarantines such a row before the id is hashed or registered.
MAX_ID_CHARS: Final = 256

# Nightscout's trend directions, in the order of their trend numbers 0-9 (cgm-remote-monitor
# lib/server/pebble.js, DIRECTIONS: NONE 0, DoubleUp 1, ..., DoubleDown 7, NOT COMPUTABLE 8,
# RATE OUT OF RANGE 9). A stored ``direction`` is one of these names, spelt exactly so.
DIRECTIONS: Final[tuple[str, ...]] = (
    "NONE",
    "DoubleUp",
    "SingleUp",
    "FortyFiveUp",
    "Flat",
    "FortyFiveDown",
    "SingleDown",
    "DoubleDown",
    "NOT COMPUTABLE",
    "RATE OUT OF RANGE",
)
# A sent rate of change beyond this (mg/dL per minute, either way) is not a glucose trend but a
# unit or parsing error: it is stored as NULL. Dexcom's steepest arrow starts at 3 mg/dL/min
# (G6 user guide, "Trend arrows"), so the bound leaves every real arrow well inside.
MAX_RATE_MG_DL_MIN: Final = 20.0

# In the system's IANA database but not usable as a reading's zone: ``localtime`` (a link to the
# host's own zone, unknown to DuckDB) and ``Factory`` (no offset; Arrow cannot load it).
_UNUSABLE_ZONES: Final = frozenset({"localtime", "Factory"})


class ReadingFlag(enum.IntFlag):
    """Bit flags stored in ``flags`` (an int32, so every SQL engine can test them)."""

    NONE = 0
    SENSOR_LOW = 1  # the device reported "Low": the true value is at or below glucose_mg_dl
    SENSOR_HIGH = 2  # the device reported "High": the true value is at or above glucose_mg_dl
    CALIBRATION = 4  # a fingerstick calibration entry, not a sensor reading
    SCAN = 8  # an on-demand scan (LibreView) rather than a historic reading


READING_SCHEMA: Final = pa.schema(
    [
        pa.field("patient_key", pa.string(), nullable=False),
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("glucose_mg_dl", pa.float64(), nullable=False),
        pa.field("original_value", pa.float64(), nullable=False),
        pa.field("original_unit", pa.string(), nullable=False),
        pa.field("flags", pa.int32(), nullable=False),
        pa.field("tz", pa.string(), nullable=False),
        pa.field("batch_id", pa.string(), nullable=False),
        pa.field("ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("direction", pa.string(), nullable=True),
        pa.field("rate_mg_dl_min", pa.float64(), nullable=True),
    ]
)


def mmol_l_to_mg_dl(value_mmol_l: float) -> float:
    """Convert a glucose concentration from mmol/L to mg/dL."""
    return value_mmol_l * MG_DL_PER_MMOL_L


def is_known_zone(name: str) -> bool:
    """Whether ``name`` is an IANA zone every stage can use (zoneinfo, DuckDB, Arrow): a key of
    the IANA database exactly as spelt there (no paths, ``posix/``/``right/`` copies or case
    variants), other than the few in ``_UNUSABLE_ZONES``."""
    return name in known_zones()


@functools.cache
def known_zones() -> frozenset[str]:
    """Every name ``is_known_zone`` accepts (for suggesting a zone close to a typo)."""
    return frozenset(zoneinfo.available_timezones()) - _UNUSABLE_ZONES


def check_zone(name: str, given_as: str) -> str:
    """``name`` if it is a real IANA time zone; else a ConfigError that names ``given_as``
    (``--tz``, an environment variable) and suggests the closest zone."""
    if is_known_zone(name):
        return name
    close = _closest_zone(name)
    hint = f"did you mean {close}?" if close else "use an IANA name such as Europe/London or UTC"
    raise ConfigError(f"{given_as} {name!r} is not a time zone; {hint}")


def _folded_city_of(zone: str) -> str:
    return zone.rsplit("/", 1)[-1].lower()


def _closest_zone(name: str) -> str | None:
    """A zone spelt like ``name``: the same name in other case, the same city, or a near miss."""
    zones = sorted(known_zones())
    folded = name.strip().lower()
    spellings = [
        {spelling(z): z for z in reversed(zones)}  # the first zone of each spelling
        for spelling in (str.lower, _folded_city_of)
    ]
    for spelt in spellings:
        if folded in spelt:
            return spelt[folded]
    for spelt in spellings:
        near = difflib.get_close_matches(folded, list(spelt), n=1, cutoff=0.75)
        if near:
            return spelt[near[0]]
    return None


def in_order(rows: pa.Table, columns: Sequence[str]) -> bool:
    """Whether the rows are sorted ascending by ``columns`` (ties in any order): each row is
    compared with the one before it, one pass and no sort. False when a sort column holds a
    null or NaN (the sort decides where those go)."""
    n = rows.num_rows
    if n < 2 or not columns:
        return True
    if any(rows[c].null_count for c in columns):
        return False
    lead = rows[columns[0]]
    if not pc.all(pc.less_equal(lead.slice(0, n - 1), lead.slice(1))).as_py():
        return False  # one pass settles most unsorted tables
    ordered: pa.ChunkedArray | None = None  # previous row <= this row, from the last column on
    for name in reversed(columns):
        this, previous = rows[name].slice(1), rows[name].slice(0, n - 1)
        if ordered is None:
            ordered = pc.less_equal(previous, this)
        else:
            ordered = pc.or_(pc.less(previous, this), pc.and_(pc.equal(previous, this), ordered))
    return pc.all(ordered).as_py() is True
