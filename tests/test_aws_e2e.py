"""Layer 5 of the AWS deployment, end to end: the example root applied on a moto server (as in
tests/test_aws_moto.py), readings posted through the deployed ingest function, and the
generated state machine executed on moto with each Lambda invocation running the project's own
handler in-process (tests/aws_moto.lambdas_in_process): the lake on the real S3 server (Ceph,
scripts/ceph.sh), Glue, the DynamoDB run lease and the Secrets Manager secret on moto, the
metadata store on the slow tier's PostgreSQL (else SQLite). What it publishes must equal a local
run's on the same uploads."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest

from glucosestream.access import create_token
from glucosestream.aws import handlers
from glucosestream.config import (
    AWS_CHECKSUM_VARIABLES,
    IngestSettings,
    LakeSettings,
    PipelineSettings,
    Settings,
)
from glucosestream.ingest import lambda_handler
from glucosestream.ingest.identity import patient_key
from glucosestream.lake import open_metadata
from glucosestream.pipeline import run_pipeline
from glucosestream.synth import CohortSpec, write_cohort

from .aws_moto import ACCESS_KEY, REGION, Stack, apply_example, lambdas_in_process, moto_server
from .conftest import SECRET
from .pg_database import URL_FILE as PG_URL_FILE
from .pg_database import throwaway_database
from .test_aws_moto import example_variables, execute, phase_seconds, require_terraform
from .test_scale_out import tables_of

CEPH_ENV = Path(__file__).resolve().parents[1] / ".services" / "s3.env"
PER_TASK = 300  # readings per bucket task: several buckets for the Map (the same locally)
RUN_WAIT_S = 300


@pytest.fixture
def ceph(monkeypatch) -> dict[str, str]:
    """The test S3 server (Ceph radosgw, scripts/ceph.sh): its endpoint and keys."""
    if not CEPH_ENV.exists():
        pytest.skip("no test S3 server: run `scripts/ceph.sh start` (make test does)")
    for name in AWS_CHECKSUM_VARIABLES:  # radosgw 16 refuses streamed checksums (test_s3.py)
        monkeypatch.setenv(name, "WHEN_REQUIRED")
    values = dict(line.split("=", 1) for line in CEPH_ENV.read_text().split())
    return {
        "endpoint": values["GLUCOSESTREAM_TEST_S3_ENDPOINT"],
        "key": values["GLUCOSESTREAM_TEST_S3_ACCESS_KEY"],
        "secret": values["GLUCOSESTREAM_TEST_S3_SECRET_KEY"],
    }


@pytest.fixture
def metadata_url(tmp_path) -> Iterator[str]:
    """The deployed lake's metadata store: a fresh database on the slow tier's PostgreSQL (what
    the deployment uses: RDS or Aurora), else SQLite in tmp_path (the handlers run in this one
    process, so a file is shared by all of them as the server would be)."""
    if not PG_URL_FILE.exists():
        yield f"sqlite:///{tmp_path / 'metadata.db'}"
        return
    with throwaway_database(PG_URL_FILE.read_text().strip()) as url:
        yield url


@pytest.fixture
def fresh_handlers() -> Iterator[None]:
    """The handlers' per-container caches, empty before and after (a new 'container')."""
    handlers._cached.clear()
    handlers._access.clear()
    yield
    handlers._cached.clear()
    handlers._access.clear()


def _readings(tmp_path: Path) -> list[list[dict]]:
    """Six synthetic patients over three days, as three uploads (one a day) of /v1/readings
    rows."""
    spec = CohortSpec(patients=6, days=3, seed=16, interval_min=15)
    table = pq.read_table(write_cohort(spec, tmp_path / "cohort.parquet", "parquet").path)
    columns = ["patient_id", "device_id", "time", "glucose_mg_dl", "tz"]
    rows = sorted(
        ({**row, "time": row["time"].isoformat()} for row in table.select(columns).to_pylist()),
        key=lambda row: (row["time"], row["patient_id"]),
    )
    days = sorted({row["time"][:10] for row in rows})
    return [[row for row in rows if row["time"][:10] == day] for day in days]


def _v2_event(rows: list[dict], token: str) -> dict:
    """An API Gateway HTTP API (payload 2.0) request to POST /v1/readings."""
    return {
        "version": "2.0",
        "routeKey": "POST /v1/readings",
        "rawPath": "/v1/readings",
        "headers": {"authorization": f"Bearer {token}", "content-type": "application/json"},
        "requestContext": {"http": {"method": "POST", "path": "/v1/readings"}, "stage": "$default"},
        "body": json.dumps({"readings": rows}),
        "isBase64Encoded": False,
    }


def _invoke(lam, function_name: str, event: dict) -> dict:
    answer = lam.invoke(FunctionName=function_name, Payload=json.dumps(event).encode())
    payload = json.loads(answer["Payload"].read())
    assert "FunctionError" not in answer, payload
    return payload


def _deployed_settings(stack: Stack, ceph: dict[str, str], metadata_url: str) -> Settings:
    """The settings a function of the stack has (its environment and secret), as the test
    reads the lake with them: the lake on Ceph, Glue and the lock on moto."""
    environment = stack.outputs["environment"]
    return Settings(
        lake=LakeSettings(
            root=environment["GLUCOSESTREAM_LAKE__ROOT"],
            catalog_url=environment["GLUCOSESTREAM_LAKE__CATALOG_URL"],
            namespace_prefix=environment["GLUCOSESTREAM_LAKE__NAMESPACE_PREFIX"],
            lock_url=environment["GLUCOSESTREAM_LAKE__LOCK_URL"],
            metadata_url=metadata_url,
            s3_endpoint_url=ceph["endpoint"],
            s3_access_key_id=ceph["key"],
            s3_secret_access_key=ceph["secret"],
        ),
        ingest=IngestSettings(pseudonym_secret=SECRET),
        pipeline=PipelineSettings(readings_per_task=PER_TASK),
    )


def _aws_environment(moto, ceph: dict[str, str]) -> dict[str, str]:
    """What a function's process gets besides its Terraform environment: AWS SDK calls (Glue,
    DynamoDB, Secrets Manager) go to moto, the lake's S3 to Ceph, buckets smaller."""
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": ACCESS_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL_GLUE": moto.endpoint,
        "AWS_ENDPOINT_URL_DYNAMODB": moto.endpoint,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto.endpoint,
        "GLUCOSESTREAM_LAKE__S3_ENDPOINT_URL": ceph["endpoint"],
        "GLUCOSESTREAM_LAKE__S3_ACCESS_KEY_ID": ceph["key"],
        "GLUCOSESTREAM_LAKE__S3_SECRET_ACCESS_KEY": ceph["secret"],
        "GLUCOSESTREAM_PIPELINE__READINGS_PER_TASK": str(PER_TASK),
        **dict.fromkeys(AWS_CHECKSUM_VARIABLES, "WHEN_REQUIRED"),
    }


def _ceph_bucket(ceph: dict[str, str], name: str) -> Any:
    client = boto3.client(
        "s3",
        endpoint_url=ceph["endpoint"],
        aws_access_key_id=ceph["key"],
        aws_secret_access_key=ceph["secret"],
        region_name=REGION,
    )
    client.create_bucket(Bucket=name)
    return client


def _drop_ceph_bucket(client, name: str) -> None:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=name, Delete={"Objects": keys})
    client.delete_bucket(Bucket=name)


@pytest.mark.slow  # the real S3 server (Ceph), terraform and a pipeline run: about 3 minutes
def test_readings_posted_to_the_deployed_stack_are_published_as_a_local_run_publishes_them(
    ceph, metadata_url, fresh_handlers, tmp_path, monkeypatch, capsys
):
    require_terraform()
    uploads = _readings(tmp_path)
    local = _run_locally(tmp_path / "local", uploads[:2])
    started = time.monotonic()
    with moto_server() as moto:
        prefix = f"gs5-{uuid.uuid4().hex[:6]}"
        variables = example_variables(prefix) | {"schedule_enabled": False}
        stack = apply_example(moto, tmp_path / "tf", variables)
        deployed = _deployed_settings(stack, ceph, metadata_url)
        s3 = _ceph_bucket(ceph, stack.outputs["bucket"])
        try:
            environment = _aws_environment(moto, ceph)
            for name, value in environment.items():  # the test reads the lake as a function
                monkeypatch.setenv(name, value)
            secret = {
                "GLUCOSESTREAM_LAKE__METADATA_URL": metadata_url,
                "GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": SECRET,
            }
            moto.client("secretsmanager").put_secret_value(
                SecretId=stack.outputs["secret_arn"], SecretString=json.dumps(secret)
            )
            with lambdas_in_process(environment) as invocations:
                seconds = _run_on_the_stack(moto, stack, deployed, uploads, invocations)
                published = tables_of(deployed)
                seconds["failing run"] = _a_failing_bucket_publishes_nothing(
                    moto, stack, deployed, uploads[2], invocations, monkeypatch
                )
                assert tables_of(deployed) == published
                maintain = stack.outputs["function_names"]["maintain"]
                maintained = _invoke(moto.client("lambda"), maintain, {})
                assert maintained["status"] == "maintained", maintained
                assert tables_of(deployed) == published
        finally:
            _drop_ceph_bucket(s3, stack.outputs["bucket"])
    assert published["daily"], "the run published daily metrics"
    assert published == tables_of(local)
    phases = ", ".join(f"{phase} {value:.1f}" for phase, value in seconds.items())
    with capsys.disabled():
        sys.stdout.write(
            f"\nlayer 5 seconds: terraform {phase_seconds(stack)}, {phases}, "
            f"all {time.monotonic() - started:.1f} (load {os.getloadavg()[0]:.2f})\n"
        )


def _run_locally(lake: Path, uploads: list[list[dict]]) -> Settings:
    """The same uploads through the same ingest code into a local lake, then one local run."""
    settings = Settings(
        lake=LakeSettings(root=str(lake)),
        ingest=IngestSettings(pseudonym_secret=SECRET),
        pipeline=PipelineSettings(readings_per_task=PER_TASK),
    )
    token = _uploader_token(settings, uploads)
    for rows in uploads:
        answer = lambda_handler.handle_event(settings, _v2_event(rows, token))
        assert answer["statusCode"] == 200, answer["body"]
    assert run_pipeline(settings).status == "published"
    return settings


def _uploader_token(settings: Settings, uploads: list[list[dict]]) -> str:
    patients = {row["patient_id"] for rows in uploads for row in rows}
    return create_token(
        settings.lake,
        "uploader",
        label="layer 5",
        now=dt.datetime.now(dt.UTC),
        patient_keys=[patient_key(SECRET.encode(), p) for p in sorted(patients)],
    )


def _run_on_the_stack(moto, stack: Stack, deployed: Settings, uploads, invocations) -> dict:
    """Post the first two uploads through the ingest function (its authorizer first), run the
    state machine twice (the second finds nothing new); each phase's seconds."""
    lam, sfn = moto.client("lambda"), moto.client("stepfunctions")
    names = stack.outputs["function_names"]
    token = _uploader_token(deployed, uploads)
    clock = time.monotonic()
    for rows in uploads[:2]:
        _post(lam, names, rows, token)
    stranger = _v2_event(uploads[0], "gs_not-a-token")
    assert _invoke(lam, names["authorizer"], stranger)["isAuthorized"] is False
    seconds = {"ingest": time.monotonic() - clock}

    clock = time.monotonic()
    assert _run(sfn, stack, "run-1")["status"] == "published"
    seconds["run"] = time.monotonic() - clock
    tasks = [i for i in invocations if i.function_name == names["bucket_task"]]
    assert len(tasks) >= 2, "the Map ran several buckets"
    assert not any(i.error for i in invocations), invocations

    invocations.clear()
    clock = time.monotonic()
    assert _run(sfn, stack, "run-2")["status"] == "noop"
    seconds["noop run"] = time.monotonic() - clock
    assert [i.function_name for i in invocations] == [names["plan"]]
    return seconds


def _a_failing_bucket_publishes_nothing(moto, stack, deployed, rows, invocations, monkeypatch):
    """A new upload whose every bucket task fails, retries included: the run rejects the
    batch and publishes nothing of it (the caller checks the published tables are unchanged)."""
    lam, sfn = moto.client("lambda"), moto.client("stepfunctions")
    names = stack.outputs["function_names"]
    batch_id = _post(lam, names, rows, _uploader_token(deployed, [rows]))

    def out_of_memory(event, context):
        raise MemoryError("test: the bucket task runs out of memory")

    monkeypatch.setattr(handlers, "bucket_task", out_of_memory)
    invocations.clear()
    clock = time.monotonic()
    run = _run(sfn, stack, "run-3")
    seconds = time.monotonic() - clock
    assert run["status"] == "rejected", run
    tasks = [i for i in invocations if i.function_name == names["bucket_task"]]
    assert tasks, "the Map ran the new readings' buckets"
    assert {i.error for i in tasks} == {"MemoryError"}
    buckets = len(tasks) // 4
    assert len(tasks) == 4 * buckets, "each bucket tried once and retried three times"
    record = open_metadata(deployed.lake).batch_records([batch_id])[batch_id]
    assert record.rejected_run_id == run["run_id"]
    assert "MemoryError" in record.rejected_reason
    return seconds


def _post(lam, names: dict[str, str], rows: list[dict], token: str) -> str:
    """POST /v1/readings as API Gateway would: the authorizer, then ingest; the batch id."""
    request = _v2_event(rows, token)
    assert _invoke(lam, names["authorizer"], request)["isAuthorized"] is True
    answer = _invoke(lam, names["ingest"], request)
    assert answer["statusCode"] == 200, answer["body"]
    body = json.loads(answer["body"])
    assert body["accepted"] == len(rows)
    return str(body["batch_id"])


def _run(sfn, stack: Stack, name: str) -> dict:
    """Execute the state machine (a name, as the schedule gives one); the run's last answer."""
    execution = execute(sfn, stack.outputs["state_machine_arn"], name, {}, timeout_s=RUN_WAIT_S)
    assert execution["status"] == "SUCCEEDED", _history(sfn, execution)
    return dict(json.loads(execution["output"])["run"])


def _history(sfn, execution: dict) -> list:
    """The failed states of an execution, for an assertion's message."""
    events = sfn.get_execution_history(executionArn=execution["executionArn"])["events"]
    return [e for e in events if "Failed" in e["type"] or "failed" in json.dumps(e, default=str)]
