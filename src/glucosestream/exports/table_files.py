"""Tables written as files for other tools: CSV (comma, header, UTF-8) or Parquet, one file per
table, appended to batch by batch.

CSV, as most loaders read it without options (DuckDB ``read_csv``, PostgreSQL ``COPY ... CSV
HEADER``, pandas, R ``readr``): comma-separated, a header row of the column names, text
fields quoted (RFC 4180), an empty field for NULL, dates ``YYYY-MM-DD``, timestamps
``YYYY-MM-DD HH:MM:SS`` (to the second), numbers as Arrow writes them (the
shortest form that reads back exactly).

A text cell that a spreadsheet would run as a formula (one starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return: OWASP "CSV Injection") gets a leading apostrophe, the
neutralisation OWASP recommends, so an id as ingested such as ``=HYPERLINK(...)`` is shown as
text. Parquet keeps every value as it is: it carries types, and no spreadsheet runs it.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Final, Literal, Self

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from glucosestream.errors import ConfigError

__all__ = ["FORMULA_STARTS", "TableFile", "TableFormat", "output_folder", "safe_text"]

TableFormat = Literal["csv", "parquet"]
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
_CSV_OPTIONS: Final = pa_csv.WriteOptions(quoting_style="needed", eol="\n")


def output_folder(out: Path) -> Path:
    """``out`` as a folder to write the tables into (made if absent); ``ConfigError`` when it
    is a file."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file; these exports write a folder: give a folder --out")
    out.mkdir(parents=True, exist_ok=True)
    return out


def safe_text(value: str) -> str:
    """``value`` as a spreadsheet shows it as text: an apostrophe before a formula start."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _safe_texts(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A text column with an apostrophe before each cell that starts like a formula."""
    risky = pc.or_(pc.starts_with(column, "="), pc.starts_with(column, "+"))
    for start in FORMULA_STARTS[2:]:
        risky = pc.or_(risky, pc.starts_with(column, start))
    return pc.if_else(risky, pc.binary_join_element_wise("'", column, ""), column)


def _csv_ready(table: pa.Table) -> pa.Table:
    """Text made safe, timestamps as ``YYYY-MM-DD HH:MM:SS`` (other types as Arrow writes
    them: ISO dates, shortest exact numbers, true/false)."""
    columns = []
    for field, column in zip(table.schema, table.columns, strict=True):
        if pa.types.is_string(field.type):
            column = _safe_texts(column)
        elif pa.types.is_timestamp(field.type):
            seconds = column.cast(pa.timestamp("s", tz=field.type.tz), safe=False)
            column = pc.strftime(seconds, format="%Y-%m-%d %H:%M:%S")
        columns.append(column)
    return pa.table(columns, names=table.column_names)


class TableFile:
    """One table's file: ``write`` appends rows of ``schema``; ``close`` finishes it. Rows are
    gathered to ``FLUSH_ROWS`` before they are written (a Parquet row group per flush, not per
    patient). ``rows`` counts the rows written."""

    FLUSH_ROWS: Final = 65_536

    def __init__(self, path: Path, schema: pa.Schema, fmt: TableFormat) -> None:
        self.path, self.schema, self.fmt = path, schema, fmt
        self.rows = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._parquet: pq.ParquetWriter | None = None
        self._csv: pa_csv.CSVWriter | None = None
        if fmt == "parquet":
            self._parquet = pq.ParquetWriter(path, schema, compression="zstd")
        else:
            ready = _csv_ready(schema.empty_table())
            self._csv = pa_csv.CSVWriter(path, ready.schema, write_options=_CSV_OPTIONS)

    def write(self, rows: pa.Table) -> None:
        """Append ``rows`` (cast to the file's schema: its column order and types)."""
        if rows.num_rows == 0:
            return
        self._pending.append(rows.select(self.schema.names).cast(self.schema))
        self._pending_rows += rows.num_rows
        self.rows += rows.num_rows
        if self._pending_rows >= self.FLUSH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        self._pending, self._pending_rows = [], 0
        if self._parquet is not None:
            self._parquet.write_table(table)
        elif self._csv is not None:
            self._csv.write_table(_csv_ready(table))

    def close(self) -> None:
        """Write what is pending and close the file (once; later calls do nothing)."""
        if self._parquet is None and self._csv is None:
            return
        self._flush()
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
        if self._csv is not None:
            self._csv.close()
            self._csv = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
