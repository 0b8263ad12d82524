"""Cohort statistics for sharing: released only through OpenDP, against a per-dataset budget.

A dataset is the 14-day triage aggregate of the patients a principal may read: every patient
for an admin (``cohort:all``), a clinic's patients for a clinician (``cohort:clinic:<id>``).
Patients cannot release cohort statistics. A cohort under the minimum size is refused before
anything is spent; otherwise releasing is logged in the access trail and spends the dataset's
lifetime budget in the ledger; the exact values never leave the server, and every released
value lies within its statistic's plausible bounds (``privacy.bounds``). docs/privacy.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

import pyarrow as pa
import pyarrow.compute as pc
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from glucosestream.access import record_access
from glucosestream.dashboard.auth import (
    Viewer,
    access_store,
    api_viewer,
    clock_of,
    page_viewer,
    readable_keys,
)
from glucosestream.dashboard.browser_sessions import csrf_matches
from glucosestream.dashboard.forms import checked_form
from glucosestream.dashboard.templating import templates
from glucosestream.dashboard.triage import triage_table
from glucosestream.errors import BudgetExceeded, CohortTooSmall, Forbidden
from glucosestream.http_errors import ErrorResponse
from glucosestream.privacy import (
    COHORT_STATISTICS,
    DEFAULT_EPSILON_EACH,
    MAX_EPSILON_EACH,
    MIN_EPSILON_EACH,
    CohortRelease,
    margin_95,
    release_cohort,
    release_cost,
)
from glucosestream.published import PublishedLake
from glucosestream.published.request_scope import published_of

__all__ = ["router"]

router = APIRouter()


# The names of privacy.COHORT_STATISTICS, spelt out so the OpenAPI document lists them
# (tests/test_privacy_release.py holds the two equal).
StatisticName = Literal["mean_glucose", "time_in_range", "time_below_70", "gmi"]
STATISTIC_NAMES: tuple[str, ...] = get_args(StatisticName)


class ReleaseRequest(BaseModel):
    statistics: list[StatisticName] = Field(..., min_length=1, max_length=len(COHORT_STATISTICS))
    epsilon_each: float = Field(DEFAULT_EPSILON_EACH, ge=MIN_EPSILON_EACH, le=MAX_EPSILON_EACH)


def _budget(request: Request) -> float:
    return float(request.app.state.settings.dashboard.privacy_budget_epsilon)


def _min_patients(request: Request) -> int:
    return int(request.app.state.settings.dashboard.privacy_min_patients)


def _dataset(viewer: Viewer) -> str:
    principal = viewer.principal
    if principal.role == "admin":
        return "cohort:all"
    if principal.role == "clinician" and principal.clinic_id:
        return f"cohort:clinic:{principal.clinic_id}"
    raise Forbidden("only clinicians and admins may release cohort statistics")


def _values(request: Request, viewer: Viewer, published: PublishedLake) -> dict[str, list[float]]:
    table = triage_table(published.current(), request.app.state.settings.engine)
    allowed = readable_keys(access_store(request), viewer.principal)
    if allowed is not None:
        table = table.filter(pc.is_in(table["patient_key"], pa.array(sorted(allowed), pa.string())))
    table = table.filter(pc.greater(table["readings"], 0))
    return {
        s.column: [v for v in table[s.column].to_pylist() if v is not None]
        for s in COHORT_STATISTICS
    }


def _release(
    request: Request, viewer: Viewer, published: PublishedLake, ask: ReleaseRequest
) -> CohortRelease:
    dataset = _dataset(viewer)
    now = clock_of(request)()
    store = access_store(request)
    record_access(store, viewer.principal, "cohort.release", dataset, at=now)
    return release_cohort(
        store.ledger,
        viewer.principal,
        dataset=dataset,
        values=_values(request, viewer, published),
        statistics=ask.statistics,
        epsilon_each=ask.epsilon_each,
        budget=_budget(request),
        at=now,
        min_patients=_min_patients(request),
    )


def _as_json(release: CohortRelease) -> dict[str, Any]:
    bounds = {s.name: s for s in COHORT_STATISTICS}
    return {
        "ok": True,
        "dataset": release.dataset,
        "patients": round(release.patients.value),
        "means": {
            k: {
                "value": v.value,
                "label": bounds[k].label,
                "unit": bounds[k].unit,
                "bounds": [bounds[k].lower, bounds[k].upper],
                "at_bound": v.at_bound,
                "margin_95": margin_95(v),
                "epsilon": v.epsilon,
                "laplace_scale": v.scale,
            }
            for k, v in release.means.items()
        },
        "epsilon_spent": release.epsilon_spent,
        "budget_left": release.budget_left,
        "budget": release.budget,
    }


def _page(
    request: Request, viewer: Viewer, result: dict[str, Any] | None, error: str, status: int = 200
) -> Response:
    dataset = _dataset(viewer)
    budget = _budget(request)
    left = max(0.0, budget - access_store(request).ledger.spent(dataset))
    full = release_cost([s.name for s in COHORT_STATISTICS], DEFAULT_EPSILON_EACH)
    context = {
        "viewer": viewer,
        "dataset": dataset,
        "budget": budget,
        "left": left,
        "full_cost": full,
        "full_releases_left": int(left / full + 1e-9),
        "epsilon_default": DEFAULT_EPSILON_EACH,
        "epsilon_min": MIN_EPSILON_EACH,
        "epsilon_max": MAX_EPSILON_EACH,
        "min_patients": _min_patients(request),
        "statistics": COHORT_STATISTICS,
        "result": result,
        "error": error,
    }
    return templates.TemplateResponse(request, "cohort.html", context, status_code=status)


@router.get("/cohort", response_class=HTMLResponse, include_in_schema=False)
def cohort_page(request: Request, viewer: Annotated[Viewer, Depends(page_viewer)]) -> Response:
    return _page(request, viewer, None, "")


@router.post("/cohort", response_class=HTMLResponse, include_in_schema=False)
async def cohort_form(
    request: Request,
    viewer: Annotated[Viewer, Depends(page_viewer)],
    published: Annotated[PublishedLake, Depends(published_of)],
) -> Response:
    form = await checked_form(request, viewer)
    chosen = [s.name for s in COHORT_STATISTICS if form.get(s.name) == "on"]
    try:
        epsilon = float(form.get("epsilon", str(DEFAULT_EPSILON_EACH)))
        ask = ReleaseRequest.model_validate({"statistics": chosen, "epsilon_each": epsilon})
        result = _as_json(_release(request, viewer, published, ask))
    except (BudgetExceeded, CohortTooSmall) as err:
        return _page(request, viewer, None, str(err), err.status)
    except ValueError as err:
        return _page(request, viewer, None, f"invalid request: {err}", 422)
    return _page(request, viewer, result, "")


@router.post(
    "/v1/cohort/releases",
    tags=["cohort"],
    responses={
        409: {
            "model": ErrorResponse,
            "description": "The release would exceed the dataset's budget, or the cohort is "
            "under the minimum size; nothing was spent.",
        },
    },
)
def cohort_release(
    ask: ReleaseRequest,
    request: Request,
    viewer: Annotated[Viewer, Depends(api_viewer)],
    published: Annotated[PublishedLake, Depends(published_of)],
) -> dict[str, Any]:
    """Release the patient count and means of the asked statistics through OpenDP, each within
    its plausible bounds (``bounds``; ``at_bound`` when the noise reached one; ``margin_95`` the
    noise's 95 % half-width), spending ``epsilon_each x (1 + means drawn)`` of the dataset's
    lifetime budget (GMI is derived from mean glucose and costs nothing more; 409 when the
    budget would be exceeded, or the cohort is under the minimum size: nothing is spent). With a
    session cookie, send the page's CSRF token as ``X-CSRF-Token``."""
    if viewer.session is not None and not csrf_matches(
        viewer.session, request.headers.get("x-csrf-token")
    ):
        raise Forbidden("send the session's CSRF token as X-CSRF-Token, or use a bearer token")
    return _as_json(_release(request, viewer, published, ask))
