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
from dataclasses import dataclass
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError
from pyiceberg.expressions import AlwaysFalse, AlwaysTrue, And, BooleanExpression, EqualTo, In, Or
from pyiceberg.table import Table

from glucosestream.config import LakeSettings
from glucosestream.errors import LakeError
from glucosestream.lake.metadata import PublishedSnapshots
from glucosestream.lake.storage import iceberg_properties, open_storage
from glucosestream.metrics.daily import DAILY_METRICS_SCHEMA
from glucosestream.readings import READING_SCHEMA

__all__ = ["DAILY_METRICS_TABLE", "READINGS_TABLE", "Lakehouse", "open_lakehouse"]

log = logging.getLogger(__name__)

READINGS_TABLE: Final = ("curated", "readings")
DAILY_METRICS_TABLE: Final = ("results", "daily_metrics")


@dataclass(frozen=True, slots=True)
class _Spec:
    identifier: tuple[str, str]
    schema: pa.Schema


_SPECS: Final = (
    _Spec(READINGS_TABLE, READING_SCHEMA),
    _Spec(DAILY_METRICS_TABLE, DAILY_METRICS_SCHEMA),
)


class Lakehouse:
    """The curated and results tables, read at published snapshots."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self.readings = self._table(READINGS_TABLE)
        self.daily = self._table(DAILY_METRICS_TABLE)

    def _table(self, identifier: tuple[str, str]) -> Table:
        spec = next(s for s in _SPECS if s.identifier == identifier)
        try:
            return self._catalog.load_table(identifier)
        except NoSuchTableError:
            with contextlib.suppress(NamespaceAlreadyExistsError):
                self._catalog.create_namespace(identifier[0])
            return self._catalog.create_table(identifier, schema=spec.schema)

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

    def read_readings(self, snapshot_id: int | None, patient_keys: Iterable[str]) -> pa.Table:
        keys = sorted(set(patient_keys))
        if snapshot_id is None or not keys:
            return READING_SCHEMA.empty_table()
        scan = self.readings.scan(row_filter=In("patient_key", keys), snapshot_id=snapshot_id)
        return scan.to_arrow().cast(READING_SCHEMA)

    def read_daily(
        self,
        snapshot_id: int | None,
        patient_key: str | None = None,
        date_from: dt.date | None = None,
        date_to: dt.date | None = None,
    ) -> pa.Table:
        if snapshot_id is None:
            return DAILY_METRICS_SCHEMA.empty_table()
        scan = self.daily.scan(snapshot_id=snapshot_id)
        if patient_key is not None:
            scan = scan.filter(EqualTo("patient_key", patient_key))
        table = scan.to_arrow().cast(DAILY_METRICS_SCHEMA)
        return _between(table, date_from, date_to).sort_by(
            [("patient_key", "ascending"), ("date", "ascending")]
        )

    def append_readings(self, rows: pa.Table) -> int | None:
        """Append curated rows; the new snapshot id (or the current one if ``rows`` is empty)."""
        if rows.num_rows:
            self.readings.append(rows.cast(READING_SCHEMA))
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
        if self.daily.current_snapshot() is None:
            self.daily.append(rows.cast(DAILY_METRICS_SCHEMA))
        else:
            with warnings.catch_warnings():
                # New patient-days have nothing to replace; pyiceberg warns about that.
                warnings.filterwarnings("ignore", "Delete operation did not match any records")
                self.daily.overwrite(rows.cast(DAILY_METRICS_SCHEMA), overwrite_filter=days)
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
        if not settings.catalog_url:
            settings.state_path.mkdir(parents=True, exist_ok=True)
        if storage.local:
            storage.fs.create_dir(storage.path("warehouse"), recursive=True)
        catalog = SqlCatalog(
            "glucosestream",
            uri=settings.resolved_catalog_url(),
            warehouse=storage.uri("warehouse"),
            **iceberg_properties(settings),
        )
        # Like the metadata store: no pooled connections left open behind a short-lived catalog.
        catalog.engine.dispose()
        catalog.engine = sa.create_engine(
            settings.resolved_catalog_url(), poolclass=sa.pool.NullPool
        )
        return Lakehouse(catalog)
    except (OSError, ValueError) as err:
        raise LakeError(
            f"cannot open the lake at {settings.location}: {err}; "
            "check the path (--lake or GLUCOSESTREAM_LAKE) is a writable folder or bucket"
        ) from err
