"""The triage list of one viewer: the triage aggregate (``triage.sql`` over the published daily
metrics, made once per published run and cached on it: the risk order and GRI), restricted to
the patients the viewer may read; each with their rolling summary (``clinic_summary``: the last
14 complete days and the 14 before, written at publish), its time-in-ranges bar and flags
(``triage_flags``) and when they last uploaded; filtered (flag, clinic, GRI zone), sorted
and paged; each shown patient with their active alerts and dead webhook deliveries, from the
alert store at request time (they change between runs). The same list as CSV:
``GET /triage.csv``."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlencode

import pyarrow as pa
import pyarrow.compute as pc
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from glucosestream.access import record_access
from glucosestream.alerts import AlertStore
from glucosestream.config import EngineSettings
from glucosestream.dashboard.alerts_routes import alert_store_of
from glucosestream.dashboard.auth import (
    Viewer,
    access_store,
    api_viewer,
    clock_of,
    readable_keys,
)
from glucosestream.dashboard.clinic_summary import last_uploads, summary_rows
from glucosestream.dashboard.clinic_windows import Window
from glucosestream.dashboard.patient_names import PatientName, patient_names
from glucosestream.dashboard.range_labels import range_labels
from glucosestream.dashboard.triage_flags import (
    FLAGS,
    WEAR_MIN_PCT,
    flags_of,
    range_shares,
    wear_pct,
)
from glucosestream.engines import DuckDBEngine
from glucosestream.errors import Forbidden
from glucosestream.published import PublishedLake, PublishedRun
from glucosestream.published.request_scope import published_of

__all__ = [
    "CSV_COLUMNS",
    "TriageFilter",
    "TriagePage",
    "csv_cell",
    "router",
    "triage_csv",
    "triage_rows",
    "triage_table",
]

router = APIRouter()

PAGE_SIZE: Final = 100
# Every active alert (at most one per patient and kind) and, for the dead deliveries, the newest
# alerts of any state: how many of each the triage list looks through.
ACTIVE_ALERTS: Final = 10_000  # under SQLite's 32,766 bound parameters of the store's IN (...)
RECENT_ALERTS: Final = 1000
# The rolling summary's columns triage shows (``results.patient_summaries``, current window).
_SUMMARY_COLUMNS: Final = (
    "period_start", "period_end", "partial_day", "run_id", "days", "active_pct",
    "pct_below_54", "pct_54_69", "pct_70_180", "pct_181_250", "pct_above_250", "pct_below_70",
    "mean_mg_dl", "gri",
)  # fmt: skip


SortKey = Literal["risk", "tir", "below_70", "tir_change", "wear", "upload"]


class TriageFilter:
    """Query parameters of the triage page, ``/v1/triage`` and ``/triage.csv``."""

    flags: Final = FLAGS  # the flag choices, as the page names them
    sort_choices: Final[tuple[tuple[SortKey, str], ...]] = (
        ("risk", "risk (GRI, then lows)"),
        ("tir", "time in range, lowest first"),
        ("below_70", "time below 70, highest first"),
        ("tir_change", "change in time in range, biggest drop first"),
        ("wear", "sensor wear, lowest first"),
        ("upload", "last upload, oldest first"),
    )

    def __init__(
        self,
        q: str = Query("", max_length=64, description="Part of a patient key."),
        zone: Literal["", "A", "B", "C", "D", "E"] = Query("", description="GRI zone."),
        insufficient: bool = Query(False, description="Only patients with too little data."),
        min_gri: float = Query(0.0, ge=0.0, le=100.0, description="Lowest GRI shown."),
        flag: Literal["", "any", "very_low", "low", "tir_drop", "tir_low", "wear_low"] = Query(
            "", description="Only patients raising this flag (any: one)."
        ),
        clinic: str = Query("", max_length=64, pattern=r"^[\w.-]*$", description="Clinic id."),
        sort: Literal["risk", "tir", "below_70", "tir_change", "wear", "upload"] = Query(
            "risk", description="Order: risk (GRI first) or one column."
        ),
        page: int = Query(1, ge=1, le=100_000),
    ) -> None:
        self.q = q.strip().lower()
        self.zone = zone
        self.insufficient = insufficient
        self.min_gri = min_gri
        self.flag = flag
        self.clinic = clinic
        self.sort = sort
        self.page = page

    def query(self, **changes: object) -> str:
        """The filter as a query string, with ``changes`` applied (links to other pages)."""
        values = {
            "q": self.q,
            "zone": self.zone,
            "insufficient": "true" if self.insufficient else "",
            "min_gri": f"{self.min_gri:g}" if self.min_gri else "",
            "flag": self.flag,
            "clinic": self.clinic,
            "sort": "" if self.sort == "risk" else self.sort,
            "page": str(self.page) if self.page > 1 else "",
        }
        values.update({k: str(v) for k, v in changes.items()})
        return urlencode({k: v for k, v in values.items() if v})


@dataclass(frozen=True, slots=True)
class TriagePage:
    rows: list[dict[str, Any]]
    total: int
    page: int
    pages: int
    as_of: str | None
    names: dict[str, PatientName] = field(default_factory=dict)  # of the shown rows
    range_text: dict[str, str] = field(default_factory=dict)  # ``range_labels`` of the unit


def _filtered(table: pa.Table, allowed: frozenset[str] | None, flt: TriageFilter) -> pa.Table:
    if allowed is not None:
        table = table.filter(pc.is_in(table["patient_key"], pa.array(sorted(allowed), pa.string())))
    if flt.q:
        table = table.filter(pc.match_substring(table["patient_key"], flt.q))
    if flt.zone:
        table = table.filter(pc.equal(table["gri_zone"], flt.zone))
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


def _summary_json(rows: dict[Window, dict[str, Any]] | None) -> dict[str, Any] | None:
    """The current window's consensus figures, its previous window's time in range and the
    change: what the bar, the flags and the sorting read."""
    current = (rows or {}).get("current")
    if current is None:
        return None
    previous = (rows or {}).get("previous") or {}
    out = {k: _iso(current.get(k)) for k in _SUMMARY_COLUMNS}
    before, now = previous.get("pct_70_180"), current.get("pct_70_180")
    out["wear_pct"] = wear = wear_pct(current)
    # Enough data (Battelino 2019: 14 days, sensor active >= 70 %): the window is 14 complete
    # days by construction, and wear counts the share of them covered (not sufficient_14d,
    # whose span rule fails a window whose first reading comes minutes after midnight).
    out["sufficient"] = wear is not None and wear >= WEAR_MIN_PCT
    out["previous_pct_70_180"] = before
    out["tir_change_points"] = None if before is None or now is None else now - before
    return out


def _iso(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    return value.isoformat() if isinstance(value, dt.date) else value


def _enriched(
    rows: list[dict[str, Any]], summaries: dict[str, dict[Window, dict[str, Any]]], unit: str
) -> list[dict[str, Any]]:
    for row in rows:
        windows = summaries.get(row["patient_key"])
        row["summary"] = _summary_json(windows)
        current = (windows or {}).get("current")
        row["ranges"] = [asdict(r) for r in range_shares(current)]
        row["flags"] = [
            {"flag_id": f.flag_id, "label": f.label(unit)}
            for f in flags_of(current, (windows or {}).get("previous"))
        ]
    return rows


def _sort_value(row: dict[str, Any], key: SortKey) -> tuple[bool, Any]:
    """(missing, value): rows without the value go last."""
    summary = row["summary"] or {}
    value = {
        "tir": summary.get("pct_70_180"),
        "below_70": None if summary.get("pct_below_70") is None else -summary["pct_below_70"],
        "tir_change": summary.get("tir_change_points"),
        "wear": summary.get("wear_pct"),
        "upload": row.get("last_upload_at"),
    }.get(key)
    return (value is None, value if value is not None else 0)


def _chosen(rows: list[dict[str, Any]], flt: TriageFilter) -> list[dict[str, Any]]:
    """The rows raising the filter's flag, in the filter's order (risk: as triage.sql)."""
    if flt.insufficient:
        rows = [r for r in rows if not (r["summary"] or {}).get("sufficient")]
    if flt.flag == "any":
        rows = [r for r in rows if r["flags"]]
    elif flt.flag:
        rows = [r for r in rows if any(f["flag_id"] == flt.flag for f in r["flags"])]
    if flt.sort != "risk":
        rows = sorted(rows, key=lambda r: _sort_value(r, flt.sort))
    return rows


def _clinic_keys(request: Request, viewer: Viewer, flt: TriageFilter) -> frozenset[str] | None:
    if not flt.clinic:
        return None
    return access_store(request).clinics.clinic_patient_keys(flt.clinic)


def _listed(
    request: Request, viewer: Viewer, run: PublishedRun, flt: TriageFilter, action: str
) -> list[dict[str, Any]]:
    """Every row the viewer may read that passes the filter, in its order, with the rolling
    summary, the bar, the flags and the last upload; the read is audited as ``action``."""
    store = access_store(request)
    allowed = readable_keys(store, viewer.principal)
    resource = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    now = clock_of(request)()
    record_access(store, viewer.principal, action, resource, at=now)
    in_clinic = _clinic_keys(request, viewer, flt)
    if in_clinic is not None:
        allowed = in_clinic if allowed is None else allowed & in_clinic
    rows = _filtered(triage_table(run, request.app.state.settings.engine), allowed, flt).to_pylist()
    keys = [r["patient_key"] for r in rows]
    uploads = last_uploads(request.app.state.published, request.app.state.live, run, keys)
    for row in rows:
        row["last_date"] = row["last_date"].isoformat()
        upload = uploads.get(row["patient_key"])
        row["last_upload_at"] = upload.isoformat() if upload else None
    rows = _enriched(rows, summary_rows(run, keys), viewer.unit)
    return _chosen(rows, flt)


def triage_rows(
    request: Request, viewer: Viewer, run: PublishedRun, flt: TriageFilter
) -> TriagePage:
    rows = _listed(request, viewer, run, flt, "triage")
    pages = max(1, -(-len(rows) // PAGE_SIZE))
    page = min(flt.page, pages)
    shown = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    alerts = _alerts_by_patient(alert_store_of(request))
    names = patient_names(request, viewer, [r["patient_key"] for r in shown])
    for row in shown:
        row.update(alerts.get(row["patient_key"], {"alerts": [], "dead_deliveries": 0}))
        row["patient"] = _name_json(names[row["patient_key"]])
    daily = run.daily_index().table
    last = pc.max(daily["date"]).as_py() if daily.num_rows else None
    as_of = last.isoformat() if isinstance(last, dt.date) else None
    labels = range_labels(viewer.unit).as_json()
    return TriagePage(shown, len(rows), page, pages, as_of, names, labels)


def _name_json(name: PatientName) -> dict[str, str | None]:
    return {"shown": name.shown, "external_id": name.external_id, "label": name.label}


# CSV export ---------------------------------------------------------------------------------
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP, "CSV Injection").
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS: Final = (
    "patient", "external_id", "label", "patient_key", "flags", "window_start", "window_end",
    "partial_day", "pct_below_54", "pct_54_69", "pct_70_180", "pct_181_250", "pct_above_250",
    "previous_pct_70_180", "tir_change_points", "wear_pct", "gri", "gri_zone",
    "days_with_data", "last_upload_at",
)  # fmt: skip


def csv_cell(value: Any) -> str:
    """One cell: numbers as they are, text with a leading ``'`` when a spreadsheet would take
    it for a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"{value:.2f}" if isinstance(value, float) else str(value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _csv_record(row: dict[str, Any], name: PatientName) -> list[str]:
    summary = row["summary"] or {}
    values = {
        "patient": name.shown,
        "external_id": name.external_id,
        "label": name.label,
        **{k: row.get(k) for k in ("patient_key", "gri", "gri_zone", "days_with_data")},
        **{k: summary.get(k) for k in CSV_COLUMNS if k in summary},
        "flags": "; ".join(f["label"] for f in row["flags"]),
        "window_start": summary.get("period_start"),
        "window_end": summary.get("period_end"),
        "last_upload_at": row.get("last_upload_at"),
    }
    return [csv_cell(values.get(c)) for c in CSV_COLUMNS]


def triage_csv(request: Request, viewer: Viewer, run: PublishedRun, flt: TriageFilter) -> str:
    """Every row of the filtered triage (all pages) as CSV; audited as ``export.triage_csv``."""
    rows = _listed(request, viewer, run, flt, "export.triage_csv")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    names = patient_names(request, viewer, [r["patient_key"] for r in rows])
    writer.writerows(_csv_record(r, names[r["patient_key"]]) for r in rows)
    return out.getvalue()


@router.get(
    "/triage.csv",
    tags=["triage"],
    response_class=Response,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def triage_export(
    request: Request,
    viewer: Annotated[Viewer, Depends(api_viewer)],
    published: Annotated[PublishedLake, Depends(published_of)],
    flt: Annotated[TriageFilter, Depends()],
) -> Response:
    """The triage list as CSV, with the page's filters and order (all pages), for the patients
    the caller may read; clinicians and admins only."""
    if viewer.principal.role == "patient":
        raise Forbidden("triage is for clinicians and admins")
    text = triage_csv(request, viewer, published.current(), flt)
    day = clock_of(request)().date().isoformat()
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="triage-{day}.csv"'},
    )
