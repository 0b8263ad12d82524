"""The project's own tabular formats: Parquet, CSV and JSON lines, one file for the cohort,
written chunk by chunk (vectorised with Arrow: no Python loop per reading).

Columns: patient_id, device_id, time (UTC; ``YYYY-MM-DDThh:mm:ssZ`` in text), glucose_mg_dl,
tz, flags (ReadingFlag bits), profile (sub-population).
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

__all__ = ["TABULAR_FORMATS", "TabularWriter"]

TABULAR_FORMATS: Final = ("parquet", "csv", "jsonl")
_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"
# Timestamps as DELTA_BINARY_PACKED made Parquet files about 6x smaller (DESIGN.md).
_PARQUET_ENCODINGS: Final = {"time": "DELTA_BINARY_PACKED"}


class TabularWriter:
    """Context manager: ``write(chunk_table)`` appends to one Parquet, CSV or JSONL file."""

    def __init__(self, out: Path, fmt: str) -> None:
        self.out = out
        self.fmt = fmt
        self._parquet: pq.ParquetWriter | None = None
        self._csv: pacsv.CSVWriter | None = None
        self._sink: pa.OSFile | None = None

    def __enter__(self) -> TabularWriter:
        if self.fmt != "parquet":
            self._sink = pa.OSFile(str(self.out), "wb")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self._csv is not None:
            self._csv.close()
        if self._sink is not None:
            self._sink.close()

    def write(self, table: pa.Table) -> None:
        if self.fmt == "parquet":
            self._write_parquet(table)
        elif self.fmt == "csv":
            self._write_csv(_as_text(table))
        else:
            self._write_jsonl(_as_text(table))

    def _write_parquet(self, table: pa.Table) -> None:
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(
                self.out,
                table.schema,
                use_dictionary=[n for n in table.column_names if n != "time"],
                column_encoding=_PARQUET_ENCODINGS,
            )
        self._parquet.write_table(table)

    def _write_csv(self, table: pa.Table) -> None:
        if self._csv is None:
            options = pacsv.WriteOptions(quoting_style="none")
            self._csv = pacsv.CSVWriter(self._sink, table.schema, write_options=options)
        self._csv.write_table(table)

    def _write_jsonl(self, table: pa.Table) -> None:
        """One JSON object per line, assembled column-wise (ids, zones and labels are plain
        identifiers and IANA names, which need no JSON escaping)."""
        parts: list[pa.Array | str] = []
        for position, name in enumerate(table.column_names):
            column = table[name]
            quoted = pa.types.is_string(column.type)
            text = column.cast(pa.string())
            prefix = ("{" if position == 0 else ",") + f'"{name}":' + ('"' if quoted else "")
            parts.extend([prefix, text, '"' if quoted else ""])
        parts.append("}\n")
        lines = pc.binary_join_element_wise(*parts, "")
        if self._sink is None:
            raise RuntimeError("the JSON lines writer is closed")
        for chunk in lines.chunks:
            offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int32)
            first, last = offsets[chunk.offset], offsets[chunk.offset + len(chunk)]
            self._sink.write(chunk.buffers()[2].slice(int(first), int(last - first)))


def _as_text(table: pa.Table) -> pa.Table:
    """Plain strings and ISO UTC times, for the text formats."""
    columns = []
    for name in table.column_names:
        column = table[name]
        if name == "time":
            column = pc.strftime(column.cast(pa.timestamp("s", tz="UTC")), format=_TIME_FORMAT)
        elif pa.types.is_dictionary(column.type):
            column = column.cast(pa.string())
        columns.append(column)
    return pa.table(columns, names=table.column_names)
