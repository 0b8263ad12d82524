"""The Engine protocol: run one SQL model over named Arrow tables, return an Arrow table."""

from __future__ import annotations

from importlib import resources
from typing import Protocol

import pyarrow as pa

__all__ = ["Engine", "read_sql"]


class Engine(Protocol):
    name: str

    def query(self, sql: str, tables: dict[str, pa.Table], **params: object) -> pa.Table:
        """Run ``sql`` with each of ``tables`` visible under its key; ``$name`` binds params."""
        ...

    def close(self) -> None: ...


def read_sql(package: str, name: str) -> str:
    """The text of the SQL model ``name`` (a ``.sql`` file) shipped in ``package``."""
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")
