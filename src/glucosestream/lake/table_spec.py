"""How the lake describes an Iceberg table (``TableSpec``) and the set of tables it holds
(``TableRegistry``). PURE.

The lake knows no table of its own: each stage owns its rows' schema (``readings``, the metrics,
the pipeline's sensor wear) and one registry above the lake (``pipeline.table_registry``) lists
every table. The lake is opened with that registry, so it never imports a stage; a new table is
one registry entry.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa
from pyiceberg.transforms import Transform

from glucosestream.readings import in_order

__all__ = ["TableRegistry", "TableSpec", "WriteMode"]

# How a run writes a table: "append" adds rows (curated.readings); "replace" overwrites the
# rows of a scope (a patient's days from a date on, a key prefix) with the recomputed ones.
WriteMode = Literal["append", "replace"]


@dataclass(frozen=True, slots=True)
class TableSpec:
    """One Iceberg table: identifier, schema, partitioning, write order and how runs write it.

    ``short`` is the table's key everywhere else: ``Lakehouse.tables``, the published snapshot
    rows of the metadata store (``PublishedSnapshots.of``), a run's staged outputs."""

    identifier: tuple[str, str]
    schema: pa.Schema
    partition: tuple[tuple[str, Transform[object, object], str], ...]
    sort_by: tuple[str, ...]
    short: str
    date_column: str = "date"  # the day a row belongs to, for replacing a range of days
    properties: tuple[tuple[str, str], ...] = ()  # Iceberg table properties
    write: WriteMode = "replace"

    @property
    def name(self) -> str:
        return ".".join(self.identifier)

    def conform(self, rows: pa.Table) -> pa.Table:
        """Rows in the table's schema: extra columns dropped, absent nullable ones null (rows
        written before a column was added, or read at a snapshot older than the column)."""
        for field in self.schema:
            if field.name not in rows.column_names and field.nullable:
                rows = rows.append_column(field, pa.nulls(rows.num_rows, field.type))
        return rows.select(self.schema.names).cast(self.schema)

    def prepare(self, rows: pa.Table) -> pa.Table:
        """Rows conformed to the table's schema, in its write order (sorted only when they are
        not in it already: a stable sort leaves such rows as they are)."""
        rows = self.conform(rows)
        if in_order(rows, self.sort_by):
            return rows
        return rows.sort_by([(c, "ascending") for c in self.sort_by])


@dataclass(frozen=True, slots=True)
class TableRegistry:
    """Every table of the lake, in publish order, each found by its short key."""

    specs: tuple[TableSpec, ...]

    def __post_init__(self) -> None:
        for attribute in ("short", "name"):
            values = [getattr(spec, attribute) for spec in self.specs]
            doubled = sorted({v for v in values if values.count(v) > 1})
            if doubled:
                raise ValueError(f"table registry: {attribute} {', '.join(doubled)} used twice")

    def __iter__(self) -> Iterator[TableSpec]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def __getitem__(self, short: str) -> TableSpec:
        for spec in self.specs:
            if spec.short == short:
                return spec
        known = ", ".join(spec.short for spec in self.specs)
        raise KeyError(f"no table {short!r} in the registry (it has {known})")

    @property
    def shorts(self) -> tuple[str, ...]:
        return tuple(spec.short for spec in self.specs)
