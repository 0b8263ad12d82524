"""The metadata store's database: an engine per store, and transactions that fail as LakeError.

SQLAlchemy Core over SQLite by default (``<lake>/_state/metadata.db``) or any URL in
``GLUCOSESTREAM_LAKE__METADATA_URL``. No connection pool: each transaction opens and closes its
connection, so nothing is left open by the many short-lived stores a command or request makes.
Tables are created on first use, and a nullable column a newer release added to a table is
added to a store an older release made. A store made before issue 14 kept the published
snapshot ids as ``<table>_snapshot_id`` columns of ``runs``: they are moved into
``run_snapshots`` rows (and the columns dropped) in one transaction when it is opened.

The local state folder (``<lake>/_state`` or ``GLUCOSESTREAM_LAKE__STATE_DIR``) is private to its
owner: the folder is made 0700 and each SQLite file is created 0600 before SQLite opens it (its
-wal, -shm and -journal files take the database file's mode), and whenever a store is opened the
folder and every file in it are tightened to those modes, so a lake an older release made (0755,
0644) is fixed the next time it is used.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import sqlalchemy as sa

from glucosestream.config import LakeSettings
from glucosestream.errors import LakeError
from glucosestream.lake.metadata_schema import METADATA, run_snapshots

__all__ = ["Store", "create_private_file", "metadata_engine", "private_state_path"]

log = logging.getLogger(__name__)

PRIVATE_DIR_MODE: Final = 0o700
PRIVATE_FILE_MODE: Final = 0o600


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
        state = private_state_path(settings)
        create_private_file(state / "metadata.db")  # the catalog's: lake.catalog makes it
    try:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        METADATA.create_all(engine)
        _add_missing_columns(engine)
        _move_snapshot_columns(engine)
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


_LEGACY_SNAPSHOT_SUFFIX: Final = "_snapshot_id"


def _legacy_snapshot_columns(engine: sa.Engine) -> list[str]:
    present = [c["name"] for c in sa.inspect(engine).get_columns("runs")]
    return [name for name in present if name.endswith(_LEGACY_SNAPSHOT_SUFFIX)]


def _move_snapshot_columns(engine: sa.Engine) -> None:
    """Copy each ``runs.<table>_snapshot_id`` value of an older store into a ``run_snapshots``
    row (table name: the column's prefix) and drop those columns, in one transaction. Another
    process that migrated the store first leaves nothing to do."""
    columns = _legacy_snapshot_columns(engine)
    if not columns:
        return
    old_runs = sa.table("runs", sa.column("run_id"), *(sa.column(c) for c in columns))
    try:
        with engine.begin() as con:
            for column in columns:
                value = old_runs.c[column]
                short = column.removesuffix(_LEGACY_SNAPSHOT_SUFFIX)
                rows = sa.select(old_runs.c.run_id, sa.literal(short), value).where(
                    value.is_not(None)
                )
                con.execute(
                    run_snapshots.insert().from_select(
                        ["run_id", "table_name", "snapshot_id"], rows
                    )
                )
            for column in columns:
                con.execute(sa.text(f'ALTER TABLE runs DROP COLUMN "{column}"'))
    except sa.exc.SQLAlchemyError:
        if _legacy_snapshot_columns(engine):
            raise
        return  # migrated meanwhile by another process
    log.info("metadata migrated runs.*_snapshot_id to run_snapshots: %s", ", ".join(columns))


def private_state_path(settings: LakeSettings) -> Path:
    """The lake's local state folder, made if missing, with the folder 0700 and, when the folder
    was found looser (a lake made before issue 13), every file in it 0600. ConfigError for an
    object-store lake without one."""
    path = settings.state_path
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    if not _tighten(path, PRIVATE_DIR_MODE):
        return path  # already private: no other user reaches its files (no scan on every open)
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_symlink():
                continue
            _tighten(Path(entry.path), PRIVATE_DIR_MODE if entry.is_dir() else PRIVATE_FILE_MODE)
    return path


def create_private_file(path: Path, content: bytes = b"") -> bool:
    """Create a file readable by its owner only (0600 whatever the umask), unless it exists;
    returns whether this call made it. With content, the file appears whole or not at all (it
    is written aside, then linked into place), so a concurrent reader never sees it empty."""
    if path.exists():
        return False
    if not content:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
        except FileExistsError:
            return False
        return True
    aside = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.link(aside, path)
    except FileExistsError:
        return False  # another process made it first: theirs is used
    finally:
        aside.unlink(missing_ok=True)
    return True


def _tighten(path: Path, mode: int) -> bool:
    """Take away the bits of ``path`` beyond ``mode``; whether it had any."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
        if current & ~mode:
            path.chmod(current & mode)
            return True
    except FileNotFoundError:
        pass  # a -journal or -wal file SQLite removed meanwhile
    except PermissionError:
        log.warning("state path=%s is not ours; cannot make it private (mode %o)", path, mode)
        return True
    return False
