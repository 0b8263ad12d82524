"""Query engines: the one technical package. ``_base`` defines the Engine protocol.

SQL models live in ``.sql`` files next to the stage that owns them, written once in DuckDB's
dialect and restricted to constructs that translate faithfully (DESIGN.md, Portable SQL).
"""

from __future__ import annotations

from glucosestream.engines._base import Engine, read_sql
from glucosestream.engines.duckdb import DuckDBEngine, open_engine

__all__ = ["DuckDBEngine", "Engine", "open_engine", "read_sql"]
