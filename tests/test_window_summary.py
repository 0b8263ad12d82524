"""The summary of any window of local days (``published.window_summary``): a fresh export gets
one (the issue's complaint), the partial newest day is named and never counted, a closed fixed
fortnight is audited, and a whole-data summary equals iglu 4.3.0's numbers."""

from __future__ import annotations

import csv
import datetime as dt
import math
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from glucosestream.access import create_token
from glucosestream.app import create_app
from glucosestream.config import IngestSettings, LakeSettings, Settings
from glucosestream.dashboard.audit import audit_lines
from glucosestream.dashboard.summary_routes import router as summary_router
from glucosestream.errors import InvalidInput, NotFound
from glucosestream.ingest import ingest_records
from glucosestream.ingest.identity import patient_key
from glucosestream.metrics import ALL, CONSENSUS
from glucosestream.metrics.result_schemas import metric_field
from glucosestream.metrics.spec import IGLU_ALL_METRICS
from glucosestream.pipeline import run_pipeline
from glucosestream.published import PublishedLake, window_summary
from glucosestream.published.window_summary import WindowSummary

from .conftest import DATA, SECRET, SHARED

NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
FRESH_START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)  # 00:00 UTC: 01:00 in Berlin
FRESH_DAYS = 14
FRESH_TAIL_READINGS = 120  # ten hours of the 15th day: the export was made mid-morning
LONG_START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)  # fixed fortnights start 2025-12-29, 01-12, …
CLOSED = (dt.date(2026, 1, 12), dt.date(2026, 1, 25))


def _glucose(i: int) -> float:
    glucose = 140 + 40 * math.sin(i / 288 * 2 * math.pi)
    if (i // 288) % 3 == 0 and 180 <= (i % 288) * 5 < 220:
        glucose = 55.0  # a 40-minute low every third night
    return glucose


def _lake(root: Path, records: list[dict]) -> Settings:
    settings = Settings(
        lake=LakeSettings(root=str(root / "lake")), ingest=IngestSettings(pseudonym_secret=SECRET)
    )
    ingest_records(settings, records)
    assert run_pipeline(settings).status == "published"
    return settings


def _every_5_min(patient: str, start: dt.datetime, n: int, tz: str) -> list[dict]:
    return [
        {
            "patient_id": patient,
            "time": (start + dt.timedelta(minutes=5 * i)).isoformat(),
            "glucose_mg_dl": _glucose(i),
            "tz": tz,
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A fresh 14-day export in Berlin, made at 10:55 on the 15th local day."""
    n = FRESH_DAYS * 288 + FRESH_TAIL_READINGS
    root = tmp_path_factory.mktemp("fresh")
    settings = _lake(root, _every_5_min("F1", FRESH_START, n, "Europe/Berlin"))
    return PublishedLake(settings).current(), patient_key(SECRET.encode(), "F1"), settings


@pytest.fixture(scope="module")
def long(tmp_path_factory):
    """30 days and two hours in UTC: fortnight 01-12..01-25 is closed and audited."""
    root = tmp_path_factory.mktemp("long")
    settings = _lake(root, _every_5_min("L1", LONG_START, 30 * 288 + 24, "UTC"))
    return PublishedLake(settings).current(), patient_key(SECRET.encode(), "L1")


def test_a_fresh_14_day_export_gets_a_summary_of_its_complete_days(fresh):
    run, key, _ = fresh
    summary = window_summary(run, key, None, None, now=NOW)
    assert (summary.start, summary.end) == (dt.date(2026, 1, 5), dt.date(2026, 1, 18))
    assert summary.partial_day == dt.date(2026, 1, 19)  # shown apart, never counted
    assert summary.days == 14
    # every reading of the 14 local days, none of the partial 15th: the first local day
    # starts at 01:00 (00:00 UTC), the 19th begins 23:00 UTC on the 18th
    assert summary.metrics["readings"] == FRESH_DAYS * 288 - 12
    assert summary.metrics["end_time"] == "2026-01-18T23:55:00"
    # the whole data is the patient's rolling window: its consensus set is the row the run wrote
    assert summary.audited
    assert summary.audited_by == run.run_id
    (current,) = [r for r in run.summaries([key]).to_pylist() if r["window"] == "current"]
    assert summary.metrics["mean_mg_dl"] == pytest.approx(current["mean_mg_dl"], rel=1e-12)
    assert list(summary.metrics) == list(ALL)


def test_the_summary_json_has_the_catalog_and_sufficiency(fresh):
    run, key, _ = fresh
    body = window_summary(run, key, None, None, now=NOW).as_json()
    assert body["start"] == "2026-01-05"
    assert body["end"] == "2026-01-18"
    assert body["partial_day"] == "2026-01-19"
    assert body["days"] == 14
    assert body["audited"] is True  # the rolling summary's window
    assert set(body["metrics"]) == set(ALL)
    assert body["sufficiency"] == {
        "active_pct": body["metrics"]["active_pct"],
        "days": body["metrics"]["days"],
        "sufficient_14d": False,  # 13.96 days: the first local day began at 01:00
    }
    assert isinstance(body["metrics"]["readings"], int)
    assert isinstance(body["metrics"]["hypo_lv1_episodes"], int)
    assert body["metrics"]["hypo_lv1_mean_mg_dl"] is not None
    assert not any(isinstance(v, float) and math.isnan(v) for v in body["metrics"].values())


def test_a_window_ending_on_the_partial_day_ends_the_day_before(fresh):
    run, key, _ = fresh
    summary = window_summary(run, key, dt.date(2026, 1, 10), dt.date(2026, 1, 19), now=NOW)
    assert (summary.start, summary.end, summary.partial_day) == (
        dt.date(2026, 1, 10),
        dt.date(2026, 1, 18),
        dt.date(2026, 1, 19),
    )
    earlier = window_summary(run, key, dt.date(2026, 1, 10), dt.date(2026, 1, 12), now=NOW)
    assert earlier.partial_day is None
    assert earlier.metrics["readings"] == 3 * 288


def test_a_window_is_narrowed_to_the_patients_data(fresh):
    run, key, _ = fresh
    summary = window_summary(run, key, dt.date(2025, 12, 1), dt.date(2026, 1, 6), now=NOW)
    assert (summary.start, summary.end, summary.days) == (
        dt.date(2026, 1, 5),
        dt.date(2026, 1, 6),
        2,
    )


def test_a_window_is_computed_as_one_series(fresh):
    run, key, _ = fresh
    days = window_summary(run, key, dt.date(2026, 1, 6), dt.date(2026, 1, 8), now=NOW)
    daily = run.daily(key, dt.date(2026, 1, 6), dt.date(2026, 1, 8)).to_pylist()
    mean = sum(d["mean_mg_dl"] * d["readings"] for d in daily) / sum(d["readings"] for d in daily)
    assert days.metrics["mean_mg_dl"] == pytest.approx(mean, rel=1e-12)
    assert days.metrics["readings"] == sum(d["readings"] for d in daily)


def test_readings_the_caller_holds_give_the_same_summary(fresh):
    run, key, _ = fresh
    held = run.readings([key])
    given = window_summary(run, key, None, None, now=NOW, readings=held)
    assert given == window_summary(run, key, None, None, now=NOW)


def test_from_after_to_is_refused(fresh):
    run, key, _ = fresh
    with pytest.raises(InvalidInput, match="starts on 2026-01-12 after it ends on 2026-01-10"):
        window_summary(run, key, dt.date(2026, 1, 12), dt.date(2026, 1, 10), now=NOW)


def test_a_window_without_data_says_which_days_the_patient_has(fresh):
    run, key, _ = fresh
    with pytest.raises(NotFound) as caught:
        window_summary(run, key, dt.date(2025, 6, 1), dt.date(2025, 6, 14), now=NOW)
    message = str(caught.value)
    assert "complete days 2026-01-05 to 2026-01-18" in message
    assert "partial day 2026-01-19" in message
    with pytest.raises(NotFound, match="complete days 2026-01-05 to 2026-01-18"):
        window_summary(run, key, dt.date(2026, 1, 19), None, now=NOW)  # only the partial day


def test_an_unknown_patient_is_not_found(fresh):
    run, _, _ = fresh
    with pytest.raises(NotFound, match="check the id"):
        window_summary(run, "0" * 32, None, None, now=NOW)


def test_a_closed_fixed_fortnight_takes_its_consensus_set_from_the_audited_row(long):
    run, key = long
    summary = window_summary(run, key, *CLOSED, now=NOW)
    assert summary.audited
    assert summary.audited_by == run.run_id
    row = run.results("periods", key, period_start=CLOSED[0]).to_pylist()[0]
    for name in CONSENSUS:
        published = row[metric_field(name).name]
        if isinstance(published, dt.datetime):
            published = published.isoformat()
        assert summary.metrics[name] == pytest.approx(published), name
    assert summary.metrics["mage_mg_dl"] is not None  # the research catalog, computed
    other = window_summary(run, key, CLOSED[0], CLOSED[1] - dt.timedelta(days=1), now=NOW)
    assert not other.audited


def test_the_whole_data_of_a_longer_export_ends_on_its_last_complete_day(long):
    run, key = long
    summary = window_summary(run, key, None, None, now=NOW)
    assert (summary.start, summary.end, summary.partial_day) == (
        dt.date(2026, 1, 5),
        dt.date(2026, 2, 3),
        dt.date(2026, 2, 4),
    )
    assert summary.metrics["readings"] == 30 * 288
    assert not summary.audited


def _api(settings: Settings, token: str, path: str):
    app = create_app(settings, clock=lambda: NOW)
    if not any(getattr(r, "path", "").endswith("/summary") for r in app.routes):
        app.include_router(summary_router)  # until app.py includes it
    with TestClient(app) as client:
        return client.get(path, headers={"Authorization": f"Bearer {token}"})


def test_the_json_api_gives_the_summary_and_the_days_and_audits_the_read(fresh):
    run, key, settings = fresh
    clinician = create_token(settings.lake, "patient", label="p", now=NOW, patient_keys=[key])
    response = _api(settings, clinician, f"/v1/patients/{key}/summary")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["ok"], body["patient_key"]) == (True, key)
    assert body["summary"] == window_summary(run, key, None, None, now=NOW).as_json()
    assert [d["date"] for d in body["days"]][-2:] == ["2026-01-18", "2026-01-19"]
    assert [d["partial"] for d in body["days"]][-2:] == [False, True]
    ranged = _api(settings, clinician, f"/v1/patients/{key}/summary?from=2026-01-06&to=2026-01-08")
    assert ranged.json()["summary"]["days"] == 3
    assert len(ranged.json()["days"]) == 3
    assert any("api.summary" in line for line in audit_lines(settings, key))


def test_the_json_api_refuses_other_patients_and_says_what_data_there_is(fresh):
    _, key, settings = fresh
    other = create_token(settings.lake, "patient", label="o", now=NOW, patient_keys=["1" * 32])
    refused = _api(settings, other, f"/v1/patients/{key}/summary")
    assert refused.status_code == 403
    assert refused.json()["ok"] is False
    admin = create_token(settings.lake, "admin", label="a", now=NOW)
    backwards = _api(settings, admin, f"/v1/patients/{key}/summary?from=2026-01-08&to=2026-01-06")
    assert backwards.status_code == 200  # read as 01-06..01-08, as the pages read it
    assert (backwards.json()["summary"]["start"], backwards.json()["summary"]["end"]) == (
        "2026-01-06",
        "2026-01-08",
    )
    empty = _api(settings, admin, f"/v1/patients/{key}/summary?from=2020-01-01&to=2020-01-14")
    assert empty.status_code == 404
    assert "complete days 2026-01-05 to 2026-01-18" in empty.json()["error"]
    unknown = _api(settings, admin, f"/v1/patients/{'0' * 32}/summary")
    assert unknown.status_code == 404


# ---- against iglu 4.3.0 (reference numbers from ../shared, not shipped) --------------------

# Metrics iglu computes per calendar day: our days are the patient's local days (the readings
# are placed in a zone so that the last day is complete), iglu's are the days of the times as
# written. Everything else does not depend on where days split and must be equal.
PER_CALENDAR_DAY = {
    "ADRR",
    "CV_Measures_Mean",
    "CV_Measures_SD",
    "SDw",
    "SDwsh",
    "SDdm",
    "SDbdm",
    "AUC",
    "start_date",
    "end_date",
}
# docs/metrics.md, "Every deliberate or known difference from iglu": 1 (the all_metrics MAG
# column; ours is Hermanides', compared with iglu's mag() below).
KNOWN = {"MAG"}
# iglu counts an exact duplicate row twice in its plain summaries (difference 4); the lake keeps
# one reading per instant. Only these columns of a cohort subject are free of that.
DUPLICATE_FREE = {
    "GRI", "IQR", "MAD", "MAGE", "range", "Min.", "1st Qu.", "Median", "3rd Qu.", "Max.",
    "Conga", "GVP", "MODD", "SD.Roc", "SDhhmm", "SDb", "ndays",
    *(c for c, ours in IGLU_ALL_METRICS if ours.endswith("_per_day")),  # episodes per day
}  # fmt: skip
REL = 1e-6  # as tests/test_metrics_iglu.py


def _iglu_subject(path: Path, subject: str) -> dict[str, str]:
    if not path.is_file():
        pytest.skip(f"iglu reference {path} not found (comparison data, not shipped)")
    with path.open(newline="") as f:
        return next(r for r in csv.DictReader(f) if r["id"] == subject)


def _summary_of(tmp_path: Path, readings: Path, subject: str, tz: str) -> WindowSummary:
    if not readings.is_file():
        pytest.skip(f"{readings} not found")
    with readings.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["id"] == subject and r["gl"] not in ("", "NA")]
    records = [
        {
            "patient_id": subject,
            "time": r["time"].replace(" ", "T") + "+00:00",
            "glucose_mg_dl": float(r["gl"]),
            "tz": tz,
        }
        for r in rows
    ]
    run = PublishedLake(_lake(tmp_path, records)).current()
    return window_summary(run, patient_key(SECRET.encode(), subject), None, None, now=NOW)


def _differing(summary: WindowSummary, reference: dict[str, str], columns: set[str]) -> list:
    bad = []
    for column, ours in IGLU_ALL_METRICS:
        if column not in columns:
            continue
        got, want = summary.metrics[ours], float(reference[column])
        if column == "ndays":  # iglu prints ndays rounded to one decimal
            got = round(got, 1)
        if not math.isclose(got, want, rel_tol=REL, abs_tol=1e-9):
            bad.append((column, got, want))
    return bad


def test_a_whole_data_summary_of_a_validation_subject_equals_iglu(tmp_path):
    # T1D02's 14 days run 21:05 to 20:50 UTC: at UTC+3 they are 14 whole local days, the last
    # ending at 23:50 (complete), so the whole-data summary holds every reading iglu read.
    summary = _summary_of(tmp_path, DATA / "validation" / "cohort.csv", "T1D02", "Etc/GMT-3")
    assert (summary.start, summary.end, summary.partial_day) == (
        dt.date(2023, 6, 13),
        dt.date(2023, 6, 26),
        None,
    )
    folder = SHARED / "validation" / "iglu-4.3.0-per-subject"
    reference = _iglu_subject(folder / "all_metrics.csv", "T1D02")
    assert len(DUPLICATE_FREE) > 20
    assert _differing(summary, reference, DUPLICATE_FREE - PER_CALENDAR_DAY) == []


def test_a_whole_data_summary_of_iglus_example_subject_equals_iglu(tmp_path):
    # Subject 4 ends at 10:01:58 as written; on the Chatham Islands (UTC+13:45 in March 2015)
    # that is 23:46:58, a complete last day. No duplicate rows: every column is compared.
    example = SHARED / "samples" / "iglu"
    summary = _summary_of(
        tmp_path, example / "example_data_5_subject.csv", "Subject 4", "Pacific/Chatham"
    )
    assert summary.partial_day is None
    assert summary.end == dt.date(2015, 3, 26)
    reference = _iglu_subject(example / "iglu-4.3.0" / "all_metrics.csv", "Subject 4")
    columns = {c for c, _ in IGLU_ALL_METRICS} - PER_CALENDAR_DAY - KNOWN
    assert len(columns) == 50
    assert _differing(summary, reference, columns) == []
    mag = _iglu_subject(example / "iglu-4.3.0" / "mag.csv", "Subject 4")
    assert summary.metrics["mag_mg_dl_per_h"] == pytest.approx(float(mag["MAG"]), rel=REL)
    assert summary.metrics["end_time"] == "2015-03-26T23:46:58"  # 10:01:58 + 13:45
