"""The lake in object storage, end to end, against a real S3 server (Ceph radosgw started by
scripts/ceph.sh, which `make test` runs first)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from glucosestream.config import AWS_CHECKSUM_VARIABLES, IngestSettings, LakeSettings, Settings
from glucosestream.ingest import ingest_path
from glucosestream.lake import open_lakehouse, open_metadata
from glucosestream.pipeline import run_pipeline
from glucosestream.pipeline.table_registry import TABLES
from glucosestream.synth import CohortSpec, write_cohort

from .conftest import SECRET
from .test_pipeline_e2e import expected_daily

ENV_FILE = Path(__file__).resolve().parents[1] / ".services" / "s3.env"
BUCKET = "glucosestream-tests"


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    """The test server, and the environment its users start with: Ceph radosgw 16 refuses the
    AWS SDK's default streamed checksums, and pyarrow's S3 client reads its checksum policy
    only from the environment (see lake.storage), which the project never writes."""
    if not ENV_FILE.exists():
        pytest.skip("no test S3 server: run `scripts/ceph.sh start` (make test does)")
    with pytest.MonkeyPatch.context() as patch:
        for name in AWS_CHECKSUM_VARIABLES:
            patch.setenv(name, "WHEN_REQUIRED")
        yield _server(ENV_FILE)


def _server(env_file: Path) -> dict[str, str]:
    values = dict(line.split("=", 1) for line in env_file.read_text().split())
    client = boto3.client(
        "s3",
        endpoint_url=values["GLUCOSESTREAM_TEST_S3_ENDPOINT"],
        aws_access_key_id=values["GLUCOSESTREAM_TEST_S3_ACCESS_KEY"],
        aws_secret_access_key=values["GLUCOSESTREAM_TEST_S3_SECRET_KEY"],
        region_name="us-east-1",
    )
    existing = {b["Name"] for b in client.list_buckets()["Buckets"]}
    if BUCKET not in existing:
        client.create_bucket(Bucket=BUCKET)
    values["client"] = client
    return values


def _settings(s3, tmp_path) -> Settings:
    return Settings(
        lake=LakeSettings(
            root=f"s3://{BUCKET}/lake-{uuid.uuid4().hex[:10]}",
            state_dir=str(tmp_path / "state"),
            s3_endpoint_url=s3["GLUCOSESTREAM_TEST_S3_ENDPOINT"],
            s3_access_key_id=s3["GLUCOSESTREAM_TEST_S3_ACCESS_KEY"],
            s3_secret_access_key=s3["GLUCOSESTREAM_TEST_S3_SECRET_KEY"],
        ),
        ingest=IngestSettings(pseudonym_secret=SECRET),
    )


def _keys(s3, prefix: str) -> list[str]:
    pages = s3["client"].get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_pipeline_on_an_s3_lake(s3, tmp_path):
    environment = dict(os.environ)
    settings = _settings(s3, tmp_path)
    path = Path(
        write_cohort(CohortSpec(patients=2, days=2, seed=4), tmp_path / "c.csv", "csv").path
    )
    report = ingest_path(settings, path)
    assert report.accepted > 0
    assert run_pipeline(settings).status == "published"
    assert ingest_path(settings, path).already_ingested_as == report.batch_id
    assert run_pipeline(settings).status == "noop"

    published = open_metadata(settings.lake).published()
    daily = open_lakehouse(settings.lake, TABLES).read_daily(published.of("daily"))
    assert daily.num_rows == len(expected_daily(path))

    prefix = settings.lake.root.removeprefix(f"s3://{BUCKET}/")
    keys = _keys(s3, prefix)
    assert f"{prefix}/raw/batches/{report.batch_id}/manifest.json" in keys
    assert any(k.startswith(f"{prefix}/warehouse/curated/readings/data/") for k in keys)
    assert any(k.startswith(f"{prefix}/warehouse/results/daily_metrics/metadata/") for k in keys)
    # Nothing of the lake's data is on local disk: only the state database files.
    local = {p.name for p in (tmp_path / "state").iterdir()}
    assert local <= {"catalog.db", "metadata.db", "run.lock"}
    assert dict(os.environ) == environment  # the S3 clients took their settings as options


def test_killed_run_on_s3_recovers_to_uninterrupted_results(s3, tmp_path):
    whole = Path(
        write_cohort(CohortSpec(patients=2, days=2, seed=8), tmp_path / "a.csv", "csv").path
    )
    lines = whole.read_text().splitlines(keepends=True)
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text("".join(lines[: len(lines) // 2]))
    second.write_text(lines[0] + "".join(lines[len(lines) // 2 :]))

    reference = _settings(s3, tmp_path / "ref")
    for part in (first, second):
        ingest_path(reference, part)
        run_pipeline(reference)
    settings = _settings(s3, tmp_path / "killed")
    ingest_path(settings, first)
    run_pipeline(settings)
    ingest_path(settings, second)
    lake = settings.lake
    env = {
        **os.environ,
        "GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": SECRET,
        "GLUCOSESTREAM_LAKE__STATE_DIR": lake.state_dir,
        "GLUCOSESTREAM_LAKE__S3_ENDPOINT_URL": lake.s3_endpoint_url,
        "GLUCOSESTREAM_LAKE__S3_ACCESS_KEY_ID": lake.s3_access_key_id,
        "GLUCOSESTREAM_LAKE__S3_SECRET_ACCESS_KEY": lake.s3_secret_access_key,
    }
    killer = Path(__file__).with_name("killer.py")
    target = "glucosestream.lake.catalog:Lakehouse.commit_data_files"  # the readings, first
    command = [sys.executable, str(killer), target, "after", "", "--", "run", "--lake", lake.root]
    assert subprocess.run(command, env=env, capture_output=True).returncode == -signal.SIGKILL
    assert run_pipeline(settings).status == "published"

    def state(s: Settings) -> list[dict]:
        daily = open_lakehouse(s.lake, TABLES).read_daily(
            open_metadata(s.lake).published().of("daily")
        )
        return daily.drop_columns(["run_id", "computed_at"]).to_pylist()

    assert state(settings) == state(reference)
