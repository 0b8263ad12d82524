"""moto as the AWS of the deploy tests: a server on 127.0.0.1 inside the test process.

``moto_server()`` starts moto's ``ThreadedMotoServer`` on a free loopback port, answers the two
Step Functions calls moto 5.2.5 lacks and the AWS provider makes on every state machine
(``ValidateStateMachineDefinition``: moto's own ASL parser decides; ``ListStateMachineVersions``:
the versions moto keeps), and switches Step Functions execution on (and Docker-less Lambda)
through ``/moto-api/config`` before anything is created. Everything it changes in moto (the
two response methods, moto's process-wide user config, ``MOTO_PORT``, which moto's Step
Functions interpreter reads to call Lambda) is put back when the block ends, and the backends
are reset: other tests use moto in-process too.

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
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.config import default_user_config
from moto.core.responses import ActionResult
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.stepfunctions.parser.asl.parse.asl_parser import (
    AmazonStateLanguageParser,
    ASLParserException,
)
from moto.stepfunctions.responses import StepFunctionResponse

__all__ = [
    "ACCESS_KEY",
    "REGION",
    "Invocation",
    "Moto",
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
    plus ``environment``; put back afterwards."""
    saved = dict(os.environ)
    for name in [n for n in os.environ if n.startswith("GLUCOSESTREAM_")]:
        del os.environ[name]
    os.environ.update(environment)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


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
