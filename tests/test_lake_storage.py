"""Opening a lake's storage has no side effect on the process: the S3 client's settings go
through its options, and nothing writes os.environ (issue 14). No S3 server is needed: the
clients are made, not used."""

from __future__ import annotations

import logging
import os

import pytest

from glucosestream.config import AWS_CHECKSUM_VARIABLES, LakeSettings
from glucosestream.lake import storage
from glucosestream.lake.storage import LakeFileIO, iceberg_properties, open_storage

S3_LAKE = LakeSettings(
    root="s3://bucket/lake",
    state_dir="unused",
    s3_endpoint_url="http://127.0.0.1:9",
    s3_access_key_id="key",
    s3_secret_access_key="secret",
)


@pytest.fixture
def no_policy(monkeypatch):
    for name in AWS_CHECKSUM_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    storage._warn_checksum_policy.cache_clear()


def _open_every_client(settings: LakeSettings) -> None:
    assert open_storage(settings).scheme == "s3"
    io = LakeFileIO(iceberg_properties(settings))
    assert io._initialize_s3_fs(None) is not None


def test_opening_an_s3_lake_leaves_os_environ_unchanged(no_policy):
    before = dict(os.environ)
    _open_every_client(S3_LAKE)
    assert dict(os.environ) == before


def test_a_custom_endpoint_without_the_checksum_policy_is_warned_once(no_policy, caplog):
    with caplog.at_level(logging.WARNING, logger=storage.__name__):
        _open_every_client(S3_LAKE)
        _open_every_client(S3_LAKE)
    [warning] = caplog.records
    assert "HTTP 411" in warning.getMessage()
    assert "AWS_REQUEST_CHECKSUM_CALCULATION=WHEN_REQUIRED" in warning.getMessage()


def test_a_policy_set_by_whoever_started_the_process_is_used_as_it_is(
    no_policy, monkeypatch, caplog
):
    for name in AWS_CHECKSUM_VARIABLES:
        monkeypatch.setenv(name, "WHEN_SUPPORTED")
    before = dict(os.environ)
    with caplog.at_level(logging.WARNING, logger=storage.__name__):
        _open_every_client(S3_LAKE)
    assert caplog.records == []
    assert dict(os.environ) == before


def test_aws_itself_needs_no_policy(no_policy, caplog):
    aws = LakeSettings(root="s3://bucket/lake", state_dir="unused", s3_region="eu-west-1")
    before = dict(os.environ)
    with caplog.at_level(logging.WARNING, logger=storage.__name__):
        assert open_storage(aws).base == "bucket/lake"
    assert caplog.records == []
    assert dict(os.environ) == before
