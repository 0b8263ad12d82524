"""The exports over a lake with events (curated.events and the daily metrics' insulin and carbs
columns): the tidy events file, the day rows' event columns, a day with events and no readings
(a day row with no glucose figure, never a measurement), notes' text only where kept, and the
FHIR and OMOP exports unchanged by the events."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from glucosestream.cli.export_command import export
from glucosestream.config import IngestSettings, LakeSettings, Settings
from glucosestream.events import EVENT_SCHEMA
from glucosestream.exports.data_dictionary import EVENTS_COLUMNS
from glucosestream.exports.fhir_bundle import FhirOptions, write_fhir
from glucosestream.exports.omop import write_omop
from glucosestream.exports.tidy import write_tidy
from glucosestream.ingest import ingest_records
from glucosestream.ingest.identity import patient_key
from glucosestream.metrics.daily import EVENT_COLUMNS
from glucosestream.metrics.result_schemas import PERIOD_EVENT_COLUMNS
from glucosestream.pipeline import run_pipeline
from glucosestream.published import PublishedLake, window_summary

from .conftest import SECRET
from .test_pipeline_events import write_event_batch

START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 1, 25, 12, tzinfo=dt.UTC)
IDS = {"P1": "P1", "P2": "=HYPERLINK(2)", "P3": "P3"}
BERLIN = "Europe/Berlin"
ONLY_EVENTS_DAYS = (dt.date(2026, 1, 3), dt.date(2026, 1, 22))  # P1's days without readings
NOTE = "=saw Dr Who"  # a note's free text (and a formula start for the CSV guard)


def _key(patient: str) -> str:
    return patient_key(SECRET.encode(), IDS[patient])


def _readings(patient: str, tz: str, days: int) -> list[dict]:
    out = []
    for i in range(days * 288):
        mg = 140 + 50 * math.sin(i / 288 * 2 * math.pi)
        at = (START + dt.timedelta(minutes=5 * i)).isoformat()
        out.append({"patient_id": IDS[patient], "time": at, "tz": tz, "glucose_mg_dl": mg})
    return out


def _event(patient: str, at: dt.datetime, kind: str, subtype: str | None, **values) -> dict:
    row = dict.fromkeys(EVENT_SCHEMA.names)
    row.update(
        patient_key=_key(patient),
        device_id="pump",
        source="test",
        ts=at,
        tz=values.pop("tz", BERLIN),
        kind=kind,
        subtype=subtype,
        ingested_at=NOW,
        **values,
    )
    return row


def _events() -> list[dict]:
    at = dt.datetime(2026, 1, 6, 7, tzinfo=dt.UTC)
    return [
        _event("P1", dt.datetime(2026, 1, 3, 8, tzinfo=dt.UTC), "bolus", "normal", units=5.0),
        _event("P1", dt.datetime(2026, 1, 3, 8, tzinfo=dt.UTC), "carbs", "meal", carbs_g=40.0),
        _event("P1", at, "bolus", "normal", units=4.5),
        _event("P1", at, "carbs", "meal", carbs_g=50.0),
        _event("P1", at + dt.timedelta(hours=3), "exercise", None, duration_min=45.0,
               intensity="medium"),
        _event("P1", at + dt.timedelta(hours=4), "note", None, note=NOTE),
        # 23:30 UTC is 00:30 on the 7th in Berlin: the event's local day is the 7th
        _event("P1", dt.datetime(2026, 1, 6, 23, 30, tzinfo=dt.UTC), "smbg", None,
               glucose_mg_dl=101.0, original_value=101.0, original_unit="mg/dL"),
        _event("P1", dt.datetime(2026, 1, 22, 12, tzinfo=dt.UTC), "carbs", "meal", carbs_g=30.0),
        _event("P3", dt.datetime(2026, 1, 10, 12, tzinfo=dt.UTC), "bolus", "normal", units=3.0,
               tz="UTC"),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    settings = Settings(
        lake=LakeSettings(root=str(tmp_path_factory.mktemp("events") / "lake")),
        ingest=IngestSettings(pseudonym_secret=SECRET),
    )
    ingest_records(settings, _readings("P1", BERLIN, 16))
    ingest_records(settings, _readings("P2", "America/New_York", 15))
    write_event_batch(settings, "b-events", _events())
    report = run_pipeline(settings)
    assert report.status == "published", report.message
    keys = [_key(p) for p in IDS]
    identities = {_key(p): identity for p, identity in IDS.items()}
    return settings, PublishedLake(settings).current(), keys, identities


@pytest.fixture(scope="module")
def tidy(lake, tmp_path_factory):
    settings, run, keys, identities = lake
    out = {}
    for fmt in ("csv", "parquet"):
        folder = tmp_path_factory.mktemp(f"tidy-{fmt}")
        write_tidy(run, keys, None, None, folder, fmt=fmt, settings=settings,
                   identities=identities, now=NOW)  # fmt: skip
        out[fmt] = folder
    return out


def _mine(table: pa.Table, patient: str) -> pa.Table:
    return table.filter(pc.equal(table["patient_id"], IDS[patient]))


def _only(metrics: pa.Table, row_kind: str) -> pa.Table:
    return metrics.filter(pc.equal(metrics["row_kind"], row_kind))


def _day(metrics: pa.Table, patient: str, day: dt.date) -> dict:
    days = _only(_mine(metrics, patient), "day")
    (row,) = days.filter(pc.equal(days["period_start"], pa.scalar(day))).to_pylist()
    return row


def test_the_events_file_has_every_published_event_of_each_patient(lake, tidy):
    _, run, keys, _ = lake
    events = pq.read_table(tidy["parquet"] / "events.parquet")
    assert [(f.name, f.type) for f in events.schema] == [(c.name, c.type) for c in EVENTS_COLUMNS]
    for patient, key in zip(IDS, keys, strict=True):
        published = run.events(key)
        mine = _mine(events, patient)
        assert mine["time_utc"].to_pylist() == published["ts"].to_pylist()
        assert mine["kind"].to_pylist() == published["kind"].to_pylist()
        for column in ("units", "carbs_g", "duration_min", "glucose_mg_dl", "intensity"):
            assert mine[column].to_pylist() == published[column].to_pylist()
    assert _mine(events, "P2").num_rows == 0
    p1 = _mine(events, "P1").to_pylist()
    smbg = next(r for r in p1 if r["kind"] == "smbg")
    assert smbg["time_local"] == dt.datetime(2026, 1, 7, 0, 30, tzinfo=dt.UTC).replace(tzinfo=None)
    assert smbg["local_date"] == dt.date(2026, 1, 7)
    assert smbg["tz"] == BERLIN
    exercise = next(r for r in p1 if r["kind"] == "exercise")
    assert (exercise["duration_min"], exercise["intensity"]) == (45.0, "medium")


def test_a_notes_text_is_exported_where_the_lake_holds_it_and_guarded_in_csv(tidy):
    events = pq.read_table(tidy["parquet"] / "events.parquet")
    assert [n for n in events["note"].to_pylist() if n is not None] == [NOTE]
    with (tidy["csv"] / "events.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["note"] for r in rows if r["kind"] == "note"] == ["'" + NOTE]
    assert {r["patient_id"] for r in rows} == {"P1", "P3"}


def test_without_keep_notes_no_notes_text_is_written(lake, tmp_path):
    settings, run, keys, identities = lake
    write_tidy(run, keys, None, None, tmp_path, fmt="parquet", settings=settings,
               identities=identities, keep_notes=False, now=NOW)  # fmt: skip
    events = pq.read_table(tmp_path / "events.parquet")
    assert events["note"].null_count == events.num_rows
    assert "note" in events["kind"].to_pylist()  # the note is an event still, without its text


@pytest.mark.parametrize(("flags", "notes"), [([], [NOTE]), (["--pseudonymous"], [])])
def test_the_command_leaves_notes_text_out_of_a_pseudonymous_export(lake, tmp_path, flags, notes):
    settings, *_ = lake
    env = {
        "GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": SECRET,
        "GLUCOSESTREAM_LAKE": settings.lake.root,
    }
    out = tmp_path / "tidy"
    args = ["--all", "--format", "parquet", *flags, "--out", str(out)]
    result = CliRunner().invoke(export, args, env=env)
    assert result.exit_code == 0, result.output
    events = pq.read_table(out / "events.parquet")
    assert "note" in events["kind"].to_pylist()
    assert [n for n in events["note"].to_pylist() if n is not None] == notes


def test_day_rows_carry_the_daily_metrics_event_columns(lake, tidy):
    _, run, keys, _ = lake
    metrics = pq.read_table(tidy["parquet"] / "metrics.parquet")
    for column in EVENT_COLUMNS:
        assert metrics.schema.field(column).type == run.daily().schema.field(column).type
    for patient, key in zip(IDS, keys, strict=True):
        days = _only(_mine(metrics, patient), "day")
        published = run.daily_index().patient_days(key)
        assert days["period_start"].to_pylist() == published["date"].to_pylist()
        for column in EVENT_COLUMNS:
            assert days[column].to_pylist() == published[column].to_pylist(), column
    day = _day(metrics, "P1", dt.date(2026, 1, 6))
    assert (day["bolus_u"], day["carbs_g"], day["boluses"]) == (4.5, 50.0, 1)
    assert day["readings"] > 0
    assert _day(metrics, "P1", dt.date(2026, 1, 8))["carbs_g"] is None


@pytest.mark.parametrize("day", ONLY_EVENTS_DAYS)
def test_a_day_of_events_without_readings_has_no_glucose_figure(tidy, day):
    metrics = pq.read_table(tidy["parquet"] / "metrics.parquet")
    row = _day(metrics, "P1", day)
    assert row["readings"] == 0
    assert row["carbs_g"] in (40.0, 30.0)
    glucose = ["active_pct", "mean_mg_dl", "sd_mg_dl", "cv_pct", "gmi_pct", "pct_below_54",
               "pct_below_70", "pct_70_180", "pct_above_180", "pct_above_250"]  # fmt: skip
    assert {name: row[name] for name in glucose} == dict.fromkeys(glucose)
    readings = pq.read_table(tidy["parquet"] / "readings.parquet")
    assert day not in set(readings["local_date"].to_pylist())


def test_the_newest_day_of_events_after_the_readings_is_not_complete(tidy):
    metrics = pq.read_table(tidy["parquet"] / "metrics.parquet")
    assert _day(metrics, "P1", dt.date(2026, 1, 3))["complete"] is True
    assert _day(metrics, "P1", dt.date(2026, 1, 22))["complete"] is False


def test_window_rows_are_the_summary_with_its_event_means(lake, tidy):
    _, run, keys, _ = lake
    metrics = pq.read_table(tidy["parquet"] / "metrics.parquet")
    windows = metrics.filter(pc.equal(metrics["row_kind"], "window"))
    p1 = _mine(windows, "P1").to_pylist()[0]
    summary = window_summary(run, keys[0], None, None, now=NOW)
    assert (p1["period_start"], p1["period_end"]) == (summary.start, summary.end)
    assert p1["mean_mg_dl"] == pytest.approx(summary.metrics["mean_mg_dl"])
    for column in PERIOD_EVENT_COLUMNS:
        assert p1[column] == pytest.approx(summary.event_means[column]), column
    for column in EVENT_COLUMNS:
        if column not in PERIOD_EVENT_COLUMNS:  # automated_pct is both
            assert windows[column].null_count == windows.num_rows, column  # day rows only
    # The means are over the window's days that recorded each, never a day of 0.
    days = run.daily_index().patient_days(keys[0], summary.start, summary.end)
    bolus = [d for d in days.column("bolus_u").to_pylist() if d is not None]
    assert p1["insulin_days"] == len(bolus)
    assert p1["bolus_u_per_day"] == pytest.approx(sum(bolus) / len(bolus))


def test_a_patient_with_events_and_no_readings_has_its_events_and_days(lake, tidy):
    metrics = pq.read_table(tidy["parquet"] / "metrics.parquet")
    days = _only(_mine(metrics, "P3"), "day").to_pylist()
    assert [(d["period_start"], d["readings"], d["bolus_u"], d["complete"]) for d in days] == [
        (dt.date(2026, 1, 10), 0, 3.0, True)
    ]
    readings = pq.read_table(tidy["parquet"] / "readings.parquet")
    assert _mine(readings, "P3").num_rows == 0


def test_a_window_keeps_the_events_of_its_local_days(lake, tmp_path):
    settings, run, keys, identities = lake
    window = (dt.date(2026, 1, 7), dt.date(2026, 1, 21))
    report = write_tidy(run, keys, *window, tmp_path, fmt="parquet", settings=settings,
                        identities=identities, now=NOW)  # fmt: skip
    events = pq.read_table(tmp_path / "events.parquet")
    assert [(r["kind"], r["local_date"]) for r in events.to_pylist()] == [
        ("smbg", dt.date(2026, 1, 7)),
        ("bolus", dt.date(2026, 1, 10)),
    ]
    assert report.rows["events"] == 2


def test_omop_writes_no_measurement_for_a_day_of_events_only(lake, tmp_path):
    settings, run, keys, identities = lake
    write_omop(run, keys, None, None, tmp_path, fmt="parquet", settings=settings,
               identities=identities, now=NOW)  # fmt: skip
    rows = pq.read_table(tmp_path / "measurement.parquet")
    readings = rows.filter(pc.equal(rows["measurement_source_value"], "99504-3"))
    assert readings.num_rows == run.readings(keys[:2]).num_rows
    assert not set(ONLY_EVENTS_DAYS) & set(rows["measurement_date"].to_pylist())
    drugs = pq.read_table(tmp_path / "drug_exposure.parquet")  # P1's two boluses (P3: no person)
    assert drugs["drug_exposure_start_date"].to_pylist() == [
        dt.date(2026, 1, 3),
        dt.date(2026, 1, 6),
    ]
    persons = pq.read_table(tmp_path / "person.parquet")
    assert persons["person_source_value"].to_pylist() == [IDS["P1"], IDS["P2"]]
    summary = window_summary(run, keys[0], None, None, now=NOW)
    mine = rows.filter(pc.equal(rows["person_id"], 1))
    values = dict(zip(mine["measurement_source_value"].to_pylist(),
                      mine["value_as_number"].to_pylist(), strict=False))  # fmt: skip
    assert values["97507-8"] == pytest.approx(summary.metrics["mean_mg_dl"])
    assert values["104637-4"] == pytest.approx(summary.metrics["active_pct"])


def test_fhir_writes_no_observation_for_a_day_of_events_only(lake, tmp_path):
    settings, run, keys, identities = lake
    report = write_fhir(run, keys[:1], (None, None), tmp_path / "p1.json", settings=settings,
                        identities=identities, options=FhirOptions(pdf=False), now=NOW)  # fmt: skip
    bundle = json.loads((tmp_path / "p1.json").read_text(encoding="utf-8"))
    resources = [entry["resource"] for entry in bundle["entry"]]
    instants = [r["effectiveDateTime"] for r in resources if "effectiveDateTime" in r]
    assert len(instants) == report.rows["readings"] == run.readings(keys[:1]).num_rows
    assert not {i[:10] for i in instants} & {d.isoformat() for d in ONLY_EVENTS_DAYS}
    summary = window_summary(run, keys[0], None, None, now=NOW)
    (panel,) = [r for r in resources if r.get("hasMember")]
    assert panel["effectivePeriod"] == {
        "start": summary.start.isoformat(),
        "end": summary.end.isoformat(),
    }


def test_the_fhir_summary_period_starts_on_the_first_day_with_readings(lake, tmp_path):
    settings, run, keys, identities = lake
    write_fhir(run, keys[:1], (None, None), tmp_path / "p1.json", settings=settings,
               identities=identities, options=FhirOptions(pdf=False), now=NOW)  # fmt: skip
    bundle = json.loads((tmp_path / "p1.json").read_text(encoding="utf-8"))
    (panel,) = [e["resource"] for e in bundle["entry"] if e["resource"].get("hasMember")]
    assert panel["effectivePeriod"]["start"] == START.date().isoformat()
