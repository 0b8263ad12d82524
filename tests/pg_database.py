"""A throwaway PostgreSQL database on the slow tier's server (scripts/postgres.sh), for tests
that use PostgreSQL as the catalog or the metadata store: made empty, dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

__all__ = ["URL_FILE", "throwaway_database"]

URL_FILE = Path(__file__).resolve().parents[1] / ".services" / "postgres.url"


@contextmanager
def throwaway_database(server: str) -> Iterator[str]:
    """The URL of a new database on ``server`` (a SQLAlchemy URL), dropped on exit."""
    name = f"gs_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as con:
            con.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield server.rsplit("/", 1)[0] + "/" + name
        with admin.connect() as con:
            con.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
