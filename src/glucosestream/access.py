"""Who may do what. A bearer token (or the session made from one) names a principal:

    admin       reads every patient, uploads for any patient
    uploader    uploads readings for the patients its token is bound to; reads nothing
    clinician   reads the patients of its clinic
    patient     reads their own data

Tokens are random strings shown once and stored as SHA-256 hashes. ``token_id`` (the first 12
hex digits of that hash) names a principal in logs and the access audit trail without
revealing the token.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal, cast

from glucosestream.config import LakeSettings
from glucosestream.errors import AuthError, ConfigError, Forbidden
from glucosestream.lake.access_store import AccessEntry, AccessStore, TokenRecord, open_access

__all__ = [
    "ROLES",
    "Principal",
    "Role",
    "authenticate",
    "authenticate_api_secret",
    "authorize_read",
    "create_token",
    "hash_token",
    "principal_of",
    "record_access",
    "sha1_token",
]

Role = Literal["admin", "uploader", "clinician", "patient"]
ROLES: Final = ("admin", "uploader", "clinician", "patient")
TOKEN_PREFIX: Final = "gs_"
_SHA1_HEX_LENGTH: Final = 40


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: str
    role: Role
    patient_keys: frozenset[str]  # uploader: may upload for; patient: is
    clinic_id: str | None
    label: str

    def may_read(self, patient_key: str, clinic_members: frozenset[str] = frozenset()) -> bool:
        """Whether this principal may read a patient's data (``clinic_members``: the patients
        of this principal's clinic, for a clinician)."""
        if self.role == "admin":
            return True
        if self.role == "patient":
            return patient_key in self.patient_keys
        if self.role == "clinician":
            return patient_key in clinic_members
        return False

    def may_upload(self, patient_key: str) -> bool:
        if self.role == "admin":
            return True
        return self.role == "uploader" and patient_key in self.patient_keys


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(
    settings: LakeSettings,
    role: str,
    *,
    label: str,
    now: dt.datetime,
    patient_keys: Iterable[str] = (),
    clinic_id: str | None = None,
) -> str:
    """Make a token, store its hash, and return it (the only time it is seen)."""
    keys = frozenset(patient_keys)
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    if role in ("patient", "uploader") and not keys:
        raise ConfigError(f"a {role} token needs --patient ID (one for a patient token)")
    if role == "patient" and len(keys) != 1:
        raise ConfigError("a patient token is bound to exactly one patient")
    if role == "clinician" and not clinic_id:
        raise ConfigError("a clinician token needs --clinic NAME")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    store = open_access(settings)
    store.add_token(
        hash_token(token), role, label=label, created_at=now, patient_keys=keys, clinic_id=clinic_id
    )
    store.add_token_sha1(hash_token(token), sha1_token(token))
    return token


def sha1_token(token: str) -> str:
    """The SHA-1 hex of a token: what a Nightscout uploader sends as its ``api-secret`` header
    (cgm-remote-monitor compares that header with the SHA-1 of its API_SECRET)."""
    return hashlib.sha1(token.encode("utf-8"), usedforsecurity=False).hexdigest()


def authenticate(store: AccessStore, token: str | None) -> Principal:
    """The principal a token stands for; AuthError (401) for a missing or unknown token."""
    if not token:
        raise AuthError(
            "missing token; send 'Authorization: Bearer <token>' or log in "
            "(create one with `glucosestream token create`)"
        )
    return _principal(store, hash_token(token))


def _principal(store: AccessStore, token_sha256: str) -> Principal:
    record = store.token(token_sha256)
    if record is None:
        raise AuthError("unknown token; check it was copied whole, or create a new one")
    return principal_of(record)


def principal_of(record: TokenRecord) -> Principal:
    """The principal a stored token stands for."""
    return Principal(
        token_id=record.token_sha256[:12],
        role=cast(Role, record.role),
        patient_keys=record.patient_keys,
        clinic_id=record.clinic_id,
        label=record.label,
    )


def authenticate_api_secret(store: AccessStore, api_secret: str | None) -> Principal:
    """The principal of a Nightscout ``api-secret`` header: the SHA-1 hex of a token (as
    uploader apps send it), or the token itself. AuthError (401) when it names no token."""
    if not api_secret:
        return authenticate(store, None)
    value = api_secret.strip()
    if len(value) == _SHA1_HEX_LENGTH and all(c in "0123456789abcdefABCDEF" for c in value):
        token_sha256 = store.token_sha256_by_sha1(value.lower())
        if token_sha256 is None:
            raise AuthError(
                "unknown api-secret; it must be the SHA-1 of a token made by "
                "`glucosestream token create` (tokens made before SHA-1s were kept: use ?token=)"
            )
        return _principal(store, token_sha256)
    return authenticate(store, value)


def authorize_read(store: AccessStore, principal: Principal, patient_key: str) -> None:
    """Forbidden (403) unless the principal may read this patient."""
    members = (
        store.clinic_patient_keys(principal.clinic_id)
        if principal.role == "clinician" and principal.clinic_id
        else frozenset()
    )
    if not principal.may_read(patient_key, members):
        raise Forbidden("this token may not read that patient's data")


def record_access(
    store: AccessStore,
    principal: Principal,
    action: str,
    resource: str,
    *,
    at: dt.datetime,
    patient_key: str | None = None,
) -> None:
    """Append one entry to the access audit trail."""
    store.log_access(
        AccessEntry(at, principal.token_id, principal.role, action, patient_key, resource)
    )
