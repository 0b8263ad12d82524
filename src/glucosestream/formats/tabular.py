"""Plain tabular inputs: CSV, JSON lines, a JSON array, Parquet, and records posted over HTTP.

Layout: one reading per row, with a header (CSV) or keys (JSON) naming the columns. Recognised
column names (case-insensitive; the first match wins):

    patient    patient_id, id, subject, subject_id              (or --patient for a whole file)
    device     device_id, device, serial                          (optional)
    time       time, ts, timestamp, datetime                      ISO 8601; without an offset the
                                                                  time is local to ``tz``
    glucose    glucose_mg_dl, gl, glucose, value, sgv             with ``unit`` (default mg/dL)
               glucose_mmol_l                                     in mmol/L
    unit       unit, units                                        mg/dL or mmol/L (optional)
    tz         tz, timezone, time_zone                            IANA zone (optional)

Rows stay columnar from the file on (a Parquet timestamp with a zone is passed on as an instant,
and Parquet numbers stay numbers, not text): CSV is read by Arrow's reader whenever each record
is one line (then a record's line is its row number + 1); otherwise, and to report a malformed
file precisely, by the standard library's reader. A row that repeats the header is quarantined.
JSON lines are read by Arrow's JSON reader when what it makes of them is exactly what the
standard library's reader would (text fields as text, integer glucose, no blank line, no
repeated key); anything else (and every malformed file) goes to the careful reader. Records
posted over HTTP are turned into columns field by field, each in one Arrow call.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from glucosestream.errors import InvalidInput
from glucosestream.formats.rows import RAW_SCHEMA, ParsedFile

__all__ = [
    "raw_rows_from_records",
    "read_csv",
    "read_json_array",
    "read_jsonl",
    "read_parquet",
]

_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "patient_id": ("patient_id", "id", "subject", "subject_id"),
    "device_id": ("device_id", "device", "serial"),
    "time": ("time", "ts", "timestamp", "datetime"),
    "glucose": ("glucose_mg_dl", "gl", "glucose", "value", "sgv"),
    "unit": ("unit", "units"),
    "tz": ("tz", "timezone", "time_zone"),
}
_MMOL_COLUMN: Final = "glucose_mmol_l"
_REPEATED_HEADER: Final = "a repeated header row"
_JSON_TYPES: Final[dict[type, pa.DataType]] = {
    str: pa.string(),
    bool: pa.bool_(),
    int: pa.int64(),
    float: pa.float64(),
}

Columns = Mapping[str, pa.Array | pa.ChunkedArray]


def _column_map(names: Sequence[str], source: str) -> dict[str, str | None]:
    """Map each raw column to the input column that feeds it (None: absent)."""
    lowered = {n.strip().lower(): n for n in names}
    if len(lowered) != len(names):
        raise InvalidInput(
            "the header repeats a column name; rename or remove the duplicate column",
            source=source,
            line=1,
        )
    found: dict[str, str | None] = {
        raw: next((lowered[a] for a in aliases if a in lowered), None)
        for raw, aliases in _ALIASES.items()
    }
    if found["glucose"] is None and _MMOL_COLUMN in lowered:
        found["glucose"] = lowered[_MMOL_COLUMN]
        found["unit"] = None
        found["_mmol"] = lowered[_MMOL_COLUMN]
    for required in ("time", "glucose"):
        if found[required] is None:
            expected = _ALIASES[required] + ((_MMOL_COLUMN,) if required == "glucose" else ())
            raise InvalidInput(
                f"no {required} column (found {', '.join(names) or 'none'}); "
                f"name one of them {' or '.join(expected)}",
                source=source,
                line=1,
            )
    return found


def _build(lines: pa.Array, columns: Columns, mapping: dict[str, str | None]) -> pa.Table:
    n = len(lines)
    data: dict[str, pa.Array | pa.ChunkedArray] = {"line": lines}
    instant = columns.get("_instant")
    data["instant"] = pa.nulls(n, pa.timestamp("us", tz="UTC")) if instant is None else instant
    for raw in ("patient_id", "device_id", "time", "glucose", "unit", "tz"):
        source_column = mapping.get(raw)
        if source_column is not None and source_column in columns:
            data[raw] = columns[source_column]
        elif raw == "unit" and "_mmol" in mapping:
            data[raw] = pa.repeat(pa.scalar("mmol/L", pa.string()), n)
        else:
            data[raw] = pa.nulls(n, pa.string())
    data["flags"] = pa.repeat(pa.scalar(0, pa.int32()), n)
    data["problem"] = pa.nulls(n, pa.string())
    table = pa.table(data)
    return table.select(list(RAW_SCHEMA.names))


def read_csv(path: Path) -> ParsedFile:
    source = str(path)
    data = path.read_bytes()
    if not data or data.isspace():
        raise InvalidInput("the file is empty; nothing to ingest", source=source)
    table = _read_csv_fast(data, source)
    if table is None:
        table = _read_csv_careful(path)
    return ParsedFile(table)


def _read_csv_fast(data: bytes, source: str) -> pa.Table | None:
    """Arrow's reader, when every record is one line; None when the careful reader must decide."""
    if b"\n\n" in data or b"\n\r\n" in data or b"\x00" in data:
        return None  # blank lines (skipped, and they shift row numbers) or binary junk
    header_end = data.find(b"\n")
    try:
        first_line = data[: header_end if header_end >= 0 else len(data)].decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    header = next(csv.reader([first_line]), [])
    mapping = _column_map(header, source)
    wanted = sorted({c for c in mapping.values() if c is not None})
    try:
        table = pa_csv.read_csv(
            pa.py_buffer(data),
            parse_options=pa_csv.ParseOptions(newlines_in_values=False),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                include_columns=wanted,
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowKeyError):
        return None
    physical_lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if table.num_rows != physical_lines - 1:
        return None  # a quoted value spans lines: row numbers are not line numbers
    lines = pa.array(np.arange(2, table.num_rows + 2, dtype=np.int64))
    rows = _build(lines, {c: table[c] for c in wanted}, mapping)
    time_name = str(mapping["time"]).encode("utf-8")
    if header_end >= 0 and data.find(time_name, header_end) < 0:
        return rows  # no row can repeat the header: its time column's name appears only there
    return _mark_repeated_header(rows, mapping)


def _read_csv_careful(path: Path) -> pa.Table:
    source = str(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise InvalidInput("the file is empty; nothing to ingest", source=source)
            mapping = _column_map(header, source)
            wanted = {c: header.index(c) for c in mapping.values() if c is not None}
            columns: dict[str, list[str | None]] = {c: [] for c in wanted}
            lines: list[int] = []
            for row in reader:
                if not row:
                    continue
                if len(row) != len(header):
                    raise InvalidInput(
                        f"expected {len(header)} fields as in the header, found {len(row)}; "
                        "fix or remove this line",
                        source=source,
                        line=reader.line_num,
                    )
                lines.append(reader.line_num)
                for name, index in wanted.items():
                    columns[name].append(row[index])
    except UnicodeDecodeError as err:
        raise InvalidInput(
            f"not UTF-8 text (byte {err.start}); export the file again as CSV", source=source
        ) from err
    except csv.Error as err:
        raise InvalidInput(f"not valid CSV: {err}", source=source) from err
    arrays = {name: pa.array(values, pa.string()) for name, values in columns.items()}
    return _mark_repeated_header(_build(pa.array(lines, pa.int64()), arrays, mapping), mapping)


def _mark_repeated_header(table: pa.Table, mapping: dict[str, str | None]) -> pa.Table:
    """Quarantine rows that repeat the header (two exports pasted into one file)."""
    repeated = pc.and_(
        pc.equal(table["time"], pa.scalar(mapping["time"])),
        pc.equal(table["glucose"], pa.scalar(mapping["glucose"])),
    )
    problem = pc.if_else(repeated, pa.scalar(_REPEATED_HEADER), table["problem"])
    return table.set_column(table.schema.get_field_index("problem"), "problem", problem)


def read_jsonl(path: Path) -> ParsedFile:
    fast = _read_jsonl_fast(path)
    return fast if fast is not None else _read_jsonl_careful(path)


def _read_jsonl_fast(path: Path) -> ParsedFile | None:
    """Arrow's JSON reader, when its columns are what the careful reader would make of the
    records (text as text, integer glucose) and no line is blank; None otherwise."""
    data = path.read_bytes()
    first_end = data.find(b"\n")
    try:
        first = json.loads(data[: first_end if first_end >= 0 else len(data)])
        mapping = _column_map(list(first), str(path)) if isinstance(first, dict) else None
    except (ValueError, InvalidInput):
        return None  # the careful reader names the problem
    if mapping is None:
        return None
    text_columns = {c for raw, c in mapping.items() if c is not None and raw != "glucose"}
    table = None
    strict = _jsonl_schema(first, text_columns)
    if strict is not None:  # every record like the first: nothing to infer
        table = _arrow_json(data, strict, "error")
    if table is None:  # other fields or types later on: Arrow infers all but the text columns
        text = pa.schema([pa.field(c, pa.string()) for c in sorted(text_columns)])
        table = _arrow_json(data, text, "infer")
    if table is None:
        return None
    physical_lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if table.num_rows != physical_lines or table.num_rows == 0:
        return None  # a blank line (skipped: lines would shift)
    try:
        mapping = _column_map(table.column_names, str(path))
    except InvalidInput:
        return None
    columns: dict[str, pa.ChunkedArray] = {}
    for raw, name in mapping.items():
        if name is None or name in columns:
            continue
        column = table[name]
        integers = raw == "glucose" and pa.types.is_int64(column.type)
        if not (integers or pa.types.is_string(column.type) or pa.types.is_null(column.type)):
            return None  # numbers that ``str`` would write differently, nested values, …
        columns[name] = column if integers else column.cast(pa.string())
    lines = pa.array(np.arange(1, table.num_rows + 1, dtype=np.int64))
    return ParsedFile(_build(lines, columns, mapping))


def _arrow_json(data: bytes, schema: pa.Schema, unexpected: str) -> pa.Table | None:
    options = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior=unexpected)
    try:
        return pa_json.read_json(pa.py_buffer(data), parse_options=options)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _jsonl_schema(first: dict[str, Any], text_columns: set[str]) -> pa.Schema | None:
    """Every field of the first record, typed as it is there (the raw-row text columns as text),
    so Arrow infers nothing and refuses any later record with another field or another type;
    None when a value there (null, an object, a list) does not tell its type."""
    fields = []
    for name, value in first.items():
        type_ = pa.string() if name in text_columns else _JSON_TYPES.get(type(value))
        if type_ is None:
            return None
        fields.append(pa.field(name, type_))
    return pa.schema(fields)


def _read_jsonl_careful(path: Path) -> ParsedFile:
    source = str(path)
    records: list[Mapping[str, Any]] = []
    lines: list[int] = []
    try:
        with path.open(encoding="utf-8") as f:
            for number, text in enumerate(f, start=1):
                if not text.strip():
                    continue
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as err:
                    raise InvalidInput(
                        f"not valid JSON ({err.msg}); each line must be one JSON object",
                        source=source,
                        line=number,
                    ) from err
                if not isinstance(record, dict):
                    raise InvalidInput(
                        "each line must be one JSON object", source=source, line=number
                    )
                records.append(record)
                lines.append(number)
    except UnicodeDecodeError as err:
        raise InvalidInput(f"not UTF-8 text (byte {err.start})", source=source) from err
    if not records:
        raise InvalidInput("the file has no records; nothing to ingest", source=source)
    return ParsedFile(raw_rows_from_records(records, source=source, lines=lines))


def read_json_array(path: Path) -> ParsedFile:
    """A JSON array of records; a record's line is its 1-based index in the array."""
    source = str(path)
    try:
        document = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InvalidInput(f"not valid JSON: {err}", source=source) from err
    if not isinstance(document, list) or not all(isinstance(r, dict) for r in document):
        raise InvalidInput("expected a JSON array of objects, one per reading", source=source)
    if not document:
        raise InvalidInput("the array has no records; nothing to ingest", source=source)
    return ParsedFile(raw_rows_from_records(document, source=source))


def raw_rows_from_records(
    records: Sequence[Mapping[str, Any]], *, source: str, lines: Iterable[int] | None = None
) -> pa.Table:
    """Raw rows from JSON-like records; ``lines`` defaults to 1, 2, … (the record index + 1)."""
    names: dict[str, None] = {}
    for keys in dict.fromkeys(tuple(record) for record in records):
        names.update(dict.fromkeys(keys))
    mapping = _column_map(list(names), source)
    columns = {
        c: _record_column([r.get(c) for r in records], keep_integers=c == mapping["glucose"])
        for c in mapping.values()
        if c is not None
    }
    numbers = list(lines) if lines is not None else list(range(1, len(records) + 1))
    return _build(pa.array(numbers, pa.int64()), columns, mapping)


def _record_column(values: list[Any], *, keep_integers: bool) -> pa.Array:
    """One field of the records as text (a number as ``str`` writes it), or as integers when
    ``keep_integers`` and every value is an integer (Arrow writes them as ``str`` does)."""
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        array = None  # mixed kinds: each value is written as text below
    if array is not None:
        if pa.types.is_string(array.type) or pa.types.is_null(array.type):
            return array.cast(pa.string())
        if pa.types.is_int64(array.type):
            return array if keep_integers else array.cast(pa.string())
    return pa.array([_text(v) for v in values], pa.string())


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def _is_number(type_: pa.DataType) -> bool:
    return bool(pa.types.is_integer(type_) or pa.types.is_floating(type_))


def read_parquet(path: Path) -> ParsedFile:
    source = str(path)
    try:
        schema = pq.read_schema(path)
        mapping = _column_map(schema.names, source)
        wanted = sorted({c for c in mapping.values() if c is not None})
        table = pq.read_table(path, columns=wanted)
    except (pa.ArrowInvalid, OSError) as err:
        raise InvalidInput(f"not a readable Parquet file: {err}", source=source) from err
    if table.num_rows == 0:
        raise InvalidInput("the file has no rows; nothing to ingest", source=source)
    columns: dict[str, pa.ChunkedArray] = {}
    for name in wanted:
        column = table[name]
        if name == mapping["time"] and pa.types.is_timestamp(column.type) and column.type.tz:
            columns["_instant"] = column.cast(pa.timestamp("us", tz="UTC"))
            continue
        if pa.types.is_dictionary(column.type) and pa.types.is_string(column.type.value_type):
            columns[name] = column  # a dictionary-encoded string column stays encoded
        elif name == mapping["glucose"] and _is_number(column.type):
            columns[name] = column  # numbers stay numbers (the raw-row contract allows it)
        else:
            columns[name] = column if column.type == pa.string() else column.cast(pa.string())
    lines = pa.array(np.arange(1, table.num_rows + 1, dtype=np.int64))
    return ParsedFile(_build(lines, columns, mapping))
