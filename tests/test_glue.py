"""The Iceberg catalog on AWS Glue, by configuration. Glue has no local server, so its API
calls go to moto's in-process emulator; the table files are real (local warehouse)."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from glucosestream.config import IngestSettings, LakeSettings, Settings
from glucosestream.ingest import ingest_path
from glucosestream.lake import open_lakehouse, open_metadata
from glucosestream.pipeline import run_pipeline
from glucosestream.pipeline.table_registry import TABLES
from glucosestream.synth import CohortSpec, write_cohort

from .conftest import SECRET
from .test_pipeline_e2e import expected_daily


@pytest.fixture
def aws(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.client("glue", region_name="eu-west-1")


def test_pipeline_with_a_glue_catalog(aws, tmp_path):
    settings = Settings(
        lake=LakeSettings(
            root=str(tmp_path / "lake"), catalog_url="glue://eu-west-1", namespace_prefix="gs_t_"
        ),
        ingest=IngestSettings(pseudonym_secret=SECRET),
    )
    path = Path(
        write_cohort(CohortSpec(patients=2, days=2, seed=6), tmp_path / "c.csv", "csv").path
    )
    ingest_path(settings, path)
    assert run_pipeline(settings).status == "published"
    assert {d["Name"] for d in aws.get_databases()["DatabaseList"]} == {
        "gs_t_curated",
        "gs_t_results",
    }
    tables = {t["Name"] for t in aws.get_tables(DatabaseName="gs_t_curated")["TableList"]}
    assert tables == {"readings", "events", "sensor_sessions"}
    published = open_metadata(settings.lake).published()
    daily = open_lakehouse(settings.lake, TABLES).read_daily(published.of("daily"))
    assert daily.num_rows == len(expected_daily(path))
    assert not (tmp_path / "lake" / "_state" / "catalog.db").exists()
