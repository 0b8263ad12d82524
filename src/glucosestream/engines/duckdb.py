"""The embedded engine: DuckDB in-process over Arrow tables.

DuckDB is pinned to 1.5.5, the last release whose extensions install offline from the package
index (docs/decisions.md). Iceberg tables are read by pyiceberg into Arrow and handed to DuckDB,
so no DuckDB extension is needed for the embedded default.
"""

from __future__ import annotations

import logging

import duckdb
import pyarrow as pa

from glucosestream.config import EngineSettings
from glucosestream.errors import EngineError, EngineOverloaded, EngineUnavailable

__all__ = ["DuckDBEngine", "open_engine"]

log = logging.getLogger(__name__)


class DuckDBEngine:
    name = "duckdb"

    def __init__(self, settings: EngineSettings) -> None:
        config: dict[str, str | bool | int | float | list[str]] = {
            "autoinstall_known_extensions": False
        }
        if settings.threads:
            config["threads"] = settings.threads
        if settings.memory_limit_mb:
            config["memory_limit"] = f"{settings.memory_limit_mb}MB"
        self._con = duckdb.connect(":memory:", config=config)
        # Local calendar days are computed with explicit zones; the session zone must never leak.
        self._con.execute("SET TimeZone = 'UTC'")
        # DuckDB draws a bar on stdout for a query longer than 2 s: it broke `run --json`.
        self._con.execute("SET enable_progress_bar = false")

    def query(self, sql: str, tables: dict[str, pa.Table], **params: object) -> pa.Table:
        log.debug("duckdb sql=%s", sql)
        try:
            for name, table in tables.items():
                self._con.register(name, table)
            try:
                result = self._con.execute(sql, params or None)
                return result.to_arrow_table()
            finally:
                for name in tables:
                    self._con.unregister(name)
        except (duckdb.OutOfMemoryException, duckdb.IOException) as err:
            raise EngineOverloaded(
                f"DuckDB ran out of memory or disk space: {err}; try again later, or give it "
                "more (GLUCOSESTREAM_ENGINE__MEMORY_LIMIT_MB, free space in the temp folder)",
                engine=self.name,
            ) from err
        except duckdb.Error as err:
            raise EngineError(f"DuckDB failed to run a model: {err}", engine=self.name) from err

    def close(self) -> None:
        self._con.close()


def open_engine(settings: EngineSettings) -> DuckDBEngine:
    """The engine named in ``settings`` (only duckdb in this release)."""
    if settings.name != "duckdb":
        raise EngineUnavailable(
            f"engine {settings.name!r} is not available in this release; "
            "set GLUCOSESTREAM_ENGINE__NAME=duckdb",
            engine=settings.name,
        )
    return DuckDBEngine(settings)
