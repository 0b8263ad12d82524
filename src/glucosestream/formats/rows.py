"""Raw rows: the contract between the format parsers and ``ingest``. PURE.

A parser turns one input into a ``ParsedFile``: an Arrow table with the columns of
``RAW_SCHEMA``, one row per received glucose reading, in the order the readings happened
(a parser of a newest-first export reverses it), plus what ``ingest`` needs to read the values.

    line        int64   where the reading came from: the 1-based line of a text file, the
                        1-based record index of a JSON document or a Parquet file
    patient_id  string  the external patient id as received (ingest turns it into a pseudonym)
    device_id   string  the device or serial as received (ingest turns it into a pseudonym)
    time        string  ISO 8601, with or without an offset, or local time in one of the
                        file's ``time_formats``; without an offset the time is local to ``tz``
    instant     timestamp[us, UTC]  the instant, when the source has it typed (a Parquet
                        timestamp with a zone); ``time`` is then empty
    glucose     string  the number as received (decimal point); or, from a typed source (a
                        Parquet number column, JSON integers), the numbers themselves, which
                        read as text the way Arrow writes them (the same as Python for integers)
    unit        string  mg/dL or mmol/L (empty: mg/dL)
    tz          string  IANA zone of the device (empty: --tz, else the configured default)
    flags       int32   ``readings.ReadingFlag`` bits the parser knows (LOW/HIGH clamps, scans)
    problem     string  why the parser already knows this row is bad (quarantined as the reason)

Two more columns (``TREND_SCHEMA``) carry the trend an uploader sent with a reading; a parser
whose source has none may leave them out (ingest reads them as empty):

    direction   string  a Nightscout direction name (``readings.DIRECTIONS``), as received
    rate        string  the rate of change in mg/dL per minute, as received

A string column may arrive dictionary-encoded (a Parquet file's patient ids): it is read as the
strings it holds. Values are validated by ``ingest``, not here. Records that are events
(insulin, carbs, exercise, device events, finger-sticks: ``event_rows``) go to
``ParsedFile.events``; records that are neither (alerts, preambles with names) never become raw
rows, and ``ParsedFile.skipped`` counts them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.readings import DIRECTIONS

__all__ = [
    "ISO_TIME_FORMATS",
    "NOT_UTF8",
    "RAW_COLUMNS",
    "RAW_SCHEMA",
    "TREND_SCHEMA",
    "ParsedFile",
    "RowBuilder",
    "decoded",
    "text_array",
    "with_trend_fields",
]

RAW_SCHEMA: Final = pa.schema(
    [
        pa.field("line", pa.int64()),
        pa.field("patient_id", pa.string()),
        pa.field("device_id", pa.string()),
        pa.field("time", pa.string()),
        pa.field("instant", pa.timestamp("us", tz="UTC")),
        pa.field("glucose", pa.string()),
        pa.field("unit", pa.string()),
        pa.field("tz", pa.string()),
        pa.field("flags", pa.int32()),
        pa.field("problem", pa.string()),
    ]
)
RAW_COLUMNS: Final = tuple(RAW_SCHEMA.names)
# The optional raw columns: the uploader's trend, validated by ingest (a bad one is dropped).
TREND_SCHEMA: Final = pa.schema([pa.field("direction", pa.string()), pa.field("rate", pa.string())])

_TEXT_COLUMNS: Final = (
    "patient_id",
    "device_id",
    "time",
    "glucose",
    "unit",
    "tz",
    "problem",
    "direction",
    "rate",
)

# The problem of a row holding text that is not UTF-8 (bad bytes in a JSON line, or a lone
# surrogate escape such as "\udc80", valid JSON that no UTF-8 text can hold).
NOT_UTF8: Final = "text is not valid UTF-8"

# ISO 8601 is read by a cast; this format only stands in when a file declares no other.
ISO_TIME_FORMATS: Final = ("%Y-%m-%dT%H:%M:%S",)


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """One parsed input: its raw rows and how to read their local times."""

    rows: pa.Table
    time_formats: tuple[str, ...] = ISO_TIME_FORMATS  # strptime formats of non-ISO local times
    skipped: int = 0  # records that are neither readings nor events (alerts, preamble rows)
    # The events the input holds (``event_rows.RAW_EVENT_SCHEMA``), or None: it holds none.
    events: pa.Table | None = None


@dataclass(slots=True)
class RowBuilder:
    """Collects raw rows one at a time; for vendor exports, which are small."""

    lines: list[int] = field(default_factory=list)
    columns: dict[str, list[str | None]] = field(
        default_factory=lambda: {name: [] for name in _TEXT_COLUMNS}
    )
    flags: list[int] = field(default_factory=list)

    def add(
        self,
        line: int,
        *,
        time: str | None,
        glucose: str | None,
        unit: str | None = None,
        device_id: str | None = None,
        patient_id: str | None = None,
        tz: str | None = None,
        flags: int = 0,
        problem: str | None = None,
        direction: str | None = None,
        rate: str | None = None,
    ) -> None:
        self.lines.append(line)
        values = {
            "patient_id": patient_id,
            "device_id": device_id,
            "time": time,
            "glucose": glucose,
            "unit": unit,
            "tz": tz,
            "problem": problem,
            "direction": direction,
            "rate": rate,
        }
        for name, value in values.items():
            self.columns[name].append(value)
        self.flags.append(flags)

    def __len__(self) -> int:
        return len(self.lines)

    def table(self, *, newest_first: bool = False) -> pa.Table:
        """The rows as a ``RAW_SCHEMA`` table (with the ``TREND_SCHEMA`` columns when any row
        has a trend), reversed when the source listed newest first."""
        step = -1 if newest_first else 1
        problems = self.columns["problem"][::step]
        texts = {
            n: text_array(v[::step], problems) for n, v in self.columns.items() if n != "problem"
        }
        if NOT_UTF8 in problems:  # a mangled patient id is not read: no patient of its own
            unread = pa.array([p == NOT_UTF8 for p in problems])
            texts["patient_id"] = pc.if_else(unread, None, texts["patient_id"])
        data = {
            "line": pa.array(self.lines[::step], pa.int64()),
            **texts,
            "problem": pa.array(problems, pa.string()),
            "flags": pa.array(self.flags[::step], pa.int32()),
            "instant": pa.nulls(len(self.lines), pa.timestamp("us", tz="UTC")),
        }
        table = pa.table({name: data[name] for name in RAW_COLUMNS}, schema=RAW_SCHEMA)
        trend = [texts[name] for name in TREND_SCHEMA.names]
        if all(column.null_count == len(column) for column in trend):
            return table
        return pa.Table.from_arrays([*table.columns, *trend], schema=_WITH_TREND)


_WITH_TREND: Final = pa.schema([*RAW_SCHEMA, *TREND_SCHEMA])


def text_array(values: list[str | None], problems: list[str | None]) -> pa.Array:
    """``values`` as an Arrow string array. Text no UTF-8 can hold (a lone surrogate, from a
    JSON escape) is kept with those characters replaced, and its row gets ``NOT_UTF8`` as its
    problem (in ``problems``, unless it has one already)."""
    try:
        return pa.array(values, pa.string())
    except UnicodeEncodeError:
        pass
    mended = list(values)
    for i, text in enumerate(values):
        if text is not None and not _encodable(text):
            mended[i] = text.encode("utf-8", "replace").decode("utf-8")
            problems[i] = problems[i] or NOT_UTF8
    return pa.array(mended, pa.string())


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_Column = TypeVar("_Column", pa.Array, pa.ChunkedArray)


def decoded(column: _Column) -> _Column:
    """A dictionary-encoded column as the values it holds; any other column as it is."""
    return column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column


def with_trend_fields(
    table: pa.Table, records: Sequence[Mapping[str, Any]], fields: Mapping[str, str]
) -> pa.Table:
    """Raw rows of JSON-like records with the ``TREND_SCHEMA`` columns read from the records'
    fields (``fields``: raw column -> the records' key). A direction is kept only when it is a
    Nightscout name, a rate as the text of a number or as numeric-looking text (ingest reads it;
    anything else is dropped there)."""
    direction, rate = fields.get("direction"), fields.get("rate")
    directions = [_known_direction(r.get(direction)) if direction else None for r in records]
    rates = [_rate_text(r.get(rate)) if rate else None for r in records]
    arrays = [pa.array(directions, pa.string()), pa.array(rates, pa.string())]
    return pa.Table.from_arrays(
        [*table.columns, *arrays], schema=pa.schema([*table.schema, *TREND_SCHEMA])
    )


def _known_direction(value: object) -> str | None:
    return value if isinstance(value, str) and value in DIRECTIONS else None


def _rate_text(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    if isinstance(value, str):  # short ASCII text only: a number is never longer
        return value if value.isascii() and len(value) <= 64 else None
    return repr(float(value)) if isinstance(value, float) or abs(value) < 1 << 53 else None
