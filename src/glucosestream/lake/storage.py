"""Where the lake's files live: a local folder or an S3 bucket, behind one pyarrow filesystem.

pyarrow's S3 client (the AWS C++ SDK) adds streamed request checksums that older S3-compatible
servers reject (HTTP 411 MissingContentLength from Ceph radosgw 16). It reads its checksum
policy only from the environment (or ``~/.aws/config``), which this module never writes: the
process is started with ``AWS_REQUEST_CHECKSUM_CALCULATION=WHEN_REQUIRED`` and
``AWS_RESPONSE_CHECKSUM_VALIDATION=WHEN_REQUIRED`` for such a server, and opening a lake on a
custom endpoint without them logs a warning once that says so.

S3 files are opened with ``allow_delayed_open``: pyarrow then writes an object smaller than a
multipart part with one PUT, where it otherwise made three requests (create a multipart upload,
upload the part, complete it). Every Iceberg data file, manifest, manifest list and metadata
file of a run is that small, so the lake's Iceberg tables use the same client (``LakeFileIO``).
A failed write surfaces when the file is closed instead of when it is opened; an object appears
whole or not at all either way.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs
from pyiceberg.io.pyarrow import PyArrowFileIO

from glucosestream.config import AWS_CHECKSUM_VARIABLES, LakeSettings, s3_checksum_policy

__all__ = ["LakeFileIO", "Storage", "iceberg_properties", "open_storage"]

log = logging.getLogger(__name__)

# pyiceberg FileIO properties (pyiceberg.io): the keys ``iceberg_properties`` writes.
_REGION, _ENDPOINT = "s3.region", "s3.endpoint"
_ACCESS_KEY, _SECRET_KEY = "s3.access-key-id", "s3.secret-access-key"


@dataclass(frozen=True, slots=True)
class Storage:
    """A filesystem and the lake's base path in it (``bucket/prefix`` or an absolute path)."""

    fs: pafs.FileSystem
    base: str
    scheme: str

    def path(self, *parts: str) -> str:
        return "/".join([self.base.rstrip("/"), *parts])

    def uri(self, *parts: str) -> str:
        if self.scheme == "s3":
            return "s3://" + self.path(*parts)
        return "file://" + self.path(*parts)

    @property
    def local(self) -> bool:
        return self.scheme == "file"

    def make_folder(self, path: str) -> None:
        """Make ``path`` and its parents on a local disk. Nothing on S3, which has no folders:
        pyarrow would write an empty marker object for each level (a PUT per level, which a
        role allowed to write only below its own prefix is refused)."""
        if self.local:
            self.fs.create_dir(path, recursive=True)


def open_storage(settings: LakeSettings) -> Storage:
    if not settings.is_s3:
        return Storage(pafs.LocalFileSystem(), str(settings.root_path), "file")
    fs = _s3_filesystem(
        settings.s3_region,
        settings.s3_endpoint_url,
        settings.s3_access_key_id,
        settings.s3_secret_access_key,
        allow_bucket_creation=True,
    )
    return Storage(fs, settings.root.removeprefix("s3://"), "s3")


def iceberg_properties(settings: LakeSettings) -> dict[str, str]:
    """pyiceberg FileIO properties for the lake's storage."""
    if not settings.is_s3:
        return {}
    properties = {_REGION: settings.s3_region, "py-io-impl": f"{__name__}.LakeFileIO"}
    if settings.s3_endpoint_url:
        properties[_ENDPOINT] = settings.s3_endpoint_url
    if settings.s3_access_key_id:
        properties[_ACCESS_KEY] = settings.s3_access_key_id
        properties[_SECRET_KEY] = settings.s3_secret_access_key
    return properties


class LakeFileIO(PyArrowFileIO):  # type: ignore[misc]  # pyiceberg is untyped to mypy here
    """pyiceberg's pyarrow FileIO, on the lake's S3 client (one PUT per small object)."""

    def _initialize_s3_fs(self, netloc: str | None) -> pafs.FileSystem:
        get = self.properties.get
        return _s3_filesystem(
            get(_REGION, ""), get(_ENDPOINT, ""), get(_ACCESS_KEY, ""), get(_SECRET_KEY, "")
        )


def _s3_filesystem(
    region: str,
    endpoint_url: str,
    access_key_id: str,
    secret_access_key: str,
    *,
    allow_bucket_creation: bool = False,
) -> pafs.S3FileSystem:
    options: dict[str, Any] = {
        "region": region or None,
        "allow_bucket_creation": allow_bucket_creation,
        "allow_delayed_open": True,  # small objects in one PUT (module docstring)
    }
    if endpoint_url:
        scheme, _, host = endpoint_url.partition("://")
        options.update(scheme=scheme, endpoint_override=host)
        missing = tuple(n for n in AWS_CHECKSUM_VARIABLES if n not in s3_checksum_policy())
        if missing:
            _warn_checksum_policy(endpoint_url, missing)
    if access_key_id:
        options.update(access_key=access_key_id, secret_key=secret_access_key)
    return pafs.S3FileSystem(**options)


@functools.cache
def _warn_checksum_policy(endpoint_url: str, missing: tuple[str, ...]) -> None:
    """Say once per process and endpoint that the SDK's default checksums may be refused."""
    log.warning(
        "S3 endpoint %s: %s not set, so pyarrow's S3 client sends streamed checksums, which "
        "older S3-compatible servers refuse (HTTP 411 MissingContentLength from Ceph radosgw 16); "
        "if uploads fail so, start the process with %s (or set request_checksum_calculation and "
        "response_checksum_validation to when_required in ~/.aws/config)",
        endpoint_url,
        " and ".join(missing),
        " ".join(f"{name}=WHEN_REQUIRED" for name in AWS_CHECKSUM_VARIABLES),
    )
