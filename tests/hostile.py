"""Hostile inputs for the fuzz tests (test support): values a careless or malicious sender puts
where a reading's field belongs, and Hypothesis strategies that mutate a valid file or JSON
document with them (cells, JSON leaves, Parquet columns, raw bytes)."""

from __future__ import annotations

import io
import json
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

# Text a field may hold: numbers no sensor writes, times no clock shows, zones that do not exist,
# separators, control characters, and sizes far past any limit.
HOSTILE_TEXT: Final = (
    "",
    " ",
    "inf",
    "-inf",
    "Infinity",
    "NaN",
    "nan",
    "1e309",
    "-1e309",
    "1e-400",
    "-0",
    "-1",
    "0",
    "9" * 400,
    "1" + "0" * 30,
    "0x1F",
    "1_000",
    "１２３",  # fullwidth digits  # noqa: RUF001
    "١٢٣",  # Arabic-Indic digits
    "¹²⁰",  # superscript digits: str.isdigit() is true, int() refuses them
    "12,5",
    "12.5.5",
    "null",
    "None",
    "true",
    "\x00",
    "\u202e120",
    "\ufeff",
    "\r",
    "\n",
    '"',
    "'",
    ",",
    ";",
    "\t",
    "Mars/Olympus_Mons",
    "../../../../etc/passwd",
    "UTC+25",
    "Europe/Londn",
    "2026-02-30T25:61:61",
    "2200-01-01T00:00:00Z",
    "2199-12-31T23:59:59+00:00",
    "1900-01-01T00:00:00Z",
    "1899-12-31T23:59:59Z",
    "0001-01-01T00:00:00",
    "9999-12-31T23:59:59+14:00",
    "99999-01-01T00:00:00",
    "-0001-01-01T00:00:00",
    "2026-03-01T08:00:00+23:59",
    "2026-03-01T08:00:00+99:99",
    "2026-03-01T08:00:00Z[Mars/Olympus_Mons]",
    "2026-03-01 08:00",
    "1772352000",
    "1772352000000",
    "'; DROP TABLE readings; --",
    "<script>alert(1)</script>",
    "\U0001f489" * 200,
    "A" * 70_000,
    "mg/dL",
    "mmol/L",
    "mg/dl ",
    "MMOL/L",
    "kg",
    "Low",
    "High",
    "EGV",
    "sgv",
    "cbg",
    "Observation",
)

# Reproducible (derandomized, no example database); no shrinking, which would spend the time
# budget on minimising large files: a failure shows the unshrunk draws, enough to reproduce.
FUZZ = settings(
    phases=[Phase.explicit, Phase.generate],
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# JSON text for a value: numbers JSON has no words for, numbers past every float, wrong types,
# deep nesting, escapes of lone surrogates and a very long string.
HOSTILE_JSON: Final = (
    "Infinity",
    "-Infinity",
    "NaN",
    "1e999",
    "-1e999",
    "1e-999",
    "1" + "0" * 400,
    "9" * 5_000,  # past Python's 4,300-digit limit for int()
    "-9223372036854775809",
    "18446744073709551616",
    "5e-324",
    "1.7976931348623157e308",
    "-0.0",
    "0",
    "true",
    "false",
    "null",
    "[]",
    "{}",
    "[1,2,3]",
    '{"$gt":""}',
    '{"a":{"b":{"c":[null]}}}',
    '"\\ud800"',
    '"\\udfff\\ud800"',
    '"\\u0000"',
    '"' + "x" * 70_000 + '"',
    "[" * 100_000 + "]" * 100_000,
    '{"a":' * 5_000 + "1" + "}" * 5_000,
    "01",
    "1.",
    ".5",
    "+1",
    "0x10",
    *(json.dumps(text) for text in HOSTILE_TEXT),
)

# Bytes that are not UTF-8 (or are, but must not appear), to splice anywhere.
HOSTILE_BYTES: Final = (
    b"\xff",
    b"\xfe\xff",
    b"\xc3\x28",
    b"\xed\xa0\x80",  # an encoded surrogate
    b"\xf4\x90\x80\x80",  # past U+10FFFF
    b"\xc0\xaf",  # overlong
    b"\x00",
    b"\xef\xbb\xbf",
    b"\r",
    b"\n",
    b"\r\n",
    b'"',
    b",",
    b";",
    b"\\",
    b"[",
    b"{",
    b"PAR1",
)

BOMS: Final = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf\xef\xbb\xbf")


def _marker(i: int) -> str:
    return f"__hostile_{i}__"


@st.composite
def byte_mutation(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` after one to three byte-level edits: truncation, a BOM, line ends changed to
    CR only or CRLF, hostile bytes spliced in, a range deleted, repeated or bit-flipped."""
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(
                ("truncate", "bom", "cr", "crlf", "splice", "delete", "repeat", "flip", "strip")
            )
        )
        at = draw(st.integers(0, len(data)))
        if kind == "truncate":
            data = data[:at]
        elif kind == "bom":
            data = draw(st.sampled_from(BOMS)) + data
        elif kind == "cr":
            data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r")
        elif kind == "crlf":
            data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        elif kind == "splice":
            data = data[:at] + draw(st.sampled_from(HOSTILE_BYTES)) + data[at:]
        elif kind == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 64)) :]
        elif kind == "repeat":
            span = data[at : at + draw(st.integers(1, 256))]
            data = data[:at] + span * draw(st.integers(2, 50)) + data[at:]
        elif kind == "flip" and data:
            i = min(at, len(data) - 1)
            data = data[:i] + bytes([data[i] ^ (1 << draw(st.integers(0, 7)))]) + data[i + 1 :]
        elif kind == "strip":
            data = data.strip()
    return data


@st.composite
def cell_mutation(
    draw: st.DrawFn, text: str, *, delimiter: str, first_record: int, plain: bool = False
) -> str:
    """``text`` (a delimited export) with one to three cells of its records (lines from
    ``first_record``, 0-based) replaced by hostile text. ``plain``: only values that keep the
    record's shape (no delimiter, quote or line end), so every record is still one record."""
    lines = text.split("\n")
    records = [i for i in range(first_record, len(lines)) if lines[i].strip()]
    if not records:
        return text
    pool = HOSTILE_TEXT
    if plain:
        pool = tuple(v for v in HOSTILE_TEXT if not set(v) & {delimiter, '"', "\r", "\n"})
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.sampled_from(records))
        cells = lines[index].split(delimiter)
        column = draw(st.integers(0, len(cells) - 1))
        value = draw(st.sampled_from(pool))
        if not plain and draw(st.booleans()):
            value = '"' + value.replace('"', '""') + '"'
        cells[column] = value
        if not plain and draw(st.integers(0, 9)) == 0:
            cells = cells[: draw(st.integers(0, len(cells)))]  # a short record
        lines[index] = delimiter.join(cells)
    return "\n".join(lines)


def _paths(node: Any, prefix: tuple[Any, ...], out: list[tuple[Any, ...]], limit: int) -> None:
    if len(out) >= limit:
        return
    out.append(prefix)
    if isinstance(node, dict):
        for key, value in node.items():
            _paths(value, (*prefix, key), out, limit)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _paths(value, (*prefix, i), out, limit)


def _replace(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return document


@st.composite
def json_mutation(draw: st.DrawFn, document: Any, *, min_depth: int = 0) -> bytes:
    """``document`` as JSON text with one to three of its values (at ``min_depth`` or deeper)
    replaced by hostile JSON, a key removed or a hostile key added; encoded as UTF-8."""
    document = json.loads(json.dumps(document))  # a private copy
    fragments: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        paths: list[tuple[Any, ...]] = []
        _paths(document, (), paths, 5_000)
        paths = [p for p in paths if len(p) >= min_depth]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        kind = draw(st.sampled_from(("value", "value", "value", "drop", "add")))
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        if kind == "drop" and path and isinstance(parent, dict):
            del parent[path[-1]]
            continue
        fragments.append(draw(st.sampled_from(HOSTILE_JSON)))
        marker = _marker(len(fragments) - 1)
        node = parent[path[-1]] if path else document
        if kind == "add" and isinstance(node, dict):
            node[draw(st.sampled_from(("sgv", "time", "value", "tz", "units", "", "x")))] = marker
        else:
            document = _replace(document, path, marker)
    text = json.dumps(document)
    for i, fragment in enumerate(fragments):
        text = text.replace(json.dumps(_marker(i)), fragment)
    return text.encode("utf-8", "surrogatepass")


def _hostile_column(draw: st.DrawFn, n: int) -> pa.Array:
    kind = draw(
        st.sampled_from(
            ("float", "int", "text", "binary", "bool", "list", "struct", "ts", "null", "dict")
        )
    )
    if kind == "float":
        pool = [float("inf"), float("-inf"), float("nan"), 1e308, -0.0, 5e-324, 120.0]
        return pa.array([draw(st.sampled_from(pool)) for _ in range(n)], pa.float64())
    if kind == "int":
        pool = [2**63 - 1, -(2**63), 0, -1, 1772352000, 1772352000000, 120]
        return pa.array([draw(st.sampled_from(pool)) for _ in range(n)], pa.int64())
    if kind == "text":
        return pa.array([draw(st.sampled_from(HOSTILE_TEXT)) for _ in range(n)], pa.string())
    if kind == "binary":
        return pa.array([draw(st.sampled_from(HOSTILE_BYTES)) for _ in range(n)], pa.binary())
    if kind == "bool":
        return pa.array([draw(st.booleans()) for _ in range(n)], pa.bool_())
    if kind == "list":
        return pa.array([[1, 2]] * n, pa.list_(pa.int64()))
    if kind == "struct":
        return pa.array([{"a": 1}] * n, pa.struct([("a", pa.int64())]))
    if kind == "ts":
        unit = draw(st.sampled_from(("s", "ms", "us", "ns")))
        tz = draw(st.sampled_from((None, "UTC", "+14:00", "Europe/London")))
        pool = [0, 1, -(2**40), 2**40, 1772352000]
        return pa.array([draw(st.sampled_from(pool)) for _ in range(n)], pa.timestamp(unit, tz))
    if kind == "null":
        return pa.nulls(n)
    return pa.array(
        [draw(st.sampled_from(HOSTILE_TEXT[:20])) for _ in range(n)]
    ).dictionary_encode()


@st.composite
def parquet_mutation(draw: st.DrawFn, table: pa.Table) -> bytes:
    """``table`` as Parquet bytes after one to three column edits: a column replaced by one of
    a hostile type or values, renamed (possibly to another column's name) or dropped; or rows
    cut to none."""
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(("replace", "replace", "rename", "drop", "empty")))
        names = table.column_names
        if not names:
            break
        index = draw(st.integers(0, len(names) - 1))
        if kind == "replace":
            table = table.set_column(index, names[index], _hostile_column(draw, table.num_rows))
        elif kind == "rename":
            new = draw(st.sampled_from((*names, "", "Glucose", "TIME", "x" * 300)))
            table = table.rename_columns([new if i == index else n for i, n in enumerate(names)])
        elif kind == "drop":
            table = table.remove_column(index)
        else:
            table = table.slice(0, 0)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()
