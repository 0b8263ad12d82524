"""The JSON summary of any window of a patient's days: ``GET /v1/patients/{key}/summary``.

The same summary as ``glucosestream metrics --patient ID --json`` (``published.window_summary``):
the consensus set, the research catalog and sufficiency of the local days ``from``..``to``
(without them the patient's whole data up to the last complete day), the insulin and carbs
summary of the same counted days (``insulin_carbs``, as the patient page shows it), and the
days of the range (a partial newest day among them, marked). Authorised and audited as every
read of a patient.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from glucosestream.dashboard.auth import Viewer, api_viewer, audit_read, clock_of
from glucosestream.dashboard.insulin_carbs import insulin_carbs
from glucosestream.published import PublishedLake, window_summary
from glucosestream.published.request_scope import published_of

__all__ = ["router"]

router = APIRouter()


@router.get("/v1/patients/{patient_key}/summary", tags=["metrics"])
def patient_summary(
    patient_key: str,
    request: Request,
    viewer: Annotated[Viewer, Depends(api_viewer)],
    published: Annotated[PublishedLake, Depends(published_of)],
    date_from: Annotated[
        dt.date | None, Query(alias="from", description="First local day (default: the first)")
    ] = None,
    date_to: Annotated[
        dt.date | None,
        Query(alias="to", description="Last local day (default and latest: the last complete)"),
    ] = None,
) -> dict[str, Any]:
    """One patient's summary of the local days ``from``..``to``: every metric of the catalog,
    whether the consensus set is audited, the data sufficiency; and the days of the range, the
    partial newest day marked (shown, never counted). 404 when the window holds no data (the
    message names the days the patient has). A ``from`` after ``to`` is read as the same
    window written backwards, as the pages read it (every schema-valid query has an answer)."""
    now = clock_of(request)()
    audit_read(request, viewer, patient_key, "api.summary", at=now)
    if date_from is not None and date_to is not None and date_from > date_to:
        date_from, date_to = date_to, date_from
    run = published.current()
    summary = window_summary(run, patient_key, date_from, date_to, now=now)
    index = run.daily_index()
    days = index.patient_days(patient_key, date_from, date_to)
    counted = index.patient_days(patient_key, summary.start, summary.end)
    rows = [
        {**r, "date": r["date"].isoformat(), "partial": r["date"] == summary.partial_day}
        for r in days.drop_columns(["run_id", "computed_at"]).to_pylist()
    ]
    return {
        "ok": True,
        "patient_key": patient_key,
        "summary": summary.as_json(),
        "insulin_carbs": insulin_carbs(counted, summary.start, summary.end).as_json(),
        "days": rows,
    }
