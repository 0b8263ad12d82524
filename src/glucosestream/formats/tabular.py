"""Plain tabular inputs: CSV, JSON lines, a JSON array, Parquet, and records posted over HTTP.

Layout: one reading per row, with a header (CSV) or keys (JSON) naming the columns. Recognised
column names (case and surrounding spaces do not count; the first match wins):

    patient    patient_id, id, subject, subject_id              (or --patient for a whole file)
    device     device_id, device, serial                          (optional)
    time       time, ts, timestamp, datetime                      ISO 8601; without an offset the
                                                                  time is local to ``tz``
    glucose    glucose_mg_dl, gl, glucose, value, sgv             with ``unit`` (default mg/dL)
               glucose_mmol_l                                     in mmol/L
    unit       unit, units                                        mg/dL or mmol/L (optional)
    tz         tz, timezone, time_zone                            IANA zone (optional)

JSON records (a JSON array, JSON lines, records posted to ``/v1/readings``) may also carry the
uploader's trend: ``direction`` (a Nightscout direction name, ``readings.DIRECTIONS``) and
``rate_mg_dl_min`` (a number). An unknown direction or a rate that is no number is dropped, not
quarantined; CSV and Parquet columns of those names are not read.

A CSV header (or Parquet schema) naming a column twice ("time" and "Time") is refused: it is
the file's structure. JSON records each have their own keys: records may spell a column
differently, and one with two keys for a column is quarantined alone ("two fields name the
time"). A row with both glucose_mg_dl and glucose_mmol_l is one reading when they agree within
their rounding, quarantined when they do not (see ``columns``). In JSON, a patient id must be a
string: a number, array or object quarantines its record (it would otherwise name a patient of
its own). Text that is not UTF-8 (a JSON line with bad bytes, a lone surrogate escape)
quarantines its record; in CSV it is one error naming the line. CSV with old Mac line ends (CR
only) is read as lines.

Rows stay columnar from the file on (a Parquet timestamp with a zone is passed on as an instant,
and Parquet numbers stay numbers, not text): CSV is read by Arrow's reader whenever each record
is one line (then a record's line is its row number + 1); otherwise, and to report a malformed
file precisely, by the standard library's reader. A row that repeats the header is quarantined.
JSON lines are read by Arrow's JSON reader when what it makes of them is exactly what the
standard library's reader would (text fields as text, integer glucose, no blank line, no
repeated key); anything else (and every malformed file) goes to the careful reader. Records
posted over HTTP are turned into columns field by field, each in one Arrow call.

Large files are also read in chunks of about a given number of readings (``iter_csv``,
``iter_jsonl``, ``iter_parquet``), which ingest writes as several raw batches: Parquet by record
batches, text by blocks of whole lines that the readers above parse one at a time (a block the
fast reader cannot vouch for goes to the careful one; for CSV, from there to the end, since a
quoted value may span the blocks). A file smaller than one chunk is read exactly as above.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from glucosestream.errors import InvalidInput
from glucosestream.formats.columns import (
    build_rows,
    column_key,
    column_map,
    is_number,
    record_column_map,
)
from glucosestream.formats.jsontext import decode_json, field_text
from glucosestream.formats.rows import NOT_UTF8, ParsedFile, text_array, with_trend_fields

if TYPE_CHECKING:
    import _csv

__all__ = [
    "iter_csv",
    "iter_jsonl",
    "iter_parquet",
    "json_array_document",
    "raw_rows_from_records",
    "read_csv",
    "read_json_array",
    "read_jsonl",
    "read_parquet",
]

_REPEATED_HEADER: Final = "a repeated header row"
# Quarantine reasons of rows the readers already know are bad.
PATIENT_NOT_TEXT: Final = "patient id must be a string"
_UNREAD_ID: Final = frozenset({NOT_UTF8, PATIENT_NOT_TEXT})  # the row's patient id is not read
_HEAD_BYTES: Final = 1 << 16  # enough lines to tell the average line length
_LF: Final = 0x0A
_CR: Final = 0x0D
# The trend fields of JSON records, by column key, and the raw column each feeds.
_TREND_FIELDS: Final = {"direction": "direction", "rate_mg_dl_min": "rate"}
_JSON_TYPES: Final[dict[type, pa.DataType]] = {
    str: pa.string(),
    bool: pa.bool_(),
    int: pa.int64(),
    float: pa.float64(),
}


def read_csv(path: Path) -> ParsedFile:
    source = str(path)
    data = path.read_bytes()
    if not data or data.isspace():
        raise InvalidInput("the file is empty; nothing to ingest", source=source)
    if b"\n" not in data and b"\r" in data:
        data = data.replace(b"\r", b"\n")  # old Mac line ends (CR only): one line each
    table = _read_csv_fast(data, source)
    if table is None:
        table = next(_csv_careful_chunks(path, sys.maxsize, data=data))
    return ParsedFile(table)


def iter_csv(path: Path, chunk_rows: int) -> Iterator[ParsedFile]:
    """The rows of a CSV file in chunks of about ``chunk_rows`` (one chunk: ``read_csv``).

    The file is read in blocks of whole lines, each parsed by Arrow's reader with the header
    put in front; from the first block Arrow's reader cannot vouch for (a quoted value over two
    lines, a blank line), the rest of the file goes through the careful reader, which streams.
    """
    source = str(path)
    chunk_bytes = _chunk_bytes(path, chunk_rows)
    if chunk_bytes is None:
        yield read_csv(path)
        return
    with path.open("rb") as f:
        header = f.readline()
        offset, line = len(header), 2
        while block := _whole_lines(f, chunk_bytes):
            blank = block.startswith((b"\n", b"\r\n"))
            table = None if blank else _read_csv_fast(header + block, source, first_line=line)
            if table is None:
                for rows in _csv_careful_chunks(path, chunk_rows, offset=offset, first_line=line):
                    yield ParsedFile(rows)
                return
            offset, line = offset + len(block), line + block.count(b"\n")
            del block  # not held while the chunk is worked on
            yield ParsedFile(table)


def _chunk_bytes(path: Path, chunk_rows: int) -> int | None:
    """Bytes that hold about ``chunk_rows`` lines (from the first 64 KiB); None when the whole
    file is one chunk."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(_HEAD_BYTES)
    per_line = len(head) / max(1, head.count(b"\n"))
    chunk_bytes = max(1, int(per_line * chunk_rows))
    return None if size <= chunk_bytes or b"\n" not in head else chunk_bytes


def _whole_lines(f: BinaryIO, size: int) -> bytes:
    """About ``size`` bytes of ``f``, up to the end of a line."""
    block = f.read(size)
    return block if not block or block.endswith(b"\n") else block + f.readline()


def _read_csv_fast(data: bytes, source: str, *, first_line: int = 2) -> pa.Table | None:
    """Arrow's reader, when every record is one line; None when the careful reader must decide.
    ``first_line`` is the line of the first record (after the header)."""
    ends = _line_ends(data)
    if b"\x00" in data or _has_blank_line(data, ends):
        return None  # blank lines (skipped, and they shift row numbers) or binary junk
    header_end = int(ends[0]) if len(ends) else -1
    try:
        first_text = data[: header_end if header_end >= 0 else len(data)].decode("utf-8-sig")
        header = next(csv.reader([first_text]), [])
    except (UnicodeDecodeError, csv.Error):
        return None  # the careful reader names the problem
    mapping = column_map(header, source)
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
    physical_lines = len(ends) + (0 if data.endswith(b"\n") else 1)
    if table.num_rows != physical_lines - 1:
        return None  # a quoted value spans lines: row numbers are not line numbers
    lines = pa.array(np.arange(first_line, table.num_rows + first_line, dtype=np.int64))
    rows = build_rows(lines, {c: table[c] for c in wanted}, mapping)
    time_name = str(mapping["time"]).encode("utf-8")
    if header_end >= 0 and data.find(time_name, header_end) < 0:
        return rows  # no row can repeat the header: its time column's name appears only there
    return _mark_repeated_header(rows, mapping)


def _csv_careful_chunks(
    path: Path,
    chunk_rows: int,
    *,
    offset: int = 0,
    first_line: int = 1,
    data: bytes | None = None,
) -> Iterator[pa.Table]:
    """The standard library's reader, from byte ``offset`` (the start of line ``first_line``;
    past the header when not 0), in tables of at most ``chunk_rows`` rows. ``data``: the file's
    bytes when already read (and perhaps mended)."""
    source = str(path)
    try:
        with path.open("rb") if data is None else io.BytesIO(data) as raw:
            if offset:
                header = next(csv.reader([raw.readline().decode("utf-8-sig")]), None)
                raw.seek(max(offset, raw.tell()))
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            reader = csv.reader(text)
            if not offset:
                header = next(reader, None)
            if not header:
                raise InvalidInput("the file is empty; nothing to ingest", source=source)
            shift = first_line - 1 if offset else 0
            yield from _careful_rows(reader, header, shift, chunk_rows, source)
    except UnicodeDecodeError as err:
        line, at = _first_bad_utf8(path if data is None else data)
        raise InvalidInput(
            f"not UTF-8 text (byte {at}); export the file again as UTF-8 CSV",
            source=source,
            line=line,
        ) from err
    except csv.Error as err:
        raise InvalidInput(f"not valid CSV: {err}", source=source) from err


def _careful_rows(
    reader: _csv.Reader, header: list[str], shift: int, chunk_rows: int, source: str
) -> Iterator[pa.Table]:
    """The rows after the header, in tables of at most ``chunk_rows`` rows (one table, maybe
    empty, when ``chunk_rows`` is ``sys.maxsize``); a row of another width is refused."""
    mapping = column_map(header, source)
    wanted = {c: header.index(c) for c in mapping.values() if c is not None}
    columns: dict[str, list[str | None]] = {c: [] for c in wanted}
    lines: list[int] = []
    for row in reader:
        if not row:
            continue
        line = reader.line_num + shift
        if len(row) != len(header):
            raise InvalidInput(
                f"expected {len(header)} fields as in the header, found {len(row)}; "
                "fix or remove this line",
                source=source,
                line=line,
            )
        lines.append(line)
        for name, index in wanted.items():
            columns[name].append(row[index])
        if len(lines) == chunk_rows:
            yield _careful_table(lines, columns, mapping)
            lines, columns = [], {c: [] for c in wanted}
    if lines or chunk_rows == sys.maxsize:
        yield _careful_table(lines, columns, mapping)


def _first_bad_utf8(source: Path | bytes) -> tuple[int, int]:
    """The line and byte offset of the first byte of ``source`` that is not UTF-8."""
    line, offset = 1, 0
    with source.open("rb") if isinstance(source, Path) else io.BytesIO(source) as raw:
        while block := raw.read(1 << 20) + raw.readline():  # whole lines: no cut character
            try:
                block.decode("utf-8")
            except UnicodeDecodeError as err:
                return line + block.count(b"\n", 0, err.start), offset + err.start
            line, offset = line + block.count(b"\n"), offset + len(block)
    return line, offset


def _careful_table(
    lines: list[int], columns: dict[str, list[str | None]], mapping: dict[str, str | None]
) -> pa.Table:
    arrays = {name: pa.array(values, pa.string()) for name, values in columns.items()}
    return _mark_repeated_header(build_rows(pa.array(lines, pa.int64()), arrays, mapping), mapping)


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


def iter_jsonl(path: Path, chunk_rows: int) -> Iterator[ParsedFile]:
    """The records of a JSON-lines file in chunks of about ``chunk_rows`` lines (one chunk:
    ``read_jsonl``). Lines are independent, so each block of whole lines is read on its own:
    by Arrow's reader when it can vouch for it, else by the careful one."""
    source = str(path)
    chunk_bytes = _chunk_bytes(path, chunk_rows)
    if chunk_bytes is None:
        yield read_jsonl(path)
        return
    found = False
    with path.open("rb") as f:
        offset, line = 0, 1
        while block := _whole_lines(f, chunk_bytes):
            parsed = _jsonl_fast(block, source, first_line=line)
            if parsed is None:
                parsed = _jsonl_careful(block, source, first_line=line, first_byte=offset)
            offset, line = offset + len(block), line + block.count(b"\n")
            del block  # not held while the chunk is worked on
            if parsed is not None:
                found = True
                yield parsed
    if not found:
        raise InvalidInput("the file has no records; nothing to ingest", source=source)


def _read_jsonl_fast(path: Path) -> ParsedFile | None:
    if path.stat().st_size == 0:
        return None
    # mapped, not read into fresh memory (first touches of which cost as much as parsing)
    with pa.memory_map(str(path)) as mapped:
        return _jsonl_fast(mapped.read_buffer(), str(path))


def _line_ends(data: bytes | pa.Buffer) -> np.ndarray:
    """The offsets of every line feed in ``data`` (scanned in blocks, to keep memory small)."""
    view = np.frombuffer(data, np.uint8)
    block = 1 << 22
    found = [np.flatnonzero(view[i : i + block] == _LF) + i for i in range(0, len(view), block)]
    return np.concatenate(found) if found else np.zeros(0, np.int64)


def _has_blank_line(data: bytes, ends: np.ndarray) -> bool:
    """Whether a line of ``data`` (after the first) is empty: a line feed right after another,
    or after a carriage return that follows one."""
    gaps = np.diff(ends)
    if (gaps == 1).any():
        return True
    after = ends[:-1][gaps == 2] + 1
    return bool((np.frombuffer(data, np.uint8)[after] == _CR).any())


def _jsonl_fast(data: bytes | pa.Buffer, source: str, *, first_line: int = 1) -> ParsedFile | None:
    """Arrow's JSON reader, when its columns are what the careful reader would make of the
    records (text as text, integer glucose) and no line is blank; None otherwise."""
    view = memoryview(data)
    ends = _line_ends(data)
    first_end = int(ends[0]) if len(ends) else len(view)
    try:
        first = decode_json(view[:first_end].tobytes(), source=source)
        mapping = column_map(list(first), source) if isinstance(first, dict) else None
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
    ends_with_break = len(ends) > 0 and int(ends[-1]) == len(view) - 1
    physical_lines = len(ends) + (0 if ends_with_break else 1)
    if table.num_rows != physical_lines or table.num_rows == 0:
        return None  # a blank line (skipped: lines would shift)
    try:
        mapping = column_map(table.column_names, source)
    except InvalidInput:
        return None
    if any(column_key(name) in _TREND_FIELDS for name in table.column_names):
        return None  # the careful reader reads the trend fields
    columns: dict[str, pa.ChunkedArray] = {}
    for raw, name in mapping.items():
        if name is None or name in columns:
            continue
        column = table[name]
        integers = raw == "glucose" and pa.types.is_int64(column.type)
        if not (integers or pa.types.is_string(column.type) or pa.types.is_null(column.type)):
            return None  # numbers that ``str`` would write differently, nested values, …
        if not _valid_text(column):
            return None  # bytes that are not UTF-8: the careful reader quarantines their rows
        columns[name] = column if integers else column.cast(pa.string())
    n = table.num_rows
    lines = pa.array(np.arange(first_line, n + first_line, dtype=np.int64))
    return ParsedFile(build_rows(lines, columns, mapping))


def _valid_text(column: pa.ChunkedArray) -> bool:
    """Whether a text column holds only UTF-8 (Arrow's JSON reader does not check)."""
    if not pa.types.is_string(column.type):
        return True
    try:
        column.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _arrow_json(data: bytes, schema: pa.Schema, unexpected: str) -> pa.Table | None:
    options = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior=unexpected)
    try:
        table = pa_json.read_json(pa.py_buffer(data), parse_options=options)
        table.schema.names  # noqa: B018 (a key that is not UTF-8 fails here, not later)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError):
        return None
    return table


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
    parsed = _jsonl_careful(path.read_bytes(), str(path))
    if parsed is None:
        raise InvalidInput("the file has no records; nothing to ingest", source=str(path))
    return parsed


def _jsonl_careful(
    data: bytes, source: str, *, first_line: int = 1, first_byte: int = 0
) -> ParsedFile | None:
    """The standard library's reader over whole lines that start at line ``first_line`` (byte
    ``first_byte`` of the file); None when they hold no record (only blank lines). A line that
    is not UTF-8 is read with the bad bytes replaced, and its reading quarantined."""
    if first_byte == 0:
        data = data.removeprefix(b"\xef\xbb\xbf")  # a byte-order mark
    records: list[Mapping[str, Any]] = []
    lines: list[int] = []
    problems: list[str | None] = []
    for number, raw_line in enumerate(data.splitlines(), start=first_line):
        try:
            line_text, problem = raw_line.decode("utf-8"), None
        except UnicodeDecodeError:
            line_text, problem = raw_line.decode("utf-8", "replace"), NOT_UTF8
        if not line_text.strip():
            continue
        try:
            record = decode_json(line_text, source=source, line=number)
        except json.JSONDecodeError as err:
            raise InvalidInput(
                f"not valid JSON ({err.msg}); each line must be one JSON object",
                source=source,
                line=number,
            ) from err
        if not isinstance(record, dict):
            raise InvalidInput("each line must be one JSON object", source=source, line=number)
        records.append(record)
        lines.append(number)
        problems.append(problem)
    if not records:
        return None
    rows = raw_rows_from_records(records, source=source, lines=lines, problems=problems)
    return ParsedFile(rows)


def read_json_array(path: Path) -> ParsedFile:
    """A JSON array of records; a record's line is its 1-based index in the array."""
    source = str(path)
    try:
        document = decode_json(path.read_bytes(), source=source)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InvalidInput(f"not valid JSON: {err}", source=source) from err
    return json_array_document(document, source)


def json_array_document(document: object, source: str) -> ParsedFile:
    """The rows of a JSON array of records already decoded."""
    if not isinstance(document, list) or not all(isinstance(r, dict) for r in document):
        raise InvalidInput("expected a JSON array of objects, one per reading", source=source)
    if not document:
        raise InvalidInput("the array has no records; nothing to ingest", source=source)
    return ParsedFile(raw_rows_from_records(document, source=source))


def raw_rows_from_records(
    records: Sequence[Mapping[str, Any]],
    *,
    source: str,
    lines: Iterable[int] | None = None,
    problems: Sequence[str | None] | None = None,
) -> pa.Table:
    """Raw rows from JSON-like records; ``lines`` defaults to 1, 2, … (the record index + 1);
    ``problems``: what a reader already knows is wrong with each record (None: nothing).

    A record is quarantined, alone, when its patient id is not a JSON string (a number or an
    array would otherwise name a patient of its own) or a field holds text that is not valid
    Unicode (a lone surrogate escape); that patient id is not read. Each record's own keys
    count: one with two keys for a column ("time" and "Time") is quarantined alone, without
    that value (see ``columns.record_column_map``)."""
    names: dict[str, None] = {}
    for keys in dict.fromkeys(tuple(record) for record in records):
        names.update(dict.fromkeys(keys))
    records, mapping, ambiguous = record_column_map(records, list(names), source)
    problem: list[str | None] = list(problems) if problems is not None else [None] * len(records)
    if ambiguous is not None:
        problem = [p or a for p, a in zip(problem, ambiguous, strict=True)]
    patient = mapping["patient_id"]
    if patient is not None:
        for i, record in enumerate(records):
            value = record.get(patient)
            if value is not None and not isinstance(value, str) and problem[i] is None:
                problem[i] = PATIENT_NOT_TEXT
    columns = {
        c: _record_column(
            [r.get(c) for r in records], problem, keep_integers=c == mapping["glucose"]
        )
        for c in {c for c in mapping.values() if c is not None}
    }
    if patient is not None and any(p in _UNREAD_ID for p in problem):
        unread = pa.array([p in _UNREAD_ID for p in problem])
        columns[patient] = pc.if_else(unread, pa.scalar(None, pa.string()), columns[patient])
    numbers = list(lines) if lines is not None else list(range(1, len(records) + 1))
    table = build_rows(pa.array(numbers, pa.int64()), columns, mapping)
    trend: dict[str, str] = {}
    for key in [column_key(n) if ambiguous else n for n in names]:
        if column_key(key) in _TREND_FIELDS:
            trend.setdefault(_TREND_FIELDS[column_key(key)], key)
    table = with_trend_fields(table, records, trend) if trend else table
    if not any(p is not None for p in problem):
        return table
    index = table.schema.get_field_index("problem")
    return table.set_column(
        index, "problem", pc.coalesce(pa.array(problem, pa.string()), table["problem"])
    )


def _record_column(
    values: list[Any], problem: list[str | None], *, keep_integers: bool
) -> pa.Array:
    """One field of the records as text (a number as ``str`` writes it), or as integers when
    ``keep_integers`` and every value is an integer (Arrow writes them as ``str`` does). Text
    that is not valid Unicode is kept with the bad characters replaced, its row quarantined."""
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, UnicodeEncodeError):
        array = None  # mixed kinds: each value is written as text below
    if array is not None:
        if pa.types.is_string(array.type) or pa.types.is_null(array.type):
            return array.cast(pa.string())
        if pa.types.is_int64(array.type):
            return array if keep_integers else array.cast(pa.string())
    return text_array([field_text(v) for v in values], problem)


def read_parquet(path: Path) -> ParsedFile:
    source = str(path)
    try:
        schema = pq.read_schema(path)
        mapping = column_map(schema.names, source)
        wanted = sorted({c for c in mapping.values() if c is not None})
        table = pq.read_table(path, columns=wanted)
    except (pa.ArrowException, OSError) as err:
        raise InvalidInput(f"not a readable Parquet file: {err}", source=source) from err
    if table.num_rows == 0:
        raise InvalidInput("the file has no rows; nothing to ingest", source=source)
    return ParsedFile(_parquet_rows(table, mapping, 1, source))


def iter_parquet(path: Path, chunk_rows: int) -> Iterator[ParsedFile]:
    """The rows of a Parquet file in chunks of about ``chunk_rows``, read by record batches
    (one chunk: ``read_parquet``); a row's line stays its 1-based index in the file."""
    source = str(path)
    try:
        file = pq.ParquetFile(path)
        rows = file.metadata.num_rows
        mapping = column_map(file.schema_arrow.names, source)
    except (pa.ArrowException, OSError) as err:
        raise InvalidInput(f"not a readable Parquet file: {err}", source=source) from err
    if rows <= chunk_rows:
        yield read_parquet(path)
        return
    wanted = sorted({c for c in mapping.values() if c is not None})
    batches: list[pa.RecordBatch] = []
    first_line, pending = 1, 0
    try:
        for batch in file.iter_batches(batch_size=min(chunk_rows, 1 << 20), columns=wanted):
            batches.append(batch)
            pending += batch.num_rows
            if pending >= chunk_rows:
                yield ParsedFile(
                    _parquet_rows(pa.Table.from_batches(batches), mapping, first_line, source)
                )
                batches, first_line, pending = [], first_line + pending, 0
    except (pa.ArrowException, OSError) as err:
        raise InvalidInput(f"not a readable Parquet file: {err}", source=source) from err
    if batches:
        yield ParsedFile(_parquet_rows(pa.Table.from_batches(batches), mapping, first_line, source))


def _parquet_rows(
    table: pa.Table, mapping: dict[str, str | None], first_line: int, source: str
) -> pa.Table:
    """Raw rows from Parquet columns: zoned timestamps as instants, numbers as numbers,
    dictionary-encoded strings still encoded."""
    columns: dict[str, pa.ChunkedArray] = {}
    for name in table.column_names:
        column = table[name]
        try:
            if name == mapping["time"] and pa.types.is_timestamp(column.type) and column.type.tz:
                # nanoseconds are cut to microseconds (the lake's unit), not refused
                safe = column.type.unit != "ns"
                columns["_instant"] = column.cast(pa.timestamp("us", tz="UTC"), safe=safe)
                continue
            if pa.types.is_dictionary(column.type) and pa.types.is_string(column.type.value_type):
                columns[name] = column  # a dictionary-encoded string column stays encoded
            elif name == mapping["glucose"] and is_number(column.type):
                columns[name] = column  # numbers stay numbers (the raw-row contract allows it)
            else:
                columns[name] = column if column.type == pa.string() else column.cast(pa.string())
        except pa.ArrowException as err:
            raise InvalidInput(
                f"column {name!r} holds {column.type}, which cannot be read as text, numbers "
                "or instants; write it as text or numbers",
                source=source,
            ) from err
    n = table.num_rows
    lines = pa.array(np.arange(first_line, n + first_line, dtype=np.int64))
    return build_rows(lines, columns, mapping)
