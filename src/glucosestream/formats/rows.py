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

A string column may arrive dictionary-encoded (a Parquet file's patient ids): it is read as the
strings it holds. Values are validated by ``ingest``, not here. Records that are not glucose
readings (insulin, notes, alerts, preambles with names) never become raw rows;
``ParsedFile.skipped`` counts them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "ISO_TIME_FORMATS",
    "NOT_UTF8",
    "RAW_COLUMNS",
    "RAW_SCHEMA",
    "ParsedFile",
    "RowBuilder",
    "decoded",
    "text_array",
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

_TEXT_COLUMNS: Final = ("patient_id", "device_id", "time", "glucose", "unit", "tz", "problem")

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
    skipped: int = 0  # records that are not glucose readings (events, insulin, preamble rows)


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
        }
        for name, value in values.items():
            self.columns[name].append(value)
        self.flags.append(flags)

    def __len__(self) -> int:
        return len(self.lines)

    def table(self, *, newest_first: bool = False) -> pa.Table:
        """The rows as a ``RAW_SCHEMA`` table, reversed when the source listed newest first."""
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
        return pa.table({name: data[name] for name in RAW_COLUMNS}, schema=RAW_SCHEMA)


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
