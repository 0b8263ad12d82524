"""The AWS deployment against moto: the harness (tests/aws_moto.py), layer 4 (the example root
applied, checked, re-planned and destroyed on a moto server) and layer 5 (the deployed state
machine executed on moto, its Lambda invocations running the project's handlers in-process
against the real S3 server)."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from .aws_moto import (
    ACCESS_KEY,
    lambdas_in_process,
    moto_server,
    validate_definition,
    wait_for_execution,
)

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
    import os

    return {
        "published": sum(r["rows"] for r in event["results"]),
        "contexts_ok": all(r["context_ok"] for r in event["results"]),
        "lake": os.environ["GLUCOSESTREAM_LAKE__ROOT"],
        "overlay": os.environ["GLUCOSESTREAM_TEST_OVERLAY"],
    }


def standin_fail(event, context):
    return {"failed": event["error"]["Error"]}


def _standin_definition(arns: dict[str, str]) -> str:
    task = {
        "Type": "Task",
        "Resource": arns["task"],
        "Retry": [
            {
                "ErrorEquals": ["TimeoutError"],
                "IntervalSeconds": 1,
                "MaxAttempts": 2,
                "BackoffRate": 2.0,
            }
        ],
        "End": True,
    }
    return json.dumps(
        {
            "StartAt": "Plan",
            "States": {
                "Plan": {"Type": "Task", "Resource": arns["plan"], "Next": "Buckets"},
                "Buckets": {
                    "Type": "Map",
                    "ItemsPath": "$.buckets",
                    "MaxConcurrency": 2,
                    "ResultPath": "$.results",
                    "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "INLINE"},
                        "StartAt": "Task",
                        "States": {"Task": task},
                    },
                    "Catch": [
                        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Fail"}
                    ],
                    "Next": "Publish",
                },
                "Publish": {"Type": "Task", "Resource": arns["publish"], "End": True},
                "Fail": {"Type": "Task", "Resource": arns["fail"], "Next": "Failed"},
                "Failed": {"Type": "Fail", "Error": "RunFailed"},
            },
        }
    )


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
            good = _execute(sfn, machine, "good", {"run_id": "r1", "buckets": [1, 2, 3]})
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
            bad = _execute(sfn, machine, "bad", {"run_id": "r2", "buckets": [1, 7]})
            assert bad["status"] == "FAILED"
            names = [i.function_name for i in invocations]
            assert "gs-fail" in names
            assert "gs-publish" not in names  # a failed bucket never reaches publish


def _execute(sfn, machine: str, name: str, payload: dict) -> dict:
    started = sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(payload))
    return wait_for_execution(sfn, started["executionArn"], timeout_s=WAIT_S)


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
