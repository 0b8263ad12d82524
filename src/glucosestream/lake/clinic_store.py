"""Clinic membership in the metadata store: which patients each clinic's clinicians may read."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from glucosestream.lake.database import Store
from glucosestream.lake.metadata_schema import clinic_patients

__all__ = ["ClinicStore"]


class ClinicStore(Store):
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
