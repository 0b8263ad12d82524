"""The metadata store: patients, ingest batches, pipeline runs and check results.

SQLAlchemy Core over SQLite by default (``<lake>/_state/metadata.db``); any SQLAlchemy URL
works in ``GLUCOSESTREAM_LAKE__METADATA_URL``. External patient ids live here only, never in
the data zones. The last *published* run holds the Iceberg snapshot ids readers must use (its
``run_snapshots`` rows, one per table): the one transaction that writes them and marks the run
published is what makes a publish atomic across tables.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from glucosestream.config import LakeSettings
from glucosestream.lake.always_on_rows import forget_always_on, settle_live_readings
from glucosestream.lake.database import Store, metadata_engine
from glucosestream.lake.metadata_schema import (
    batches,
    check_results,
    devices,
    patient_labels,
    patients,
    run_snapshots,
    runs,
    set_aside,
    token_api_secrets,
    token_patients,
    tokens,
)

__all__ = [
    "BatchRecord",
    "CheckRow",
    "DeviceRecord",
    "MetadataStore",
    "PublishedSnapshots",
    "insert_batch",
    "open_metadata",
]


class CheckRow(Protocol):
    """What the store keeps of a quality check's result (``quality.CheckResult`` is one): the
    lake stays below the stages, so it names the fields, not the class."""

    @property
    def name(self) -> str: ...
    @property
    def passed(self) -> bool: ...
    @property
    def failed_rows(self) -> int: ...
    @property
    def detail(self) -> str: ...


@dataclass(frozen=True, slots=True)
class BatchRecord:
    batch_id: str
    source_name: str
    source_sha256: str
    format: str
    received: int
    accepted: int
    duplicates: int
    quarantined: int
    created_at: dt.datetime
    loaded_run_id: str | None = None
    rejected_run_id: str | None = None
    rejected_reason: str | None = None


@dataclass(frozen=True, slots=True)
class PublishedSnapshots:
    """The snapshot of each table that readers use, by the table's short key (``TableSpec.short``:
    readings, daily, periods, ...); a table without data yet has none."""

    run_id: str
    snapshot_ids: Mapping[str, int | None] = field(default_factory=dict)

    def of(self, table: str) -> int | None:
        """The snapshot id of a table by its short key (None: no data yet)."""
        return self.snapshot_ids.get(table)


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """A device a patient's readings came from: its pseudonym, format, and first reading."""

    patient_key: str
    device_id: str
    source: str
    first_reading_at: dt.datetime


class MetadataStore(Store):
    # patients ---------------------------------------------------------------------------
    def register_patients(self, keys: dict[str, str], seen_at: dt.datetime) -> None:
        """Record ``patient_key -> external_id`` for keys not registered yet."""
        if not keys:
            return
        with self._tx() as con:
            known = set(
                con.scalars(
                    sa.select(patients.c.patient_key).where(patients.c.patient_key.in_(keys))
                )
            )
            new = [
                {"patient_key": k, "external_id": v, "first_seen_at": seen_at}
                for k, v in keys.items()
                if k not in known
            ]
            if new:
                con.execute(patients.insert(), new)

    def devices_of(self, patient_key: str) -> list[DeviceRecord]:
        """The devices registered for a patient, by their first reading."""
        with self._tx() as con:
            rows = con.execute(
                sa.select(
                    devices.c.patient_key,
                    devices.c.device_id,
                    devices.c.source,
                    devices.c.first_reading_at,
                )
                .where(devices.c.patient_key == patient_key)
                .order_by(devices.c.first_reading_at, devices.c.device_id)
            ).all()
        return [DeviceRecord(k, d, s, _utc(t)) for k, d, s, t in rows]

    def forget_patient(self, patient_key: str) -> None:
        """Erase a patient's identity mapping, display label and tokens (the right to be
        forgotten), their external id wherever it appears in a batch's source name (file names
        often hold it), and what serve kept of them (``always_on_rows.forget_always_on``)."""
        with self._tx() as con:
            forget_always_on(con, patient_key)
            external_id = con.scalar(
                sa.select(patients.c.external_id).where(patients.c.patient_key == patient_key)
            )
            if external_id:
                named = con.execute(
                    sa.select(batches.c.batch_id, batches.c.source_name).where(
                        batches.c.source_name.contains(external_id, autoescape=True)
                    )
                ).all()
                for batch_id, name in named:
                    con.execute(
                        batches.update()
                        .where(batches.c.batch_id == batch_id)
                        .values(source_name=name.replace(external_id, "[erased]"))
                    )
            con.execute(patients.delete().where(patients.c.patient_key == patient_key))
            con.execute(patient_labels.delete().where(patient_labels.c.patient_key == patient_key))
            con.execute(devices.delete().where(devices.c.patient_key == patient_key))
            con.execute(set_aside.delete().where(set_aside.c.patient_key == patient_key))
            bound = sa.select(token_patients.c.token_sha256).where(
                token_patients.c.patient_key == patient_key
            )
            con.execute(
                tokens.delete().where(tokens.c.role == "patient", tokens.c.token_sha256.in_(bound))
            )
            con.execute(token_patients.delete().where(token_patients.c.patient_key == patient_key))
            con.execute(  # the keyed api-secret hashes of the tokens just deleted
                token_api_secrets.delete().where(
                    token_api_secrets.c.token_sha256.not_in(sa.select(tokens.c.token_sha256))
                )
            )

    def neutralise_source_names(self) -> int:
        """Replace the file names and paths that stores before issue 13 kept as a batch's
        ``source_name`` (exports are often named after the patient) by the neutral label that
        ingest writes now (``<format> file``); returns how many were replaced."""
        named = sa.or_(batches.c.source_name.contains("/"), batches.c.source_name.contains("."))
        with self._tx() as con:
            if con.scalar(sa.select(batches.c.batch_id).where(named).limit(1)) is None:
                return 0  # a read: no write lock taken when there is nothing to replace
            result = con.execute(
                batches.update().where(named).values(source_name=batches.c.format + " file")
            )
            return int(result.rowcount or 0)

    def compact_storage(self) -> None:
        """Rewrite a SQLite store so deleted rows leave no trace in free pages."""
        if self._engine.dialect.name == "sqlite":
            with self._engine.connect() as con:
                con.exec_driver_sql("VACUUM")

    def patient_keys(self) -> list[str]:
        with self._tx() as con:
            return list(con.scalars(sa.select(patients.c.patient_key).order_by("patient_key")))

    # batches ----------------------------------------------------------------------------
    def add_batch(self, record: BatchRecord) -> None:
        with self._tx() as con:
            insert_batch(con, record)

    def batch_by_sha256(self, sha256: str) -> BatchRecord | None:
        """The batch these bytes were ingested as, unless it was rejected or a run set some of
        its readings aside (then: None, so the file can be ingested again once the data or the
        limits are fixed; the readings already published come back as duplicates)."""
        with self._tx() as con:
            row = con.execute(
                sa.select(batches)
                .where(
                    batches.c.source_sha256 == sha256,
                    batches.c.rejected_run_id.is_(None),
                    batches.c.batch_id.not_in(sa.select(set_aside.c.batch_id)),
                )
                .limit(1)
            ).first()
        return None if row is None else BatchRecord(**row._asdict())

    def batch_records(self, batch_ids: Sequence[str]) -> dict[str, BatchRecord]:
        with self._tx() as con:
            rows = con.execute(sa.select(batches).where(batches.c.batch_id.in_(batch_ids)))
            return {r.batch_id: BatchRecord(**r._asdict()) for r in rows}

    def settled_batch_ids(self) -> set[str]:
        """Batches a run has already loaded or rejected."""
        with self._tx() as con:
            return set(
                con.scalars(
                    sa.select(batches.c.batch_id).where(
                        sa.or_(
                            batches.c.loaded_run_id.is_not(None),
                            batches.c.rejected_run_id.is_not(None),
                        )
                    )
                )
            )

    def pending_batch_ids(self) -> list[str]:
        """Batches recorded and neither loaded nor rejected by a run, oldest first."""
        with self._tx() as con:
            return list(
                con.scalars(
                    sa.select(batches.c.batch_id)
                    .where(batches.c.loaded_run_id.is_(None), batches.c.rejected_run_id.is_(None))
                    .order_by(batches.c.batch_id)
                )
            )

    def reject_batches(self, batch_ids: Sequence[str], run_id: str, reason: str) -> None:
        """Set batches aside: no run loads them again; their bytes may be ingested again."""
        with self._tx() as con:
            con.execute(
                batches.update()
                .where(batches.c.batch_id.in_(batch_ids))
                .values(rejected_run_id=run_id, rejected_reason=reason)
            )

    def set_aside_counts(self, run_id: str) -> list[tuple[str, str, int]]:
        """(batch_id, reason, readings) the run set aside (a run that did not publish: [])."""
        with self._tx() as con:
            rows = con.execute(
                sa.select(set_aside.c.batch_id, set_aside.c.reason, sa.func.count())
                .where(set_aside.c.run_id == run_id)
                .group_by(set_aside.c.batch_id, set_aside.c.reason)
                .order_by(set_aside.c.batch_id, set_aside.c.reason)
            ).all()
        return [(b, r, int(n)) for b, r, n in rows]

    # runs -------------------------------------------------------------------------------
    def start_run(self, run_id: str, started_at: dt.datetime) -> None:
        with self._tx() as con:
            con.execute(
                runs.insert(), [{"run_id": run_id, "started_at": started_at, "status": "running"}]
            )

    def abandon_running_runs(self, finished_at: dt.datetime, message: str) -> list[str]:
        """Close as "abandoned" every run still "running" (call only while holding the run
        lock: then none of them can be alive). Returns their ids."""
        with self._tx() as con:
            ids = list(
                con.scalars(
                    sa.select(runs.c.run_id).where(runs.c.status == "running").order_by("run_id")
                )
            )
            for run_id in ids:
                report = {"run_id": run_id, "status": "abandoned", "message": message}
                con.execute(
                    runs.update()
                    .where(runs.c.run_id == run_id, runs.c.status == "running")
                    .values(status="abandoned", finished_at=finished_at, report=json.dumps(report))
                )
        return ids

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        finished_at: dt.datetime,
        report: dict[str, Any],
        checks: Sequence[CheckRow] = (),
        published: PublishedSnapshots | None = None,
        loaded_batch_ids: Sequence[str] = (),
        devices: Sequence[DeviceRecord] = (),
        set_aside_rows: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Close a run. With ``published``, this one transaction is the atomic publish (and
        registers the ``devices`` its new readings came from and the ``set_aside_rows``, each
        a dict of ``quality.SET_ASIDE_SCHEMA``'s columns, that it kept out, and marks the live
        readings of the batches it loaded as settled by it). Whatever the status, the live
        readings of the batches the run rejected, and those older than ``LIVE_READINGS_KEPT``,
        are deleted."""
        values: dict[str, Any] = {
            "status": status,
            "finished_at": finished_at,
            "report": json.dumps(report, default=str),
        }
        with self._tx() as con:
            con.execute(runs.update().where(runs.c.run_id == run_id).values(**values))
            if published is not None:
                _record_snapshots(con, run_id, published)
            if checks:
                con.execute(
                    check_results.insert(),
                    [
                        {
                            "run_id": run_id,
                            "check_name": c.name,
                            "passed": c.passed,
                            "failed_rows": c.failed_rows,
                            "detail": c.detail,
                        }
                        for c in checks
                    ],
                )
            if devices:
                _register_devices(con, devices, run_id)
            if set_aside_rows:
                con.execute(set_aside.insert(), [{**r, "run_id": run_id} for r in set_aside_rows])
            if loaded_batch_ids:
                con.execute(
                    batches.update()
                    .where(batches.c.batch_id.in_(loaded_batch_ids))
                    .values(loaded_run_id=run_id)
                )
            settle_live_readings(con, run_id, finished_at)

    def run_batch_ids(self, run_id: str) -> list[str]:
        """The batches a run loaded or rejected, oldest first."""
        with self._tx() as con:
            return list(
                con.scalars(
                    sa.select(batches.c.batch_id)
                    .where(
                        sa.or_(
                            batches.c.loaded_run_id == run_id, batches.c.rejected_run_id == run_id
                        )
                    )
                    .order_by(batches.c.batch_id)
                )
            )

    def last_started(self, run_id_prefix: str) -> dt.datetime | None:
        """When the latest run whose id starts with ``run_id_prefix`` started (``maint-``: the
        last maintenance), or None."""
        with self._tx() as con:
            at = con.scalar(
                sa.select(sa.func.max(runs.c.started_at)).where(
                    runs.c.run_id.startswith(run_id_prefix, autoescape=True)
                )
            )
        return None if at is None else _utc(at)

    def published(self) -> PublishedSnapshots | None:
        """Snapshot ids of the last published run, or None before the first publish."""
        last = (
            sa.select(runs.c.run_id)
            .where(runs.c.status == "published")
            .order_by(runs.c.finished_at.desc(), runs.c.run_id.desc())
            .limit(1)
            .scalar_subquery()
        )
        query = (
            sa.select(runs.c.run_id, run_snapshots.c.table_name, run_snapshots.c.snapshot_id)
            .select_from(runs.outerjoin(run_snapshots, run_snapshots.c.run_id == runs.c.run_id))
            .where(runs.c.run_id == last)
        )
        with self._tx() as con:  # one query: it runs on every request of the read side
            rows = con.execute(query).all()
        if not rows:
            return None
        found = {name: int(snapshot) for _, name, snapshot in rows if name is not None}
        return PublishedSnapshots(rows[0].run_id, found)

    def run_history(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest runs, newest first, each with its report (parsed) and check results."""
        with self._tx() as con:
            rows = [
                r._asdict()
                for r in con.execute(
                    sa.select(runs).order_by(runs.c.started_at.desc()).limit(limit)
                )
            ]
            ids = [r["run_id"] for r in rows]
            checks: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
            for c in con.execute(sa.select(check_results).where(check_results.c.run_id.in_(ids))):
                checks[c.run_id].append(c._asdict())
        for row in rows:
            row["report"] = json.loads(row["report"]) if row["report"] else None
            row["checks"] = checks[row["run_id"]]
        return rows


def insert_batch(con: sa.Connection, record: BatchRecord) -> None:
    """Record a raw batch once: a batch already recorded is left as it is. Its writer and a
    run's ``discover`` (which registers committed batches it finds unrecorded) may both record
    the same batch; whoever comes second must not fail."""
    row = _as_row(record)
    if con.dialect.name == "sqlite":
        con.execute(sqlite_insert(batches).values(row).on_conflict_do_nothing())
    elif con.dialect.name == "postgresql":
        con.execute(postgresql_insert(batches).values(row).on_conflict_do_nothing())
    else:  # another database: a check first (a race then fails on the primary key, as before)
        known = con.scalar(
            sa.select(batches.c.batch_id).where(batches.c.batch_id == row["batch_id"])
        )
        if known is None:
            con.execute(batches.insert(), [row])


def _record_snapshots(con: sa.Connection, run_id: str, published: PublishedSnapshots) -> None:
    rows = [
        {"run_id": run_id, "table_name": name, "snapshot_id": snapshot_id}
        for name, snapshot_id in sorted(published.snapshot_ids.items())
        if snapshot_id is not None
    ]
    if rows:
        con.execute(run_snapshots.insert(), rows)


def _as_row(record: Any) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__slots__}


def open_metadata(settings: LakeSettings) -> MetadataStore:
    """Open (and create on first use) the metadata store of the lake in ``settings``."""
    store = MetadataStore(metadata_engine(settings))
    url = settings.resolved_metadata_url()
    if url not in _NEUTRALISED:  # once per store and process: not a scan on every open
        if store.neutralise_source_names():
            store.compact_storage()  # the old names leave no trace in free pages
        _NEUTRALISED.add(url)
    return store


# The stores whose older source names this process has already replaced (see open_metadata).
_NEUTRALISED: set[str] = set()


def _register_devices(con: sa.Connection, records: Sequence[DeviceRecord], run_id: str) -> None:
    """Insert the devices not registered yet (a device keeps its first registration)."""
    keys = sorted({r.patient_key for r in records})
    known = {
        (k, d)
        for k, d in con.execute(
            sa.select(devices.c.patient_key, devices.c.device_id).where(
                devices.c.patient_key.in_(keys)
            )
        )
    }
    new = [
        {**dataclasses.asdict(r), "registered_run_id": run_id}
        for r in records
        if (r.patient_key, r.device_id) not in known
    ]
    if new:
        con.execute(devices.insert(), new)


def _utc(at: dt.datetime) -> dt.datetime:
    """A stored instant as UTC (SQLite gives it back without its zone)."""
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)
