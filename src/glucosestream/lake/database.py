"""The metadata store's database: an engine per store, and transactions that fail as LakeError.

SQLAlchemy Core over SQLite by default (``<lake>/_state/metadata.db``) or any URL in
``GLUCOSESTREAM_LAKE__METADATA_URL``. No connection pool: each transaction opens and closes its
connection, so nothing is left open by the many short-lived stores a command or request makes.
Tables are created on first use, and a nullable column a newer release added to a table is
added to a store an older release made.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from glucosestream.config import LakeSettings
from glucosestream.errors import LakeError
from glucosestream.lake.metadata_schema import METADATA

__all__ = ["Store", "metadata_engine"]


class Store:
    """Base of the stores over the metadata database (pipeline state, access, ledgers)."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    @contextmanager
    def _tx(self) -> Iterator[sa.Connection]:
        try:
            with self._engine.begin() as con:
                yield con
        except sa.exc.SQLAlchemyError as err:
            raise LakeError(f"metadata store failed: {err.__class__.__name__}: {err}") from err


def metadata_engine(settings: LakeSettings) -> sa.Engine:
    """An engine on the lake's metadata database, its tables created."""
    url = settings.resolved_metadata_url()
    if not settings.metadata_url:
        settings.state_path.mkdir(parents=True, exist_ok=True)
    try:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        METADATA.create_all(engine)
        _add_missing_columns(engine)
    except sa.exc.SQLAlchemyError as err:
        raise LakeError(
            f"cannot open the metadata store at {url}: {err}; "
            "check GLUCOSESTREAM_LAKE__METADATA_URL and that the database is reachable"
        ) from err
    return engine


def _add_missing_columns(engine: sa.Engine) -> None:
    """ALTER TABLE ... ADD COLUMN for each nullable column a table lacks (schema evolution)."""
    inspector = sa.inspect(engine)
    with engine.begin() as con:
        for table in METADATA.sorted_tables:
            present = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name in present or not column.nullable:
                    continue
                kind = column.type.compile(dialect=engine.dialect)
                con.execute(sa.text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))
