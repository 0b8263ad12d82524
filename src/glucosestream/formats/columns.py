"""The columns of plain tabular inputs (CSV, JSON lines, JSON, Parquet, posted records): which
input column feeds which raw-row column (``column_map``), and the raw rows made of them
(``build_rows``). PURE. The names recognised are listed in ``tabular``'s docstring.

A row carrying both glucose_mg_dl and glucose_mmol_l is one reading when the two agree within
their rounding (``UNITS_AGREE_MG_DL``) and quarantined (``CONFLICTING_UNITS``) when they do not;
an empty glucose_mg_dl takes the row's mmol/L value.

A name is known by its ``column_key`` (case and surrounding spaces do not count). Two columns
with one key in a header are the file's structure: the file is refused. JSON-like records each
have their own keys (``record_column_map``): records spelling a column differently are each read
by it, and a record with two keys for a column that is read is quarantined alone
(``two_fields_name``), without that field's value.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.errors import InvalidInput
from glucosestream.formats.rows import RAW_SCHEMA, decoded
from glucosestream.readings import MG_DL_PER_MMOL_L

__all__ = [
    "CONFLICTING_UNITS",
    "MMOL_COLUMN",
    "UNITS_AGREE_MG_DL",
    "Columns",
    "build_rows",
    "column_key",
    "column_map",
    "is_number",
    "record_column_map",
    "two_fields_name",
]

_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "patient_id": ("patient_id", "id", "subject", "subject_id"),
    "device_id": ("device_id", "device", "serial"),
    "time": ("time", "ts", "timestamp", "datetime"),
    "glucose": ("glucose_mg_dl", "gl", "glucose", "value", "sgv"),
    "unit": ("unit", "units"),
    "tz": ("tz", "timezone", "time_zone"),
}
MMOL_COLUMN: Final = "glucose_mmol_l"
_MG_DL_COLUMN: Final = "glucose_mg_dl"
CONFLICTING_UNITS: Final = "conflicting glucose_mg_dl and glucose_mmol_l"
# A reading carrying both glucose_mg_dl and glucose_mmol_l is one reading when the two agree
# within their rounding (an integer mg/dL, one decimal of mmol/L): 0.5 + 0.05 * 18.0156 mg/dL.
UNITS_AGREE_MG_DL: Final = 0.5 + 0.05 * MG_DL_PER_MMOL_L
_NUMBER: Final = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"

Columns = Mapping[str, pa.Array | pa.ChunkedArray]
Records = Sequence[Mapping[str, Any]]


def column_key(name: str) -> str:
    """What a column name is known by: its case and surrounding spaces do not count."""
    return name.strip().lower()


def two_fields_name(raw: str) -> str:
    """The problem of a record with two keys for the raw column ``raw`` ("time" and "Time")."""
    return f"two fields name the {raw}"


def column_map(names: Sequence[str], source: str) -> dict[str, str | None]:
    """Map each raw column to the input column that feeds it (None: absent)."""
    lowered = {column_key(n): n for n in names}
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
    if found["glucose"] is None and MMOL_COLUMN in lowered:
        found["glucose"] = lowered[MMOL_COLUMN]
        found["unit"] = None
        found["_mmol"] = lowered[MMOL_COLUMN]
    elif found["glucose"] == lowered.get(_MG_DL_COLUMN) and MMOL_COLUMN in lowered:
        found["_mmol_also"] = lowered[MMOL_COLUMN]  # both: checked to agree (``_both_units``)
    for required in ("time", "glucose"):
        if found[required] is None:
            expected = _ALIASES[required] + ((MMOL_COLUMN,) if required == "glucose" else ())
            raise InvalidInput(
                f"no {required} column (found {', '.join(names) or 'none'}); "
                f"name one of them {' or '.join(expected)}",
                source=source,
                line=1,
            )
    return found


def record_column_map(
    records: Records, names: Sequence[str], source: str
) -> tuple[Records, dict[str, str | None], list[str | None] | None]:
    """The column map of JSON-like records whose keys, in order of first appearance, are
    ``names``: the records (re-keyed when needed), the map, and each record's problem (None
    when no record has one).

    When no two names share a ``column_key`` (the usual case) the records are returned as they
    are. Otherwise each record is re-keyed by its keys' column keys (once per distinct key set),
    and a record with two keys for a column that is read gets ``two_fields_name`` as its
    problem and no value there (which of the two was meant is not known)."""
    keys = [column_key(n) for n in names]
    if len(set(keys)) == len(keys):
        return records, column_map(names, source), None
    mapping = column_map(list(dict.fromkeys(keys)), source)
    read = {
        name: "glucose" if raw.startswith("_mmol") else raw
        for raw, name in mapping.items()
        if name is not None
    }
    plans: dict[tuple[str, ...], tuple[list[str], str | None, list[str]]] = {}
    rekeyed: list[dict[str, Any]] = []
    problems: list[str | None] = []
    for record in records:
        key_set = tuple(record)
        plan = plans.get(key_set)
        if plan is None:
            plan = plans[key_set] = _rekeying(key_set, read)
        own_keys, problem, unread = plan
        row = dict(zip(own_keys, record.values(), strict=True))
        for key in unread:
            row[key] = None
        rekeyed.append(row)
        problems.append(problem)
    return rekeyed, mapping, problems if any(problems) else None


def _rekeying(
    key_set: tuple[str, ...], read: dict[str, str]
) -> tuple[list[str], str | None, list[str]]:
    """How a record with the keys ``key_set`` is re-keyed: its column keys, its problem, and
    the keys read by a column that it names twice (their value is not read)."""
    own_keys = [column_key(k) for k in key_set]
    counts = Counter(own_keys)
    unread = [name for name in read if counts[name] > 1]  # in the raw columns' order
    problem = two_fields_name(read[unread[0]]) if unread else None
    return own_keys, problem, unread


def build_rows(lines: pa.Array, columns: Columns, mapping: dict[str, str | None]) -> pa.Table:
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
    mmol = mapping.get("_mmol_also")
    if mmol is not None and mmol in columns:
        _both_units(data, columns[mmol])
    table = pa.table(data)
    return table.select(list(RAW_SCHEMA.names))


def _both_units(
    data: dict[str, pa.Array | pa.ChunkedArray], mmol: pa.Array | pa.ChunkedArray
) -> None:
    """Rows with both glucose_mg_dl and glucose_mmol_l: one reading when they agree (within
    ``UNITS_AGREE_MG_DL``), quarantined when they do not; the mmol/L value when mg/dL is empty."""
    mg = data["glucose"]
    mg_given, mmol_given = _given(mg), _given(mmol)
    mg_value, mmol_value = _numbers(mg), _numbers(mmol)
    gap = pc.abs(pc.subtract(mg_value, pc.multiply(mmol_value, MG_DL_PER_MMOL_L)))
    agree = pc.fill_null(pc.less_equal(gap, UNITS_AGREE_MG_DL), False)
    conflict = pc.and_(pc.and_(mg_given, mmol_given), pc.invert(agree))
    data["problem"] = pc.if_else(conflict, pa.scalar(CONFLICTING_UNITS), data["problem"])
    only_mmol = pc.and_(pc.invert(mg_given), mmol_given)
    if pc.any(only_mmol).as_py():
        data["glucose"] = pc.if_else(only_mmol, _as_text(mmol), _as_text(mg))
        data["unit"] = pc.if_else(only_mmol, pa.scalar("mmol/L"), _as_text(data["unit"]))


def _as_text(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    column = decoded(column)
    return column if pa.types.is_string(column.type) else column.cast(pa.string())


def _given(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Whether each value is there: not null, and not blank text."""
    column = _as_text(column)
    return pc.fill_null(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(column)), 0), False)


def _numbers(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Each value as a float64 (null when it is not a plain decimal number)."""
    column = decoded(column)
    if is_number(column.type):
        return column.cast(pa.float64())
    text = pc.utf8_trim_whitespace(_as_text(column))
    plain = pc.fill_null(pc.match_substring_regex(text, _NUMBER), False)
    return pc.if_else(plain, text, pa.scalar(None, pa.string())).cast(pa.float64())


def is_number(type_: pa.DataType) -> bool:
    return bool(pa.types.is_integer(type_) or pa.types.is_floating(type_))
