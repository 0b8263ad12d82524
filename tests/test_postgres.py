"""The catalog and the metadata store on a real PostgreSQL server (started by
scripts/postgres.sh, which `make test` runs first)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from glucosestream.config import IngestSettings, LakeSettings, Settings
from glucosestream.ingest import ingest_path
from glucosestream.lake import open_lakehouse, open_metadata
from glucosestream.pipeline import run_pipeline
from glucosestream.synth import CohortSpec, write_cohort

from .conftest import SECRET
from .test_pipeline_e2e import expected_daily

URL_FILE = Path(__file__).resolve().parents[1] / ".services" / "postgres.url"


@pytest.fixture
def pg_url() -> Iterator[str]:
    if not URL_FILE.exists():
        pytest.skip("no test PostgreSQL server: run `scripts/postgres.sh start` (make test does)")
    server = URL_FILE.read_text().strip()
    name = f"gs_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as con:
        con.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield server.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as con:
        con.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def pg_settings(tmp_path, pg_url) -> Settings:
    return Settings(
        lake=LakeSettings(root=str(tmp_path / "lake"), catalog_url=pg_url, metadata_url=pg_url),
        ingest=IngestSettings(pseudonym_secret=SECRET),
    )


def test_pipeline_on_postgres_catalog_and_metadata(pg_settings, tmp_path):
    spec = CohortSpec(patients=3, days=2, seed=21)
    path = Path(write_cohort(spec, tmp_path / "c.csv", "csv").path)
    first = ingest_path(pg_settings, path)
    assert run_pipeline(pg_settings).status == "published"
    again = ingest_path(pg_settings, path)
    assert again.already_ingested_as == first.batch_id
    assert run_pipeline(pg_settings).status == "noop"

    published = open_metadata(pg_settings.lake).published()
    daily = open_lakehouse(pg_settings.lake).read_daily(published.daily_snapshot_id)
    assert daily.num_rows == len(expected_daily(path))
    assert not (Path(pg_settings.lake.root) / "_state" / "metadata.db").exists()
    assert not (Path(pg_settings.lake.root) / "_state" / "catalog.db").exists()
    engine = sa.create_engine(pg_settings.lake.metadata_url)
    with engine.connect() as con:
        tables = set(sa.inspect(con).get_table_names())
        statuses = [
            r[0] for r in con.execute(sa.text("SELECT status FROM runs ORDER BY started_at"))
        ]
    engine.dispose()
    assert {"patients", "batches", "runs", "check_results", "tokens", "iceberg_tables"} <= tables
    assert statuses == ["published", "noop"]
