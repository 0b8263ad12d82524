"""Access state in the metadata store: tokens (stored as SHA-256 hashes) and the patients they
are bound to, clinic membership, the access audit log and the privacy-budget ledger."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from glucosestream.config import LakeSettings
from glucosestream.errors import LakeError
from glucosestream.lake.database import Store, metadata_engine
from glucosestream.lake.metadata_schema import (
    access_log,
    clinic_patients,
    privacy_ledger,
    token_patients,
    token_sha1,
    tokens,
)

__all__ = ["AccessEntry", "AccessStore", "BudgetExceeded", "TokenRecord", "open_access"]


@dataclass(frozen=True, slots=True)
class TokenRecord:
    token_sha256: str
    role: str
    label: str
    clinic_id: str | None
    patient_keys: frozenset[str]


@dataclass(frozen=True, slots=True)
class AccessEntry:
    at: dt.datetime
    token_id: str
    role: str
    action: str
    patient_key: str | None
    resource: str


class BudgetExceeded(LakeError):
    """A private release would spend more of a dataset's privacy budget than is left."""

    retryable = False
    status = 409

    def __init__(self, dataset: str, epsilon: float, spent: float, budget: float) -> None:
        super().__init__(
            f"releasing this statistic would spend epsilon={epsilon:g} of dataset {dataset!r}, "
            f"which has {max(budget - spent, 0.0):g} of its budget {budget:g} left; nothing was "
            "released (ask for fewer statistics, or a new dataset version with its own budget)"
        )
        self.dataset = dataset


class AccessStore(Store):
    # tokens -------------------------------------------------------------------------------
    def add_token(
        self,
        token_sha256: str,
        role: str,
        *,
        label: str,
        created_at: dt.datetime,
        patient_keys: Iterable[str] = (),
        clinic_id: str | None = None,
    ) -> None:
        row = {
            "token_sha256": token_sha256,
            "role": role,
            "label": label,
            "clinic_id": clinic_id,
            "created_at": created_at,
        }
        bound = [
            {"token_sha256": token_sha256, "patient_key": k} for k in sorted(set(patient_keys))
        ]
        with self._tx() as con:
            con.execute(tokens.insert(), [row])
            if bound:
                con.execute(token_patients.insert(), bound)

    def add_token_sha1(self, token_sha256: str, sha1_hex: str) -> None:
        """Record a token's SHA-1 (what Nightscout uploaders send as ``api-secret``)."""
        with self._tx() as con:
            con.execute(
                token_sha1.insert(), [{"token_sha1": sha1_hex, "token_sha256": token_sha256}]
            )

    def token_sha256_by_sha1(self, sha1_hex: str) -> str | None:
        """The SHA-256 of the token whose SHA-1 this is, if that token has one recorded."""
        with self._tx() as con:
            found: str | None = con.scalar(
                sa.select(token_sha1.c.token_sha256).where(token_sha1.c.token_sha1 == sha1_hex)
            )
        return found

    def token(self, token_sha256: str) -> TokenRecord | None:
        with self._tx() as con:
            row = con.execute(
                sa.select(tokens).where(tokens.c.token_sha256 == token_sha256)
            ).first()
            if row is None:
                return None
            keys = con.scalars(
                sa.select(token_patients.c.patient_key).where(
                    token_patients.c.token_sha256 == token_sha256
                )
            )
            return TokenRecord(
                row.token_sha256, row.role, row.label, row.clinic_id, frozenset(keys)
            )

    # clinics ------------------------------------------------------------------------------
    def add_clinic_patients(self, clinic_id: str, patient_keys: Iterable[str]) -> int:
        """Put patients in a clinic; returns how many were not in it yet."""
        wanted = set(patient_keys)
        with self._tx() as con:
            known = set(
                con.scalars(
                    sa.select(clinic_patients.c.patient_key).where(
                        clinic_patients.c.clinic_id == clinic_id,
                        clinic_patients.c.patient_key.in_(wanted),
                    )
                )
            )
            new = [{"clinic_id": clinic_id, "patient_key": k} for k in sorted(wanted - known)]
            if new:
                con.execute(clinic_patients.insert(), new)
        return len(new)

    def clinic_patient_keys(self, clinic_id: str) -> frozenset[str]:
        with self._tx() as con:
            return frozenset(
                con.scalars(
                    sa.select(clinic_patients.c.patient_key).where(
                        clinic_patients.c.clinic_id == clinic_id
                    )
                )
            )

    # access log (append-only) -------------------------------------------------------------
    def log_access(self, entry: AccessEntry) -> None:
        with self._tx() as con:
            con.execute(access_log.insert(), [_row(entry)])

    def access_entries(self, patient_key: str | None = None, limit: int = 100) -> list[AccessEntry]:
        query = sa.select(access_log).order_by(access_log.c.entry_id.desc()).limit(limit)
        if patient_key is not None:
            query = query.where(access_log.c.patient_key == patient_key)
        with self._tx() as con:
            return [
                AccessEntry(r.at, r.token_id, r.role, r.action, r.patient_key, r.resource)
                for r in con.execute(query)
            ]

    # privacy-budget ledger (append-only) --------------------------------------------------
    def spent(self, dataset: str) -> float:
        with self._tx() as con:
            total = con.scalar(
                sa.select(sa.func.coalesce(sa.func.sum(privacy_ledger.c.epsilon), 0.0)).where(
                    privacy_ledger.c.dataset == dataset
                )
            )
        return float(total or 0.0)

    def spend(
        self,
        dataset: str,
        epsilon: float,
        budget: float,
        *,
        mechanism: str,
        query: str,
        token_id: str,
        at: dt.datetime,
    ) -> float:
        """Record a release if it fits the dataset's budget (in one transaction); returns the
        budget left after it, or raises BudgetExceeded and records nothing."""
        with self._tx() as con:
            if con.dialect.name == "postgresql":
                con.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:d))"), {"d": dataset})
            spent = float(
                con.scalar(
                    sa.select(sa.func.coalesce(sa.func.sum(privacy_ledger.c.epsilon), 0.0)).where(
                        privacy_ledger.c.dataset == dataset
                    )
                )
                or 0.0
            )
            if spent + epsilon > budget + 1e-12:
                raise BudgetExceeded(dataset, epsilon, spent, budget)
            con.execute(
                privacy_ledger.insert(),
                [
                    {
                        "at": at,
                        "dataset": dataset,
                        "epsilon": epsilon,
                        "mechanism": mechanism,
                        "query": query,
                        "token_id": token_id,
                    }
                ],
            )
        return budget - spent - epsilon


def _row(entry: AccessEntry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in entry.__slots__}


def open_access(settings: LakeSettings) -> AccessStore:
    return AccessStore(metadata_engine(settings))
