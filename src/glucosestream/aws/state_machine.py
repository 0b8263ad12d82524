"""The pipeline's Step Functions state machine, generated from the pipeline's own stages.

``pipeline.stepwise.STAGES`` says which steps of ``pipeline.steps.STEPS`` each stage runs; this
module turns them into Amazon States Language: ``begin`` (the plan function) → ``work_left`` (a
choice: buckets to run, or the run is over) → ``buckets`` (a Map over the attempt's buckets,
each the bucket-task function, retried with backoff; a bucket that still fails is answered as
failed, so the Map always ends) → ``conclude`` (the publish function: audit, then publish, or
the next attempt without the failed buckets' batches) → ``work_left`` again. Any step that fails
for good after ``begin`` goes to ``abandon`` (the fail function: the run closed as failed, the
lock released) and the execution fails, as does a run whose quality gate failed: the alarms
count both.

The file deploy/aws/modules/glucosestream/state_machine.asl.json is this module's output, a
Terraform ``templatefile()`` template (function ARNs and the Map's concurrency filled in there):

    python -m glucosestream.aws.state_machine [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Final

from glucosestream.pipeline import STEPS
from glucosestream.pipeline.stepwise import STAGES

__all__ = ["TEMPLATE", "definition", "main", "template_text"]

TEMPLATE: Final = Path("deploy/aws/modules/glucosestream/state_machine.asl.json")
# The Terraform template's placeholders, by stage: the Lambda function each stage invokes.
FUNCTION_ARNS: Final = {
    "begin": "${plan_arn}",
    "bucket": "${bucket_task_arn}",
    "conclude": "${publish_arn}",
    "abandon": "${fail_arn}",
}
_MAX_CONCURRENCY: Final = "__max_concurrency__"  # a number in the template: ${max_concurrency}
# An execution ends well before a run's lease would: a lease nobody renews frees the lake.
TIMEOUT_SECONDS: Final = 6 * 3600
# Errors of the Lambda service itself (the function did not run, or was throttled): safe to
# retry for any step. A bucket task is retried on every error (it writes only files of its own).
_LAMBDA_SERVICE_ERRORS: Final = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)


def definition() -> dict[str, Any]:
    """The state machine, with the template's placeholders."""
    _check_stages()
    comments = {name: " → ".join(steps) for name, steps in STAGES}
    return {
        "Comment": (
            "GlucoseStream: one pipeline run. Generated from glucosestream.pipeline.stepwise."
            "STAGES by `python -m glucosestream.aws.state_machine`: do not edit."
        ),
        "StartAt": "begin",
        "TimeoutSeconds": TIMEOUT_SECONDS,
        "States": {
            # A plan that fails closes its run itself (or, killed, leaves the lease to end).
            "begin": _invoke(
                "begin", comments["begin"], {}, next_state="work_left", catch="run_failed"
            ),
            "work_left": _work_left(),
            "buckets": _bucket_map(comments["bucket"]),
            "conclude": _invoke(
                "conclude",
                comments["conclude"],
                {
                    "run_id.$": "$.run.run_id",
                    "attempt.$": "$.run.attempt",
                    "results.$": "$.results",
                },
                next_state="work_left",
                catch="abandon",
            ),
            "abandon": _abandon(),
            "run_failed": {
                "Type": "Fail",
                "Error": "RunFailed",
                "Cause": "the run published nothing (`glucosestream runs` has its message)",
            },
            "done": {"Type": "Succeed"},
        },
    }


def _work_left() -> dict[str, Any]:
    return {
        "Type": "Choice",
        "Comment": "buckets to run, or the run is over (published, noop, rejected, busy)",
        "Choices": [
            {"Variable": "$.run.buckets", "IsPresent": True, "Next": "buckets"},
            {
                "Variable": "$.run.status",
                "StringEquals": "failed",
                "Next": "run_failed",
            },
        ],
        "Default": "done",
    }


def _abandon() -> dict[str, Any]:
    return {
        "Type": "Task",
        "Comment": "close the run as failed with the step's error; release the lock",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {
            "FunctionName": FUNCTION_ARNS["abandon"],
            "Payload": {"run_id.$": "$.run.run_id", "error.$": "$.error"},
        },
        "Retry": [_retry(_LAMBDA_SERVICE_ERRORS)],
        "Next": "run_failed",
    }


def _bucket_map(comment: str) -> dict[str, Any]:
    return {
        "Type": "Map",
        "Comment": f"each bucket: {comment}",
        "ItemsPath": "$.run.buckets",
        "MaxConcurrency": _MAX_CONCURRENCY,
        "ItemSelector": {
            "run_id.$": "$.run.run_id",
            "attempt.$": "$.run.attempt",
            "bucket.$": "$$.Map.Item.Value",
        },
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "INLINE"},
            "StartAt": "bucket",
            "States": {
                "bucket": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": FUNCTION_ARNS["bucket"], "Payload.$": "$"},
                    "ResultSelector": {"bucket.$": "$.Payload.bucket"},
                    "Retry": [_retry(("States.ALL",))],
                    "Catch": [
                        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "failed"}
                    ],
                    "End": True,
                },
                "failed": {
                    "Type": "Pass",
                    "Comment": "after its retries: conclude rejects the bucket's batches",
                    "Parameters": {
                        "bucket.$": "$.bucket",
                        "error.$": "$.failure.Error",
                        "cause.$": "$.failure.Cause",
                    },
                    "End": True,
                },
            },
        },
        "ResultPath": "$.results",
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "abandon"}],
        "Next": "conclude",
    }


def _invoke(
    stage: str, comment: str, payload: dict[str, Any], *, next_state: str, catch: str
) -> dict[str, Any]:
    """A Task state invoking a stage's function (retried only when the function did not run:
    these steps are not idempotent); its answer becomes ``$.run``."""
    return {
        "Type": "Task",
        "Comment": comment,
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": FUNCTION_ARNS[stage], "Payload": payload},
        "ResultSelector": {"run.$": "$.Payload"},
        "ResultPath": "$",
        "Retry": [_retry(_LAMBDA_SERVICE_ERRORS)],
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": catch}],
        "Next": next_state,
    }


def _retry(errors: tuple[str, ...]) -> dict[str, Any]:
    return {
        "ErrorEquals": list(errors),
        "IntervalSeconds": 2,
        "MaxAttempts": 3,
        "BackoffRate": 2.0,
        "JitterStrategy": "FULL",
    }


def _check_stages() -> None:
    """Every step of the pipeline runs in exactly one stage, in the pipeline's order."""
    staged = [step for _, steps in STAGES for step in steps]
    if sorted(staged) != sorted(STEPS):
        raise AssertionError(f"stepwise.STAGES {STAGES} does not cover steps.STEPS {STEPS}")


def template_text() -> str:
    """The template's text: the definition as JSON, its concurrency a Terraform variable."""
    text = json.dumps(definition(), indent=2, ensure_ascii=False) + "\n"
    return text.replace(f'"{_MAX_CONCURRENCY}"', "${max_concurrency}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is not current")
    parser.add_argument("--path", type=Path, default=TEMPLATE)
    args = parser.parse_args(argv)
    text = template_text()
    if args.check:
        current = args.path.read_text() if args.path.exists() else ""
        if current != text:
            sys.stderr.write(
                f"{args.path} is not current: run python -m glucosestream.aws.state_machine\n"
            )
            return 1
        return 0
    args.path.write_text(text)
    sys.stdout.write(f"wrote {args.path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
