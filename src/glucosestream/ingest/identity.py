"""Pseudonyms: external patient ids and device serials become keyed HMAC-SHA256 digests.

The key comes from ``GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET``; when that is empty, a random key
is made once and kept in ``<lake>/_state/pseudonym.key`` (mode 0600 in a 0700 folder, made so
whatever the umask). Losing the key means new data for a known patient gets a new key: back the
state folder up.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from glucosestream.config import Settings
from glucosestream.errors import ConfigError
from glucosestream.lake import create_private_file, private_state_path

__all__ = ["device_key", "load_secret", "patient_key"]

_KEY_FILE = "pseudonym.key"


def load_secret(settings: Settings) -> bytes:
    """The HMAC key: from settings, else the lake's key file (made on first use)."""
    if settings.ingest.pseudonym_secret:
        return settings.ingest.pseudonym_secret.encode("utf-8")
    path = private_state_path(settings.lake) / _KEY_FILE
    # Another process may make it first (O_EXCL): then theirs is read.
    create_private_file(path, (secrets.token_hex(32) + "\n").encode("ascii"))
    key = path.read_text("ascii").strip()
    if len(key) < 32:
        raise ConfigError(
            f"the pseudonym key in {path} is too short ({len(key)} characters); restore it "
            "from a backup or set GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET"
        )
    return key.encode("ascii")


def patient_key(secret: bytes, external_id: str) -> str:
    """The lake's pseudonym for an external patient id (32 hex digits, 128 bits)."""
    return hmac.new(
        secret, b"patient\x00" + external_id.encode("utf-8"), hashlib.sha256
    ).hexdigest()[:32]


def device_key(secret: bytes, serial: str) -> str:
    """The lake's pseudonym for a device serial number."""
    digest = hmac.new(secret, b"device\x00" + serial.encode("utf-8"), hashlib.sha256).hexdigest()
    return "dev-" + digest[:24]
