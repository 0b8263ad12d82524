"""Finding a patient by the id as ingested or the clinic's label (GET /patients, GET
/v1/patients), setting a label (PUT /v1/patients/{key}/label), the search box of every page, and
that a patient of another clinic is never revealed."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from glucosestream.access import hash_token
from glucosestream.app import create_app
from glucosestream.lake import open_access, open_patient_directory

from .test_dashboard_lake import HOSTILE, csrf_of, demo_lake, login  # noqa: F401

AT = "2026-02-01T00:00:00+00:00"


@pytest.fixture
def labels(demo_lake):  # noqa: F811
    """The demo lake's patients labelled for one test, the labels removed afterwards."""
    import datetime as dt

    directory = open_patient_directory(demo_lake.settings.lake)
    at = dt.datetime.fromisoformat(AT)
    keys = demo_lake.keys

    def put(external_id: str, label: str | None) -> None:
        directory.set_label(keys[external_id], label, at=at, by="test")

    yield put
    for key in keys.values():
        directory.set_label(key, None, at=at, by="test")


def _client(demo_lake, token):  # noqa: F811
    return login(TestClient(create_app(demo_lake.settings)), demo_lake.tokens[token])


def test_a_clinician_finds_a_patient_by_the_id_as_ingested(demo_lake, labels):  # noqa: F811
    labels("P1", "Ada Lovelace")
    key = demo_lake.keys["P1"]
    with _client(demo_lake, "clinician") as client:
        found = client.get("/patients", params={"id": "P1"}, follow_redirects=False)
        assert found.status_code == 303
        assert found.headers["location"] == f"/patients/{key}"
        assert client.get("/patients", params={"id": " p1 "}).url.path == f"/patients/{key}"
        api = client.get("/v1/patients", params={"id": "P1"}).json()
    assert api == {
        "ok": True,
        "patients": [{"patient_key": key, "external_id": "P1", "label": "Ada Lovelace"}],
    }


def test_a_clinician_of_another_clinic_finds_nothing_as_for_an_unknown_id(
    demo_lake,  # noqa: F811
    labels,
):
    labels("P1", "Ada Lovelace")
    with _client(demo_lake, "other_clinician") as client:
        theirs = client.get("/patients", params={"id": "P1"}, follow_redirects=False)
        unknown = client.get("/patients", params={"id": "P9"}, follow_redirects=False)
        by_label = client.get("/patients", params={"id": "Lovelace"}, follow_redirects=False)
        assert client.get("/v1/patients", params={"id": "P1"}).json()["patients"] == []
        own = client.get("/v1/patients", params={"id": "P3"}).json()["patients"]
    assert theirs.status_code == unknown.status_code == by_label.status_code == 200
    assert 'id="nothing-found"' in theirs.text
    assert theirs.text.replace("P1", "P9") == unknown.text  # not one byte tells them apart
    assert "Ada" not in by_label.text.replace("Lovelace", "")
    assert demo_lake.keys["P1"] not in theirs.text + by_label.text
    assert [p["external_id"] for p in own] == ["P3"]


def test_a_patient_finds_only_themself(demo_lake):  # noqa: F811
    with _client(demo_lake, "patient") as client:
        assert client.get("/v1/patients", params={"id": "P2"}).json()["patients"] == []
        mine = client.get("/v1/patients", params={"id": "P1"}).json()["patients"]
    assert [p["patient_key"] for p in mine] == [demo_lake.keys["P1"]]


def test_several_matches_are_listed_with_a_hostile_label_escaped(demo_lake, labels):  # noqa: F811
    labels("P1", "Ward 7 " + HOSTILE)
    labels("P2", "Ward 7 Grace")
    with _client(demo_lake, "clinician") as client:
        page = client.get("/patients", params={"id": "ward 7"})
        query = client.get("/patients", params={"id": HOSTILE})
    assert page.status_code == 200
    assert page.text.count('href="/patients/') >= 2
    assert "Ward 7 Grace" in page.text
    for body in (page.text, query.text):
        assert HOSTILE not in body
        assert "<script>alert" not in body
    assert "&lt;script&gt;" in page.text


def test_a_search_is_audited_without_the_text_searched_for(demo_lake, labels):  # noqa: F811
    labels("P2", "Grace Hopper")
    store = open_access(demo_lake.settings.lake)
    before = store.audit.access_entries(limit=1)[0]
    with _client(demo_lake, "clinician") as client:
        client.get("/patients", params={"id": "hopper"}, follow_redirects=False)
        client.get("/v1/patients", params={"id": "nobody-at-all"})
    entries = [e for e in store.audit.access_entries(limit=50) if e.at >= before.at]
    finds = [e for e in entries if e.action.endswith("patient.find")]
    assert [(e.action, e.patient_key) for e in finds[:2]] == [
        ("api.patient.find", None),
        ("page.patient.find", demo_lake.keys["P2"]),
    ]
    assert all(e.resource in ("/patients", "/v1/patients") for e in finds[:2])
    assert not any("hopper" in e.resource.lower() or "nobody" in e.resource for e in entries)


def test_the_search_box_is_on_every_page(demo_lake):  # noqa: F811
    key = demo_lake.keys["P1"]
    with _client(demo_lake, "admin") as client:
        pages = ["/", f"/patients/{key}", "/cohort", "/patients", "/patients?id=nobody"]
        for path in pages:
            page = client.get(path)
            assert page.status_code == 200, path
            assert 'form method="get" action="/patients"' in page.text, path
            assert 'name="id"' in page.text, path
        assert 'value="nobody"' in client.get("/patients?id=nobody").text


def _put(client, key, label, **headers):
    return client.put(f"/v1/patients/{key}/label", json={"label": label}, headers=headers)


def test_admins_and_the_clinics_clinicians_set_a_label_by_json(demo_lake, labels):  # noqa: F811
    key = demo_lake.keys["P2"]
    with _client(demo_lake, "clinician") as client:
        csrf = csrf_of(client.get("/").text)
        refused = _put(client, key, "Grace")  # a session without its CSRF token
        made = _put(client, key, "Grace", **{"X-CSRF-Token": csrf})
    assert refused.status_code == 403
    assert made.status_code == 200, made.text
    assert made.json() == {"ok": True, "patient_key": key, "external_id": "P2", "label": "Grace"}
    bearer = {"Authorization": "Bearer gs_admin"}
    with TestClient(create_app(demo_lake.settings)) as client:
        cleared = client.put(f"/v1/patients/{key}/label", json={"label": None}, headers=bearer)
        assert cleared.json()["label"] is None
        absent = client.put(f"/v1/patients/{'f' * 32}/label", json={"label": "X"}, headers=bearer)
        assert absent.status_code == 404
        odd = client.put("/v1/patients/a%00b/label", json={"label": "X"}, headers=bearer)
        assert odd.status_code == 422
        assert client.get("/v1/patients?id=P1%00", headers=bearer).json()["patients"] == []


@pytest.mark.parametrize(
    ("token", "status"), [("other_clinician", 403), ("patient", 403), ("uploader", 403)]
)
def test_others_may_not_set_a_label(demo_lake, token, status):  # noqa: F811
    key = demo_lake.keys["P1"]
    bearer = {"Authorization": f"Bearer {demo_lake.tokens[token]}"}
    with TestClient(create_app(demo_lake.settings)) as client:
        response = client.put(f"/v1/patients/{key}/label", json={"label": "X"}, headers=bearer)
    assert response.status_code == status
    assert response.json()["ok"] is False
    assert open_patient_directory(demo_lake.settings.lake).names([key])[key].label is None


def test_a_bad_label_is_one_error_in_the_apps_shape(demo_lake):  # noqa: F811
    key = demo_lake.keys["P1"]
    bearer = {"Authorization": f"Bearer {demo_lake.tokens['admin']}"}
    with TestClient(create_app(demo_lake.settings)) as client:
        response = client.put(f"/v1/patients/{key}/label", json={"label": "a\nb"}, headers=bearer)
    assert response.status_code == 422
    body = response.json()
    assert body["ok"] is False
    assert body["status"] == 422
    assert "U+000A" in body["error"]
    assert hash_token("gs_admin") not in response.text


@pytest.mark.parametrize("role", ["admin", "clinician", "other_clinician", "patient", "patient2"])
def test_a_search_finds_exactly_the_patients_each_role_may_read(demo_lake, role):  # noqa: F811
    from .test_authz_matrix import MAY_READ

    headers = {"Authorization": f"Bearer {demo_lake.tokens[role]}"}
    with TestClient(create_app(demo_lake.settings)) as client:
        found = {
            p
            for p in ("P1", "P2", "P3")
            if client.get("/v1/patients", params={"id": p}, headers=headers).json()["patients"]
        }
    assert found == MAY_READ[role]


def test_a_search_needs_a_reader(demo_lake):  # noqa: F811
    with TestClient(create_app(demo_lake.settings)) as client:
        page = client.get("/patients", params={"id": "P1"}, follow_redirects=False)
        anonymous = client.get("/v1/patients", params={"id": "P1"})
        uploader = client.get(
            "/v1/patients", params={"id": "P1"}, headers={"Authorization": "Bearer gs_uploader"}
        )
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login?next=")
    assert (anonymous.status_code, uploader.status_code) == (401, 403)
    assert "P1" not in anonymous.text + uploader.text
