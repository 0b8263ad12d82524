"""A metadata store an older release made opens with its published state: the per-table
``runs.<table>_snapshot_id`` columns (before issue 14) become ``run_snapshots`` rows. On SQLite,
and on PostgreSQL when scripts/postgres.sh runs one (slow tier)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from glucosestream.lake import PublishedSnapshots, open_metadata

T0 = dt.datetime(2026, 1, 5, 8, tzinfo=dt.UTC)
SIX = ("readings", "daily", "periods", "episodes", "agp", "sessions")
URL_FILE = Path(__file__).resolve().parents[1] / ".services" / "postgres.url"
OLD_ROWS = [
    # an early run, published before the results tables existed
    {"run_id": "run-1", "at": T0, "status": "published", "readings": 11, "daily": 12},
    {"run_id": "run-2", "at": T0 + dt.timedelta(hours=1), "status": "published",
     "readings": 21, "daily": 22, "periods": 23, "sessions": 26},
    {"run_id": "run-3", "at": T0 + dt.timedelta(hours=2), "status": "failed"},
]  # fmt: skip


def _old_runs(tables: tuple[str, ...]) -> sa.Table:
    """The runs table as a release before issue 14 made it, with these snapshot columns."""
    return sa.Table(
        "runs",
        sa.MetaData(),
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        *(sa.Column(f"{t}_snapshot_id", sa.BigInteger, nullable=True) for t in tables),
        sa.Column("report", sa.Text, nullable=True),
    )


def _old_store(lake, tables=SIX) -> sa.Engine:
    if not lake.metadata_url:
        lake.state_path.mkdir(parents=True)
    engine = sa.create_engine(lake.resolved_metadata_url())
    runs = _old_runs(tables)
    runs.metadata.create_all(engine)
    rows = [
        {
            "run_id": r["run_id"],
            "started_at": r["at"],
            "finished_at": r["at"],
            "status": r["status"],
            **{f"{t}_snapshot_id": r.get(t) for t in tables},
        }
        for r in OLD_ROWS
    ]
    with engine.begin() as con:
        con.execute(runs.insert(), rows)
    return engine


@pytest.fixture
def pg_lake(settings) -> Iterator:
    """The settings' lake with its metadata store in a new database of the test server."""
    if not URL_FILE.exists():
        pytest.skip("no test PostgreSQL server: run `scripts/postgres.sh start` (make test does)")
    server = URL_FILE.read_text().strip()
    name = f"gs_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as con:
        con.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield dataclasses.replace(settings.lake, metadata_url=server.rsplit("/", 1)[0] + "/" + name)
    with admin.connect() as con:
        con.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def _check_migrated(lake, engine: sa.Engine) -> None:
    published = open_metadata(lake).published()
    assert published is not None
    assert published.run_id == "run-2"
    assert [published.of(t) for t in SIX] == [21, 22, 23, None, None, 26]  # null: no row
    columns = {c["name"] for c in sa.inspect(engine).get_columns("runs")}
    assert not {c for c in columns if c.endswith("_snapshot_id")}
    with engine.connect() as con:
        rows = con.execute(sa.text("SELECT run_id, table_name, snapshot_id FROM run_snapshots"))
        assert sorted(tuple(r) for r in rows) == [
            ("run-1", "daily", 12),
            ("run-1", "readings", 11),
            ("run-2", "daily", 22),
            ("run-2", "periods", 23),
            ("run-2", "readings", 21),
            ("run-2", "sessions", 26),
        ]
    assert open_metadata(lake).published() == published  # migrated once: nothing left to move


def test_an_old_layout_store_keeps_its_published_snapshots(settings):
    engine = _old_store(settings.lake)
    _check_migrated(settings.lake, engine)
    engine.dispose()


@pytest.mark.slow
def test_an_old_layout_store_on_postgres_keeps_its_published_snapshots(pg_lake):
    engine = _old_store(pg_lake)
    _check_migrated(pg_lake, engine)
    engine.dispose()


def test_a_store_older_still_with_two_snapshot_columns_migrates(settings):
    _old_store(settings.lake, ("readings", "daily")).dispose()
    published = open_metadata(settings.lake).published()
    assert published is not None
    assert (published.run_id, published.of("readings"), published.of("daily")) == ("run-2", 21, 22)
    assert published.of("agp") is None


def test_a_new_store_records_snapshots_as_rows(settings):
    meta = open_metadata(settings.lake)
    assert meta.published() is None
    meta.start_run("run-a", T0)
    meta.finish_run(
        "run-a",
        status="published",
        finished_at=T0,
        report={},
        published=PublishedSnapshots("run-a", {"readings": 5, "daily": None, "extra": 7}),
    )
    published = meta.published()
    assert published is not None
    assert (published.run_id, published.of("readings"), published.of("extra")) == ("run-a", 5, 7)
    assert published.of("daily") is None


# Issue 17: the uploader's trend columns, on a lake made before them -------------------------
def test_a_lake_from_before_the_trend_columns_reads_and_publishes_them_as_null(settings, tmp_path):
    import pyarrow.parquet as pq

    from glucosestream.ingest import ingest_path
    from glucosestream.lake import RawZone, TableRegistry, open_lakehouse
    from glucosestream.pipeline import run_pipeline
    from glucosestream.pipeline.table_registry import TABLES
    from glucosestream.published import PublishedLake

    trend = ("direction", "rate_mg_dl_min")
    old_readings = TABLES["readings"].schema
    old_readings = old_readings.remove(old_readings.get_field_index(trend[1]))
    old_readings = old_readings.remove(old_readings.get_field_index(trend[0]))
    old = TableRegistry(
        tuple(
            dataclasses.replace(s, schema=old_readings) if s.short == "readings" else s
            for s in TABLES
        )
    )
    assert set(trend).isdisjoint(open_lakehouse(settings.lake, old).readings.schema().column_names)
    csv = tmp_path / "old.csv"
    csv.write_text(
        "patient_id,time,glucose_mg_dl\nP,2026-01-05T08:00:00Z,100\nP,2026-01-05T08:05:00Z,104\n"
    )
    report = ingest_path(settings, csv)
    (batch,) = RawZone(Path(settings.lake.root)).list_batches()
    path = Path(batch.path) / "readings.parquet"
    rows = pq.read_table(path)
    pq.write_table(rows.drop_columns(list(trend)), path)  # as a release before issue 17 wrote it
    assert set(trend).isdisjoint(pq.read_schema(path).names)
    assert batch.readings()["direction"].to_pylist() == [None, None]
    (chunk,) = batch.readings_in_chunks(10)
    assert chunk["rate_mg_dl_min"].to_pylist() == [None, None]
    assert run_pipeline(settings).status == "published"
    lake = open_lakehouse(settings.lake, TABLES)
    assert set(trend) <= set(lake.readings.schema().column_names)  # added on open
    published = PublishedLake(settings).current().readings([rows["patient_key"][0].as_py()])
    assert published.num_rows == report.accepted == 2
    assert published["direction"].to_pylist() == [None, None]
