"""moto as the AWS of the deploy tests: a server on 127.0.0.1 inside the test process.

``moto_server()`` starts moto's ``ThreadedMotoServer`` on a free loopback port, switches Step
Functions execution on (and Docker-less Lambda) through ``/moto-api/config`` before anything is
created, and fills the gaps of moto 5.2.5 that the AWS provider 5.100 meets with this module:
- Step Functions: ``ValidateStateMachineDefinition`` (missing; moto's own ASL parser decides) and
  ``ListStateMachineVersions`` (missing; the versions moto keeps): the provider calls both on
  every state machine and retries the 500s for minutes;
- Athena: ``DeleteNamedQuery`` (missing) and ``GetNamedQuery`` of a deleted query (a crash);
- Lambda: ``DeadLetterConfig`` (dropped, so every re-plan added it again);
- S3: the check that an access-log target's bucket policy lets logging write (a crash on a
  ``"Principal": "*"`` statement, as in a TLS-only Deny).
Everything it changes (the patched methods, moto's process-wide user config, ``MOTO_PORT``, which
moto's Step Functions interpreter reads to call Lambda) is put back when the block ends, and the
backends are reset: other tests use moto in-process too.

``lambdas_in_process()`` hooks moto's Docker-less Lambda backend, which would echo the payload,
so that an invocation calls the handler its function's container image would: the function's
``image_config`` command names it (``glucosestream.aws.handlers.plan``), imported and called in
this process with the function's environment (as Terraform set it) overlaid by the test's (where
the S3 server and moto are). A handler that raises answers as Lambda does: the
``x-amz-function-error`` header and an ``errorType``/``errorMessage`` payload, which Step
Functions' ``Retry`` and ``Catch`` read.
"""

from __future__ import annotations

import copy
import importlib
import json
import logging
import os
import threading
import time
import traceback
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.athena.exceptions import AthenaClientError
from moto.athena.responses import AthenaResponse
from moto.awslambda.models import LambdaFunction
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.config import default_user_config
from moto.core.responses import ActionResult
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.s3.models import FakeBucket
from moto.s3.utils import LOGGING_SERVICE_PRINCIPAL
from moto.stepfunctions.parser.asl.parse.asl_parser import (
    AmazonStateLanguageParser,
    ASLParserException,
)
from moto.stepfunctions.responses import StepFunctionResponse

from .terraform_cli import Terraform, copy_deploy, terraform_env

__all__ = [
    "ACCESS_KEY",
    "REGION",
    "Invocation",
    "Moto",
    "Stack",
    "apply_example",
    "destroy_stack",
    "lambdas_in_process",
    "moto_server",
    "validate_definition",
    "wait_for_execution",
]

REGION = "us-east-1"
ACCESS_KEY = "testing"  # moto takes any key; never a real one
_HTTP_TIMEOUT_S = 30
# What moto's API is told before any resource exists (PLATFORM.md): Step Functions run their
# states, and Lambda is the Docker-less backend (no Docker daemon here) that the hook replaces.
MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}


@dataclass(frozen=True)
class Moto:
    """A running moto server: its endpoint, and boto3 clients for it."""

    endpoint: str

    def client(self, service: str) -> Any:
        """A boto3 client of ``service`` on this server: fake keys, bounded retries and waits."""
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=ACCESS_KEY,
            config=Config(
                retries={"max_attempts": 2, "mode": "standard"},
                connect_timeout=5,
                read_timeout=_HTTP_TIMEOUT_S * 4,
            ),
        )

    def post(self, path: str, body: Mapping[str, Any]) -> bytes:
        """POST a JSON ``body`` to moto's own API (``/moto-api/...``)."""
        request = urllib.request.Request(
            self.endpoint + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_S) as response:
            return bytes(response.read())


# ---------------------------------------------------------------- the Step Functions gaps


def validate_definition(definition: str) -> dict[str, Any]:
    """``ValidateStateMachineDefinition``'s answer for ``definition``: what moto's ASL parser
    (the one moto's ``CreateStateMachine`` runs on an executing server) makes of it."""
    try:
        json.loads(definition)
    except (TypeError, json.JSONDecodeError) as err:
        return _failed("INVALID_JSON_DESCRIPTION", str(err))
    try:
        AmazonStateLanguageParser.parse(definition)
    except ASLParserException as err:
        return _failed("SCHEMA_VALIDATION_FAILED", "; ".join(err.errors) or repr(err))
    except Exception as err:  # moto's parser raises plain errors on some bad definitions
        return _failed("SCHEMA_VALIDATION_FAILED", f"{type(err).__name__}: {err}")
    return {"result": "OK", "diagnostics": [], "truncated": False}


def _failed(code: str, message: str) -> dict[str, Any]:
    diagnostic = {"severity": "ERROR", "code": code, "message": message[:1000]}
    return {"result": "FAIL", "diagnostics": [diagnostic], "truncated": False}


def _validate_state_machine_definition(self: StepFunctionResponse) -> ActionResult:
    return ActionResult(validate_definition(self._get_param("definition")))


def _list_state_machine_versions(self: StepFunctionResponse) -> ActionResult:
    machine = self.stepfunction_backend.describe_state_machine(self._get_param("stateMachineArn"))
    versions = sorted(machine.versions.values(), key=lambda v: -v.version)
    return ActionResult(
        {
            "stateMachineVersions": [
                {"stateMachineVersionArn": v.arn, "creationDate": v.creation_date} for v in versions
            ]
        }
    )


# ---------------------------------------------------------------- Athena's named queries


def _delete_named_query(self: AthenaResponse) -> str:
    """``DeleteNamedQuery``, which moto 5.2.5 lacks (terraform destroys every named query)."""
    self.athena_backend.named_queries.pop(self._get_param("NamedQueryId"), None)
    return "{}"


def _get_named_query(self: AthenaResponse) -> Any:
    """moto's ``GetNamedQuery``, but a query that is gone is InvalidRequestException (as in
    Athena, and what tells the provider the delete is done), not moto's crash (a 500)."""
    query_id = self._get_param("NamedQueryId")
    if self.athena_backend.get_named_query(query_id) is None:
        raise AthenaClientError("InvalidRequestException", f"NamedQuery {query_id} not found")
    return _MOTO_GET_NAMED_QUERY(self)


_MOTO_GET_NAMED_QUERY = AthenaResponse.get_named_query


# ---------------------------------------------------------------- Lambda's dead-letter queue

_MOTO_FUNCTION_INIT = LambdaFunction.__init__
_MOTO_UPDATE_CONFIGURATION = LambdaFunction.update_configuration
_MOTO_GET_CONFIGURATION = LambdaFunction.get_configuration


def _function_init(
    self: LambdaFunction, account_id: str, spec: dict[str, Any], *args: Any, **kwargs: Any
) -> None:
    """moto 5.2.5 drops a function's ``DeadLetterConfig`` (so every re-plan would add it
    again): keep it, and answer it in the function's configuration."""
    _MOTO_FUNCTION_INIT(self, account_id, spec, *args, **kwargs)
    self.dead_letter_config = spec.get("DeadLetterConfig") or {}


def _update_configuration(self: LambdaFunction, updates: dict[str, Any]) -> dict[str, Any]:
    if "DeadLetterConfig" in updates:
        self.dead_letter_config = updates["DeadLetterConfig"] or {}
    return _MOTO_UPDATE_CONFIGURATION(self, updates)


def _get_configuration(self: LambdaFunction, on_create: bool = False) -> dict[str, Any]:
    configuration = _MOTO_GET_CONFIGURATION(self, on_create)
    if getattr(self, "dead_letter_config", {}).get("TargetArn"):
        configuration["DeadLetterConfig"] = {"TargetArn": self.dead_letter_config["TargetArn"]}
    return configuration


# ---------------------------------------------------------------- an S3 gap


def _log_delivery_allowed(target_bucket: FakeBucket, target_prefix: str | None) -> bool:
    """moto's check that a bucket policy lets S3 server access logging write to
    ``target_bucket``, without moto 5.2.5's crash on a statement whose Principal is the string
    "*" (a TLS-only Deny has one): it called ``.get`` on it and answered 500."""
    if not target_bucket.policy:
        return False
    arn = f"arn:{target_bucket.partition}:s3:::{target_bucket.name}"
    wanted = {f"{arn}/{target_prefix or ''}*", f"{arn}/*", arn}
    for statement in json.loads(target_bucket.policy)["Statement"]:
        principal = statement.get("Principal")
        if not isinstance(principal, dict):
            continue
        if (
            principal.get("Service") == LOGGING_SERVICE_PRINCIPAL
            and statement.get("Effect") == "Allow"
            and "s3:PutObject" in _listed(statement.get("Action"))
            and wanted & set(_listed(statement.get("Resource")))
        ):
            return True
    return False


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# ---------------------------------------------------------------- the server


@contextmanager
def moto_server() -> Iterator[Moto]:
    """A moto server on 127.0.0.1 (a free port) with the gaps answered and execution on."""
    saved_config = copy.deepcopy(default_user_config)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            StepFunctionResponse,
            "validate_state_machine_definition",
            _validate_state_machine_definition,
            raising=False,
        )
        patch.setattr(
            StepFunctionResponse,
            "list_state_machine_versions",
            _list_state_machine_versions,
            raising=False,
        )
        patch.setattr(
            FakeBucket, "_log_permissions_enabled_policy", staticmethod(_log_delivery_allowed)
        )
        patch.setattr(AthenaResponse, "delete_named_query", _delete_named_query, raising=False)
        patch.setattr(LambdaFunction, "__init__", _function_init)
        patch.setattr(LambdaFunction, "update_configuration", _update_configuration)
        patch.setattr(LambdaFunction, "get_configuration", _get_configuration)
        patch.setattr(AthenaResponse, "get_named_query", _get_named_query)
        # werkzeug logs every request moto serves at INFO
        patch.setattr(logging.getLogger("werkzeug"), "level", logging.WARNING)
        server.start()
        try:
            host, port = server.get_host_and_port()
            moto = Moto(f"http://{host}:{port}")
            # moto's Step Functions interpreter calls Lambda at localhost:$MOTO_PORT
            patch.setenv("MOTO_PORT", str(port))
            moto.post("/moto-api/reset", {})
            moto.post("/moto-api/config", MOTO_CONFIG)
            yield moto
        finally:
            try:
                Moto(f"http://127.0.0.1:{server.get_host_and_port()[1]}").post(
                    "/moto-api/reset", {}
                )
            finally:
                server.stop()
                default_user_config.clear()
                default_user_config.update(saved_config)


def wait_for_execution(sfn: Any, execution_arn: str, *, timeout_s: float) -> dict[str, Any]:
    """The execution's description once it has left RUNNING; AssertionError after
    ``timeout_s``, naming the states it had entered."""
    deadline = time.monotonic() + timeout_s
    while True:
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return described
        if time.monotonic() > deadline:
            history = sfn.get_execution_history(executionArn=execution_arn)["events"]
            entered = [
                e["stateEnteredEventDetails"]["name"]
                for e in history
                if "stateEnteredEventDetails" in e
            ]
            raise AssertionError(
                f"execution {execution_arn} still RUNNING after {timeout_s:g} s; "
                f"states entered: {entered}"
            )
        time.sleep(0.2)


# ---------------------------------------------------------------- Lambda in process


@dataclass(frozen=True)
class Invocation:
    """One Lambda invocation the hook ran."""

    function_name: str
    command: str
    seconds: float
    error: str = ""


@dataclass(frozen=True)
class LambdaContext:
    """The part of Lambda's context object a handler may read."""

    function_name: str
    memory_limit_in_mb: int
    deadline: float
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    invoked_function_arn: str = ""
    log_group_name: str = ""
    log_stream_name: str = "in-process"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@dataclass
class _Hook:
    overlay: Mapping[str, str]
    invocations: list[Invocation] = field(default_factory=list)
    # One invocation at a time: a handler reads the process environment, which each call sets.
    lock: threading.Lock = field(default_factory=threading.Lock)

    def invoke(self, backend: LambdaSimpleBackend, name: str, qualifier: Any, body: Any) -> bytes:
        function = backend.get_function(name, qualifier)
        command = "".join(function.image_config.cmd[:1])
        handler = _resolve(command, function.function_name)
        event = json.loads(body) if body else {}
        environment = {**function.environment_vars, **self.overlay}
        context = LambdaContext(
            function_name=function.function_name,
            memory_limit_in_mb=int(function.memory_size),
            deadline=time.monotonic() + float(function.timeout),
            invoked_function_arn=function.function_arn,
            log_group_name=function.logs_group_name,
        )
        with self.lock, _environment(environment):
            started = time.monotonic()
            try:
                result = handler(event, context)
            except Exception as err:
                seconds = time.monotonic() - started
                self.invocations.append(
                    Invocation(function.function_name, command, seconds, type(err).__name__)
                )
                raise _HandlerFailed(err) from err
            seconds = time.monotonic() - started
        self.invocations.append(Invocation(function.function_name, command, seconds))
        return json.dumps(result).encode()


class _HandlerFailed(Exception):
    def __init__(self, err: Exception) -> None:
        super().__init__(str(err))
        self.payload = {
            "errorType": type(err).__name__,
            "errorMessage": str(err),
            "stackTrace": traceback.format_exception(err)[-5:],
        }


def _resolve(command: str, function_name: str) -> Callable[[Any, Any], Any]:
    module_name, _, attribute = command.rpartition(".")
    if not module_name:
        raise AssertionError(
            f"Lambda function {function_name} has no image_config command naming a handler "
            f"(module.function): {command!r}"
        )
    handler: Callable[[Any, Any], Any] = getattr(importlib.import_module(module_name), attribute)
    return handler


@contextmanager
def _environment(environment: Mapping[str, str]) -> Iterator[None]:
    """os.environ as Lambda would give it: the process's, without the project's own variables,
    plus ``environment``; put back afterwards. Only those names change (never with a clear():
    moto's threads read MOTO_PORT meanwhile)."""
    names = set(environment) | {n for n in os.environ if n.startswith("GLUCOSESTREAM_")}
    saved = {name: os.environ.get(name) for name in names}
    for name in names - set(environment):
        del os.environ[name]
    os.environ.update(environment)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def lambdas_in_process(overlay: Mapping[str, str]) -> Iterator[list[Invocation]]:
    """While the block runs, moto's Docker-less Lambda calls each function's handler here
    (see the module docstring); yields the list of invocations, appended as they run."""
    hook = _Hook(dict(overlay))

    def invoke(
        backend: LambdaSimpleBackend,
        function_name: str,
        qualifier: Any,
        body: Any,
        headers: Any,
        response_headers: dict[str, str],
    ) -> bytes:
        try:
            return hook.invoke(backend, function_name, qualifier, body)
        except _HandlerFailed as failed:
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(failed.payload).encode()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LambdaSimpleBackend, "invoke", invoke)
        yield hook.invocations


# ---------------------------------------------------------------- the example root on moto

_APPLY_TIMEOUT_S = 300


@dataclass
class Stack:
    """The example root applied on moto: its terraform, the plan's resources to add by type,
    its outputs, and each phase's seconds."""

    terraform: Terraform
    to_add: Counter[str]
    outputs: dict[str, Any]
    seconds: dict[str, float]

    def run(self, phase: str, *args: str) -> str:
        started = time.monotonic()
        output = self.terraform.run(*args, "-no-color", timeout=_APPLY_TIMEOUT_S)
        self.seconds[phase] = self.seconds.get(phase, 0.0) + time.monotonic() - started
        return output

    def replan(self) -> str:
        """``terraform plan`` once more: its output (no changes, if the apply converged)."""
        return self.run("replan", "plan", "-input=false")


def apply_example(moto: Moto, scratch: Path, variables: Mapping[str, Any]) -> Stack:
    """Copy deploy/aws to ``scratch``, point the example root at ``moto`` (its ``endpoint_url``
    and ``max_retries`` variables, fake keys in the environment; ``variables`` besides, all in an
    auto.tfvars file), then init, plan (saved) and apply it."""
    root = copy_deploy(scratch) / "example"
    settings = {"region": REGION, "endpoint_url": moto.endpoint, "max_retries": 2}
    (root / "moto.auto.tfvars.json").write_text(json.dumps({**settings, **variables}))
    env = terraform_env(scratch) | {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": ACCESS_KEY,
    }
    stack = Stack(Terraform(root, env), Counter(), {}, {})
    stack.run("init", "init", "-input=false")
    stack.run("plan", "plan", "-input=false", "-out=tfplan")
    plan = json.loads(stack.terraform.run("show", "-json", "tfplan", timeout=_APPLY_TIMEOUT_S))
    stack.to_add.update(
        change["type"]
        for change in plan.get("resource_changes", [])
        if change["change"]["actions"] == ["create"] and change["mode"] == "managed"
    )
    stack.run("apply", "apply", "-input=false", "tfplan")
    outputs = json.loads(stack.terraform.run("output", "-json", timeout=_APPLY_TIMEOUT_S))
    stack.outputs = {name: value["value"] for name, value in outputs.items()}
    return stack


def destroy_stack(stack: Stack) -> None:
    stack.run("destroy", "destroy", "-auto-approve", "-input=false")
