"""Tokens in the metadata store: their hashes, roles, expiry and revocation, the patients each
is bound to, and the keyed hashes of their SHA-1s (what Nightscout uploaders send).

Nothing stored here is a credential. A token is kept as its SHA-256 (a bearer token is hashed
before it is looked up, so its stored hash, sent as a token, names nothing). The SHA-1 that a
Nightscout uploader sends as ``api-secret`` is kept only as HMAC-SHA256 under the lake's access
key: 256 random bits in ``<state>/access.key`` (0600) beside a SQLite store, or in the database's
``lake_keys`` table when the store is a database URL (so every server sharing it shares the
key). Losing the key only breaks the api-secret of existing tokens; bearer tokens still work.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa

from glucosestream.errors import ConfigError, LakeError, NotFound
from glucosestream.lake.database import Store, create_private_file
from glucosestream.lake.metadata_schema import (
    lake_keys,
    legacy_token_sha1,
    token_api_secrets,
    token_patients,
    tokens,
)

__all__ = ["ACCESS_KEY_FILE", "TokenRecord", "TokenStore"]

log = logging.getLogger(__name__)

ACCESS_KEY_FILE: Final = "access.key"
_ACCESS_KEY_NAME: Final = "access"
_KEY_HEX_LENGTH: Final = 64
# last_used_at is written at most this often per token: no write on most authentications.
_LAST_USED_STEP: Final = dt.timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class TokenRecord:
    token_sha256: str
    role: str
    label: str
    clinic_id: str | None
    patient_keys: frozenset[str]
    created_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None
    last_used_at: dt.datetime | None = None

    @property
    def token_id(self) -> str:
        """What names the token in lists, logs and the audit trail (not a credential)."""
        return self.token_sha256[:12]


class TokenStore(Store):
    def __init__(self, engine: sa.Engine, *, key_path: Path | None = None) -> None:
        """``key_path``: the access key's file; None keeps the key in the database."""
        super().__init__(engine)
        self._key_path = key_path
        self._key: bytes | None = None

    def add_token(
        self,
        token_sha256: str,
        role: str,
        *,
        label: str,
        created_at: dt.datetime,
        patient_keys: Iterable[str] = (),
        clinic_id: str | None = None,
        expires_at: dt.datetime | None = None,
    ) -> None:
        row = {
            "token_sha256": token_sha256,
            "role": role,
            "label": label,
            "clinic_id": clinic_id,
            "created_at": _as_utc(created_at),
            "expires_at": None if expires_at is None else _as_utc(expires_at),
        }
        bound = [
            {"token_sha256": token_sha256, "patient_key": k} for k in sorted(set(patient_keys))
        ]
        with self._tx() as con:
            con.execute(tokens.insert(), [row])
            if bound:
                con.execute(token_patients.insert(), bound)

    def add_api_secret(self, token_sha256: str, sha1_hex: str) -> None:
        """Record the keyed hash of a token's SHA-1 (what Nightscout uploaders send)."""
        row = {"api_secret_hmac": self._api_secret_hmac(sha1_hex), "token_sha256": token_sha256}
        with self._tx() as con:
            con.execute(token_api_secrets.insert(), [row])

    def token_by_api_secret(self, sha1_hex: str) -> TokenRecord | None:
        """The token whose SHA-1 this is, if that token has one recorded (one transaction: a
        Nightscout uploader's every POST is authenticated by it)."""
        digest = self._api_secret_hmac(sha1_hex)
        with self._tx() as con:
            row = con.execute(
                sa.select(tokens)
                .join(token_api_secrets, token_api_secrets.c.token_sha256 == tokens.c.token_sha256)
                .where(token_api_secrets.c.api_secret_hmac == digest)
            ).first()
            return None if row is None else _record(row, _patient_keys(con, row.token_sha256))

    def token(self, token_sha256: str) -> TokenRecord | None:
        with self._tx() as con:
            row = con.execute(
                sa.select(tokens).where(tokens.c.token_sha256 == token_sha256)
            ).first()
            return None if row is None else _record(row, _patient_keys(con, token_sha256))

    def token_records(self) -> list[TokenRecord]:
        """Every token, oldest first (revoked and expired ones too)."""
        with self._tx() as con:
            bound: dict[str, set[str]] = {}
            for sha256, key in con.execute(sa.select(token_patients)):
                bound.setdefault(sha256, set()).add(key)
            rows = con.execute(sa.select(tokens).order_by(tokens.c.created_at)).all()
        return [_record(r, frozenset(bound.get(r.token_sha256, ()))) for r in rows]

    def revoke_token(self, token_id: str, *, at: dt.datetime) -> TokenRecord:
        """Revoke the token this id names (the first 12 hex digits of its SHA-256); a token
        revoked already keeps its first time. NotFound when no token has that id."""
        token_id = token_id.strip().lower()
        if len(token_id) < 8 or any(c not in "0123456789abcdef" for c in token_id):
            raise ConfigError(
                f"{token_id!r} is not a token id; ids are 12 hex digits, as "
                "`glucosestream token list` shows them"
            )
        with self._tx() as con:
            found = con.scalars(
                sa.select(tokens.c.token_sha256).where(tokens.c.token_sha256.startswith(token_id))
            ).all()
            if len(found) != 1:
                raise (NotFound if not found else ConfigError)(
                    f"{'no' if not found else 'more than one'} token has the id {token_id!r}; "
                    "see `glucosestream token list` for the ids"
                )
            con.execute(
                tokens.update()
                .where(tokens.c.token_sha256 == found[0], tokens.c.revoked_at.is_(None))
                .values(revoked_at=_as_utc(at))
            )
        record = self.token(found[0])
        if record is None:  # deleted meanwhile (its patient forgotten): gone all the same
            raise NotFound(f"the token {token_id!r} was deleted while it was being revoked")
        return record

    def mark_used(self, record: TokenRecord, *, at: dt.datetime) -> None:
        """Record that a token was used, unless that was recorded less than 10 minutes ago."""
        if record.last_used_at is not None and at - record.last_used_at < _LAST_USED_STEP:
            return
        with self._tx() as con:
            con.execute(
                tokens.update()
                .where(tokens.c.token_sha256 == record.token_sha256)
                .values(last_used_at=_as_utc(at))
            )

    # the access key and the legacy SHA-1 table ----------------------------------------------
    def _api_secret_hmac(self, sha1_hex: str) -> str:
        message = b"api-secret\x00" + sha1_hex.strip().lower().encode("ascii", "replace")
        return hmac.new(self._access_key(), message, hashlib.sha256).hexdigest()

    def derived_key(self, purpose: str) -> bytes:
        """A key for one purpose (``"webhook-secret-seal"``), derived from the lake's access
        key, so no caller holds the access key itself: HMAC-SHA256(access key,
        ``derived-key\0`` + purpose)."""
        message = b"derived-key\x00" + purpose.encode()
        return hmac.new(self._access_key(), message, hashlib.sha256).digest()

    def _access_key(self) -> bytes:
        if self._key is None:
            path = self._key_path
            self._key = self._key_from_database() if path is None else _key_from_file(path)
        return self._key

    def _key_from_database(self) -> bytes:
        query = sa.select(lake_keys.c.key_hex).where(lake_keys.c.name == _ACCESS_KEY_NAME)
        with self._tx() as con:
            found = con.scalar(query)
        if found is None:
            try:
                with self._tx() as con:
                    con.execute(
                        lake_keys.insert(),
                        [{"name": _ACCESS_KEY_NAME, "key_hex": secrets.token_hex(32)}],
                    )
            except LakeError:
                pass  # another server made it first: theirs is read below
            with self._tx() as con:
                found = con.scalar(query)
        return _key_bytes(str(found or ""), "the metadata database's lake_keys table")

    def rekey_legacy_sha1(self) -> int:
        """Move an older store's plain token SHA-1s to keyed hashes and drop their table (on
        SQLite, compacting the file so they leave no trace); returns how many were moved."""
        if not sa.inspect(self._engine).has_table(legacy_token_sha1.name):
            return 0
        try:
            with self._tx() as con:
                rows = con.execute(sa.select(legacy_token_sha1)).all()
                known = set(con.scalars(sa.select(token_api_secrets.c.api_secret_hmac)))
                moved = [
                    {"api_secret_hmac": digest, "token_sha256": sha256}
                    for sha1, sha256 in rows
                    if (digest := self._api_secret_hmac(sha1)) not in known
                ]
                if moved:
                    con.execute(token_api_secrets.insert(), moved)
                legacy_token_sha1.drop(con, checkfirst=True)
        except LakeError:
            if sa.inspect(self._engine).has_table(legacy_token_sha1.name):
                raise
            return 0  # another process moved them meanwhile
        if self._engine.dialect.name == "sqlite":
            try:
                with self._engine.connect() as con:
                    con.exec_driver_sql("VACUUM")
            except sa.exc.OperationalError as err:  # busy: free pages wait for a later VACUUM
                log.warning("metadata store not compacted after rekeying token SHA-1s: %s", err)
        log.info("rekeyed token_sha1 rows=%d", len(moved))
        return len(moved)


def _record(row: Any, patient_keys: frozenset[str]) -> TokenRecord:
    return TokenRecord(
        row.token_sha256,
        row.role,
        row.label,
        row.clinic_id,
        patient_keys,
        _utc(row.created_at),
        _utc(row.expires_at),
        _utc(row.revoked_at),
        _utc(row.last_used_at),
    )


def _as_utc(at: dt.datetime) -> dt.datetime:
    """An aware instant in UTC (SQLite keeps the wall time and drops the offset)."""
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at!r}; pass an aware UTC instant")
    return at.astimezone(dt.UTC)


def _utc(at: dt.datetime | None) -> dt.datetime | None:
    if at is None:
        return None
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)


def _key_from_file(path: Path) -> bytes:
    create_private_file(path, (secrets.token_hex(32) + "\n").encode("ascii"))
    return _key_bytes(path.read_text("ascii").strip(), str(path))


def _key_bytes(key_hex: str, where: str) -> bytes:
    if len(key_hex) != _KEY_HEX_LENGTH or any(c not in "0123456789abcdef" for c in key_hex):
        raise ConfigError(
            f"the lake's access key in {where} is damaged; restore it from a backup (until then "
            "Nightscout uploaders' api-secret headers are refused; bearer tokens still work)"
        )
    return bytes.fromhex(key_hex)


def _patient_keys(con: sa.Connection, token_sha256: str) -> frozenset[str]:
    """The patients a token is bound to."""
    return frozenset(
        con.scalars(
            sa.select(token_patients.c.patient_key).where(
                token_patients.c.token_sha256 == token_sha256
            )
        )
    )
