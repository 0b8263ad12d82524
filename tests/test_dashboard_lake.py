"""A small published lake with tokens of every role, shared by the dashboard tests; and the
tests of the triage aggregate and the audit trail on it."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from glucosestream.access import hash_token
from glucosestream.app import create_app
from glucosestream.dashboard.audit import audit_lines
from glucosestream.ingest import ingest_records
from glucosestream.ingest.identity import patient_key
from glucosestream.lake import open_access
from glucosestream.pipeline import run_pipeline

from .conftest import SECRET

HOSTILE = '<script>alert("x")</script>\'"'
START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)


@dataclass(frozen=True)
class DemoLake:
    settings: object
    keys: dict[str, str]  # external id -> patient key
    tokens: dict[str, str]  # name -> token


def _readings(patient: str, days: int, low_every: int) -> list[dict]:
    """5-minute readings: a daily sine around 140 mg/dL, with a 40-minute low at 03:00 on
    every ``low_every``-th day."""
    out = []
    for i in range(days * 288):
        at = START + dt.timedelta(minutes=5 * i)
        glucose = 140 + 40 * math.sin(i / 288 * 2 * math.pi)
        day, minute = divmod(i * 5, 1440)
        if day % low_every == 0 and 180 <= minute < 220:
            glucose = 55.0
        out.append(
            {
                "patient_id": patient,
                "time": at.isoformat(),
                "glucose_mg_dl": round(glucose, 1),
                "tz": "UTC",
            }
        )
    return out


def build_lake(settings) -> DemoLake:
    records = _readings("P1", 30, 2) + _readings("P2", 30, 5) + _readings("P3", 4, 100)
    ingest_records(settings, records)
    assert run_pipeline(settings).status == "published"
    keys = {p: patient_key(SECRET.encode(), p) for p in ("P1", "P2", "P3")}
    store = open_access(settings.lake)
    now = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    tokens = {
        "admin": "gs_admin",
        "uploader": "gs_uploader",
        "clinician": "gs_clinician",
        "other_clinician": "gs_other_clinician",
        "patient": "gs_patient_p1",
        "patient2": "gs_patient_p2",
    }
    store.tokens.add_token(hash_token("gs_admin"), "admin", label=HOSTILE, created_at=now)
    store.tokens.add_token(
        hash_token("gs_uploader"), "uploader", label="u", created_at=now, patient_keys=[keys["P1"]]
    )
    store.tokens.add_token(
        hash_token("gs_clinician"), "clinician", label="c", created_at=now, clinic_id="north"
    )
    store.tokens.add_token(
        hash_token("gs_other_clinician"), "clinician", label="c2", created_at=now, clinic_id="south"
    )
    store.tokens.add_token(
        hash_token("gs_patient_p1"),
        "patient",
        label="p1",
        created_at=now,
        patient_keys=[keys["P1"]],
    )
    store.tokens.add_token(
        hash_token("gs_patient_p2"),
        "patient",
        label="p2",
        created_at=now,
        patient_keys=[keys["P2"]],
    )
    store.clinics.add_clinic_patients("north", [keys["P1"], keys["P2"]])
    store.clinics.add_clinic_patients("south", [keys["P3"]])
    return DemoLake(settings, keys, tokens)


@pytest.fixture(scope="module")
def demo_lake(tmp_path_factory) -> DemoLake:
    from glucosestream.config import IngestSettings, LakeSettings, Settings

    root = tmp_path_factory.mktemp("dash") / "lake"
    settings = Settings(
        lake=LakeSettings(root=str(root)), ingest=IngestSettings(pseudonym_secret=SECRET)
    )
    return build_lake(settings)


def login(client: TestClient, token: str) -> TestClient:
    origin = str(client.base_url).rstrip("/")  # a login post must come from the site itself
    response = client.post(
        "/login", data={"token": token}, headers={"Origin": origin}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    return client


def csrf_of(page_html: str) -> str:
    marker = 'name="csrf_token" value="'
    start = page_html.index(marker) + len(marker)
    return page_html[start : page_html.index('"', start)]


def test_triage_orders_by_risk_and_counts_the_window(demo_lake):
    with TestClient(create_app(demo_lake.settings)) as client:
        rows = login(client, "gs_admin").get("/v1/triage").json()["patients"]
    by_key = {r["patient_key"]: r for r in rows}
    p1, p2, p3 = (by_key[demo_lake.keys[p]] for p in ("P1", "P2", "P3"))
    # P1 has a 40-minute low (8 readings at 55 mg/dL) every other day, P2 every fifth day.
    assert p1["pct_below_70"] > p2["pct_below_70"] > 0
    assert [r["patient_key"] for r in rows].index(p1["patient_key"]) < [
        r["patient_key"] for r in rows
    ].index(p2["patient_key"])
    # GRI from its published formula on the window's bands.
    expected = (
        3.0 * p1["pct_below_54"]
        + 2.4 * (p1["pct_below_70"] - p1["pct_below_54"])
        + (1.6 * p1["pct_above_250"] + 0.8 * (p1["pct_above_180"] - p1["pct_above_250"]))
    )
    assert p1["gri"] == pytest.approx(expected)
    # P3 stopped after 4 days: no data in the last 14 days of the lake -> no GRI, last.
    assert p3["readings"] == 0
    assert p3["gri"] is None
    assert not p3["sufficient"]
    assert rows[-1]["patient_key"] == p3["patient_key"]


def test_every_read_is_in_the_audit_trail(demo_lake):
    key = demo_lake.keys["P2"]
    with TestClient(create_app(demo_lake.settings)) as client:
        login(client, "gs_clinician").get(f"/patients/{key}")
        client.get(
            f"/v1/patients/{key}/daily-metrics", headers={"Authorization": "Bearer gs_admin"}
        )
    lines = audit_lines(demo_lake.settings, key)
    actions = [line.split("\t")[3] for line in lines]
    assert actions[:2] == ["api.daily_metrics", "page.patient"]
    assert lines[1].split("\t")[2] == "clinician"
    assert all(key in line for line in lines)
