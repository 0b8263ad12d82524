"""The run lock as a lease in a DynamoDB table (``lake.lock_url = dynamodb://TABLE``).

A file lock works on one machine and a PostgreSQL advisory lock lives as long as one database
session; neither spans the Lambda functions of a Step Functions run (its plan, bucket tasks and
publish run in different processes, minutes apart). A lease does: one item per lake (key
``lake``: the lake's location), naming the run that holds it (``run_id``) and when the lease
ends (``expires_at``, epoch seconds, also the table's TTL attribute). Taking it is one
conditional write (no item, or an item whose lease has ended); renewing and releasing are
conditional on the holder, so a holder whose lease ended and was taken by another run learns so
(``RunLockLost``) before it publishes, instead of publishing over the other run.

The local command line on an S3 lake with this setting takes the same lease for a run and renews
it from a thread (``LEASE_SECONDS``, renewed every third of it), so a killed ``run`` blocks the
lake for at most that long; a Step Functions run takes it for its whole execution time and
renews it at each step. Either way, whoever takes it next closes the runs the dead holder left
"running" (``lake.lock``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from glucosestream.config import LakeSettings
from glucosestream.errors import ConfigError, RunInProgress, RunLockLost

__all__ = ["LEASE_SECONDS", "RunLease", "open_lease"]

LEASE_SECONDS: Final = 120  # a local run's lease, renewed every 40 s while it works
_SCHEME: Final = "dynamodb://"


@dataclass(frozen=True, slots=True)
class RunLease:
    """The lake's run lock in one DynamoDB table."""

    table: str
    region: str
    lake: str  # the item's key: the lake's location

    def take(self, holder: str, seconds: float) -> None:
        """Hold the lock for ``seconds`` as ``holder``, or raise ``RunInProgress``."""
        now = time.time()
        try:
            self._client().put_item(
                TableName=self.table,
                Item={
                    "lake": {"S": self.lake},
                    "run_id": {"S": holder},
                    "expires_at": {"N": str(int(now + seconds))},
                    "taken_at": {"N": str(int(now))},
                },
                ConditionExpression="attribute_not_exists(lake) OR expires_at < :now",
                ExpressionAttributeValues={":now": {"N": str(int(now))}},
            )
        except Exception as err:
            if _condition_failed(err):
                raise RunInProgress(self.lake) from err
            raise self._unreachable(err) from err

    def renew(self, holder: str, seconds: float) -> None:
        """Extend ``holder``'s lease to ``seconds`` from now, or raise ``RunLockLost``."""
        try:
            self._client().update_item(
                TableName=self.table,
                Key={"lake": {"S": self.lake}},
                UpdateExpression="SET expires_at = :until",
                ConditionExpression="run_id = :me",
                ExpressionAttributeValues={
                    ":until": {"N": str(int(time.time() + seconds))},
                    ":me": {"S": holder},
                },
            )
        except Exception as err:
            if _condition_failed(err):
                raise RunLockLost(self.lake, holder) from err
            raise self._unreachable(err) from err

    def release(self, holder: str) -> None:
        """Free the lock if ``holder`` still has it (a lease another run took is left alone)."""
        try:
            self._client().delete_item(
                TableName=self.table,
                Key={"lake": {"S": self.lake}},
                ConditionExpression="run_id = :me",
                ExpressionAttributeValues={":me": {"S": holder}},
            )
        except Exception as err:
            if not _condition_failed(err):
                raise self._unreachable(err) from err

    def holder(self) -> str | None:
        """The run holding a lease that has not ended, or None."""
        try:
            item = (
                self._client()
                .get_item(TableName=self.table, Key={"lake": {"S": self.lake}}, ConsistentRead=True)
                .get("Item")
            )
        except Exception as err:
            raise self._unreachable(err) from err
        if not item or int(item["expires_at"]["N"]) < time.time():
            return None
        return str(item["run_id"]["S"])

    def _client(self) -> Any:
        try:
            import boto3  # type: ignore[import-untyped]  # the aws extra; imported on use
        except ImportError as err:
            raise ConfigError(
                f"the run lock {_SCHEME}{self.table} needs boto3: pip install 'glucosestream[aws]'"
            ) from err
        return boto3.client("dynamodb", region_name=self.region)

    def _unreachable(self, err: Exception) -> ConfigError:
        return ConfigError(
            f"the run lock table {self.table} (DynamoDB, {self.region}) could not be used: "
            f"{type(err).__name__}: {err}; check lake.lock_url, the region and the credentials"
        )


def open_lease(settings: LakeSettings) -> RunLease | None:
    """The lake's lease when ``lake.lock_url`` is ``dynamodb://TABLE[?region=R]``, else None."""
    url = settings.lock_url
    if not url:
        return None
    if not url.startswith(_SCHEME):
        raise ConfigError(
            f"lake.lock_url {url!r} is not a lock this version knows; use dynamodb://TABLE "
            "or leave it empty (a file lock, or PostgreSQL's advisory lock)"
        )
    parts = urlsplit(url)
    query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
    if not parts.netloc:
        raise ConfigError(f"lake.lock_url {url!r} names no table: dynamodb://TABLE")
    return RunLease(parts.netloc, query.get("region") or settings.s3_region, settings.location)


def _condition_failed(err: Exception) -> bool:
    code = getattr(err, "response", {}).get("Error", {}).get("Code", "")
    return bool(code == "ConditionalCheckFailedException")
