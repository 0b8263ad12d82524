"""The triage list of one viewer: the triage aggregate (``triage.sql`` over the published daily
metrics, made once per published run and cached on it), restricted to the patients the viewer
may read, filtered and paged; each shown patient with their active alerts and dead webhook
deliveries, from the alert store at request time (they change between runs)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final, Literal

import pyarrow as pa
import pyarrow.compute as pc
from fastapi import Query, Request

from glucosestream.access import record_access
from glucosestream.alerts import AlertStore
from glucosestream.config import EngineSettings
from glucosestream.dashboard.alerts_routes import alert_store_of
from glucosestream.dashboard.auth import Viewer, access_store, clock_of, readable_keys
from glucosestream.engines import DuckDBEngine
from glucosestream.published import PublishedRun

__all__ = ["TriageFilter", "TriagePage", "triage_rows", "triage_table"]

PAGE_SIZE: Final = 100
# Every active alert (at most one per patient and kind) and, for the dead deliveries, the newest
# alerts of any state: how many of each the triage list looks through.
ACTIVE_ALERTS: Final = 10_000  # under SQLite's 32,766 bound parameters of the store's IN (...)
RECENT_ALERTS: Final = 1000


class TriageFilter:
    """Query parameters of the triage page and ``/v1/triage``."""

    def __init__(
        self,
        q: str = Query("", max_length=64, description="Part of a patient key."),
        zone: Literal["", "A", "B", "C", "D", "E"] = Query("", description="GRI zone."),
        insufficient: bool = Query(False, description="Only patients with too little data."),
        min_gri: float = Query(0.0, ge=0.0, le=100.0, description="Lowest GRI shown."),
        page: int = Query(1, ge=1, le=100_000),
    ) -> None:
        self.q = q.strip().lower()
        self.zone = zone
        self.insufficient = insufficient
        self.min_gri = min_gri
        self.page = page


@dataclass(frozen=True, slots=True)
class TriagePage:
    rows: list[dict[str, Any]]
    total: int
    page: int
    pages: int
    as_of: str | None


def _filtered(table: pa.Table, allowed: frozenset[str] | None, flt: TriageFilter) -> pa.Table:
    if allowed is not None:
        table = table.filter(pc.is_in(table["patient_key"], pa.array(sorted(allowed), pa.string())))
    if flt.q:
        table = table.filter(pc.match_substring(table["patient_key"], flt.q))
    if flt.zone:
        table = table.filter(pc.equal(table["gri_zone"], flt.zone))
    if flt.insufficient:
        table = table.filter(pc.invert(table["sufficient"]))
    if flt.min_gri > 0:
        table = table.filter(pc.greater_equal(table["gri"], flt.min_gri))
    return table


def triage_table(run: PublishedRun, settings: EngineSettings) -> pa.Table:
    """One row per patient over the run's daily metrics (``triage.sql``), cached on the run."""

    def make() -> pa.Table:
        sql = (resources.files("glucosestream.dashboard") / "triage.sql").read_text("utf-8")
        engine = DuckDBEngine(settings)
        try:
            return engine.query(sql, {"daily": run.daily_index().table})
        finally:
            engine.close()

    return run.cached("triage", make)


def _alerts_by_patient(store: AlertStore) -> dict[str, dict[str, Any]]:
    """Per patient: the active alerts (kind, level, since) and the dead deliveries' count (of
    the ``RECENT_ALERTS`` newest alerts)."""
    out: dict[str, dict[str, Any]] = {}

    def entry(key: str) -> dict[str, Any]:
        return out.setdefault(key, {"alerts": [], "dead_deliveries": 0})

    for row in store.list_alerts(active_only=True, limit=ACTIVE_ALERTS):
        entry(row.patient_key)["alerts"].append(
            {
                "alert_id": row.alert_id,
                "kind": row.kind,
                "level": row.level,
                "fired_at": row.fired_at.isoformat(),
                "acked": row.acked_at is not None,
            }
        )
    for row in store.list_alerts(limit=RECENT_ALERTS):
        entry(row.patient_key)["dead_deliveries"] += row.deliveries.get("dead", 0)
    return out


def triage_rows(
    request: Request, viewer: Viewer, run: PublishedRun, flt: TriageFilter
) -> TriagePage:
    store = access_store(request)
    allowed = readable_keys(store, viewer.principal)
    resource = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    record_access(store, viewer.principal, "triage", resource, at=clock_of(request)())
    table = _filtered(triage_table(run, request.app.state.settings.engine), allowed, flt)
    pages = max(1, -(-table.num_rows // PAGE_SIZE))
    page = min(flt.page, pages)
    shown = table.slice((page - 1) * PAGE_SIZE, PAGE_SIZE).to_pylist()
    alerts = _alerts_by_patient(alert_store_of(request))
    for row in shown:
        row["last_date"] = row["last_date"].isoformat()
        row.update(alerts.get(row["patient_key"], {"alerts": [], "dead_deliveries": 0}))
    daily = run.daily_index().table
    last = pc.max(daily["date"]).as_py() if daily.num_rows else None
    as_of = last.isoformat() if isinstance(last, dt.date) else None
    return TriagePage(shown, table.num_rows, page, pages, as_of)
