"""Authorisation over every dashboard route and role, CSRF and cookie flags, and escaping of
hostile ids and labels."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from glucosestream.app import create_app

from .test_dashboard_lake import HOSTILE, csrf_of, demo_lake, login  # noqa: F401

ROLES = ("anonymous", "admin", "clinician", "other_clinician", "patient", "patient2")
# What each role may read, by external id (P1, P2 are in clinic north; P3 in south).
MAY_READ = {
    "anonymous": set(),
    "admin": {"P1", "P2", "P3"},
    "clinician": {"P1", "P2"},
    "other_clinician": {"P3"},
    "patient": {"P1"},
    "patient2": {"P2"},
}
SAME_ORIGIN = {"Origin": "http://testserver"}  # a login post must come from the site itself
PATIENT_ROUTES = (
    "/patients/{key}",
    "/patients/{key}/agp",
    "/patients/{key}/compare",
    "/patients/{key}/overlay",
    "/v1/patients/{key}/daily-metrics",
    "/v1/patients/{key}/compare",
    "/v1/patients/{key}/overlay",
)


def assert_error_shape(response, status):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["ok"] is False
    assert body["status"] == status
    assert body["error"] == "; ".join(body["errors"])


@pytest.fixture(scope="module")
def app(demo_lake):  # noqa: F811
    return create_app(demo_lake.settings)


def _client(app, demo_lake, role):  # noqa: F811
    client = TestClient(app)
    if role != "anonymous":
        login(client, demo_lake.tokens[role])
    return client


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", PATIENT_ROUTES)
@pytest.mark.parametrize("patient", ["P1", "P2", "P3"])
def test_patient_routes_by_role_with_a_session(app, demo_lake, role, route, patient):  # noqa: F811
    with _client(app, demo_lake, role) as client:
        response = client.get(route.format(key=demo_lake.keys[patient]), follow_redirects=False)
    if role == "anonymous":
        if route.startswith("/v1/"):
            assert_error_shape(response, 401)
        else:
            assert response.status_code == 303
            assert response.headers["location"].startswith("/login?next=")
    elif patient in MAY_READ[role]:
        assert response.status_code == 200, response.text
    else:
        assert_error_shape(response, 403)


@pytest.mark.parametrize("role", ["admin", "clinician", "other_clinician", "patient", "patient2"])
@pytest.mark.parametrize("patient", ["P1", "P2", "P3"])
def test_json_api_by_bearer_token(app, demo_lake, role, patient):  # noqa: F811
    headers = {"Authorization": f"Bearer {demo_lake.tokens[role]}"}
    with TestClient(app) as client:
        response = client.get(
            f"/v1/patients/{demo_lake.keys[patient]}/daily-metrics", headers=headers
        )
        triage = client.get("/v1/triage", headers=headers).json()["patients"]
    if patient in MAY_READ[role]:
        assert response.status_code == 200
    else:
        assert_error_shape(response, 403)
    assert {r["patient_key"] for r in triage} == {demo_lake.keys[p] for p in MAY_READ[role]}


def test_a_refused_id_says_nothing_about_existence(app, demo_lake):  # noqa: F811
    with _client(app, demo_lake, "patient") as client:
        assert_error_shape(client.get("/patients/0000"), 403)
        assert_error_shape(client.get(f"/patients/{demo_lake.keys['P2']}"), 403)
    with _client(app, demo_lake, "admin") as client:
        assert_error_shape(client.get("/patients/0000"), 404)


def test_uploader_tokens_cannot_read_or_log_in(app, demo_lake):  # noqa: F811
    with TestClient(app) as client:
        page = client.post(
            "/login", data={"token": "gs_uploader"}, headers=SAME_ORIGIN, follow_redirects=False
        )
        assert page.status_code == 403
        assert "cannot log in" in page.text
        assert "gs_session" not in page.cookies
        headers = {"Authorization": "Bearer gs_uploader"}
        assert_error_shape(client.get("/v1/triage", headers=headers), 403)
        key = demo_lake.keys["P1"]  # the patient it may upload for
        assert_error_shape(client.get(f"/v1/patients/{key}/daily-metrics", headers=headers), 403)


@pytest.mark.parametrize("role", ROLES)
def test_triage_and_cohort_pages_by_role(app, demo_lake, role):  # noqa: F811
    with _client(app, demo_lake, role) as client:
        triage = client.get("/", follow_redirects=False)
        cohort = client.get("/cohort", follow_redirects=False)
    if role == "anonymous":
        assert triage.status_code == cohort.status_code == 303
    elif role.startswith("patient"):
        own = demo_lake.keys["P1" if role == "patient" else "P2"]
        assert triage.status_code == 303
        assert triage.headers["location"] == f"/patients/{own}"
        assert_error_shape(cohort, 403)
    else:
        assert triage.status_code == cohort.status_code == 200
        shown = {k for p, k in demo_lake.keys.items() if k in triage.text}
        assert shown == {demo_lake.keys[p] for p in MAY_READ[role]}


def test_session_cookie_flags_and_logout(app, demo_lake):  # noqa: F811
    with TestClient(app) as client:
        response = client.post(
            "/login", data={"token": "gs_admin"}, headers=SAME_ORIGIN, follow_redirects=False
        )
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        page = client.get("/cohort").text
        assert client.post("/logout", data={"a": "1"}, follow_redirects=False).status_code == 403
        out = client.post("/logout", data={"csrf_token": csrf_of(page)}, follow_redirects=False)
        assert out.status_code == 303
        assert client.get("/", follow_redirects=False).status_code == 303  # logged out
    with TestClient(app, base_url="https://testserver") as secure:
        response = secure.post(
            "/login",
            data={"token": "gs_admin"},
            headers={"Origin": "https://testserver"},
            follow_redirects=False,
        )
        assert "secure" in response.headers["set-cookie"].lower()


def test_forms_refuse_missing_csrf_and_other_origins(app, demo_lake):  # noqa: F811
    with _client(app, demo_lake, "admin") as client:
        token = csrf_of(client.get("/cohort").text)
        assert_error_shape(client.post("/preferences", data={"unit": "mmol_l"}), 403)
        assert_error_shape(
            client.post("/preferences", data={"unit": "mmol_l", "csrf_token": "x" + token}), 403
        )
        assert_error_shape(
            client.post(
                "/preferences",
                data={"unit": "mmol_l", "csrf_token": token},
                headers={"Origin": "https://evil.example"},
            ),
            403,
        )
        ok = client.post(
            "/preferences",
            data={"unit": "mmol_l", "csrf_token": token, "next": "//evil.example/"},
            follow_redirects=False,
        )
        assert ok.status_code == 303
        assert ok.headers["location"] == "/"
        page = client.get(f"/patients/{demo_lake.keys['P1']}").text
        assert '"unit": "mmol_l"' in page
        # a JSON release with the session cookie needs the CSRF header too
        body = {"statistics": ["time_in_range"], "epsilon_each": 0.01}
        assert_error_shape(client.post("/v1/cohort/releases", json=body), 403)


def test_hostile_ids_and_labels_are_escaped(app, demo_lake):  # noqa: F811
    with _client(app, demo_lake, "admin") as client:  # the admin token's label is hostile
        for url in (
            "/",
            f"/patients/{demo_lake.keys['P1']}",
            f"/patients/{demo_lake.keys['P1']}/agp",
            "/cohort",
        ):
            text = client.get(url).text
            assert "<script>alert" not in text
            if url != f"/patients/{demo_lake.keys['P1']}/agp":
                assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&#39;&#34;" in text
        triage = client.get("/", params={"q": HOSTILE[:60]}).text
        assert "<script>alert" not in triage
        assert "&lt;script&gt;" in triage
        missing = client.get("/patients/" + HOSTILE)
        assert missing.headers["content-type"].startswith("application/json")
        assert_error_shape(missing, 404)
    with TestClient(app) as anonymous:
        page = anonymous.get("/login", params={"next": '/"><script>x</script>'}).text
        assert "<script>x" not in page
        page = anonymous.get("/login", params={"next": "javascript:alert(1)"}).text
        assert 'name="next" value="/"' in page
