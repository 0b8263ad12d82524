"""Every public sample export parses, with reading counts worked out here from the files with the
standard library only (csv, json, datetime), never through a GlucoseStream parser."""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import itertools
import json
import zoneinfo
from collections import Counter
from pathlib import Path

import pytest

from glucosestream.formats import detect_format
from glucosestream.ingest import ingest_path
from glucosestream.lake import RawZone
from glucosestream.readings import ReadingFlag

from .conftest import DATA, SHARED, FixedClock

SAMPLES = DATA / "samples"
DEXCOM = SAMPLES / "dexcom_clarity"
LIBRE = SAMPLES / "libreview"
CARELINK = SAMPLES / "medtronic_carelink" / "cgm_format_guardian_connect_eu_excerpt.csv"
NIGHTSCOUT = SAMPLES / "nightscout"
TIDEPOOL = SAMPLES / "tidepool" / "tidepool_cbg_doc_examples.json"
FHIR = SAMPLES / "fhir_cgm"
IGLU = SHARED / "samples" / "iglu"


# Two synthetic samples are dated April 1961 (Gagarin's flight), before the plausible range that
# starts in 1990 (readings.EARLIEST_READING_AT): they are read here with their years moved to
# 2021 (the same weekdays and no daylight-saving change in those weeks in either year), and
# test_samples_dated_1961_are_quarantined_as_implausible shows what the originals give.
SHIFTED_1961 = {
    "cgm_format_Clarity_Export_synthetic_g6_14col.csv": ("1961-", "2021-"),
    "cgm_format_FreeStyle_Libre_3_synthetic_mgdl_ddmmyyyy.csv": ("-1961 ", "-2021 "),
}


@pytest.fixture
def clock():
    """After every sample's newest reading (the Nightscout samples are from April 2026)."""
    return FixedClock(dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC))


def sample(path, tmp_path):
    """``path``, or a copy with its 1961 dates moved to 2021 (see ``SHIFTED_1961``)."""
    if path.name not in SHIFTED_1961:
        return path
    old, new = SHIFTED_1961[path.name]
    copy = tmp_path / path.name
    copy.write_bytes(path.read_bytes().replace(old.encode(), new.encode()))
    return copy


def readings_of(settings, report):
    batch = next(
        b for b in RawZone(Path(settings.lake.root)).list_batches() if b.batch_id == report.batch_id
    )
    return batch.readings().to_pylist()


def accounted(report):
    return report.received == report.accepted + report.duplicates + report.quarantined


def csv_rows(path, delimiter=","):
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f, delimiter=delimiter))


# --- Dexcom Clarity ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["cgmquantify_test_file_g6_12col.csv", "cgm_format_Clarity_Export_synthetic_g6_14col.csv"],
)
def test_dexcom_clarity_samples_give_every_egv_once(settings, clock, tmp_path, name):
    path = sample(DEXCOM / name, tmp_path)
    rows = csv_rows(path)[1:]
    egvs = [r for r in rows if r[2] == "EGV"]  # column 3 is Event Type in both layouts
    lows = [r for r in egvs if r[7] == "Low"]  # column 8 is the glucose value
    assert detect_format(path) == "dexcom"
    report = ingest_path(settings, path, patient_id="P-dexcom", tz="America/New_York", now=clock)
    assert (report.format, report.received, report.accepted) == ("dexcom", len(egvs), len(egvs))
    assert report.quarantined == report.duplicates == 0
    readings = readings_of(settings, report)
    flagged = [r for r in readings if r["flags"] & ReadingFlag.SENSOR_LOW]
    assert len(flagged) == len(lows)
    assert {(r["glucose_mg_dl"], r["original_unit"]) for r in flagged} <= {(40.0, "mg/dL")}
    numeric = sorted(float(r[7]) for r in egvs if r[7] not in ("Low", "High"))
    unflagged = sorted(r["glucose_mg_dl"] for r in readings if not r["flags"])
    assert unflagged == numeric


def test_dexcom_12_column_sample_sets_local_times_in_the_given_zone(settings, clock):
    path = DEXCOM / "cgmquantify_test_file_g6_12col.csv"
    first_egv = next(r for r in csv_rows(path)[1:] if r[2] == "EGV")
    local = dt.datetime.fromisoformat(first_egv[1]).replace(
        tzinfo=dt.timezone(dt.timedelta(hours=-4))
    )
    report = ingest_path(settings, path, patient_id="P", tz="America/New_York", now=clock)
    readings = readings_of(settings, report)
    assert min(r["ts"] for r in readings) == local  # 2016-10-24 is EDT, UTC-4
    assert {r["tz"] for r in readings} == {"America/New_York"}


# --- LibreView ---------------------------------------------------------------------------------


def local_time(text):
    """A LibreView day-first local time, as an aware datetime in a fixed zone (compared only with
    others of the same file)."""
    return dt.datetime.strptime(text, "%d-%m-%Y %H:%M").replace(tzinfo=dt.UTC)


def libre_expectation(path):
    """(received, accepted, duplicates) under the documented scan rule, worked out with stdlib."""
    rows = csv_rows(path)
    start = next(
        i for i, r in enumerate(rows) if len(r) > 3 and r[3] in ("Record Type", "Tipo de registro")
    )
    historic, scans = [], []
    for row in rows[start + 1 :]:
        if row[3] == "0":
            historic.append((row[1], local_time(row[2])))
        elif row[3] == "1":
            scans.append((row[1], local_time(row[2])))
    by_device = {}
    for serial, at in historic:
        by_device.setdefault(serial, []).append(at)
    interval = {}
    for serial, times in by_device.items():
        times.sort()
        gaps = Counter(b - a for a, b in itertools.pairwise(times) if b > a)
        interval[serial] = min(gaps, key=lambda g: (-gaps[g], g))
    seen = set()
    duplicates = 0
    for serial, at in historic:
        duplicates += (serial, at) in seen
        seen.add((serial, at))
    for serial, at in scans:
        times = by_device.get(serial, [])
        at_or_after = bisect.bisect_left(times, at)
        nearest = times[max(0, at_or_after - 1) : at_or_after + 1]
        covered = serial in interval and any(abs(at - h) < interval[serial] for h in nearest)
        duplicates += covered or (serial, at) in seen
        seen.add((serial, at))
    received = len(historic) + len(scans)
    return received, received - duplicates, duplicates


@pytest.mark.parametrize(
    ("name", "unit"),
    [
        ("cgm_format_FreeStyle_Libre_3_synthetic_mgdl_ddmmyyyy.csv", "mg/dL"),
        ("cgm_data_processor_sample_libreview_mmol_uk.csv", "mmol/L"),
        ("glucopy_prueba_1_spanish_mgdl.csv", "mg/dL"),
    ],
)
def test_libreview_samples_count_historic_readings_and_only_uncovered_scans(
    settings, clock, tmp_path, name, unit
):
    path = sample(LIBRE / name, tmp_path)
    received, accepted, duplicates = libre_expectation(path)
    assert detect_format(path) == "libreview"
    report = ingest_path(settings, path, patient_id="P-libre", tz="UTC", now=clock)
    assert (report.received, report.accepted, report.duplicates, report.quarantined) == (
        received,
        accepted,
        duplicates,
        0,
    )
    readings = readings_of(settings, report)
    assert {r["original_unit"] for r in readings} == {unit}
    scans_kept = sum(1 for r in readings if r["flags"] & ReadingFlag.SCAN)
    historic = sum(1 for r in readings if not r["flags"] & ReadingFlag.SCAN)
    assert scans_kept == accepted - historic


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        (DEXCOM / "cgm_format_Clarity_Export_synthetic_g6_14col.csv", "dexcom"),
        (LIBRE / "cgm_format_FreeStyle_Libre_3_synthetic_mgdl_ddmmyyyy.csv", "libreview"),
    ],
)
def test_samples_dated_1961_are_quarantined_as_implausible(settings, clock, path, fmt):
    """Readings before 1990 are clock errors or shifted dates: received, each quarantined."""
    report = ingest_path(settings, path, patient_id="P-1961", tz="UTC", now=clock)
    assert report.format == fmt
    assert report.received > 0
    assert (report.accepted, report.quarantined) == (0, report.received)
    assert dict(report.top_reasons) == {"time outside the plausible range": report.received}


def test_libreview_mmol_values_are_converted_and_kept(settings, clock):
    path = LIBRE / "cgm_data_processor_sample_libreview_mmol_uk.csv"
    first = csv_rows(path)[2]  # the first record after the title and the header
    report = ingest_path(settings, path, patient_id="P", tz="Europe/London", now=clock)
    bst = dt.timezone(dt.timedelta(hours=1))  # September in London
    instant = dt.datetime.strptime(first[2], "%d-%m-%Y %H:%M").replace(tzinfo=bst)
    (reading,) = [r for r in readings_of(settings, report) if r["ts"] == instant]
    assert reading["original_value"] == float(first[4])
    assert reading["glucose_mg_dl"] == pytest.approx(float(first[4]) * 18.0156)


# --- CareLink, Nightscout, Tidepool, FHIR --------------------------------------------------------


def test_carelink_sample_reads_the_sensor_section(settings, clock):
    rows = csv_rows(CARELINK, ";")
    sensor_start = next(i for i, r in enumerate(rows) if r[:1] == ["-------"] and r[2] == "Sensor")
    header = rows[sensor_start + 1]
    column = header.index("Sensor Glucose (mg/dL)")
    records = [r for r in rows[sensor_start + 2 :] if len(r) > column and r[column].strip()]
    assert detect_format(CARELINK) == "carelink"
    report = ingest_path(
        settings, CARELINK, patient_id="P-carelink", tz="Europe/Bucharest", now=clock
    )
    assert (report.received, report.accepted, report.quarantined) == (len(records), len(records), 0)
    readings = readings_of(settings, report)
    assert sorted(r["glucose_mg_dl"] for r in readings) == sorted(float(r[column]) for r in records)
    bucharest = zoneinfo.ZoneInfo("Europe/Bucharest")
    newest = max(
        dt.datetime.strptime(f"{r[1]} {r[2]}", "%Y/%m/%d %H:%M:%S").replace(tzinfo=bucharest)
        for r in records
    )
    assert max(r["ts"] for r in readings) == newest


def test_nightscout_entries_json_csv_and_exporter_csv(settings, clock):
    entries = json.loads((NIGHTSCOUT / "cgm_format_nightscout_entries.json").read_text())
    sgv = [e for e in entries if e.get("type") == "sgv"]
    api_csv = csv_rows(NIGHTSCOUT / "cgm_format_nightscout_entries.csv")
    exporter = csv_rows(NIGHTSCOUT / "cgm_format_nightscout-data-with-treatments.csv")
    end = next(i for i, r in enumerate(exporter) if i > 0 and (not r or r[0].startswith("#")))
    exporter_sgv = [r for r in exporter[2:end] if r and r[3] == "sgv"]
    expected = {
        "cgm_format_nightscout_entries.json": len(sgv),
        "cgm_format_nightscout_entries.csv": len(api_csv),
        "cgm_format_nightscout-data-with-treatments.csv": len(exporter_sgv),
    }
    instants = {}
    for name, count in expected.items():
        assert detect_format(NIGHTSCOUT / name) == "nightscout"
        report = ingest_path(
            settings, NIGHTSCOUT / name, patient_id="P-ns", tz="America/Chicago", now=clock
        )
        assert (report.received, report.accepted, report.quarantined) == (count, count, 0), name
        instants[name] = {r["ts"] for r in readings_of(settings, report)}
    from_epoch = {dt.datetime.fromtimestamp(e["date"] / 1000, dt.UTC) for e in sgv}
    from_csv = {dt.datetime.fromisoformat(r[0].replace("Z", "+00:00")) for r in api_csv}
    assert instants["cgm_format_nightscout_entries.json"] == from_epoch
    assert instants["cgm_format_nightscout_entries.csv"] == from_csv
    chicago = zoneinfo.ZoneInfo("America/Chicago")
    from_exporter = {
        dt.datetime.strptime(f"{r[0]} {r[1]}", "%m/%d/%Y %I:%M:%S %p").replace(tzinfo=chicago)
        for r in exporter_sgv
    }
    assert instants["cgm_format_nightscout-data-with-treatments.csv"] == from_exporter


def test_a_nightscout_profile_alone_is_refused_saying_nothing_was_ingested(settings):
    from glucosestream.errors import InvalidInput

    documents = json.loads((NIGHTSCOUT / "cgm_format_nightscout_profile.json").read_text())
    with pytest.raises(InvalidInput, match=f"none of its {len(documents)} records") as err:
        ingest_path(settings, NIGHTSCOUT / "cgm_format_nightscout_profile.json", patient_id="P")
    assert "nothing was ingested" in str(err.value)
    assert not list(RawZone(Path(settings.lake.root)).list_batches())


def test_the_nightscout_treatments_sample_is_ingested_as_events(settings, clock):
    documents = json.loads((NIGHTSCOUT / "cgm_format_nightscout_treatments.json").read_text())
    report = ingest_path(
        settings, NIGHTSCOUT / "cgm_format_nightscout_treatments.json", patient_id="P", now=clock
    )
    assert report.received == 0
    # Temporary Targets are no events; every other document gives at least one
    targets = sum(d.get("eventType") == "Temporary Target" for d in documents)
    assert report.events_received >= len(documents) - targets
    assert report.events_received == (
        report.events_accepted + report.events_duplicates + report.events_quarantined
    )


def test_tidepool_cbg_examples_with_out_of_range_clamps(settings, clock):
    examples = json.loads(TIDEPOOL.read_text())
    cbg = [d for d in examples.values() if d["type"] == "cbg"]
    keys = Counter((d["deviceId"], d["time"]) for d in cbg)
    assert detect_format(TIDEPOOL) == "tidepool"
    report = ingest_path(settings, TIDEPOOL, patient_id="P-tp", now=clock)
    assert (report.received, report.accepted, report.duplicates) == (
        len(cbg),
        len(keys),
        len(cbg) - len(keys),
    )
    readings = {r["ts"]: r for r in readings_of(settings, report)}
    low = examples["out_of_range_low"]  # first of its key, so it is the one kept
    kept = readings[dt.datetime.fromisoformat(low["time"].replace("Z", "+00:00"))]
    assert kept["flags"] == ReadingFlag.SENSOR_LOW
    assert kept["glucose_mg_dl"] == low["annotations"][0]["threshold"]
    client = examples["client"]
    converted = readings[dt.datetime.fromisoformat(client["time"].replace("Z", "+00:00"))]
    assert converted["original_unit"] == "mmol/L"
    assert converted["glucose_mg_dl"] == pytest.approx(client["value"] * 18.0156)


@pytest.mark.parametrize(
    ("name", "count"),
    [
        ("cgm_data_submission_bundle.json", None),
        ("observation_sensor_reading_mgdl.json", 1),
        ("observation_sensor_reading_mmol.json", 1),
    ],
)
def test_fhir_sensor_reading_observations(settings, clock, name, count):
    document = json.loads((FHIR / name).read_text())
    resources = [e["resource"] for e in document.get("entry", [])] or [document]
    sensor = [
        r
        for r in resources
        if r["resourceType"] == "Observation"
        and {c["code"] for c in r["code"]["coding"]} & {"99504-3", "105272-9"}
    ]
    assert count is None or len(sensor) == count
    assert detect_format(FHIR / name) == "fhir"
    report = ingest_path(settings, FHIR / name, now=clock)  # the subject reference is the patient
    assert (report.received, report.accepted, report.quarantined) == (len(sensor), len(sensor), 0)
    readings = readings_of(settings, report)
    expected = sorted(
        r["valueQuantity"]["value"] * (18.0156 if r["valueQuantity"]["code"] == "mmol/L" else 1)
        for r in sensor
    )
    assert sorted(r["glucose_mg_dl"] for r in readings) == pytest.approx(expected)


@pytest.mark.skipif(not IGLU.is_dir(), reason="iglu's GPL sample data is read from ../shared only")
@pytest.mark.parametrize("name", ["example_data_1_subject.csv", "example_data_5_subject.csv"])
def test_iglu_plain_csv_samples(settings, clock, name):
    rows = csv_rows(IGLU / name)[1:]
    assert detect_format(IGLU / name) == "csv"
    report = ingest_path(settings, IGLU / name, tz="UTC", now=clock)
    assert (report.received, report.accepted, report.quarantined) == (len(rows), len(rows), 0)
    assert report.patients == len({r[0] for r in rows})
    assert accounted(report)


def test_nightscout_samples_keep_each_entrys_direction(settings, clock):
    """Issue 17: the uploader's direction is kept per reading, as the file has it (counted
    here with json and csv only)."""
    entries = json.loads((NIGHTSCOUT / "cgm_format_nightscout_entries.json").read_text())
    by_instant = {
        dt.datetime.fromtimestamp(e["date"] / 1000, dt.UTC): e.get("direction")
        for e in entries
        if e.get("type") == "sgv"
    }
    api_csv = {
        dt.datetime.fromisoformat(r[0].replace("Z", "+00:00")): r[3] or None
        for r in csv_rows(NIGHTSCOUT / "cgm_format_nightscout_entries.csv")
    }
    for name, expected in (
        ("cgm_format_nightscout_entries.json", by_instant),
        ("cgm_format_nightscout_entries.csv", api_csv),
    ):
        report = ingest_path(settings, NIGHTSCOUT / name, patient_id="P-ns", now=clock)
        got = {r["ts"]: r["direction"] for r in readings_of(settings, report)}
        assert got == expected, name
        assert Counter(got.values())["Flat"] > 100  # the files hold real arrows, not NONE
