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
from glucosestream.lake.access_store import AccessEntry, AccessStore, open_access

__all__ = [
    "ROLES",
    "Principal",
    "Role",
    "authenticate",
    "authorize_read",
    "create_token",
    "hash_token",
    "record_access",
]

Role = Literal["admin", "uploader", "clinician", "patient"]
ROLES: Final = ("admin", "uploader", "clinician", "patient")
TOKEN_PREFIX: Final = "gs_"


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
    open_access(settings).add_token(
        hash_token(token), role, label=label, created_at=now, patient_keys=keys, clinic_id=clinic_id
    )
    return token


def authenticate(store: AccessStore, token: str | None) -> Principal:
    """The principal a token stands for; AuthError (401) for a missing or unknown token."""
    if not token:
        raise AuthError(
            "missing token; send 'Authorization: Bearer <token>' or log in "
            "(create one with `glucosestream token create`)"
        )
    record = store.token(hash_token(token))
    if record is None:
        raise AuthError("unknown token; check it was copied whole, or create a new one")
    return Principal(
        token_id=record.token_sha256[:12],
        role=cast(Role, record.role),
        patient_keys=record.patient_keys,
        clinic_id=record.clinic_id,
        label=record.label,
    )


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
