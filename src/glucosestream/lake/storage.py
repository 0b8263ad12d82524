"""Where the lake's files live: a local folder or an S3 bucket, behind one pyarrow filesystem.

pyarrow's S3 client (the AWS C++ SDK) adds request checksums that some S3-compatible servers
reject (HTTP 411 MissingContentLength from Ceph radosgw); it reads its checksum policy only from
the environment, so for a custom endpoint ``config.use_lenient_s3_checksums`` sets it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs

from glucosestream.config import LakeSettings, use_lenient_s3_checksums

__all__ = ["Storage", "iceberg_properties", "open_storage"]


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


def open_storage(settings: LakeSettings) -> Storage:
    if not settings.is_s3:
        return Storage(pafs.LocalFileSystem(), str(settings.root_path), "file")
    options: dict[str, Any] = {"region": settings.s3_region, "allow_bucket_creation": True}
    if settings.s3_endpoint_url:
        scheme, _, host = settings.s3_endpoint_url.partition("://")
        options.update(scheme=scheme, endpoint_override=host)
        use_lenient_s3_checksums()
    if settings.s3_access_key_id:
        options.update(
            access_key=settings.s3_access_key_id, secret_key=settings.s3_secret_access_key
        )
    return Storage(pafs.S3FileSystem(**options), settings.root.removeprefix("s3://"), "s3")


def iceberg_properties(settings: LakeSettings) -> dict[str, str]:
    """pyiceberg FileIO properties for the lake's storage."""
    if not settings.is_s3:
        return {}
    properties = {"s3.region": settings.s3_region}
    if settings.s3_endpoint_url:
        properties["s3.endpoint"] = settings.s3_endpoint_url
    if settings.s3_access_key_id:
        properties["s3.access-key-id"] = settings.s3_access_key_id
        properties["s3.secret-access-key"] = settings.s3_secret_access_key
    return properties
