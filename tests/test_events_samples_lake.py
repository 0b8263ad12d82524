"""The public samples' treatment rows, ingested and published: Dexcom Clarity, Nightscout
treatments and Tidepool's documented examples reach curated.events with the doses and carbs the
files hold (counted and summed here from the files themselves, with csv and json), each event
accounted for by ingest."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path

import pytest

from glucosestream.ingest import ingest_path
from glucosestream.lake import open_lakehouse, open_metadata
from glucosestream.pipeline import run_pipeline
from glucosestream.pipeline.table_registry import TABLES

from .conftest import DATA

SAMPLES = DATA / "samples"


def published_events(settings) -> list[dict]:
    published = open_metadata(settings.lake).published()
    lake = open_lakehouse(settings.lake, TABLES)
    return lake.read_table("events", published.of("events")).to_pylist()


def ingest_and_run(settings, path: Path, tz: str) -> tuple[object, list[dict]]:
    report = ingest_path(settings, path, patient_id="P-sample", tz=tz)
    assert report.events_received == (
        report.events_accepted + report.events_duplicates + report.events_quarantined
    )
    run = run_pipeline(settings)
    assert run.status == "published"
    events = published_events(settings)
    assert len(events) == report.events_accepted
    return report, events


def sums(events: list[dict], kind: str, subtype: str | None = None) -> tuple[int, float]:
    mine = [e for e in events if e["kind"] == kind and subtype in (None, e["subtype"])]
    column = {"bolus": "units", "basal": "units", "carbs": "carbs_g"}[kind]
    return len(mine), math.fsum(e[column] for e in mine)


def test_the_clarity_samples_insulin_rows_reach_curated_events(settings, tmp_path):
    # The sample is dated April 1961, before the plausible range: moved to 2021, as
    # tests/test_formats_samples.py reads it (same weekdays, no clock change those weeks).
    source = SAMPLES / "dexcom_clarity" / "cgm_format_Clarity_Export_synthetic_g6_14col.csv"
    path = tmp_path / source.name
    path.write_bytes(source.read_bytes().replace(b"1961-", b"2021-"))
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = [r for r in csv.reader(f)][1:]
    insulin = [r for r in rows if r[2] == "Insulin"]  # Event Type, Event Subtype, Insulin Value
    fast = [float(r[8]) for r in insulin if r[3] == "Fast-Acting"]
    long = [float(r[8]) for r in insulin if r[3] == "Long-Acting"]
    assert len(fast) + len(long) == len(insulin) > 0
    report, events = ingest_and_run(settings, path, "America/New_York")
    assert report.events_quarantined == 0
    assert sums(events, "bolus", "normal") == (len(fast), pytest.approx(math.fsum(fast)))
    assert sums(events, "basal", "injection") == (len(long), pytest.approx(math.fsum(long)))
    assert {e["tz"] for e in events} == {"America/New_York"}


def test_the_nightscout_treatments_sample_reaches_curated_events(settings):
    path = SAMPLES / "nightscout" / "cgm_format_nightscout_treatments.json"
    documents = json.loads(path.read_text(encoding="utf-8"))
    insulin = [d["insulin"] for d in documents if (d.get("insulin") or 0) > 0]
    carbs = [d["carbs"] for d in documents if (d.get("carbs") or 0) > 0]
    temps = [d for d in documents if d["eventType"] == "Temp Basal" and d.get("duration")]
    kinds = Counter(d["eventType"] for d in documents)
    report, events = ingest_and_run(settings, path, "UTC")
    assert report.received == 0  # treatments only: no readings
    assert sums(events, "bolus") == (len(insulin), pytest.approx(math.fsum(insulin)))
    assert sums(events, "carbs") == (len(carbs), pytest.approx(math.fsum(carbs)))
    basal = [e for e in events if e["kind"] == "basal"]
    assert len(basal) == len(temps)
    assert {e["subtype"] for e in basal} == {"automated"}  # iAPS, a closed loop, entered them
    device = Counter(e["subtype"] for e in events if e["kind"] == "device")
    assert device["sensor_start"] == kinds["Sensor Start"]
    assert device["site_change"] == kinds["Site Change"]
    assert device["cartridge_change"] == kinds["Insulin Change"]
    automatic = [e for e in events if e["kind"] == "bolus" and e["subtype"] == "automatic"]
    assert len(automatic) >= kinds["SMB"]


def test_tidepools_documented_examples_reach_curated_events(settings):
    path = SAMPLES / "tidepool" / "tidepool_event_doc_examples.json"
    examples = json.loads(path.read_text(encoding="utf-8"))
    report, events = ingest_and_run(settings, path, "UTC")
    # One example, a pen dose without an acting type, cannot say bolus or basal: quarantined.
    assert report.events_quarantined == 1
    kinds = {e["kind"] for e in events}
    assert {"bolus", "basal", "carbs", "smbg", "ketone", "exercise", "device"} <= kinds
    types = Counter(d["type"] for d in examples.values())
    assert types["food"] > 0
    assert len(events) == report.events_accepted > len(examples) // 2
