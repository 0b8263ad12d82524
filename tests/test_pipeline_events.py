"""curated.events through a run: the bucket's events of the pending batches, set aside by the
gate's event row checks, merged by first arrival, appended; counted in the run's report."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import zoneinfo
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from glucosestream.config import QualitySettings
from glucosestream.events import EVENT_SCHEMA
from glucosestream.ingest import ingest_path, ingest_records
from glucosestream.ingest.identity import patient_key
from glucosestream.lake import (
    QUARANTINE_SCHEMA,
    RawZone,
    open_lakehouse,
    open_metadata,
    open_storage,
)
from glucosestream.metrics import meal_responses
from glucosestream.pipeline import run_pipeline
from glucosestream.pipeline.table_registry import TABLES
from glucosestream.quality import StagedRun
from glucosestream.quality.checks import check_daily_event_totals
from glucosestream.readings import READING_SCHEMA
from glucosestream.synth import CohortSpec, write_cohort

from .conftest import SECRET

START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
INGESTED = dt.datetime(2026, 1, 20, tzinfo=dt.UTC)


def key(patient: str) -> str:
    return patient_key(SECRET.encode(), patient)


def event(patient: str, at: dt.datetime, kind: str, subtype: str | None = None, **amounts) -> dict:
    row: dict[str, Any] = dict.fromkeys(EVENT_SCHEMA.names)
    row.update(
        patient_key=key(patient),
        device_id="pump",
        source="test",
        ts=at,
        tz=amounts.pop("tz", "UTC"),
        kind=kind,
        subtype=subtype,
        ingested_at=INGESTED,
    )
    row.update(amounts)
    return row


def write_event_batch(settings, batch_id: str, rows: list[dict]) -> None:
    """A committed raw batch holding these events and no readings (discover registers it from
    its manifest, as it does a batch whose ingest was cut short)."""
    events = pa.Table.from_pylist([{**r, "batch_id": batch_id} for r in rows], EVENT_SCHEMA)
    manifest = {
        "source_sha256": hashlib.sha256(batch_id.encode()).hexdigest(),
        "format": "test",
        "received": 0,
        "accepted": 0,
        "duplicates": 0,
        "quarantined": 0,
        "ingested_at": INGESTED.isoformat(),
        "events": {
            "received": len(rows),
            "accepted": len(rows),
            "duplicates": 0,
            "quarantined": 0,
            "notes_dropped": 0,
        },
    }
    raw = RawZone(open_storage(settings.lake))
    empty = READING_SCHEMA.empty_table()
    raw.write_batch(batch_id, empty, QUARANTINE_SCHEMA.empty_table(), manifest, events)


def readings(patient: str, days: int, tz: str = "UTC") -> list[dict]:
    return [
        {
            "patient_id": patient,
            "time": (START + dt.timedelta(minutes=5 * i)).isoformat(),
            "glucose_mg_dl": 120.0 + (i % 40),
            "tz": tz,
        }
        for i in range(days * 288)
    ]


def published_events(settings) -> list[dict]:
    published = open_metadata(settings.lake).published()
    lake = open_lakehouse(settings.lake, TABLES)
    return lake.read_table("events", published.of("events")).to_pylist()


def some_events() -> list[dict]:
    return [
        event("P1", START + dt.timedelta(hours=8), "bolus", "normal", units=4.5),
        event("P1", START + dt.timedelta(hours=8), "carbs", "meal", carbs_g=45.0),
        event("P1", START + dt.timedelta(hours=20), "device", "site_change"),
        event("P2", START + dt.timedelta(hours=9), "basal", "temporary", rate_u_h=0.8),
    ]


def test_a_batch_of_events_and_no_readings_loads_into_curated_events(settings):
    write_event_batch(settings, "b-0001", some_events())
    report = run_pipeline(settings)
    assert report.status == "published", report.message
    assert (report.events_in, report.events_new, report.events_duplicates) == (4, 4, 0)
    rows = published_events(settings)
    assert sorted((r["kind"], r["units"], r["carbs_g"]) for r in rows) == sorted(
        [("bolus", 4.5, None), ("carbs", None, 45.0), ("device", None, None), ("basal", None, None)]
    )
    assert {r["batch_id"] for r in rows} == {"b-0001"}


def test_the_same_events_again_are_duplicates_and_nothing_new(settings):
    ingest_records(settings, readings("P1", 2))
    write_event_batch(settings, "b-0001", some_events())
    assert run_pipeline(settings).events_new == 4
    write_event_batch(settings, "b-0002", some_events())
    again = run_pipeline(settings)
    assert again.status == "published", again.message
    assert (again.events_in, again.events_new, again.events_duplicates) == (4, 0, 4)
    assert len(published_events(settings)) == 4
    checks = {c.name: c for c in again.checks}
    assert checks["every_event_lands"].passed
    assert checks["reconciliation"].passed


def test_events_twice_in_one_run_land_once_and_another_amount_is_another_event(settings):
    first = some_events()
    other = event("P1", START + dt.timedelta(hours=8), "bolus", "normal", units=2.0)
    write_event_batch(settings, "b-0001", first)
    write_event_batch(settings, "b-0002", [*first, other])
    report = run_pipeline(settings)
    assert (report.events_in, report.events_new, report.events_duplicates) == (9, 5, 4)
    rows = published_events(settings)
    assert len(rows) == 5
    assert sum(r["batch_id"] == "b-0001" for r in rows) == 4  # the first arrival of each


def test_the_gate_sets_aside_future_and_implausible_events_one_reason_each(settings):
    bad = [
        event("P1", INGESTED + dt.timedelta(hours=2), "bolus", "normal", units=1.0),
        event("P1", START, "bolus", "normal", units=250.0),
        event("P1", START, "carbs", "meal", carbs_g=-5.0),
        event("P1", START, "basal", "scheduled", rate_u_h=80.0),
        event("P1", START, "bolus", "sideways", units=1.0),
        event("P1", START + dt.timedelta(minutes=1), "bolus", "normal"),  # no units
        event("P1", START, "smbg", glucose_mg_dl=5.0),
    ]
    write_event_batch(settings, "b-0001", [*some_events(), *bad])
    report = run_pipeline(settings)
    assert report.status == "published", report.message
    assert report.events_new == 4
    reasons = {s.reason: s.rows for s in report.events_set_aside}
    assert reasons == {
        "event_no_future": 1,
        "event_plausible_amount": 5,
        "event_known_kind": 1,
    }
    assert report.readings_set_aside == 0  # readings' accounting stays apart
    checks = {c.name: c for c in report.checks}
    assert checks["event_plausible_amount"].set_aside == 5
    assert checks["reconciliation"].passed
    counts = open_metadata(settings.lake).set_aside_counts(report.run_id)
    assert ("b-0001", "event_no_future", 1) in counts


def test_a_run_over_many_buckets_gives_each_bucket_its_own_events(settings):
    patients = [f"P{n}" for n in range(12)]
    for p in patients:
        ingest_records(settings, readings(p, 1))
    rows = [
        event(p, START + dt.timedelta(hours=3), "carbs", "meal", carbs_g=10.0) for p in patients
    ]
    rows.append(event("Q-only-events", START, "bolus", "normal", units=1.0))
    write_event_batch(settings, "b-0001", rows)
    wide = dataclasses.replace(
        settings, pipeline=dataclasses.replace(settings.pipeline, readings_per_task=200)
    )
    report = run_pipeline(wide)
    assert report.status == "published", report.message
    assert report.buckets > 1
    assert (report.events_in, report.events_new) == (13, 13)
    stored = published_events(settings)
    assert {r["patient_key"] for r in stored} == {key(p) for p in [*patients, "Q-only-events"]}


# --- the daily rows' insulin and carbohydrate columns -------------------------------------

NY = zoneinfo.ZoneInfo("America/New_York")  # UTC-5 in January


def local(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 1, day, hour, minute, tzinfo=NY).astimezone(dt.UTC)


def ny_events() -> list[dict]:
    """Boluses and carbs minutes either side of local midnight, and basal segments of which one
    crosses it (2 U/h from 22:00 for 4 h: 4 U on each day)."""

    def ev(*args, **kw):
        return event("NY", *args, tz="America/New_York", **kw)

    return [
        ev(local(5, 23, 50), "bolus", "normal", units=3.0),
        ev(local(6, 0, 10), "bolus", "normal", units=2.0),
        ev(local(5, 23, 55), "carbs", "meal", carbs_g=40.0),
        ev(local(6, 0, 5), "carbs", "meal", carbs_g=20.0),
        ev(local(5, 0), "basal", "scheduled", rate_u_h=1.0, duration_min=22 * 60.0),
        ev(local(5, 22), "basal", "temporary", rate_u_h=2.0, duration_min=4 * 60.0),
        ev(local(6, 2), "basal", "scheduled", rate_u_h=0.5, duration_min=22 * 60.0),
    ]


def expected_totals(rows: list[dict]) -> dict[dt.date, dict[str, float]]:
    """Per local day, computed here: boluses and carbs on the day of their local time, basal
    as rate x the hours of each segment inside the local day."""
    out: dict[dt.date, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in rows:
        start = r["ts"].astimezone(NY)
        if r["kind"] == "bolus":
            out[start.date()]["bolus_u"] += r["units"]
        elif r["kind"] == "carbs":
            out[start.date()]["carbs_g"] += r["carbs_g"]
        elif r["kind"] == "basal":
            end = start + dt.timedelta(minutes=r["duration_min"])
            day = start.date()
            while dt.datetime.combine(day, dt.time(), NY) < end:
                lo = max(start, dt.datetime.combine(day, dt.time(), NY))
                hi = min(end, dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), NY))
                out[day]["basal_u"] += r["rate_u_h"] * (hi - lo) / dt.timedelta(hours=1)
                day += dt.timedelta(days=1)
    return out


def published_daily(settings, patient: str) -> dict[dt.date, dict]:
    published = open_metadata(settings.lake).published()
    lake = open_lakehouse(settings.lake, TABLES)
    rows = lake.read_daily(published.of("daily"), key(patient)).to_pylist()
    return {r["date"]: r for r in rows}


def ny_readings(days: int) -> list[dict]:
    start = local(5, 0)
    return [
        {
            "patient_id": "NY",
            "time": (start + dt.timedelta(minutes=5 * i)).isoformat(),
            "glucose_mg_dl": 110.0 + (i % 30),
            "tz": "America/New_York",
        }
        for i in range(days * 288)
    ]


def test_a_daily_total_is_the_sum_of_that_local_days_events(settings):
    ingest_records(settings, ny_readings(2))  # local Jan 5 and 6
    rows = ny_events()
    write_event_batch(settings, "b-0001", rows)
    report = run_pipeline(settings)
    assert report.status == "published", report.message
    daily = published_daily(settings, "NY")
    want = expected_totals(rows)
    assert want[dt.date(2026, 1, 5)]["basal_u"] == pytest.approx(26.0)  # 22 h x 1 + 2 h x 2
    for day in (dt.date(2026, 1, 5), dt.date(2026, 1, 6)):
        got = daily[day]
        assert got["readings"] == 288
        for column in ("bolus_u", "basal_u", "carbs_g"):
            assert got[column] == pytest.approx(want[day][column], abs=1e-9), (day, column)
        assert got["insulin_total_u"] == pytest.approx(want[day]["bolus_u"] + want[day]["basal_u"])
        assert got["boluses"] == 1
    checks = {c.name: c for c in report.checks}
    assert checks["daily_event_totals"].passed
    assert checks["daily_bounds"].passed


def test_late_treatments_for_an_old_day_recompute_it_from_all_its_events(settings):
    ingest_records(settings, ny_readings(2))
    rows = ny_events()
    write_event_batch(settings, "b-0001", rows)
    run_pipeline(settings)
    late = event("NY", local(5, 12), "bolus", "normal", tz="America/New_York", units=1.5)
    write_event_batch(settings, "b-0002", [late])
    report = run_pipeline(settings)
    assert (report.events_new, report.readings_new) == (1, 0)
    daily = published_daily(settings, "NY")
    assert daily[dt.date(2026, 1, 5)]["bolus_u"] == pytest.approx(3.0 + 1.5)
    assert daily[dt.date(2026, 1, 5)]["boluses"] == 2
    assert daily[dt.date(2026, 1, 5)]["readings"] == 288  # its glucose figures recomputed too
    assert daily[dt.date(2026, 1, 6)]["bolus_u"] == pytest.approx(2.0)


def test_a_day_with_events_and_no_readings_has_a_row_without_glucose(settings):
    ingest_records(settings, ny_readings(1))
    meal = event("NY", local(9, 13), "carbs", "meal", tz="America/New_York", carbs_g=55.0)
    write_event_batch(settings, "b-0001", [meal])
    report = run_pipeline(settings)
    assert report.status == "published", report.message
    row = published_daily(settings, "NY")[dt.date(2026, 1, 9)]
    assert (row["readings"], row["mean_mg_dl"], row["carbs_g"]) == (0, None, 55.0)
    assert row["bolus_u"] is None  # no insulin recorded that day: not known, not 0


# --- end to end: a device export with readings and events, ingested and run -----------------


def tidepool_exports(tmp_path) -> list[tuple[str, Path]]:
    """Two simulated type 1 patients' Tidepool exports (readings, boluses, basal, food)."""
    spec = CohortSpec(2, 3, "t1d", 5, 1, dt.date(2026, 3, 7))
    out = Path(write_cohort(spec, tmp_path / "cohort", "tidepool").path)
    return [(p.name.split("_")[0], p) for p in sorted(out.glob("*.json"))]


def test_an_export_with_readings_and_events_lands_once_and_again_as_duplicates(settings, tmp_path):
    exports = tidepool_exports(tmp_path)
    ingested = [ingest_path(settings, path, patient_id=pid) for pid, path in exports]
    accepted = sum(r.events_accepted for r in ingested)
    assert accepted > 0
    first = run_pipeline(settings)
    assert first.status == "published", first.message
    assert (first.events_in, first.events_new, first.events_duplicates) == (accepted, accepted, 0)
    stored = published_events(settings)
    assert len(stored) == accepted
    assert {r["patient_key"] for r in stored} == {key(pid) for pid, _ in exports}
    assert run_pipeline(settings).status == "noop"  # the same bytes again: nothing to load
    for pid, path in exports:  # the same data in other bytes: a new batch, all duplicates
        copy = tmp_path / f"again-{path.name}"
        copy.write_text(json.dumps(json.loads(path.read_text())), encoding="utf-8")
        ingest_path(settings, copy, patient_id=pid)
    again = run_pipeline(settings)
    assert again.status == "published", again.message
    assert (again.events_in, again.events_new, again.events_duplicates) == (accepted, 0, accepted)
    assert (again.readings_new, again.duplicates) == (0, again.readings_in)
    assert len(published_events(settings)) == accepted


def test_the_event_totals_check_fails_a_negative_total_and_an_uneven_sum():
    daily = pa.table(
        {
            "readings": pa.array([288, 0, 288, 0], pa.int32()),
            "bolus_u": [4.0, -1.0, 2.0, None],
            "basal_u": [10.0, None, 3.0, None],
            "insulin_total_u": [14.0, None, 9.0, None],
            "carbs_g": [50.0, None, None, 20.0],
            "boluses": pa.array([2, 1, 1, None], pa.int32()),
            "automated_pct": [40.0, None, 120.0, None],
        }
    )
    staged = StagedRun(READING_SCHEMA.empty_table(), READING_SCHEMA.empty_table(), daily, daily)
    result = check_daily_event_totals(staged, QualitySettings())
    assert (result.passed, result.failed_rows) == (False, 2)  # the 2nd (-1 U) and the 3rd
    fine = StagedRun(staged.new_readings, staged.all_readings, daily.slice(3), daily)
    assert check_daily_event_totals(fine, QualitySettings()).passed


# --- meal responses ---------------------------------------------------------------------


def published_meals(settings, patient: str) -> list[dict]:
    published = open_metadata(settings.lake).published()
    lake = open_lakehouse(settings.lake, TABLES)
    rows = lake.read_table("meals", published.of("meals")).to_pylist()
    return [r for r in rows if r["patient_key"] == key(patient)]


def test_a_late_meals_response_is_completed_by_the_next_days_readings(settings):
    """A meal at 23:00 local: the run that has its readings up to midnight stores a response
    cut short; the run that brings the next day's readings replaces it with the whole one,
    equal to the response computed from all the readings at once."""
    records = ny_readings(2)
    ingest_records(settings, records[:288])  # local Jan 5
    meal = event("NY", local(5, 23), "carbs", "meal", tz="America/New_York", carbs_g=60.0)
    write_event_batch(settings, "b-0001", [meal])
    run_pipeline(settings)
    (early,) = published_meals(settings, "NY")
    assert (early["date"], early["carbs_g"], early["window_readings"]) == (
        dt.date(2026, 1, 5),
        60.0,
        11,  # 23:05 to 23:55: the readings after the meal, before midnight
    )
    assert early["two_hour_mg_dl"] is None
    ingest_records(settings, records[288:])  # local Jan 6
    report = run_pipeline(settings)
    assert report.status == "published", report.message
    (late,) = published_meals(settings, "NY")
    readings_table = open_lakehouse(settings.lake, TABLES).read_readings(
        open_metadata(settings.lake).published().of("readings"), [key("NY")]
    )
    events_table = pa.Table.from_pylist([{**meal, "batch_id": "b-0001"}], EVENT_SCHEMA)
    (whole,) = meal_responses(
        readings_table, events_table, run_id="x", computed_at=INGESTED
    ).to_pylist()
    assert late["window_readings"] > early["window_readings"]
    assert late["two_hour_mg_dl"] is not None
    for name, value in whole.items():
        if name not in ("run_id", "computed_at"):
            assert late[name] == value, name


def test_a_closed_periods_metrics_carry_its_insulin_and_carbs_per_day(settings):
    start = dt.datetime(2025, 12, 29, tzinfo=dt.UTC)  # a period start (fortnights from 2024-01-01)
    ingest_records(
        settings,
        [
            {
                "patient_id": "PER",
                "time": (start + dt.timedelta(minutes=5 * i)).isoformat(),
                "glucose_mg_dl": 100.0 + (i % 50),
                "tz": "UTC",
            }
            for i in range(15 * 288)  # into the next period: the first one is closed
        ],
    )
    days = [start + dt.timedelta(days=d, hours=8) for d in range(14)]
    rows = [event("PER", at, "bolus", "normal", units=1.0 + n / 2) for n, at in enumerate(days)]
    rows += [event("PER", at, "carbs", "meal", carbs_g=30.0) for at in days[::2]]
    write_event_batch(settings, "b-0001", rows)
    report = run_pipeline(settings)
    assert report.status == "published", report.message
    published = open_metadata(settings.lake).published()
    periods = open_lakehouse(settings.lake, TABLES).read_table("periods", published.of("periods"))
    (period,) = [p for p in periods.to_pylist() if p["patient_key"] == key("PER")]
    assert period["period_start"] == dt.date(2025, 12, 29)
    assert period["bolus_u_per_day"] == pytest.approx(sum(1.0 + n / 2 for n in range(14)) / 14)
    assert period["insulin_days"] == 14
    assert (period["carbs_g_per_day"], period["carbs_days"]) == (30.0, 7)
    assert (period["basal_u_per_day"], period["basal_days"]) == (None, 0)  # none recorded
    assert period["insulin_total_u_per_day"] is None
    assert_summary_totals(settings, rows)
    late = event("PER", start + dt.timedelta(days=4, hours=20), "bolus", "normal", units=7.0)
    write_event_batch(settings, "b-0002", [late])  # a late treatment for the closed period
    assert run_pipeline(settings).events_new == 1
    published = open_metadata(settings.lake).published()
    periods = open_lakehouse(settings.lake, TABLES).read_table("periods", published.of("periods"))
    (period,) = [p for p in periods.to_pylist() if p["patient_key"] == key("PER")]
    assert period["bolus_u_per_day"] == pytest.approx(
        (sum(1.0 + n / 2 for n in range(14)) + 7) / 14
    )
    assert_summary_totals(settings, [*rows, late])  # rewritten: new events, no readings


def test_a_batch_whose_events_file_or_counts_cannot_be_read_is_rejected_alone(settings):
    write_event_batch(settings, "b-0001", some_events())
    write_event_batch(settings, "b-0002", some_events()[:1])
    write_event_batch(settings, "b-0003", some_events()[:2])
    raw = RawZone(open_storage(settings.lake))
    cut = f"{raw.batch('b-0002').path}/events.parquet"
    with raw.storage.fs.open_output_stream(cut) as f:
        f.write(b"PAR1 not a parquet file")
    manifest = raw.batch("b-0003").manifest()
    manifest["events"] = "many"
    with raw.storage.fs.open_output_stream(f"{raw.batch('b-0003').path}/manifest.json") as f:
        f.write(json.dumps(manifest).encode())
    report = run_pipeline(settings)
    assert report.status == "published", report.message
    rejected = {b.batch_id: b.reason for b in report.rejected}
    assert set(rejected) == {"b-0002", "b-0003"}
    assert rejected["b-0003"].startswith("unreadable: TypeError: manifest.json's events")
    assert report.events_new == 4


def assert_summary_totals(settings, rows: list[dict]) -> None:
    """The patient's current rolling window carries the mean bolus per day of its days that
    recorded one, and their count, from these events."""
    published = open_metadata(settings.lake).published()
    summaries = open_lakehouse(settings.lake, TABLES).read_table(
        "summaries", published.of("summaries")
    )
    (current,) = [
        r
        for r in summaries.to_pylist()
        if r["patient_key"] == key("PER") and r["window"] == "current"
    ]
    doses: dict[dt.date, float] = defaultdict(float)
    for r in rows:
        if r["kind"] == "bolus":
            doses[r["ts"].date()] += r["units"]
    inside = [u for d, u in doses.items() if current["period_start"] <= d <= current["period_end"]]
    assert current["insulin_days"] == len(inside)
    assert current["bolus_u_per_day"] == pytest.approx(sum(inside) / len(inside))


def test_an_evenly_split_dual_wave_bolus_stays_two_events_and_lands_once(settings, tmp_path):
    # A Nightscout Combo Bolus of 4 U, 2 now and 2 over an hour: the two halves share patient,
    # device, kind, instant and amount, and differ only in subtype (normal, extended).
    combo = {
        "eventType": "Combo Bolus",
        "created_at": "2026-01-10T12:00:00Z",
        "enteredBy": "careportal",
        "insulin": 2,
        "enteredinsulin": 4,
        "duration": 60,
    }
    path = tmp_path / "treatments.json"
    path.write_text(json.dumps([combo]), encoding="utf-8")
    report = ingest_path(settings, path, patient_id="P-combo")
    assert (report.events_accepted, report.events_duplicates) == (2, 0)
    assert run_pipeline(settings).events_new == 2
    boluses = [e for e in published_events(settings) if e["kind"] == "bolus"]
    assert sorted((e["subtype"], e["units"]) for e in boluses) == [
        ("extended", 2.0),
        ("normal", 2.0),
    ]
    path.write_text(json.dumps([combo, combo]), encoding="utf-8")  # the same again, new bytes
    again = ingest_path(settings, path, patient_id="P-combo")
    assert (again.events_accepted, again.events_duplicates) == (2, 2)
    rerun = run_pipeline(settings)
    assert (rerun.events_new, rerun.events_duplicates) == (0, 2)
