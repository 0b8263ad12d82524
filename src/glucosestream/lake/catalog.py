"""The Iceberg tables of the lake, through pyiceberg's SQL catalog (SQLite by default).

Readers never read a table's *current* snapshot: they read the snapshot recorded by the last
published run in the metadata store. A run may write new snapshots and still fail (or be killed)
before it publishes; ``recover`` rolls such unpublished snapshots back before the next run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import warnings
from collections.abc import Iterable, Mapping

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.glue import GlueCatalog
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
    Or,
)
from pyiceberg.table import Table

from glucosestream.config import LakeSettings
from glucosestream.errors import LakeError
from glucosestream.lake import tables
from glucosestream.lake.metadata import PublishedSnapshots
from glucosestream.lake.storage import iceberg_properties, open_storage

__all__ = ["Lakehouse", "open_lakehouse"]

log = logging.getLogger(__name__)


class Lakehouse:
    """The curated and results tables, read at published snapshots."""

    def __init__(self, catalog: Catalog, namespace_prefix: str = "") -> None:
        self._catalog = catalog
        self._prefix = namespace_prefix
        self.readings = self._table(tables.READINGS)
        self.daily = self._table(tables.DAILY_METRICS)

    def _table(self, spec: tables.TableSpec) -> Table:
        """Load the table, creating it on first use and adding columns the spec gained."""
        namespace, name = spec.identifier
        identifier = (self._prefix + namespace, name)
        try:
            table = self._catalog.load_table(identifier)
        except NoSuchTableError:
            with contextlib.suppress(NamespaceAlreadyExistsError):
                self._catalog.create_namespace(identifier[0])
            table = self._catalog.create_table(identifier, schema=spec.schema)
            with table.update_spec() as update:
                for column, transform, name in spec.partition:
                    update.add_field(column, transform, name)
            return table
        missing = set(spec.schema.names) - {f.name for f in table.schema().fields}
        if missing:
            log.info("evolve table=%s add_columns=%s", spec.name, ",".join(sorted(missing)))
            with table.update_schema() as update:
                update.union_by_name(spec.schema)
        return table

    def recover(self, published: PublishedSnapshots | None) -> bool:
        """Undo snapshots written after the last publish; True if anything was undone."""
        undone = False
        for table, snapshot_id in (
            (self.readings, None if published is None else published.readings_snapshot_id),
            (self.daily, None if published is None else published.daily_snapshot_id),
        ):
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
        schema = tables.READINGS.schema
        if snapshot_id is None or not keys:
            return schema.empty_table()
        where: BooleanExpression = In("patient_key", keys)
        if since is not None:
            where = And(where, GreaterThanOrEqual("ts", since.isoformat()))
        scan = self.readings.scan(row_filter=where, snapshot_id=snapshot_id)
        return tables.READINGS.conform(scan.to_arrow())

    def read_daily(
        self,
        snapshot_id: int | None,
        patient_key: str | None = None,
        date_from: dt.date | None = None,
        date_to: dt.date | None = None,
    ) -> pa.Table:
        schema = tables.DAILY_METRICS.schema
        if snapshot_id is None:
            return schema.empty_table()
        scan = self.daily.scan(snapshot_id=snapshot_id)
        if patient_key is not None:
            scan = scan.filter(EqualTo("patient_key", patient_key))
        table = tables.DAILY_METRICS.conform(scan.to_arrow())
        return _between(table, date_from, date_to).sort_by(
            [("patient_key", "ascending"), ("date", "ascending")]
        )

    def append_readings(self, rows: pa.Table) -> int | None:
        """Append curated rows; the new snapshot id (or the current one if ``rows`` is empty)."""
        if rows.num_rows:
            self.readings.append(tables.READINGS.prepare(rows))
        return _snapshot_id(self.readings)

    def replace_daily(
        self,
        rows: pa.Table,
        touched: Mapping[str, Iterable[dt.date]],
        *,
        everything: bool = False,
    ) -> int | None:
        """Replace the daily metrics of the touched patient-days (or all) by ``rows``."""
        days: BooleanExpression = AlwaysTrue() if everything else AlwaysFalse()
        for key, dates in sorted(touched.items()):
            in_dates = In("date", sorted(d.isoformat() for d in dates))
            days = Or(days, And(EqualTo("patient_key", key), in_dates))
        rows = tables.DAILY_METRICS.prepare(rows)
        if self.daily.current_snapshot() is None:
            self.daily.append(rows)
        else:
            with warnings.catch_warnings():
                # New patient-days have nothing to replace; pyiceberg warns about that.
                warnings.filterwarnings("ignore", "Delete operation did not match any records")
                self.daily.overwrite(rows, overwrite_filter=days)
        return _snapshot_id(self.daily)


def _between(table: pa.Table, date_from: dt.date | None, date_to: dt.date | None) -> pa.Table:
    mask = None
    if date_from is not None:
        mask = pc.greater_equal(table["date"], pa.scalar(date_from))
    if date_to is not None:
        upper = pc.less_equal(table["date"], pa.scalar(date_to))
        mask = upper if mask is None else pc.and_(mask, upper)
    return table if mask is None else table.filter(mask)


def _snapshot_id(table: Table) -> int | None:
    table.refresh()
    snapshot = table.current_snapshot()
    return None if snapshot is None else int(snapshot.snapshot_id)


def open_lakehouse(settings: LakeSettings) -> Lakehouse:
    """Open the lake's catalog and tables, creating them on first use."""
    storage = open_storage(settings)
    try:
        if storage.local:
            storage.fs.create_dir(storage.path("warehouse"), recursive=True)
        return Lakehouse(
            _open_catalog(settings, storage.uri("warehouse")), settings.namespace_prefix
        )
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
        return GlueCatalog("glucosestream", **properties, **iceberg_properties(settings))
    if not url:
        settings.state_path.mkdir(parents=True, exist_ok=True)
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
