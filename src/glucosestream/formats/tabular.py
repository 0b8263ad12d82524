"""Plain tabular inputs: CSV, JSON lines, Parquet, and JSON records posted over HTTP.

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
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from glucosestream.errors import InvalidInput

__all__ = ["RAW_COLUMNS", "raw_rows_from_records", "read_csv", "read_jsonl", "read_parquet"]

RAW_COLUMNS: Final = ("line", "patient_id", "device_id", "time", "glucose", "unit", "tz")

_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "patient_id": ("patient_id", "id", "subject", "subject_id"),
    "device_id": ("device_id", "device", "serial"),
    "time": ("time", "ts", "timestamp", "datetime"),
    "glucose": ("glucose_mg_dl", "gl", "glucose", "value", "sgv"),
    "unit": ("unit", "units"),
    "tz": ("tz", "timezone", "time_zone"),
}
_MMOL_COLUMN: Final = "glucose_mmol_l"


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


def _build(
    lines: Sequence[int],
    columns: Mapping[str, Sequence[str | None]],
    mapping: dict[str, str | None],
) -> pa.Table:
    n = len(lines)
    data: dict[str, pa.Array] = {"line": pa.array(lines, type=pa.int64())}
    for raw in RAW_COLUMNS[1:]:
        source_column = mapping.get(raw)
        if source_column is None:
            values: Sequence[str | None] = [None] * n
            if raw == "unit" and "_mmol" in mapping:
                values = ["mmol/L"] * n
            data[raw] = pa.array(values, type=pa.string())
        else:
            data[raw] = pa.array(columns[source_column], type=pa.string())
    return pa.table(data)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def read_csv(path: Path) -> pa.Table:
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
    return _build(lines, columns, mapping)


def read_jsonl(path: Path) -> pa.Table:
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
    return raw_rows_from_records(records, source=source, lines=lines)


def raw_rows_from_records(
    records: Sequence[Mapping[str, Any]], *, source: str, lines: Iterable[int] | None = None
) -> pa.Table:
    """Raw rows from JSON-like records; ``lines`` defaults to 1, 2, … (the record index + 1)."""
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    mapping = _column_map(list(names), source)
    columns = {c: [_text(r.get(c)) for r in records] for c in mapping.values() if c is not None}
    numbers = list(lines) if lines is not None else list(range(1, len(records) + 1))
    return _build(numbers, columns, mapping)


def read_parquet(path: Path) -> pa.Table:
    source = str(path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise InvalidInput(f"not a readable Parquet file: {err}", source=source) from err
    if table.num_rows == 0:
        raise InvalidInput("the file has no rows; nothing to ingest", source=source)
    mapping = _column_map(table.column_names, source)
    columns: dict[str, list[str | None]] = {}
    for name in {c for c in mapping.values() if c is not None}:
        column = table[name]
        if pa.types.is_timestamp(column.type) and column.type.tz is not None:
            column = column.cast(pa.timestamp("us", tz="UTC"))
        columns[name] = column.cast(pa.string()).to_pylist()
    return _build(list(range(1, table.num_rows + 1)), columns, mapping)
