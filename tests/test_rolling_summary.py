"""The rolling summary written at publish (results.patient_summaries): each touched patient's
last 14 complete local days ("current") and the 14 before ("previous"); the partial newest day
is named and never counted; untouched patients keep their rows; erased with the patient."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from glucosestream.config import IngestSettings, LakeSettings, Settings
from glucosestream.ingest import ingest_records
from glucosestream.ingest.identity import patient_key
from glucosestream.lake import maintain
from glucosestream.metrics import CONSENSUS
from glucosestream.metrics.result_schemas import metric_field
from glucosestream.pipeline import run_pipeline
from glucosestream.pipeline.rolling_summary import PATIENT_SUMMARIES_SCHEMA
from glucosestream.pipeline.table_registry import TABLES
from glucosestream.published import PublishedLake, window_summary

from .conftest import SECRET

START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
DAYS = 30
LATE = 400  # readings the second run brings for P1 alone (33 h 20 min)


def _records(patient: str, start: dt.datetime, n: int, tz: str, phase: float) -> list[dict]:
    return [
        {
            "patient_id": patient,
            "time": (start + dt.timedelta(minutes=5 * i)).isoformat(),
            "glucose_mg_dl": 140 + 50 * math.sin(i / 288 * 2 * math.pi + phase),
            "tz": tz,
        }
        for i in range(n)
    ]


def _settings(root) -> Settings:
    return Settings(
        lake=LakeSettings(root=str(root / "lake")), ingest=IngestSettings(pseudonym_secret=SECRET)
    )


def _rows(settings: Settings, key: str) -> dict[str, dict]:
    table = PublishedLake(settings).current().summaries([key])
    return {row["window"]: row for row in table.to_pylist()}


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """P1 (Berlin) ends mid-morning, then gets 33 more hours in a second run; P2 (UTC) ends
    at 23:55 and is not in the second run."""
    settings = _settings(tmp_path_factory.mktemp("rolling"))
    p1 = _records("P1", START, DAYS * 288 + 120, "Europe/Berlin", 0.0)
    p2 = _records("P2", START, DAYS * 288, "UTC", 1.0)
    ingest_records(settings, p1[:-LATE] + p2)
    first = run_pipeline(settings)
    assert first.status == "published"
    before = {p: _rows(settings, patient_key(SECRET.encode(), p)) for p in ("P1", "P2")}
    ingest_records(settings, p1[-LATE:])
    second = run_pipeline(settings)
    assert second.status == "published"
    return settings, first.run_id, second.run_id, before


def test_the_current_window_ends_on_the_last_complete_day_without_the_partial_one(lake):
    settings, _, second, _ = lake
    rows = _rows(settings, patient_key(SECRET.encode(), "P1"))
    current, previous = rows["current"], rows["previous"]
    # the newest reading is 09:55 UTC on 02-04, 10:55 in Berlin: that day is partial
    assert current["last_reading_at"] == dt.datetime(2026, 2, 4, 9, 55, tzinfo=dt.UTC)
    assert current["partial_day"] == dt.date(2026, 2, 4)
    assert (current["period_start"], current["period_end"]) == (
        dt.date(2026, 1, 21),
        dt.date(2026, 2, 3),
    )
    assert (previous["period_start"], previous["period_end"]) == (
        dt.date(2026, 1, 7),
        dt.date(2026, 1, 20),
    )
    # 14 whole days, none of the partial day's 132 readings: the run read enough history
    assert current["readings"] == previous["readings"] == 14 * 288
    assert current["last_reading_local"].isoformat() == "2026-02-03T23:55:00"  # wall clock
    assert current["run_id"] == second


def test_a_complete_newest_day_is_the_last_day_of_the_window(lake):
    settings, first, _, _ = lake
    current = _rows(settings, patient_key(SECRET.encode(), "P2"))["current"]
    assert current["partial_day"] is None
    assert current["period_end"] == dt.date(2026, 2, 3)  # its last reading: 23:55 that day
    assert current["readings"] == 14 * 288
    assert current["run_id"] == first


def test_the_rows_hold_the_summary_of_the_same_window(lake):
    settings, _, _, _ = lake
    run = PublishedLake(settings).current()
    key = patient_key(SECRET.encode(), "P1")
    for row in run.summaries([key]).to_pylist():
        summary = window_summary(run, key, row["period_start"], row["period_end"], now=NOW)
        for name in CONSENSUS:
            value = row[metric_field(name).name]
            if isinstance(value, dt.datetime):
                value = value.isoformat()
            expected = pytest.approx(value, rel=1e-9) if isinstance(value, float) else value
            assert summary.metrics[name] == expected, (row["window"], name)
        daily = run.daily(key, row["period_start"], row["period_end"])
        assert sum(daily["readings"].to_pylist()) == row["readings"]


def test_a_run_replaces_the_rows_of_the_patients_it_touches_and_keeps_the_others(lake):
    settings, first, second, before = lake
    assert before["P1"]["current"]["run_id"] == first
    assert before["P1"]["current"]["period_end"] == dt.date(2026, 2, 2)  # 02-03 was partial
    table = PublishedLake(settings).current().summaries()
    assert table.schema == PATIENT_SUMMARIES_SCHEMA
    assert table.num_rows == 4  # two windows of each patient, nothing left over
    by_patient = {(r["patient_key"], r["window"]): r["run_id"] for r in table.to_pylist()}
    p1, p2 = (patient_key(SECRET.encode(), p) for p in ("P1", "P2"))
    assert by_patient == {
        (p1, "current"): second,
        (p1, "previous"): second,
        (p2, "current"): first,
        (p2, "previous"): first,
    }
    assert _rows(settings, p2) == before["P2"]


def test_summaries_of_no_patients_is_empty(lake):
    settings, _, _, _ = lake
    run = PublishedLake(settings).current()
    assert run.summaries([]).num_rows == 0
    assert run.summaries(["0" * 32]).num_rows == 0
    assert run.snapshot_id("summaries") is not None  # published with the run's other tables


def test_a_full_refresh_and_the_erasure_of_a_patient(tmp_path):
    settings = _settings(tmp_path)
    ingest_records(settings, _records("E1", START, 20 * 288, "UTC", 0.0))
    ingest_records(settings, _records("E2", START, 3 * 288, "UTC", 0.0))
    assert run_pipeline(settings).status == "published"
    assert run_pipeline(settings, full_refresh=True).status == "published"
    e1, e2 = (patient_key(SECRET.encode(), p) for p in ("E1", "E2"))
    rows = PublishedLake(settings).current().summaries().to_pylist()
    assert sorted((r["patient_key"], r["window"]) for r in rows) == sorted(
        [(e1, "current"), (e1, "previous"), (e2, "current"), (e2, "previous")]
    )
    short = {r["window"]: r for r in rows if r["patient_key"] == e2}
    assert short["current"]["readings"] == 3 * 288  # a window holds what data there is
    assert short["previous"]["readings"] == 0
    maintain(settings.lake, TABLES, compact=False, expire_older_than=None, erase_patient_key=e1)
    left = PublishedLake(settings).current().summaries().to_pylist()
    assert {r["patient_key"] for r in left} == {e2}


def test_a_run_the_quality_gate_fails_publishes_no_summary(tmp_path, monkeypatch):
    from glucosestream.pipeline import steps

    settings = _settings(tmp_path)
    records = _records("G1", START, 16 * 288, "UTC", 0.0)
    ingest_records(settings, records[: 15 * 288])
    first = run_pipeline(settings)
    key = patient_key(SECRET.encode(), "G1")
    before = _rows(settings, key)
    real = steps.new_readings
    monkeypatch.setattr(steps, "new_readings", lambda i, c: real(i, c).slice(1))  # loses one
    ingest_records(settings, records[15 * 288 :])
    failed = run_pipeline(settings)
    assert failed.status == "failed"
    assert _rows(settings, key) == before
    assert before["current"]["run_id"] == first.run_id
