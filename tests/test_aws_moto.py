"""The AWS deployment against moto: the harness (tests/aws_moto.py) and layer 4, the example
root applied, checked through the AWS API, re-planned and destroyed on a moto server. Layer 5
(the deployed state machine executed end to end) is tests/test_aws_e2e.py."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter

import pytest

from glucosestream.aws import handlers

from .aws_moto import (
    ACCESS_KEY,
    Stack,
    apply_example,
    destroy_stack,
    lambdas_in_process,
    moto_server,
    validate_definition,
    wait_for_execution,
)
from .terraform_cli import DEPLOY, SKIP_REASON

IMAGE_URI = "123456789012.dkr.ecr.us-east-1.amazonaws.com/glucosestream:test"
WAIT_S = 60


# ---------------------------------------------------------------- stand-in handlers
# Named by image_config commands (tests.test_aws_moto.<name>) in the harness's own tests.

_FLAKY: Counter[int] = Counter()


def standin_plan(event, context):
    return {"run_id": event["run_id"], "buckets": [{"bucket": b} for b in event["buckets"]]}


def standin_task(event, context):
    bucket = event["bucket"]
    if bucket == 7:
        raise RuntimeError("bucket 7 always fails")
    if bucket == 3 and _FLAKY[bucket] == 0:  # fails once: the Map's Retry runs it again
        _FLAKY[bucket] += 1
        raise TimeoutError("bucket 3 fails the first time")
    context_ok = context.get_remaining_time_in_millis() > 0 and context.function_name == "gs-task"
    return {"bucket": bucket, "rows": bucket * 10, "context_ok": context_ok}


def standin_publish(event, context):
    return {
        "published": sum(r["rows"] for r in event["results"]),
        "contexts_ok": all(r["context_ok"] for r in event["results"]),
        "lake": os.environ["GLUCOSESTREAM_LAKE__ROOT"],
        "overlay": os.environ["GLUCOSESTREAM_TEST_OVERLAY"],
    }


def standin_fail(event, context):
    return {"failed": event["error"]["Error"]}


# plan -> Map over the buckets (a TimeoutError retried; any failure caught) -> publish, as the
# real state machine is shaped; the ARNs replace the upper-case names.
_STANDIN_ASL = """{"StartAt": "Plan", "States": {
  "Plan": {"Type": "Task", "Resource": "PLAN", "Next": "Buckets"},
  "Buckets": {"Type": "Map", "ItemsPath": "$.buckets", "MaxConcurrency": 2,
    "ResultPath": "$.results", "Next": "Publish",
    "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Task", "States": {
      "Task": {"Type": "Task", "Resource": "TASK", "End": true, "Retry": [{"ErrorEquals":
        ["TimeoutError"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 2.0}]}}},
    "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Fail"}]},
  "Publish": {"Type": "Task", "Resource": "PUBLISH", "End": true},
  "Fail": {"Type": "Task", "Resource": "FAIL", "Next": "Failed"},
  "Failed": {"Type": "Fail", "Error": "RunFailed"}}}"""


def _standin_definition(arns: dict[str, str]) -> str:
    text = _STANDIN_ASL
    for name, arn in arns.items():
        text = text.replace(f'"{name.upper()}"', json.dumps(arn))
    return json.dumps(json.loads(text))


# ---------------------------------------------------------------- the harness


def test_definitions_are_validated_by_motos_own_parser():
    good = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}
    assert validate_definition(json.dumps(good)) == {
        "result": "OK",
        "diagnostics": [],
        "truncated": False,
    }
    no_states = validate_definition(json.dumps({"StartAt": "A"}))
    assert no_states["result"] == "FAIL"
    assert no_states["diagnostics"][0]["code"] == "SCHEMA_VALIDATION_FAILED"
    not_json = validate_definition("{oops")
    assert not_json["result"] == "FAIL"
    assert not_json["diagnostics"][0]["code"] == "INVALID_JSON_DESCRIPTION"


def test_moto_answers_the_calls_the_provider_needs_and_runs_handlers_in_process():
    _FLAKY.clear()
    with moto_server() as moto:
        sfn, lam = moto.client("stepfunctions"), moto.client("lambda")
        role = moto.client("iam").create_role(RoleName="standin", AssumeRolePolicyDocument="{}")
        arns = {
            name: lam.create_function(
                FunctionName=f"gs-{name}",
                Role=role["Role"]["Arn"],
                PackageType="Image",
                Code={"ImageUri": IMAGE_URI},
                ImageConfig={"Command": [f"tests.test_aws_moto.standin_{name}"]},
                Environment={"Variables": {"GLUCOSESTREAM_LAKE__ROOT": "s3://lake/x"}},
                Timeout=30,
            )["FunctionArn"]
            for name in ("plan", "task", "publish", "fail")
        }
        definition = _standin_definition(arns)
        assert sfn.validate_state_machine_definition(definition=definition)["result"] == "OK"
        machine = sfn.create_state_machine(
            name="standin", definition=definition, roleArn=role["Role"]["Arn"]
        )["stateMachineArn"]
        assert (
            sfn.list_state_machine_versions(stateMachineArn=machine)["stateMachineVersions"] == []
        )

        overlay = {"GLUCOSESTREAM_TEST_OVERLAY": "yes", "AWS_ACCESS_KEY_ID": ACCESS_KEY}
        with lambdas_in_process(overlay) as invocations:
            good = execute(sfn, machine, "good", {"run_id": "r1", "buckets": [1, 2, 3]})
            assert good["status"] == "SUCCEEDED", good
            assert json.loads(good["output"]) == {
                "published": 60,
                "contexts_ok": True,
                "lake": "s3://lake/x",
                "overlay": "yes",
            }
            tasks = [i for i in invocations if i.function_name == "gs-task"]
            assert [i.error for i in tasks].count("TimeoutError") == 1  # retried, then fine
            assert len(tasks) == 4

            invocations.clear()
            bad = execute(sfn, machine, "bad", {"run_id": "r2", "buckets": [1, 7]})
            assert bad["status"] == "FAILED"
            names = [i.function_name for i in invocations]
            assert "gs-fail" in names
            assert "gs-publish" not in names  # a failed bucket never reaches publish
        assert "GLUCOSESTREAM_TEST_OVERLAY" not in os.environ  # each call's environment undone


def execute(sfn, machine: str, name: str, payload: dict, *, timeout_s: float = WAIT_S) -> dict:
    started = sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(payload))
    return wait_for_execution(sfn, started["executionArn"], timeout_s=timeout_s)


def test_an_execution_that_outlives_its_wait_is_reported_not_waited_for():
    with moto_server() as moto:
        sfn = moto.client("stepfunctions")
        role = moto.client("iam").create_role(RoleName="waiter", AssumeRolePolicyDocument="{}")
        definition = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 30, "End": True}}}
        machine = sfn.create_state_machine(
            name="waits", definition=json.dumps(definition), roleArn=role["Role"]["Arn"]
        )["stateMachineArn"]
        started = time.monotonic()
        execution = sfn.start_execution(stateMachineArn=machine, name="w1")["executionArn"]
        with pytest.raises(AssertionError, match=r"still RUNNING after 0\.5 s.*'W'"):
            wait_for_execution(sfn, execution, timeout_s=0.5)
        assert time.monotonic() - started < 10
        sfn.stop_execution(executionArn=execution)


# ---------------------------------------------------------------- layer 4: apply, check, destroy

# The contract's functions (aws-contract.md); the module may add more, each a handler of ours.
COMMANDS = {
    "ingest": "glucosestream.aws.handlers.ingest",
    "authorizer": "glucosestream.aws.handlers.authorize",
    "plan": "glucosestream.aws.handlers.plan",
    "bucket_task": "glucosestream.aws.handlers.bucket_task",
    "publish": "glucosestream.aws.handlers.publish",
    "fail": "glucosestream.aws.handlers.fail",
}
LOG_RETENTION_DAYS = 365  # the module's default
CUTOFF_BYTES = 10 * 1024**3  # the module's default athena_bytes_scanned_cutoff


def example_variables(prefix: str) -> dict:
    return {"name_prefix": prefix, "image_uri": IMAGE_URI, "force_destroy": True}


def require_terraform() -> None:
    """Skip where terraform or the provider's mirror is absent (terraform_cli.SKIP_REASON)."""
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)


@pytest.mark.slow  # about 100 s: the provider waits 55 s for S3 lifecycle rules to settle
def test_example_root_applies_on_moto_converges_and_destroys_to_nothing(tmp_path, capsys):
    require_terraform()
    with moto_server() as moto:
        stack = apply_example(moto, tmp_path, example_variables("gs-l4"))
        try:
            _check_plan(stack)
            _check_storage(moto, stack)
            _check_query(moto, stack)
            functions = _check_functions(moto, stack)
            _check_state_machine(moto, stack, functions)
            _check_logs_and_lock(moto, stack, functions)
            replan = stack.replan()
            assert "No changes." in replan, replan[-3000:]
        finally:
            destroy_stack(stack)
        _check_nothing_left(moto)
    _report(capsys, stack)


def _report(capsys, stack: Stack) -> None:
    """The plan's summary and each phase's time, in the test output whatever pytest captures."""
    by_type = ", ".join(f"{name} {count}" for name, count in sorted(stack.to_add.items()))
    with capsys.disabled():
        sys.stdout.write(
            f"\nplan of deploy/aws/example on moto: {sum(stack.to_add.values())} to add: "
            f"{by_type}\nlayer 4 seconds: {phase_seconds(stack)} (load {os.getloadavg()[0]:.2f})\n"
        )


def _check_plan(stack: Stack) -> None:
    assert sum(stack.to_add.values()) >= 40
    for required in (
        "aws_s3_bucket",
        "aws_kms_key",
        "aws_lambda_function",
        "aws_sfn_state_machine",
        "aws_athena_workgroup",
        "aws_dynamodb_table",
        "aws_apigatewayv2_route",
    ):
        assert stack.to_add[required] >= 1, required


def phase_seconds(stack: Stack) -> str:
    return ", ".join(f"{phase} {seconds:.1f}" for phase, seconds in stack.seconds.items())


def _check_storage(moto, stack: Stack) -> None:
    s3, kms = moto.client("s3"), moto.client("kms")
    bucket = stack.outputs["bucket"]
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    by_default = rule["ApplyServerSideEncryptionByDefault"]
    assert by_default["SSEAlgorithm"] == "aws:kms"
    assert rule["BucketKeyEnabled"] is True
    key = kms.describe_key(KeyId=by_default["KMSMasterKeyID"])["KeyMetadata"]
    assert key["KeyManager"] == "CUSTOMER"
    assert key["KeyState"] == "Enabled"
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is True
    key_policy = json.loads(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"])
    for statement in key_policy["Statement"]:
        assert "kms:*" not in _listed(statement["Action"]), statement
        assert "*" not in _listed(statement.get("Principal", {}).get("AWS", [])), statement
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
    )
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    _check_lifecycle(s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"])
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert any(
        s["Effect"] == "Deny"
        and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") in ("false", False)
        for s in policy["Statement"]
    ), policy
    target = s3.get_bucket_logging(Bucket=bucket)["LoggingEnabled"]["TargetBucket"]
    assert target != bucket
    assert s3.get_public_access_block(Bucket=target)["PublicAccessBlockConfiguration"][
        "BlockPublicPolicy"
    ]


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def _check_lifecycle(rules: list[dict]) -> None:
    by_prefix = {rule.get("Filter", {}).get("Prefix", ""): rule for rule in rules}
    raw = by_prefix["lake/raw/batches/"]
    transitions = sorted(raw["Transitions"], key=lambda t: t["Days"])  # a set in Terraform
    assert [t["StorageClass"] for t in transitions] == ["STANDARD_IA", "GLACIER_IR"]
    assert transitions[0]["Days"] >= 30
    assert "Expiration" not in raw  # raw batches are the lake's source
    assert by_prefix["lake/staging/"]["Expiration"]["Days"] == 7
    assert by_prefix["athena-results/"]["Expiration"]["Days"] == 30
    assert any("NoncurrentVersionExpiration" in rule for rule in rules)
    assert all(rule["Status"] == "Enabled" for rule in rules)
    assert not any(prefix.startswith("lake/warehouse") for prefix in by_prefix)


def _check_query(moto, stack: Stack) -> None:
    athena, glue = moto.client("athena"), moto.client("glue")
    workgroup = athena.get_work_group(WorkGroup=stack.outputs["athena_workgroup"])["WorkGroup"]
    configuration = workgroup["Configuration"]
    assert configuration["EnforceWorkGroupConfiguration"] is True
    assert configuration["BytesScannedCutoffPerQuery"] == CUTOFF_BYTES
    results = configuration["ResultConfiguration"]
    assert results["OutputLocation"] == f"s3://{stack.outputs['bucket']}/athena-results/"
    assert results["EncryptionConfiguration"]["EncryptionOption"] == "SSE_KMS"
    databases = {d["Name"] for d in glue.get_databases()["DatabaseList"]}
    assert databases >= {"gs_curated", "gs_results"}
    queries = athena.list_named_queries(WorkGroup=workgroup["Name"])["NamedQueryIds"]
    names = {athena.get_named_query(NamedQueryId=q)["NamedQuery"]["Name"] for q in queries}
    views = {path.stem for path in (DEPLOY / "modules" / "glucosestream" / "athena").glob("*.sql")}
    assert len(views) >= 3
    assert {name.removeprefix(f"{workgroup['Name']}-") for name in names} == views


def _check_functions(moto, stack: Stack) -> dict[str, dict]:
    """Each entry point's function configuration, by key; each checked against the contract."""
    lam = moto.client("lambda")
    names = stack.outputs["function_names"]
    functions = {}
    for key, name in names.items():
        configuration = lam.get_function(FunctionName=name)["Configuration"]
        assert configuration["PackageType"] == "Image"
        command = configuration["ImageConfigResponse"]["ImageConfig"]["Command"]
        assert command == [COMMANDS.get(key, command[0])], (key, command)
        module, _, entry = command[0].rpartition(".")  # the image runs one of our handlers
        assert module == handlers.__name__, command
        assert callable(getattr(handlers, entry, None)), command
        environment = configuration["Environment"]["Variables"]
        assert environment["GLUCOSESTREAM_LAKE__ROOT"] == f"s3://{stack.outputs['bucket']}/lake"
        assert environment["GLUCOSESTREAM_LAKE__CATALOG_URL"] == "glue://us-east-1"
        assert (
            environment["GLUCOSESTREAM_LAKE__LOCK_URL"]
            == f"dynamodb://{stack.outputs['lock_table']}"
        )
        assert environment["GLUCOSESTREAM_SECRETS_ARN"] == stack.outputs["secret_arn"]
        assert not any("SECRET" in k and k != "GLUCOSESTREAM_SECRETS_ARN" for k in environment)
        functions[key] = configuration
    assert set(COMMANDS) <= set(functions)
    return functions


def _check_state_machine(moto, stack: Stack, functions: dict[str, dict]) -> None:
    sfn = moto.client("stepfunctions")
    described = sfn.describe_state_machine(stateMachineArn=stack.outputs["state_machine_arn"])
    definition = json.loads(described["definition"])
    maps = [state for state in _states(definition) if state["Type"] == "Map"]
    assert len(maps) == 1, "one Map over the buckets"
    inner = maps[0].get("ItemProcessor") or maps[0]["Iterator"]
    resources = _task_resources(inner)
    bucket_task = functions["bucket_task"]["FunctionArn"]
    assert any(bucket_task in resource for resource in resources), resources
    assert any(r.get("BackoffRate", 1) > 1 for s in _states(inner) for r in s.get("Retry", []))
    everything = _task_resources(definition)
    for key in ("plan", "publish", "fail"):
        assert any(functions[key]["FunctionArn"] in r for r in everything), key
    assert described["loggingConfiguration"]["level"] in ("ALL", "ERROR", "FATAL")


def _states(definition: dict) -> list[dict]:
    """Every state of a definition, nested ones (Map, Parallel) included."""
    found = []
    for state in definition.get("States", {}).values():
        found.append(state)
        for inner in [
            state.get("ItemProcessor"),
            state.get("Iterator"),
            *state.get("Branches", []),
        ]:
            if inner:
                found.extend(_states(inner))
    return found


def _task_resources(definition: dict) -> list[str]:
    """What each Task state calls: its Resource, or the FunctionName of a lambda:invoke."""
    calls = []
    for state in _states(definition):
        if state["Type"] == "Task":
            calls.append(state["Resource"])
            calls.append(
                str(state.get("Parameters", state.get("Arguments", {})).get("FunctionName", ""))
            )
    return calls


def _check_logs_and_lock(moto, stack: Stack, functions: dict[str, dict]) -> None:
    logs = moto.client("logs")
    groups = {g["logGroupName"]: g for g in logs.describe_log_groups()["logGroups"]}
    for configuration in functions.values():
        group = groups[f"/aws/lambda/{configuration['FunctionName']}"]
        assert group.get("retentionInDays") == LOG_RETENTION_DAYS, group
    assert all(g.get("retentionInDays") for g in groups.values()), groups
    assert len(groups) > len(functions)  # the state machine's and the API's too
    table = moto.client("dynamodb").describe_table(TableName=stack.outputs["lock_table"])["Table"]
    assert table["KeySchema"] == [{"AttributeName": "lake", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSEDescription"]["SSEType"] == "KMS"
    _check_api_and_alarms(moto)


def _check_api_and_alarms(moto) -> None:
    """Every route behind the Lambda authorizer; alarms on failed executions, ingest 5xx and
    dead-letter depth (the issue's list)."""
    api = moto.client("apigatewayv2")
    (only,) = api.get_apis()["Items"]
    routes = api.get_routes(ApiId=only["ApiId"])["Items"]
    assert {r["RouteKey"] for r in routes} == {
        "POST /v1/readings",
        "POST /api/v1/entries",
        "POST /api/v1/entries.json",
    }
    assert {r["AuthorizationType"] for r in routes} == {"CUSTOM"}
    metrics = {a["MetricName"] for a in moto.client("cloudwatch").describe_alarms()["MetricAlarms"]}
    assert {"ExecutionsFailed", "5xx", "ApproximateNumberOfMessagesVisible"} <= metrics, metrics


# What a destroy must leave empty: (service, call, key of the answer's list).
_LISTS = [
    ("s3", "list_buckets", "Buckets"),
    ("lambda", "list_functions", "Functions"),
    ("stepfunctions", "list_state_machines", "stateMachines"),
    ("glue", "get_databases", "DatabaseList"),
    ("dynamodb", "list_tables", "TableNames"),
    ("apigatewayv2", "get_apis", "Items"),
    ("logs", "describe_log_groups", "logGroups"),
    ("iam", "list_roles", "Roles"),
    ("sqs", "list_queues", "QueueUrls"),
    ("sns", "list_topics", "Topics"),
    ("secretsmanager", "list_secrets", "SecretList"),
    ("scheduler", "list_schedules", "Schedules"),
    ("cloudwatch", "describe_alarms", "MetricAlarms"),
]


def _check_nothing_left(moto) -> None:
    for service, call, key in _LISTS:
        assert getattr(moto.client(service), call)().get(key, []) == [], service
    workgroups = moto.client("athena").list_work_groups()["WorkGroups"]
    assert [w["Name"] for w in workgroups] == ["primary"]
    kms = moto.client("kms")
    keys = [kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"] for k in kms.list_keys()["Keys"]]
    ours = [key for key in keys if key["Description"].startswith("GlucoseStream gs-l4")]
    assert [key["KeyState"] for key in ours] == ["PendingDeletion"]  # its deletion window
    others = {key["Description"] for key in keys if key not in ours}
    assert others <= {"Default key"}, others  # moto's own
