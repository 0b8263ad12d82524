"""A run in steps, each as its own Lambda function would run it (``pipeline.stepwise`` through
``aws.handlers``), with the run lock as a lease in DynamoDB (moto, in this process): the same
published tables as a run in one process; a bucket that fails for good rejects its batches and
never publishes part of a run; the lease excludes, ends, and is checked before publishing; the
command line takes the same lease on such a lake. The state machine that calls the steps is
generated from the pipeline's stages (its file is current; tests/test_aws_moto.py executes it)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from glucosestream.access import create_token
from glucosestream.aws import handlers, state_machine
from glucosestream.config import IngestSettings, LakeSettings, PipelineSettings, Settings
from glucosestream.errors import ConfigError, InvalidInput, RunInProgress, RunLockLost
from glucosestream.ingest import ingest_path
from glucosestream.lake import open_lease, open_metadata
from glucosestream.pipeline import STEPS, run_pipeline, stepwise
from glucosestream.pipeline.execution import Execution
from glucosestream.synth import CohortSpec, write_cohort

from .conftest import SECRET
from .test_scale_out import tables_of

moto = pytest.importorskip("moto", reason="moto (the dev extra) runs DynamoDB in-process")
boto3 = pytest.importorskip("boto3", reason="boto3 (the aws extra)")

TABLE = "gs-run-lock"
PER_TASK = 2_000  # 16 buckets for these files


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """DynamoDB (and Secrets Manager) on moto in this process, with the lock table."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with moto.mock_aws():
        boto3.client("dynamodb", region_name="us-east-1").create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "lake", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "lake", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield


def _settings(lake: Path, *, leased: bool = True) -> Settings:
    return Settings(
        lake=LakeSettings(root=str(lake), lock_url=f"dynamodb://{TABLE}" if leased else ""),
        ingest=IngestSettings(pseudonym_secret=SECRET),
        pipeline=PipelineSettings(readings_per_task=PER_TASK),
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path]:
    """Twelve patients: two days, then the next day on its own."""
    folder = tmp_path_factory.mktemp("stepwise")
    whole = pq.read_table(
        write_cohort(
            CohortSpec(patients=12, days=3, seed=16, interval_min=15),
            folder / "all.parquet",
            "parquet",
        ).path
    )
    cut = pc.max(whole["time"]).as_py().replace(hour=0, minute=0, second=0, microsecond=0)
    early = pc.less(whole["time"], cut)
    first, second = folder / "first.parquet", folder / "second.parquet"
    pq.write_table(whole.filter(early), first)
    pq.write_table(whole.filter(pc.invert(early)), second)
    return first, second


def state_machine_run(
    settings: Settings, fail_bucket: int | None = None
) -> tuple[dict[str, Any], int]:
    """Drive the steps as the generated state machine does: begin, then Map and conclude
    until no buckets are left. ``fail_bucket``: that bucket of the first attempt fails for good
    (what the Map's catch answers after the retries). The last answer and the attempts."""
    answer = stepwise.begin(settings)
    attempts = 0
    while "buckets" in answer:
        results = []
        for n in answer["buckets"]:
            if attempts == 0 and n == fail_bucket:
                results.append({"bucket": n, "error": "States.Timeout", "cause": "15 min"})
            else:
                results.append(stepwise.bucket(settings, answer["run_id"], answer["attempt"], n))
        answer = stepwise.conclude(settings, answer["run_id"], answer["attempt"], results)
        attempts += 1
    return answer, attempts


def test_a_stepwise_run_publishes_what_a_run_in_one_process_does(aws, files, tmp_path):
    stepped, whole = _settings(tmp_path / "stepped"), _settings(tmp_path / "whole", leased=False)
    for path in files:
        ingest_path(stepped, path)
        ingest_path(whole, path)
        answer, attempts = state_machine_run(stepped)
        assert answer["status"] == "published", answer["message"]
        assert attempts == 1
        assert run_pipeline(whole, execution=Execution(workers=1)).status == "published"
        assert tables_of(stepped) == tables_of(whole)
    runs = open_metadata(stepped.lake).run_history()
    assert {r["status"] for r in runs} == {"published"}
    assert all(r["report"]["executor"] == "stepwise" and r["report"]["buckets"] > 1 for r in runs)
    assert open_lease(stepped.lake).holder() is None  # released
    assert list((tmp_path / "stepped" / "staging").iterdir()) == []
    assert stepwise.begin(stepped)["status"] == "noop"


def test_a_bucket_that_fails_for_good_rejects_its_batches_and_publishes_the_rest(
    aws, files, tmp_path
):
    settings = _settings(tmp_path / "lake")
    first = ingest_path(settings, files[0])
    second = ingest_path(settings, files[1])
    answer = stepwise.begin(settings)
    assert len(answer["buckets"]) > 1
    # Fail a bucket: every batch with readings in it is rejected (both, here: the two files
    # hold the same patients), so nothing is published: never a part of a batch.
    stepwise.bucket(settings, answer["run_id"], 0, 1)
    results = [{"bucket": 0, "error": "Lambda.Unknown", "cause": "out of memory"}]
    results += [{"bucket": 1}]
    answer = stepwise.conclude(settings, answer["run_id"], 0, results)
    assert answer["status"] == "rejected", answer
    meta = open_metadata(settings.lake)
    records = meta.batch_records([first.batch_id, second.batch_id])
    for record in records.values():
        assert record.rejected_run_id == answer["run_id"]
        assert "bucket task 0 of attempt 0 failed: Lambda.Unknown" in record.rejected_reason
    assert len(records) == 2
    assert meta.published() is None
    assert open_lease(settings.lake).holder() is None


def test_a_failed_bucket_of_one_batch_leaves_the_other_batches_published(aws, files, tmp_path):
    """Two batches of different patients: a failed bucket holding only one batch's patients
    rejects that batch; the next attempt publishes the other, exactly as a run of it alone."""
    whole = pq.read_table(files[0])
    patients = whole["patient_id"].cast(pa.string())
    ids = sorted(set(patients.to_pylist()))
    half = pc.is_in(patients, value_set=pa.array(ids[:6]))
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pq.write_table(whole.filter(half), a)
    pq.write_table(whole.filter(pc.invert(half)), b)
    settings, alone = _settings(tmp_path / "lake"), _settings(tmp_path / "alone", leased=False)
    batch_a = ingest_path(settings, a)
    ingest_path(settings, b)
    ingest_path(alone, b)
    plan = stepwise.begin(settings)
    staging = tmp_path / "lake" / "staging" / plan["run_id"] / "attempt-0" / "plan.json"
    buckets = json.loads(staging.read_text())["buckets"]
    only_a = [n for n, bk in enumerate(buckets) if bk["batch_ids"] == [batch_a.batch_id]]
    assert only_a, "a bucket holding only the first batch's patients"
    stepwise.abandon(settings, plan["run_id"], "test: start again")
    answer, attempts = state_machine_run(settings, fail_bucket=only_a[0])
    assert answer["status"] == "published", answer["message"]
    assert "1 batches rejected" in answer["message"]
    assert attempts == 2
    assert run_pipeline(alone, execution=Execution(workers=1)).status == "published"
    assert tables_of(settings) == tables_of(alone)


def test_the_lease_excludes_a_second_run_and_ends_with_its_holder(aws, files, tmp_path):
    settings = _settings(tmp_path / "lake")
    ingest_path(settings, files[0])
    answer = stepwise.begin(settings)
    with pytest.raises(RunInProgress):
        stepwise.begin(settings)
    with pytest.raises(RunInProgress):  # the command line takes the same lease
        run_pipeline(settings, execution=Execution(workers=1))
    assert handlers_plan_is_busy(settings)
    assert open_lease(settings.lake).holder() == answer["run_id"]
    # The state machine's catch: the run closed as failed, the lock free, the batches pending.
    closed = stepwise.abandon(settings, answer["run_id"], "States.Timeout: the Map timed out")
    assert closed["status"] == "failed"
    runs = {r["run_id"]: r for r in open_metadata(settings.lake).run_history()}
    assert runs[answer["run_id"]]["status"] == "failed"
    assert "States.Timeout" in runs[answer["run_id"]]["report"]["message"]
    report = run_pipeline(settings, execution=Execution(workers=1))
    assert report.status == "published"
    assert report.batches == 1


def handlers_plan_is_busy(settings: Settings) -> bool:
    """The plan function answers "busy" (the execution ends quietly) while a run works."""
    handlers._cached["settings"] = settings
    try:
        return handlers.plan({}, None)["status"] == "busy"
    finally:
        handlers._cached.clear()


def test_a_late_catch_after_the_run_ended_only_frees_the_lock(aws, files, tmp_path):
    settings = _settings(tmp_path / "lake")
    ingest_path(settings, files[0])
    answer, _ = state_machine_run(settings)
    assert answer["status"] == "published"
    late = stepwise.abandon(settings, answer["run_id"], "States.Timeout: late")
    assert late["status"] == "failed"
    runs = {r["run_id"]: r for r in open_metadata(settings.lake).run_history()}
    assert runs[answer["run_id"]]["status"] == "published"  # the record stays as it ended
    assert open_lease(settings.lake).holder() is None


def test_a_run_whose_lease_was_taken_publishes_nothing(aws, files, tmp_path):
    settings = _settings(tmp_path / "lake")
    ingest_path(settings, files[0])
    answer = stepwise.begin(settings)
    for n in answer["buckets"]:
        stepwise.bucket(settings, answer["run_id"], 0, n)
    lease = open_lease(settings.lake)
    lease.release(answer["run_id"])
    lease.take("another-run", 60)  # its lease ended (here: freed) and another run took it
    results = [{"bucket": n} for n in answer["buckets"]]
    with pytest.raises(RunLockLost):
        stepwise.conclude(settings, answer["run_id"], 0, results)
    assert open_metadata(settings.lake).published() is None
    assert lease.holder() == "another-run"  # left alone


def test_the_command_line_holds_and_frees_the_lease(aws, files, tmp_path):
    settings = _settings(tmp_path / "lake")
    ingest_path(settings, files[0])
    report = run_pipeline(settings, execution=Execution(workers=1))
    assert report.status == "published"
    assert open_lease(settings.lake).holder() is None
    assert tables_of(settings)["readings"]


def test_the_maintenance_function_compacts_under_the_lease(aws, files, tmp_path):
    settings = _settings(tmp_path / "lake")
    handlers._cached["settings"] = settings
    try:  # before the first publish: nothing to do (the function may not create tables)
        assert handlers.maintain({}, None)["status"] == "nothing to maintain"
    finally:
        handlers._cached.clear()
    for path in files:
        ingest_path(settings, path)
        assert state_machine_run(settings)[0]["status"] == "published"
    before = tables_of(settings)
    handlers._cached["settings"] = settings
    try:
        lease = open_lease(settings.lake)
        lease.take("a-run", 60)  # a run working: maintenance waits for the next time
        assert handlers.maintain({}, None)["status"] == "busy"
        lease.release("a-run")
        done = handlers.maintain({}, None)
    finally:
        handlers._cached.clear()
    assert done["status"] == "maintained"
    files_before, files_after = done["compacted_files"]["results.daily_metrics"]
    assert files_after < files_before
    assert tables_of(settings) == before
    assert open_lease(settings.lake).holder() is None


def test_maintenance_that_lost_its_lease_publishes_nothing(aws, files, tmp_path, monkeypatch):
    from glucosestream.lake import maintain
    from glucosestream.lake import maintenance as maintenance_module
    from glucosestream.pipeline.table_registry import TABLES

    settings = _settings(tmp_path / "lake")
    ingest_path(settings, files[0])
    assert state_machine_run(settings)[0]["status"] == "published"
    published = open_metadata(settings.lake).published()
    compact = maintenance_module._compact

    def compact_then_lose_the_lease(lake):  # the lease ends mid-way and another run takes it
        out = compact(lake)
        lease = open_lease(settings.lake)
        lease.release(lease.holder())
        lease.take("another-run", 60)
        return out

    monkeypatch.setattr(maintenance_module, "_compact", compact_then_lose_the_lease)
    with pytest.raises(RunLockLost):
        maintain(settings.lake, TABLES)
    assert open_metadata(settings.lake).published() == published
    assert open_lease(settings.lake).holder() == "another-run"


def test_a_lease_that_ended_can_be_taken(aws, tmp_path):
    lease = open_lease(_settings(tmp_path / "lake").lake)
    lease.take("first", -1)  # already over: a holder that died
    lease.take("second", 60)
    assert lease.holder() == "second"
    with pytest.raises(RunLockLost):
        lease.renew("first", 60)


def test_lock_urls_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="dynamodb://TABLE"):
        open_lease(LakeSettings(root=str(tmp_path), lock_url="redis://x"))
    with pytest.raises(ConfigError, match="names no table"):
        open_lease(LakeSettings(root=str(tmp_path), lock_url="dynamodb://"))
    lease = open_lease(LakeSettings(root="s3://b/lake", lock_url="dynamodb://t?region=eu-west-1"))
    assert (lease.table, lease.region, lease.lake) == ("t", "eu-west-1", "s3://b/lake")
    with pytest.raises(ConfigError, match="lock_url"):
        stepwise.begin(_settings(tmp_path / "lake", leased=False))


def test_settings_come_from_the_environment_and_the_secret(aws, monkeypatch, tmp_path):
    secret = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="gs-runtime",
        SecretString=json.dumps(
            {
                "GLUCOSESTREAM_LAKE__METADATA_URL": f"sqlite:///{tmp_path}/meta.db",
                "GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": SECRET,
            }
        ),
    )
    monkeypatch.setenv("GLUCOSESTREAM_LAKE__ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("GLUCOSESTREAM_SECRETS_ARN", secret["ARN"])
    handlers._cached.clear()
    try:
        current = handlers.settings()
    finally:
        handlers._cached.clear()
    assert current.lake.metadata_url.endswith("meta.db")
    assert current.ingest.pseudonym_secret == SECRET
    assert current.lake.root == str(tmp_path / "lake")
    with pytest.raises(ConfigError, match="GLUCOSESTREAM_"):
        Settings.from_env({}, overlay={"AWS_SECRET_ACCESS_KEY": "x"})


def test_a_steps_event_is_checked(tmp_path):
    handlers._cached["settings"] = _settings(tmp_path / "lake")
    try:
        with pytest.raises(InvalidInput, match="'run_id'"):
            handlers.bucket_task({"attempt": 0, "bucket": 1}, None)
        with pytest.raises(InvalidInput, match="'bucket'"):
            handlers.bucket_task({"run_id": "r", "attempt": 0, "bucket": "1"}, None)
        with pytest.raises(InvalidInput, match="'results'"):
            handlers.publish({"run_id": "r", "attempt": 0, "results": "all"}, None)
        failed = handlers.fail({"error": {"Error": "States.Timeout", "Cause": "x"}}, None)
        assert failed["status"] == "failed"
        assert "States.Timeout" in failed["message"]
    finally:
        handlers._cached.clear()


def test_the_authorizer_admits_the_projects_tokens_only(tmp_path):
    settings = _settings(tmp_path / "lake", leased=False)
    token = create_token(
        settings.lake, "uploader", label="phone", now=dt.datetime.now(dt.UTC), patient_keys=["p1"]
    )
    handlers._cached["settings"] = settings
    try:

        def ask(path: str, headers: dict[str, str], query: dict[str, str] | None = None) -> Any:
            event = {"rawPath": path, "headers": headers, "queryStringParameters": query}
            return handlers.authorize(event, None)["isAuthorized"]

        assert ask("/v1/readings", {"Authorization": f"Bearer {token}"})
        assert ask("/api/v1/entries", {}, {"token": token})
        assert not ask("/v1/readings", {"Authorization": "Bearer gs_wrong"})
        assert not ask("/v1/readings", {})
        assert not ask("/api/v1/entries", {"api-secret": "0" * 40})
    finally:
        handlers._cached.clear()
        handlers._access.clear()


def test_the_state_machine_is_generated_from_the_pipelines_stages():
    template = Path(__file__).parents[1] / state_machine.TEMPLATE
    assert state_machine.main(["--check", "--path", str(template)]) == 0, (
        "the state machine's file is stale: python -m glucosestream.aws.state_machine"
    )
    assert sorted(s for _, steps in stepwise.STAGES for s in steps) == sorted(STEPS)
    text = state_machine.template_text().replace("${max_concurrency}", "4")
    states = json.loads(text)["States"]
    inner = states["buckets"]["ItemProcessor"]["States"]["bucket"]
    assert inner["Parameters"]["FunctionName"] == "${bucket_task_arn}"
    assert inner["Retry"][0]["MaxAttempts"] >= 2
    assert inner["Retry"][0]["BackoffRate"] > 1
    assert states["buckets"]["Next"] == "conclude"
    assert states["conclude"]["Next"] == "work_left"
    assert states["buckets"]["MaxConcurrency"] == 4
    assert {c["Next"] for c in states["work_left"]["Choices"]} == {"buckets", "run_failed"}
