"""The web app, in-process: ingest API with tokens, error shape, patient page, offline assets."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from fastapi.testclient import TestClient

from glucosestream.access import hash_token
from glucosestream.app import create_app
from glucosestream.ingest import ingest_records
from glucosestream.ingest.identity import patient_key
from glucosestream.lake import open_access
from glucosestream.pipeline import run_pipeline

from .conftest import SECRET

TOKEN = "gs_test-uploader-token"
SAME_SITE = {"Origin": "http://testserver"}  # a login post must come from this site


@pytest.fixture
def client(settings):
    store = open_access(settings.lake)
    now = dt.datetime.now(dt.UTC)
    store.tokens.add_token(hash_token(TOKEN), "admin", label="test uploader", created_at=now)
    store.tokens.add_token(
        hash_token("gs_clinician"), "clinician", label="c", created_at=now, clinic_id="north"
    )
    with TestClient(create_app(settings)) as c:
        yield c


def _readings(n: int = 12) -> list[dict]:
    return [
        {
            "patient_id": "W1",
            "time": f"2026-01-01T{h:02d}:00:00Z",
            "glucose_mg_dl": 90 + 10 * h,
            "tz": "UTC",
        }
        for h in range(n)
    ]


def assert_error_shape(response, status):
    assert response.status_code == status
    body = response.json()
    assert body["ok"] is False
    assert body["status"] == status
    assert body["errors"]
    assert body["error"] == "; ".join(body["errors"])


def test_post_readings_needs_an_uploader_token(client):
    assert_error_shape(client.post("/v1/readings", json={"readings": _readings()}), 401)
    wrong = client.post(
        "/v1/readings", json={"readings": _readings()}, headers={"Authorization": "Bearer nope"}
    )
    assert_error_shape(wrong, 401)
    clinician = client.post(
        "/v1/readings",
        json={"readings": _readings()},
        headers={"Authorization": "Bearer gs_clinician"},
    )
    assert_error_shape(clinician, 403)


def test_post_readings_accounts_for_every_reading(client):
    body = {
        "readings": [*_readings(3), {"patient_id": "W1", "time": "never", "glucose_mg_dl": 100}]
    }
    response = client.post("/v1/readings", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["received"], report["accepted"], report["quarantined"]) == (4, 3, 1)
    again = client.post("/v1/readings", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert again.json()["already_ingested_as"] == report["batch_id"]


def test_invalid_request_bodies_get_the_error_shape(client):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert_error_shape(client.post("/v1/readings", json={"nope": []}, headers=headers), 422)
    assert_error_shape(client.post("/v1/readings", json={"readings": []}, headers=headers), 422)
    too_many = {"readings": [{"patient_id": "x"}] * 10_001}
    assert_error_shape(client.post("/v1/readings", json=too_many, headers=headers), 422)


def test_patient_page_and_json_show_published_metrics(client, settings):
    ingest_records(settings, _readings(24))
    assert run_pipeline(settings).status == "published"
    key = patient_key(SECRET.encode(), "W1")
    anonymous = client.get(f"/patients/{key}", follow_redirects=False)
    assert anonymous.status_code in (302, 303, 307)
    assert anonymous.headers["location"].startswith("/login")
    assert_error_shape(client.get(f"/v1/patients/{key}/daily-metrics"), 401)
    client.post("/login", data={"token": TOKEN}, headers=SAME_SITE)  # an admin token: a session
    page = client.get(f"/patients/{key}")
    assert page.status_code == 200
    assert '<script src="/static/plotly.min.js"></script>' in page.text
    for chart in ("chart-mean", "chart-tir", "chart-cv", "chart-gmi"):
        assert f'id="{chart}"' in page.text
    # an admin is entitled to the patient: the page names them by the id as ingested (issue 18)
    assert "<title>W1 · GlucoseStream</title>" in page.text
    data = client.get(f"/v1/patients/{key}/daily-metrics").json()
    assert "W1" not in json.dumps(data)  # the JSON API speaks in patient keys
    assert data["days"][0]["readings"] == 24
    assert data["days"][0]["mean_mg_dl"] == pytest.approx(sum(90 + 10 * h for h in range(24)) / 24)
    index = client.get("/")
    assert key in index.text


def test_unknown_patient_is_404_in_the_error_shape(client):
    client.post("/login", data={"token": TOKEN}, headers=SAME_SITE)
    assert_error_shape(client.get("/patients/0000"), 404)
    assert_error_shape(client.get("/v1/patients/0000/daily-metrics"), 404)


def test_assets_are_served_by_the_app_without_a_cdn(client):
    plotly = client.get("/static/plotly.min.js")
    assert plotly.status_code == 200
    assert len(plotly.content) > 1_000_000
    assert client.get("/static/patient.js").status_code == 200
    assert_error_shape(client.get("/static/../app.py"), 404)


def test_openapi_document_lists_the_ingest_route(client):
    spec = client.get("/openapi.json").json()
    assert "/v1/readings" in spec["paths"]
    assert "/v1/patients/{patient_key}/daily-metrics" in spec["paths"]


def test_the_app_makes_its_ingest_service_and_starts_no_thread_without_always_on(settings):
    import threading

    from glucosestream.ingest.asgi import service_of

    before = {t.ident for t in threading.enumerate()}
    app = create_app(settings)
    assert app.router.lifespan_context is not None
    service = app.state.ingest_service
    request = type("R", (), {"app": app})()
    assert service_of(request) is service  # the routes use the app's service, with its hooks
    assert {t.ident for t in threading.enumerate()} == before


def test_always_on_starts_the_run_scheduler_with_the_server_and_stops_it_after(settings):
    import sys
    import threading

    from glucosestream.app import AlwaysOnOptions

    def schedulers():
        return [t for t in threading.enumerate() if t.name == "run-scheduler"]

    def workers():
        return [
            t
            for t in threading.enumerate()
            if t.name.startswith("webhook-delivery") or t.name == "alert-engine"
        ]

    command = [sys.executable, "-c", "print('{}')"]
    app = create_app(settings, always_on=AlwaysOnOptions(run_command=command, run_env={}))
    assert not schedulers()  # made, not started, until the server starts
    with TestClient(app) as c:
        assert c.get("/healthz").json() == {"ok": True}
        assert len(schedulers()) == 1
        assert workers()
    assert not schedulers()
    assert not workers()
    off = create_app(settings, always_on=AlwaysOnOptions(pipeline=False))
    with TestClient(off) as c:
        assert not schedulers()  # serve --no-pipeline: the alerts still go out
        assert workers()


def test_a_part_that_fails_to_start_stops_those_started_before_it(settings):
    import asyncio

    from glucosestream.app import _lifespan

    calls: list[str] = []

    class Part:
        def __init__(self, name: str, fails: bool = False) -> None:
            self.name, self.fails = name, fails

        def start(self) -> None:
            calls.append(f"start {self.name}")
            if self.fails:
                raise RuntimeError("cannot start")

        def stop(self) -> None:
            calls.append(f"stop {self.name}")

    async def serve(parts):
        async with _lifespan(parts)(create_app(settings)):
            calls.append("serving")

    asyncio.run(serve([Part("engine"), Part("worker"), Part("scheduler")]))
    assert calls == [
        "start engine", "start worker", "start scheduler", "serving",
        "stop scheduler", "stop worker", "stop engine",
    ]  # fmt: skip
    calls.clear()
    with pytest.raises(RuntimeError, match="cannot start"):
        asyncio.run(serve([Part("engine"), Part("worker", fails=True), Part("scheduler")]))
    assert calls == ["start engine", "start worker", "stop engine"]


@pytest.mark.fast
def test_every_response_carries_the_security_headers_and_reads_are_not_cached(client):
    """Pages, JSON, errors (a 401, a 404, a 413 refused before the route) and static files
    carry the headers; /healthz and static files may be cached, nothing else."""
    big = {"Content-Type": "application/json", "Content-Length": str(64 * 1024 * 1024)}
    responses = {
        "401": client.post("/v1/readings", json={"readings": []}),
        "404": client.get("/no/such/path"),
        "413": client.post("/v1/readings", content=b"{}", headers=big),
        "login page": client.get("/login"),
        "healthz": client.get("/healthz"),
        "static": client.get("/static/app.css"),
    }
    assert [r.status_code for r in responses.values()] == [401, 404, 413, 200, 200, 200]
    for name, response in responses.items():
        for header in ("x-content-type-options", "x-frame-options", "referrer-policy"):
            assert response.headers.get(header), (name, header)
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"], name
        cached = response.headers.get("cache-control")
        if name in ("healthz", "static"):
            assert cached != "no-store", name
        else:
            assert cached == "no-store", name
