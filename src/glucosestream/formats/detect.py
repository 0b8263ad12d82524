"""Tell the format of an input file and dispatch to its parser."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pyarrow as pa

from glucosestream.errors import UnknownFormat
from glucosestream.formats import tabular

__all__ = ["FORMATS", "detect_format", "read_raw_rows"]

FORMATS: Final = ("csv", "jsonl", "parquet")
_BY_SUFFIX: Final = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


def detect_format(path: Path) -> str:
    """The format of ``path``: by its first bytes, then by its suffix."""
    with path.open("rb") as f:
        head = f.read(4)
    if head == b"PAR1":
        return "parquet"
    if head[:1] == b"{":
        return "jsonl"
    if path.suffix.lower() in _BY_SUFFIX:
        return _BY_SUFFIX[path.suffix.lower()]
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "csv"
    raise UnknownFormat(
        "cannot tell the format of this file (not CSV, JSON lines or Parquet); "
        f"pass --format with one of {', '.join(FORMATS)}",
        source=str(path),
    )


def read_raw_rows(path: Path, fmt: str = "auto") -> tuple[str, pa.Table]:
    """Parse ``path`` into raw rows; returns the format used and the rows."""
    chosen = detect_format(path) if fmt == "auto" else fmt
    if chosen == "csv":
        return chosen, tabular.read_csv(path)
    if chosen == "jsonl":
        return chosen, tabular.read_jsonl(path)
    if chosen == "parquet":
        return chosen, tabular.read_parquet(path)
    raise UnknownFormat(
        f"format {chosen!r} is not supported yet; use one of auto, {', '.join(FORMATS)}",
        source=str(path),
    )
