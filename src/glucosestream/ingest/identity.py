"""Pseudonyms: external patient ids and device serials become keyed HMAC-SHA256 digests
(``pseudonymised_rows``: the raw rows of a batch with theirs replaced).

The key comes from ``GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET``; when that is empty, a random key
is made once and kept in ``<lake>/_state/pseudonym.key`` (mode 0600 in a 0700 folder, made so
whatever the umask). Losing the key means new data for a known patient gets a new key: back the
state folder up.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.config import Settings
from glucosestream.errors import ConfigError
from glucosestream.formats import decoded
from glucosestream.ingest.fastpath import constant_strings
from glucosestream.lake import create_private_file, private_state_path
from glucosestream.readings import MAX_ID_CHARS, is_known_zone

__all__ = ["device_key", "load_secret", "patient_key", "pseudonymised_rows"]

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


@dataclass(slots=True)
class _Pseudonyms:
    """The keyed pseudonyms of one part's ids, each distinct id worked on once. An id over
    ``MAX_ID_CHARS`` is neither hashed nor registered: its rows are quarantined."""

    secret: bytes
    default_device: str
    keys: dict[str, str] = field(default_factory=dict)  # by external patient id
    too_long: set[str] = field(default_factory=set)  # "patient", "device": kinds found too long

    def patient(self, external_id: str) -> str | None:
        if len(external_id) > MAX_ID_CHARS:
            self.too_long.add("patient")
            return None
        if not external_id.strip():
            return None
        self.keys[external_id] = patient_key(self.secret, external_id)
        return self.keys[external_id]

    def device(self, device_id: str) -> str:
        if len(device_id) > MAX_ID_CHARS:
            self.too_long.add("device")
            return self.default_device
        return device_key(self.secret, device_id) if device_id.strip() else self.default_device


def pseudonymised_rows(
    settings: Settings,
    raw: pa.Table,
    secret: bytes,
    *,
    bound: pa.Array | None,
    fmt: str,
    tz: str | None,
) -> tuple[pa.Table, dict[str, str]]:
    """Raw rows (every column of the raw schemas) with patient ids and device serials replaced
    by keyed pseudonyms, each time zone checked once; and the external id of each patient key
    made. ``bound``: each row's patient key when the rows name no patient (an uploader token's
    patient), else the rows' ``patient_id`` is pseudonymised.

    Each distinct value is worked on once in Python; the columns stay Arrow arrays.
    """
    n = raw.num_rows
    default_device = settings.ingest.default_device_id
    names = _Pseudonyms(secret, default_device)
    patient_keys = _map_distinct(raw["patient_id"], names.patient, None) if bound is None else bound
    default_tz = tz or settings.ingest.default_tz
    zones = _map_distinct(raw["tz"], lambda z: z if z.strip() else default_tz, default_tz)
    incoming = pa.table(
        {
            "pos": pa.array(np.arange(n, dtype=np.int64)),
            "line": raw["line"],
            "source": constant_strings(fmt, n),
            "patient_key": patient_keys,
            "device_id": _map_distinct(raw["device_id"], names.device, default_device),
            "time": raw["time"],
            "instant": raw["instant"],
            "glucose": raw["glucose"],
            "unit": raw["unit"],
            "tz": zones,
            "tz_ok": _map_distinct(zones, is_known_zone, False, pa.bool_()),
            "flags": raw["flags"],
            "problem": _id_problems(raw, names.too_long) if names.too_long else raw["problem"],
            "direction": decoded(raw["direction"]),
            "rate": decoded(raw["rate"]),
        }
    )
    return incoming, {k: i for i, k in names.keys.items()}


def _id_problems(raw: pa.Table, too_long: set[str]) -> pa.ChunkedArray:
    """The rows' problems, with rows whose patient or device id is over ``MAX_ID_CHARS``
    quarantined (a parser's own problem comes first)."""
    problems = [raw["problem"]]
    for kind in ("patient", "device"):
        if kind not in too_long:
            continue
        ids = raw[f"{kind}_id"]
        if pa.types.is_dictionary(ids.type):
            ids = ids.cast(ids.type.value_type)
        over = pc.greater(pc.utf8_length(ids), MAX_ID_CHARS)
        reason = pa.scalar(f"{kind} id longer than {MAX_ID_CHARS} characters")
        problems.append(pc.if_else(over, reason, pa.scalar(None, pa.string())))
    return pc.coalesce(*problems)


def _map_distinct(
    column: pa.Array | pa.ChunkedArray,
    func: Callable[[str], Any],
    if_null: Any,
    type_: pa.DataType | None = None,
) -> pa.Array:
    """``func`` applied to each distinct value of a string column (``if_null`` for nulls), as a
    dictionary-encoded array: each distinct value is worked on once and no string is copied."""
    encoded = pc.dictionary_encode(column)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.unify_dictionaries().combine_chunks()
    values = [func(v) for v in encoded.dictionary.to_pylist()]
    indices = encoded.indices
    if indices.null_count:
        values.append(if_null)
        indices = pc.fill_null(indices, len(values) - 1)
    mapped = pa.array(values, type_ or pa.string())
    if type_ is not None:
        return pc.take(mapped, indices)
    return pa.DictionaryArray.from_arrays(indices, mapped)
