"""The catalog and the metadata store on a real PostgreSQL server (started by
scripts/postgres.sh, which `make test` runs first)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from glucosestream.config import IngestSettings, LakeSettings, Settings
from glucosestream.ingest import ingest_path
from glucosestream.lake import open_lakehouse, open_metadata
from glucosestream.pipeline import run_pipeline
from glucosestream.pipeline.table_registry import TABLES
from glucosestream.synth import CohortSpec, write_cohort

from .conftest import SECRET
from .pg_database import URL_FILE, throwaway_database
from .test_pipeline_e2e import expected_daily


@pytest.fixture
def pg_url() -> Iterator[str]:
    if not URL_FILE.exists():
        pytest.skip("no test PostgreSQL server: run `scripts/postgres.sh start` (make test does)")
    with throwaway_database(URL_FILE.read_text().strip()) as url:
        yield url


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
    daily = open_lakehouse(pg_settings.lake, TABLES).read_daily(published.of("daily"))
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


def test_tokens_on_postgres_keep_no_credential_and_revoke_at_once(pg_settings):
    """On a database URL the access key lives in the database (every server on it shares it);
    an older store's plain SHA-1s are rekeyed; revocation and expiry work on PostgreSQL."""
    import datetime as dt
    import hashlib

    from glucosestream.access import authenticate, authenticate_api_secret, create_token
    from glucosestream.errors import AuthError
    from glucosestream.lake import open_access

    now = dt.datetime.now(dt.UTC)
    token = create_token(pg_settings.lake, "admin", label="a", now=now)
    old = create_token(pg_settings.lake, "admin", label="old", now=now)
    sha1 = {t: hashlib.sha1(t.encode()).hexdigest() for t in (token, old)}
    engine = sa.create_engine(pg_settings.lake.metadata_url)
    with engine.begin() as con:  # as an older release left it: old's SHA-1 in plain
        con.execute(sa.text("DELETE FROM token_api_secrets WHERE token_sha256 = :t"),
                    {"t": hashlib.sha256(old.encode()).hexdigest()})  # fmt: skip
        con.execute(
            sa.text("CREATE TABLE token_sha1 (token_sha1 VARCHAR(40) PRIMARY KEY, "
                    "token_sha256 VARCHAR(64) NOT NULL)")
        )  # fmt: skip
        con.execute(sa.text("INSERT INTO token_sha1 VALUES (:s, :t)"),
                    {"s": sha1[old], "t": hashlib.sha256(old.encode()).hexdigest()})  # fmt: skip
    store = open_access(pg_settings.lake)
    with engine.connect() as con:
        assert not sa.inspect(con).has_table("token_sha1")
        stored = [str(v) for row in con.execute(sa.text("SELECT * FROM token_api_secrets"))
                  for v in row]  # fmt: skip
    engine.dispose()
    assert len(stored) == 4
    assert not set(sha1.values()) & set(stored)
    for value in stored:
        with pytest.raises(AuthError):
            authenticate_api_secret(store, value)
    assert authenticate_api_secret(store, sha1[old]).role == "admin"
    assert authenticate_api_secret(open_access(pg_settings.lake), sha1[token]).role == "admin"
    record = store.tokens.revoke_token(hashlib.sha256(token.encode()).hexdigest()[:12], at=now)
    assert record.revoked_at is not None
    with pytest.raises(AuthError, match="revoked"):
        authenticate(store, token)
    with pytest.raises(AuthError, match="revoked"):
        authenticate_api_secret(store, sha1[token])
    soon = create_token(pg_settings.lake, "patient", label="p", now=now, patient_keys=["k"],
                        expires_at=now + dt.timedelta(hours=1))  # fmt: skip
    assert authenticate(store, soon, now=now).role == "patient"
    with pytest.raises(AuthError, match="expired"):
        authenticate(store, soon, now=now + dt.timedelta(hours=2))
