"""The Iceberg tables of the lake, through pyiceberg's SQL catalog (SQLite by default).

The tables are those of the registry the lake is opened with (``pipeline.table_registry``), each
found by its short key; the lake itself needs two of them, "readings" (curated readings, which
runs append to) and "daily" (daily metrics, for ``read_daily`` and ``last_days``).

Readers never read a table's *current* snapshot: they read the snapshot recorded by the last
published run in the metadata store. A run may write new snapshots and still fail (or be killed)
before it publishes; ``recover`` rolls such unpublished snapshots back before the next run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import itertools
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError
from pyiceberg.expressions import (
    AlwaysFalse,
    AlwaysTrue,
    And,
    BooleanExpression,
    EqualTo,
    GreaterThanOrEqual,
    In,
)
from pyiceberg.io.pyarrow import ArrowScan, _dataframe_to_data_files
from pyiceberg.manifest import DataFile
from pyiceberg.schema import Schema
from pyiceberg.table import DataScan, FileScanTask, Table, Transaction
from pyiceberg.table.metadata import TableMetadata

from glucosestream.config import LakeSettings
from glucosestream.errors import ConfigError, LakeError
from glucosestream.lake.database import create_private_file, private_state_path
from glucosestream.lake.metadata import PublishedSnapshots
from glucosestream.lake.scope import Scope, many_keys, under_common_prefix
from glucosestream.lake.storage import iceberg_properties, open_storage
from glucosestream.lake.table_spec import TableRegistry, TableSpec

__all__ = ["Lakehouse", "open_lakehouse", "write_files"]

log = logging.getLogger(__name__)

_ROWS_PER_APPEND: Final = 16_000_000  # about 1.5 GB of readings in memory while appending


class Lakehouse:
    """The registry's tables, read at published snapshots."""

    def __init__(self, catalog: Catalog, specs: TableRegistry, namespace_prefix: str = "") -> None:
        self._catalog = catalog
        self._prefix = namespace_prefix
        self.specs = specs
        self.tables = {spec.short: self._table(spec) for spec in specs}
        self.readings = self.tables["readings"]
        self.daily = self.tables["daily"]

    def _table(self, spec: TableSpec) -> Table:
        """Load the table, creating it on first use and adding columns the spec gained."""
        namespace, name = spec.identifier
        identifier = (self._prefix + namespace, name)
        try:
            table = self._catalog.load_table(identifier)
        except NoSuchTableError:
            with contextlib.suppress(NamespaceAlreadyExistsError):
                self._catalog.create_namespace(identifier[0])
            table = self._catalog.create_table(
                identifier, schema=spec.schema, properties=dict(spec.properties)
            )
            with table.update_spec() as update:
                for column, transform, name in spec.partition:
                    update.add_field(column, transform, name)
            return table
        stale = {k: v for k, v in spec.properties if table.properties.get(k) != v}
        if stale:
            with table.transaction() as tx:
                tx.set_properties(stale)
        missing = set(spec.schema.names) - {f.name for f in table.schema().fields}
        if missing:
            log.info("evolve table=%s add_columns=%s", spec.name, ",".join(sorted(missing)))
            with table.update_schema() as update:
                update.union_by_name(spec.schema)
        return table

    def recover(self, published: PublishedSnapshots | None) -> bool:
        """Undo snapshots written after the last publish; True if anything was undone."""
        undone = False
        for short, table in self.tables.items():
            snapshot_id = None if published is None else published.of(short)
            current = table.current_snapshot()
            current_id = None if current is None else current.snapshot_id
            if current_id == snapshot_id:
                continue
            undone = True
            log.warning("recover table=%s from=%s to=%s", table.name(), current_id, snapshot_id)
            if snapshot_id is None:
                table.delete()
            else:
                table.manage_snapshots().set_current_snapshot(snapshot_id=snapshot_id).commit()
        return undone

    def read_readings(
        self,
        snapshot_id: int | None,
        patient_keys: Iterable[str],
        since: dt.datetime | None = None,
    ) -> pa.Table:
        """The patients' curated readings at a snapshot, optionally only from ``since`` on."""
        keys = sorted(set(patient_keys))
        spec = self.specs["readings"]
        if snapshot_id is None or not keys:
            return spec.schema.empty_table()
        if since is not None and many_keys(keys):
            broad = under_common_prefix(keys, GreaterThanOrEqual("ts", since.isoformat()))
            rows = self.readings.scan(row_filter=broad, snapshot_id=snapshot_id).to_arrow()
            return spec.conform(_only_keys(rows, keys))
        where: BooleanExpression = In("patient_key", keys)
        if since is not None:
            where = And(where, GreaterThanOrEqual("ts", since.isoformat()))
        scan = self.readings.scan(row_filter=where, snapshot_id=snapshot_id)
        return spec.conform(scan.to_arrow())

    def read_daily(
        self,
        snapshot_id: int | None,
        patient_key: str | None = None,
        date_from: dt.date | None = None,
        date_to: dt.date | None = None,
    ) -> pa.Table:
        spec = self.specs["daily"]
        if snapshot_id is None:
            return spec.schema.empty_table()
        scan = self.daily.scan(snapshot_id=snapshot_id)
        if patient_key is not None:
            scan = scan.filter(EqualTo("patient_key", patient_key))
        table = spec.conform(scan.to_arrow())
        return _between(table, date_from, date_to).sort_by(
            [("patient_key", "ascending"), ("date", "ascending")]
        )

    def append_rows(self, short: str, parts: pa.Table | Iterable[pa.Table]) -> int | None:
        """Append rows to a table (one table of rows, or parts appended in one commit); the new
        snapshot id, or the current one when there was nothing to append."""
        spec, table = self.specs[short], self.tables[short]
        chunks = [parts] if isinstance(parts, pa.Table) else parts
        with table.transaction() as tx:
            _append(tx, table, spec, chunks)
        return _snapshot_id(table)

    def write_data_files(self, short: str, rows: pa.Table) -> list[DataFile]:
        """Write rows as data files of a table (one per partition), not committed: a run's
        bucket tasks write them where they run, and publish commits them all at once
        (``commit_data_files``). Files a run never commits are orphans ``maintain`` removes
        (it holds the run lock, so never while a run is writing)."""
        spec, table = self.specs[short], self.tables[short]
        if rows.num_rows == 0:
            return []
        prepared = spec.prepare(spec.conform(rows))
        return write_files(table.metadata, table, prepared, uuid.uuid4(), itertools.count())

    def commit_data_files(self, short: str, files: Iterable[DataFile]) -> int | None:
        """Append data files ``write_data_files`` wrote, in one snapshot (none when there are
        none); the new snapshot id, or the current one."""
        table = self.tables[short]
        added = list(files)
        if added:
            with table.transaction() as tx:
                append = tx.update_snapshot().fast_append()
                for data_file in added:
                    append.append_data_file(data_file)
                append.commit()
        return _snapshot_id(table)

    def replace_rows(self, short: str, parts: Iterable[tuple[pa.Table, Scope]]) -> int | None:
        """Replace each scope's rows of a table by the part's rows, every part in one snapshot
        (one overwrite however many buckets a run had: a snapshot per part made each further
        one copy the growing metadata, 129 s for 142 parts)."""
        spec, table = self.specs[short], self.tables[short]
        with table.transaction() as tx:
            if table.current_snapshot() is None:  # the first load: nothing to replace
                _append(tx, table, spec, (rows for rows, _ in parts))
            else:
                _replace(tx, table, spec, list(parts))
        return _snapshot_id(table)

    def read_table(
        self,
        short_name: str,
        snapshot_id: int | None,
        row_filter: str | BooleanExpression | None = None,
    ) -> pa.Table:
        """A table (by its short key: "readings", "daily", "periods", ...) at a snapshot, in
        its schema and write order; ``row_filter`` is a pyiceberg expression or its string
        form (``"patient_key == 'k' and period_start >= '2024-01-01'"``). An empty table in
        the schema when ``snapshot_id`` is None (nothing published yet)."""
        spec = self.specs[short_name]
        if snapshot_id is None:
            return spec.schema.empty_table()
        where = AlwaysTrue() if row_filter is None else row_filter
        scan = self.tables[short_name].scan(row_filter=where, snapshot_id=snapshot_id)
        return spec.prepare(scan.to_arrow())

    def read_scope(self, short: str, snapshot_id: int | None, scope: Scope) -> pa.Table:
        """The rows of a table at a snapshot that ``scope`` would replace."""
        spec = self.specs[short]
        if snapshot_id is None:
            return spec.schema.empty_table()
        broad = scope.broad(spec.date_column)
        where = scope.expression(spec.date_column) if broad is None else broad
        rows = self.tables[short].scan(row_filter=where, snapshot_id=snapshot_id).to_arrow()
        return spec.conform(rows.filter(scope.covers(rows, spec.date_column)))

    def last_days(self, snapshot_id: int | None, patient_keys: Iterable[str]) -> dict[str, dt.date]:
        """Each patient's latest day with published daily metrics."""
        keys = sorted(set(patient_keys))
        if snapshot_id is None or not keys:
            return {}
        many = many_keys(keys)
        scan = self.daily.scan(
            row_filter=under_common_prefix(keys, AlwaysTrue()) if many else In("patient_key", keys),
            snapshot_id=snapshot_id,
            selected_fields=("patient_key", "date"),
        )
        rows = _only_keys(scan.to_arrow(), keys) if many else scan.to_arrow()
        if rows.num_rows == 0:
            return {}
        last = rows.group_by("patient_key").aggregate([("date", "max")])
        return dict(zip(last["patient_key"].to_pylist(), last["date_max"].to_pylist(), strict=True))


def _append(tx: Transaction, table: Table, spec: TableSpec, parts: Iterable[pa.Table]) -> None:
    """Append the parts as one snapshot (nothing when there are no rows): one manifest for
    every later reader to open, however many parts there were."""
    append = tx.update_snapshot().fast_append()
    counter = itertools.count()
    added = [
        data_file
        for rows in _grouped_by_bucket(parts, spec)
        for data_file in write_files(
            tx.table_metadata, table, spec.prepare(rows), append.commit_uuid, counter
        )
    ]
    if added:  # an empty snapshot would only be noise
        for data_file in added:
            append.append_data_file(data_file)
        append.commit()


def _replace(
    tx: Transaction, table: Table, spec: TableSpec, parts: list[tuple[pa.Table, Scope]]
) -> None:
    """Overwrite each scope's rows with its part's rows as one snapshot, copy-on-write: each
    data file that may hold rows of a scope is read once, and its rows no scope covers are
    written back beside the new rows. A file one scope covers whole is dropped unread.
    (pyiceberg's overwrite read every such file twice and rewrote them one at a time, in up to
    three snapshots.)"""
    metadata = tx.table_metadata
    scopes = [scope for _, scope in parts]
    tasks = _files_of(tx, table, spec, scopes)
    wholes = [_whole_file_test(metadata.schema(), scope) for scope in scopes]
    partial = [task for task in tasks if not any(whole(task.file) for whole in wholes)]
    kept = spec.schema.empty_table()
    if partial:
        old = ArrowScan(metadata, table.io, metadata.schema(), AlwaysTrue()).to_table(partial)
        covered = functools.reduce(
            pc.or_, (scope.covers(old, spec.date_column) for scope in scopes)
        )
        kept = spec.conform(old.filter(pc.invert(covered)))
    new = [rows for rows, _ in parts if rows.num_rows]
    rows = pa.concat_tables([spec.conform(r) for r in new]) if new else spec.schema.empty_table()
    overwrite = tx.update_snapshot().overwrite()
    counter = itertools.count()
    added = [
        data_file
        for part in (kept, rows)  # kept rows apart, so later runs can leave their files alone
        if part.num_rows
        for data_file in write_files(
            tx.table_metadata, table, spec.prepare(part), overwrite.commit_uuid, counter
        )
    ]
    if not tasks and not added:
        return
    for task in tasks:
        overwrite.delete_data_file(task.file)
    for data_file in added:
        overwrite.append_data_file(data_file)
    overwrite.commit()


def _files_of(
    tx: Transaction, table: Table, spec: TableSpec, scopes: list[Scope]
) -> list[FileScanTask]:
    """The data files that may hold rows of any of the scopes, each once."""
    tasks: dict[str, FileScanTask] = {}
    for scope in scopes:
        covered = scope.expression(spec.date_column)
        if covered == AlwaysFalse():
            continue
        broad = scope.broad(spec.date_column)
        plan = covered if broad is None else broad
        for task in DataScan(tx.table_metadata, table.io, row_filter=plan).plan_files():
            tasks.setdefault(task.file.file_path, task)
    return list(tasks.values())


def _whole_file_test(schema: Schema, scope: Scope) -> Callable[[DataFile], bool]:
    """Whether the scope surely covers every row of a file, from the file's key bounds (keys
    starting with a prefix are one contiguous range). Only scopes by key prefix can: a file
    of a key scope also holds other patients' rows. pyiceberg's own strict test never
    proves a prefix match, so its overwrite read such files only to drop every row."""
    if scope.everything or scope.prefix == "":
        return lambda _: True
    if scope.prefix is None:
        return lambda _: False
    field_id = schema.find_field("patient_key").field_id
    prefix = scope.prefix.encode()

    def whole(data_file: DataFile) -> bool:
        bounds = (data_file.lower_bounds.get(field_id), data_file.upper_bounds.get(field_id))
        return all(bound is not None and bound.startswith(prefix) for bound in bounds)

    return whole


def write_files(
    metadata: TableMetadata,
    table: Table,
    rows: pa.Table,
    commit_uuid: uuid.UUID,
    counter: Iterator[int],
) -> list[DataFile]:
    """Write rows as data files of the table (one per partition), not yet committed."""
    return list(
        _dataframe_to_data_files(
            table_metadata=metadata,
            df=rows,
            io=table.io,
            write_uuid=commit_uuid,
            counter=counter,
        )
    )


def _grouped_by_bucket(parts: Iterable[pa.Table], spec: TableSpec) -> Iterator[pa.Table]:
    """Consecutive parts whose keys start with the same hex digit, concatenated up to
    ``_ROWS_PER_APPEND`` rows: a run in 256 buckets appends one file per key-digit partition
    (and day, for readings) instead of sixteen small ones."""
    group: list[pa.Table] = []
    rows = 0
    digit = None
    for part in parts:
        if part.num_rows == 0:
            continue
        first = part["patient_key"][0].as_py()[:1]
        if group and (first != digit or rows + part.num_rows > _ROWS_PER_APPEND):
            yield pa.concat_tables(group)
            group, rows = [], 0
        group.append(spec.conform(part))
        rows += part.num_rows
        digit = first
    if group:
        yield pa.concat_tables(group)


def _only_keys(rows: pa.Table, keys: Sequence[str]) -> pa.Table:
    wanted = pc.is_in(rows["patient_key"], value_set=pa.array(keys, rows["patient_key"].type))
    return rows if pc.all(wanted).as_py() is not False else rows.filter(wanted)


def _between(table: pa.Table, date_from: dt.date | None, date_to: dt.date | None) -> pa.Table:
    mask = None
    if date_from is not None:
        mask = pc.greater_equal(table["date"], pa.scalar(date_from))
    if date_to is not None:
        upper = pc.less_equal(table["date"], pa.scalar(date_to))
        mask = upper if mask is None else pc.and_(mask, upper)
    return table if mask is None else table.filter(mask)


def _snapshot_id(table: Table) -> int | None:
    # No refresh: committing a transaction updates the table object, and the run lock keeps
    # other writers out (a refresh is one more metadata-file read per table on S3).
    snapshot = table.current_snapshot()
    return None if snapshot is None else int(snapshot.snapshot_id)


def open_lakehouse(settings: LakeSettings, specs: TableRegistry) -> Lakehouse:
    """Open the lake's catalog and the registry's tables (``pipeline.table_registry.TABLES``),
    creating them on first use."""
    storage = open_storage(settings)
    try:
        storage.make_folder(storage.path("warehouse"))
        catalog = _open_catalog(settings, storage.uri("warehouse"))
        return Lakehouse(catalog, specs, settings.namespace_prefix)
    except (OSError, ValueError) as err:
        raise LakeError(
            f"cannot open the lake at {settings.location}: {err}; "
            "check the path (--lake or GLUCOSESTREAM_LAKE) is a writable folder or bucket"
        ) from err


def _open_catalog(settings: LakeSettings, warehouse: str) -> Catalog:
    url = settings.catalog_url
    if url.startswith("glue"):
        region = url.removeprefix("glue").removeprefix("://") or settings.s3_region
        properties = {"glue.region": region, "warehouse": warehouse}
        return _glue_catalog_class(url)(
            "glucosestream", **properties, **iceberg_properties(settings)
        )
    if not url:  # the SQLite catalog: a private file in the private state folder
        create_private_file(private_state_path(settings) / "catalog.db")
    catalog = SqlCatalog(
        "glucosestream",
        uri=settings.resolved_catalog_url(),
        warehouse=warehouse,
        **iceberg_properties(settings),
    )
    # Like the metadata store: no pooled connections left open behind a short-lived catalog.
    catalog.engine.dispose()
    catalog.engine = sa.create_engine(settings.resolved_catalog_url(), poolclass=sa.pool.NullPool)
    return catalog


def _glue_catalog_class(url: str) -> type[Catalog]:
    """pyiceberg's Glue catalog, imported on use: it needs boto3, an optional extra."""
    try:
        from pyiceberg.catalog.glue import GlueCatalog
    except ImportError as err:
        raise ConfigError(
            f"the Glue catalog (catalog_url {url}) needs {err.name or 'boto3'}, which "
            "is not installed: pip install 'glucosestream[aws]'"
        ) from err
    glue: type[Catalog] = GlueCatalog
    return glue
