"""The AWS Lambda functions: one container image, one entry point each (``image_config.command``
in deploy/aws): ``ingest`` (HTTP ingest behind API Gateway), ``authorize`` (its Lambda
authorizer), and the pipeline's steps for Step Functions: ``plan``, ``bucket_task``,
``publish`` and ``fail`` (``pipeline.stepwise``; the state machine is ``aws.state_machine``),
and ``maintain`` (compaction and snapshot expiry, on a schedule of its own).

Settings come from the function's environment overlaid with the JSON object of the Secrets
Manager secret ``GLUCOSESTREAM_SECRETS_ARN`` names (the metadata store's URL, the pseudonym key:
never in the plain environment), read once per container. A step's event comes from our own
state machine, but is checked all the same: a missing or mistyped field is one clear error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, Final

from glucosestream.config import Settings, aws_secrets_arn
from glucosestream.errors import AuthError, ConfigError, Forbidden, InvalidInput, RunInProgress
from glucosestream.ingest import lambda_handler
from glucosestream.lake import AccessStores, open_access, open_metadata
from glucosestream.lake import maintain as lake_maintain
from glucosestream.pipeline import stepwise, table_registry
from glucosestream.request_credentials import bearer_principal, nightscout_principal

__all__ = [
    "authorize",
    "bucket_task",
    "fail",
    "ingest",
    "maintain",
    "plan",
    "publish",
    "settings",
]

log = logging.getLogger(__name__)

_cached: dict[str, Settings] = {}
_access: dict[Settings, AccessStores] = {}  # the authorizer's, one per container
_READINGS_PATH: Final = "/v1/readings"


def settings() -> Settings:
    """This container's settings: the environment and the secret's values (read once)."""
    if "settings" not in _cached:
        _cached["settings"] = Settings.from_env(overlay=_secret_values(aws_secrets_arn()))
    return _cached["settings"]


def ingest(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    """HTTP ingest: an API Gateway proxy event (v1 or v2), answered as the ASGI app would."""
    return lambda_handler.handle_event(settings(), event)


def authorize(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    """The HTTP API's Lambda authorizer (payload 2.0, simple responses): is the request's
    token one of the project's, with the right to upload? The ingest function checks it again
    with the patient's rights; this refuses strangers before they cost an ingest invocation."""
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    query = dict(event.get("queryStringParameters") or {})
    path = str(event.get("rawPath") or event.get("path") or "")
    current = settings()
    if current not in _access:
        _access[current] = open_access(current.lake)
    access = _access[current]
    try:
        if path == _READINGS_PATH:
            principal = bearer_principal(access, headers.get("authorization"))
        else:
            principal = nightscout_principal(
                access, headers.get("api-secret"), query.get("token"), headers.get("authorization")
            )
    except (AuthError, Forbidden) as err:
        log.info("authorizer refused a request to %s: %s", path, type(err).__name__)
        return {"isAuthorized": False}
    return {"isAuthorized": True, "context": {"role": principal.role}}


def plan(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    """The run's first step: take the lock, recover, discover, plan. Another run working on
    the lake is no error: the scheduled execution ends and the next one tries again."""
    try:
        return stepwise.begin(settings())
    except RunInProgress as err:
        return {"run_id": None, "status": "busy", "message": str(err)}


def bucket_task(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    """One bucket of an attempt (an item of the state machine's Map)."""
    return stepwise.bucket(
        settings(), _text(event, "run_id"), _number(event, "attempt"), _number(event, "bucket")
    )


def publish(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    """Audit the attempt's buckets, then publish or plan the next attempt."""
    results = event.get("results")
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise InvalidInput("the publish step's event needs 'results': the Map's list of answers")
    return stepwise.conclude(settings(), _text(event, "run_id"), _number(event, "attempt"), results)


def fail(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    """The state machine's catch: close the run as failed with the step's error."""
    error = event.get("error") or {}
    why = f"{error.get('Error', 'an error')}: {error.get('Cause', 'no cause given')}"
    run_id = event.get("run_id")
    if not isinstance(run_id, str) or not run_id:
        return {"run_id": None, "status": "failed", "message": why}  # it failed before a run
    return stepwise.abandon(settings(), run_id, why)


def maintain(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    """Compact the tables' small files and expire snapshots older than a week (what
    ``glucosestream maintain`` does), under the run lock; "busy" while a run works. Before the
    first publish there is nothing to maintain (and this function may not create the tables:
    the pipeline's first run does)."""
    if open_metadata(settings().lake).published() is None:
        return {"status": "nothing to maintain", "message": "no run has published yet"}
    try:
        report = lake_maintain(settings().lake, table_registry.TABLES)
    except RunInProgress as err:
        return {"status": "busy", "message": str(err)}
    return {"status": "maintained", **asdict(report)}


def _secret_values(arn: str) -> dict[str, str]:
    """The secret's JSON object (none without an ARN)."""
    if not arn:
        return {}
    try:
        import boto3  # type: ignore[import-untyped]  # the aws extra; in the image
    except ImportError as err:
        raise ConfigError("GLUCOSESTREAM_SECRETS_ARN needs boto3 (the aws extra)") from err
    text = boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    try:
        values = json.loads(text)
    except ValueError as err:
        raise ConfigError(f"the secret {arn} is not a JSON object of settings") from err
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise ConfigError(f"the secret {arn} must be a JSON object of strings")
    return values


def _text(event: Mapping[str, Any], name: str) -> str:
    value = event.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"the step's event needs {name!r} (a run id); got {value!r}")
    return value


def _number(event: Mapping[str, Any], name: str) -> int:
    value = event.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidInput(f"the step's event needs {name!r} (a whole number >= 0)")
    return value
