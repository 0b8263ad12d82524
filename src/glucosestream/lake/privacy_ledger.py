"""The privacy-budget ledger in the metadata store (append-only): the epsilon each cohort
release spent of its dataset's budget. A release is recorded only if it fits, in the same
transaction that sums what was spent (on PostgreSQL under a lock per dataset)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from glucosestream.errors import BudgetExceeded
from glucosestream.lake.database import Store
from glucosestream.lake.metadata_schema import privacy_ledger

__all__ = ["PrivacyLedger"]


class PrivacyLedger(Store):
    def spent(self, dataset: str) -> float:
        with self._tx() as con:
            return _spent(con, dataset)

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
            spent = _spent(con, dataset)
            if spent + epsilon > budget + 1e-12:
                raise BudgetExceeded(dataset, epsilon, spent, budget)
            row = {
                "at": at,
                "dataset": dataset,
                "epsilon": epsilon,
                "mechanism": mechanism,
                "query": query,
                "token_id": token_id,
            }
            con.execute(privacy_ledger.insert(), [row])
        return budget - spent - epsilon


def _spent(con: sa.Connection, dataset: str) -> float:
    total = con.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(privacy_ledger.c.epsilon), 0.0)).where(
            privacy_ledger.c.dataset == dataset
        )
    )
    return float(total or 0.0)
