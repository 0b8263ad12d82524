"""A metadata store an older release made opens with its published state: the per-table
``runs.<table>_snapshot_id`` columns (before issue 14) become ``run_snapshots`` rows."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from glucosestream.lake import open_metadata

T0 = dt.datetime(2026, 1, 5, 8, tzinfo=dt.UTC)
# The runs table as the release before issue 14 made it (lake/metadata_schema.py then).
OLD_RUNS = (
    "CREATE TABLE runs (run_id VARCHAR(64) NOT NULL PRIMARY KEY, "
    "started_at DATETIME NOT NULL, finished_at DATETIME, status VARCHAR(16) NOT NULL, "
    "readings_snapshot_id BIGINT, daily_snapshot_id BIGINT, periods_snapshot_id BIGINT, "
    "episodes_snapshot_id BIGINT, agp_snapshot_id BIGINT, sessions_snapshot_id BIGINT, "
    "report TEXT)"
)
OLD_ROWS = [
    # an early run, published before the results tables existed
    {"run_id": "run-1", "at": T0, "status": "published", "r": 11, "d": 12, "p": None, "s": None},
    {"run_id": "run-2", "at": T0 + dt.timedelta(hours=1), "status": "published",
     "r": 21, "d": 22, "p": 23, "s": 26},
    {"run_id": "run-3", "at": T0 + dt.timedelta(hours=2), "status": "failed",
     "r": None, "d": None, "p": None, "s": None},
]  # fmt: skip


def _old_store(settings, create=OLD_RUNS, columns=("readings", "daily", "periods", "sessions")):
    settings.lake.state_path.mkdir(parents=True)
    engine = sa.create_engine(settings.lake.resolved_metadata_url())
    names = ", ".join(f"{c}_snapshot_id" for c in columns)
    values = ", ".join(f":{c[0]}" for c in columns)
    with engine.begin() as con:
        con.execute(sa.text(create))
        for row in OLD_ROWS:
            con.execute(
                sa.text(
                    f"INSERT INTO runs (run_id, started_at, finished_at, status, {names}) "
                    f"VALUES (:run_id, :at, :at, :status, {values})"
                ),
                row,
            )
    return engine


def test_an_old_layout_store_keeps_its_published_snapshots(settings):
    engine = _old_store(settings)
    published = open_metadata(settings.lake).published()
    assert published is not None
    assert published.run_id == "run-2"
    assert [published.of(t) for t in ("readings", "daily", "periods", "sessions")] == [
        21,
        22,
        23,
        26,
    ]
    assert published.of("episodes") is None  # a null column: no row
    columns = {c["name"] for c in sa.inspect(engine).get_columns("runs")}
    assert not {c for c in columns if c.endswith("_snapshot_id")}
    with engine.connect() as con:
        rows = con.execute(sa.text("SELECT run_id, table_name, snapshot_id FROM run_snapshots"))
        assert sorted(rows) == [
            ("run-1", "daily", 12),
            ("run-1", "readings", 11),
            ("run-2", "daily", 22),
            ("run-2", "periods", 23),
            ("run-2", "readings", 21),
            ("run-2", "sessions", 26),
        ]
    engine.dispose()


def test_the_migration_runs_once(settings):
    _old_store(settings).dispose()
    first = open_metadata(settings.lake).published()
    assert open_metadata(settings.lake).published() == first


def test_a_store_older_still_with_two_snapshot_columns_migrates(settings):
    two = (
        "CREATE TABLE runs (run_id VARCHAR(64) PRIMARY KEY, started_at DATETIME NOT NULL, "
        "finished_at DATETIME, status VARCHAR(16) NOT NULL, readings_snapshot_id BIGINT, "
        "daily_snapshot_id BIGINT, report TEXT)"
    )
    _old_store(settings, two, ("readings", "daily")).dispose()
    published = open_metadata(settings.lake).published()
    assert published is not None
    assert (published.run_id, published.of("readings"), published.of("daily")) == ("run-2", 21, 22)
    assert published.of("agp") is None


def test_a_new_store_records_snapshots_as_rows(settings):
    from glucosestream.lake import PublishedSnapshots

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
