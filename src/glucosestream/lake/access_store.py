"""The access state of a lake: four stores over the metadata database, opened together on one
engine. Each holds one concept, in its own module:

    tokens    lake.token_store      tokens, their patients, api-secret hashes, the access key
    clinics   lake.clinic_store     which patients each clinic may read
    audit     lake.access_audit     the access audit trail (append-only)
    ledger    lake.privacy_ledger   the privacy-budget ledger (append-only)
"""

from __future__ import annotations

from dataclasses import dataclass

from glucosestream.config import LakeSettings
from glucosestream.lake.access_audit import AccessAudit
from glucosestream.lake.clinic_store import ClinicStore
from glucosestream.lake.database import metadata_engine
from glucosestream.lake.privacy_ledger import PrivacyLedger
from glucosestream.lake.token_store import ACCESS_KEY_FILE, TokenStore

__all__ = ["AccessStores", "open_access"]


@dataclass(frozen=True, slots=True)
class AccessStores:
    tokens: TokenStore
    clinics: ClinicStore
    audit: AccessAudit
    ledger: PrivacyLedger


def open_access(settings: LakeSettings) -> AccessStores:
    """The lake's access stores; an older store's plain token SHA-1s are rekeyed on the way."""
    engine = metadata_engine(settings)
    key_path = None if settings.metadata_url else settings.state_path / ACCESS_KEY_FILE
    stores = AccessStores(
        tokens=TokenStore(engine, key_path=key_path),
        clinics=ClinicStore(engine),
        audit=AccessAudit(engine),
        ledger=PrivacyLedger(engine),
    )
    stores.tokens.rekey_legacy_sha1()
    return stores
