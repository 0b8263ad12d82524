"""Who may do what. A bearer token (or the session made from one) names a principal:

    admin       reads every patient, uploads for any patient
    uploader    uploads readings for the patients its token is bound to; reads nothing
    clinician   reads the patients of its clinic
    patient     reads their own data

Tokens are random strings shown once and stored as SHA-256 hashes (and, for Nightscout
uploaders, a keyed hash of their SHA-1: see ``lake.token_store``). ``token_id`` (the first 12
hex digits of that hash) names a principal in logs, lists and the access audit trail without
revealing the token. A token may carry an expiry; a revoked or expired token is refused by every
check, on every path, from the moment it is revoked: each request looks its token up again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal, cast

from glucosestream.clock import utc_now
from glucosestream.config import LakeSettings
from glucosestream.errors import AuthError, ConfigError, Forbidden, LakeError
from glucosestream.lake import AccessEntry, AccessStores, TokenRecord, open_access

__all__ = [
    "ROLES",
    "Principal",
    "Role",
    "authenticate",
    "authenticate_api_secret",
    "authorize_read",
    "create_token",
    "expiry_of",
    "hash_token",
    "principal_of",
    "record_access",
    "record_failed_login",
    "sha1_token",
    "usable_record",
]

log = logging.getLogger(__name__)

Role = Literal["admin", "uploader", "clinician", "patient"]
ROLES: Final = ("admin", "uploader", "clinician", "patient")
TOKEN_PREFIX: Final = "gs_"
_SHA1_HEX_LENGTH: Final = 40
_DURATION = re.compile(r"(\d+)([dhm])")
_DURATION_UNITS: Final = {"d": "days", "h": "hours", "m": "minutes"}


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
    expires_at: dt.datetime | None = None,
) -> str:
    """Make a token, store its hashes, and return it (the only time it is seen)."""
    keys = frozenset(patient_keys)
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    if role in ("patient", "uploader") and not keys:
        raise ConfigError(f"a {role} token needs --patient ID (one for a patient token)")
    if role == "patient" and len(keys) != 1:
        raise ConfigError("a patient token is bound to exactly one patient")
    if role == "clinician" and not clinic_id:
        raise ConfigError("a clinician token needs --clinic NAME")
    if expires_at is not None and expires_at <= now:
        raise ConfigError(f"--expires {expires_at.isoformat()} is not in the future")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    store = open_access(settings).tokens
    store.add_token(
        hash_token(token),
        role,
        label=label,
        created_at=now,
        patient_keys=keys,
        clinic_id=clinic_id,
        expires_at=expires_at,
    )
    store.add_api_secret(hash_token(token), sha1_token(token))
    return token


def expiry_of(text: str, *, now: dt.datetime) -> dt.datetime:
    """When a token made now with ``--expires TEXT`` stops working: a duration (``30d``,
    ``12h``, ``90m``) from now, or an ISO date (its start, UTC) or time (UTC if it has no
    offset). ConfigError when it cannot be read or is not in the future."""
    value = text.strip()
    duration = _DURATION.fullmatch(value.lower())
    if duration:
        try:
            at = now + dt.timedelta(**{_DURATION_UNITS[duration[2]]: int(duration[1])})
        except OverflowError:
            raise ConfigError(
                f"--expires {text!r} is too far away; give a shorter duration (365d) or a date"
            ) from None
    else:
        try:
            at = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ConfigError(
                f"--expires {text!r} is neither a duration (30d, 12h, 90m) nor an ISO date or "
                "time (2027-01-31, 2027-01-31T18:00+01:00)"
            ) from None
        if at.tzinfo is None:
            at = at.replace(tzinfo=dt.UTC)
    if at <= now:
        raise ConfigError(
            f"--expires {text!r} means {at.astimezone(dt.UTC).isoformat()}, which is not in the "
            "future; give a later date or a positive duration such as 30d"
        )
    return at.astimezone(dt.UTC)


def sha1_token(token: str) -> str:
    """The SHA-1 hex of a token: what a Nightscout uploader sends as its ``api-secret`` header
    (cgm-remote-monitor compares that header with the SHA-1 of its API_SECRET)."""
    return hashlib.sha1(token.encode("utf-8"), usedforsecurity=False).hexdigest()


def authenticate(
    store: AccessStores, token: str | None, *, now: dt.datetime | None = None
) -> Principal:
    """The principal a token stands for; AuthError (401) for a missing, unknown, revoked or
    expired token. ``now``: the request's time (default: the clock)."""
    if not token:
        raise AuthError(
            "missing token; send 'Authorization: Bearer <token>' or log in "
            "(create one with `glucosestream token create`)"
        )
    return _principal(store, hash_token(token), now or utc_now())


def _principal(store: AccessStores, token_sha256: str, now: dt.datetime) -> Principal:
    record = usable_record(store.tokens.token(token_sha256), now=now)
    _mark_used(store, record, now)
    return principal_of(record)


def _mark_used(store: AccessStores, record: TokenRecord, at: dt.datetime) -> None:
    """Record the token's use, best effort: a busy metadata store (another writer holds it past
    its timeout) skips it, and the next use records it, instead of failing the request that
    used a valid token. The token was checked already; this is bookkeeping, not a check."""
    try:
        store.tokens.mark_used(record, at=at)
    except LakeError as err:  # its text quotes the statement's parameters: not logged
        cause = type(err.__cause__ or err).__name__
        log.warning("token last use not recorded token_id=%s (%s)", record.token_id, cause)


def usable_record(record: TokenRecord | None, *, now: dt.datetime) -> TokenRecord:
    """The record, if its token may be used now; AuthError (401) saying why not."""
    if record is None:
        raise AuthError("unknown token; check it was copied whole, or create a new one")
    if record.revoked_at is not None and record.revoked_at <= now:
        raise AuthError(
            f"token {record.token_id} was revoked at {record.revoked_at.isoformat()}; ask for a "
            "new one (`glucosestream token create`)"
        )
    if record.expires_at is not None and record.expires_at <= now:
        raise AuthError(
            f"token {record.token_id} expired at {record.expires_at.isoformat()}; ask for a new "
            "one (`glucosestream token create --expires ...`)"
        )
    return record


def principal_of(record: TokenRecord) -> Principal:
    """The principal a stored token stands for."""
    return Principal(
        token_id=record.token_id,
        role=cast(Role, record.role),
        patient_keys=record.patient_keys,
        clinic_id=record.clinic_id,
        label=record.label,
    )


def authenticate_api_secret(
    store: AccessStores, api_secret: str | None, *, now: dt.datetime | None = None
) -> Principal:
    """The principal of a Nightscout ``api-secret`` header: the SHA-1 hex of a token (as
    uploader apps send it), or the token itself. AuthError (401) when it names no usable token.
    Only a keyed hash of each SHA-1 is stored, so no stored value is accepted here."""
    if not api_secret:
        return authenticate(store, None)
    value = api_secret.strip()
    if len(value) == _SHA1_HEX_LENGTH and all(c in "0123456789abcdefABCDEF" for c in value):
        found = store.tokens.token_by_api_secret(value.lower())
        if found is None:
            raise AuthError(
                "unknown api-secret; it must be the SHA-1 of a token made by "
                "`glucosestream token create` (tokens made before SHA-1s were kept: use ?token=)"
            )
        at = now or utc_now()
        record = usable_record(found, now=at)
        _mark_used(store, record, at)
        return principal_of(record)
    return authenticate(store, value, now=now)


def authorize_read(store: AccessStores, principal: Principal, patient_key: str) -> None:
    """Forbidden (403) unless the principal may read this patient."""
    members = (
        store.clinics.clinic_patient_keys(principal.clinic_id)
        if principal.role == "clinician" and principal.clinic_id
        else frozenset()
    )
    if not principal.may_read(patient_key, members):
        raise Forbidden("this token may not read that patient's data")


def record_access(
    store: AccessStores,
    principal: Principal,
    action: str,
    resource: str,
    *,
    at: dt.datetime,
    patient_key: str | None = None,
) -> None:
    """Append one entry to the access audit trail."""
    store.audit.log_access(
        AccessEntry(at, principal.token_id, principal.role, action, patient_key, resource)
    )


def record_failed_login(store: AccessStores, *, address: str, reason: str, at: dt.datetime) -> None:
    """Append a failed login to the access audit trail: action ``login``, role ``failed``, the
    client's address and the reason (never the token that was tried)."""
    resource = f"POST /login from {address}: {reason}"[:512]
    store.audit.log_access(AccessEntry(at, "-", "failed", "login", None, resource))
