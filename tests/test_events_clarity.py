"""Dexcom Clarity event records (Insulin, Carbs, Exercise, Health) become raw event rows; the
expected counts and sums are worked out here from the files with the csv module only."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from glucosestream.formats.delimited import WIDTH_PROBLEM
from glucosestream.formats.detect import read_raw_rows

from .conftest import DATA, write

CLARITY = DATA / "samples" / "dexcom_clarity"
SAMPLE_14 = CLARITY / "cgm_format_Clarity_Export_synthetic_g6_14col.csv"
SAMPLE_12 = CLARITY / "cgmquantify_test_file_g6_12col.csv"
# The contract (docs/events.md): Clarity's (Event Type, Event Subtype) -> (kind, subtype).
KINDS = {
    ("Insulin", "Fast-Acting"): ("bolus", "normal"),
    ("Insulin", "Long-Acting"): ("basal", "injection"),
}


def clarity_records(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line, record) of each record after the header, read with the csv module (the samples
    hold no quoted line breaks, so a record's line is its index + 2)."""
    text = path.read_bytes().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    names = ["Index", *rows[0][1:]]  # the 14-column sample's first cell is a mangled "Index"
    return [(i + 2, dict(zip(names, row, strict=True))) for i, row in enumerate(rows[1:])]


def events_of(path: Path):
    fmt, parsed = read_raw_rows(path, "dexcom")
    assert fmt == "dexcom"
    return parsed, parsed.events.to_pylist()


def test_the_14_column_sample_yields_every_insulin_record_with_its_units():
    records = clarity_records(SAMPLE_14)
    insulin = [(n, r) for n, r in records if r["Event Type"] == "Insulin"]
    assert len(insulin) == 47
    parsed, events = events_of(SAMPLE_14)
    assert len(events) == 47
    assert [e["line"] for e in events] == [n for n, _ in insulin]
    assert [(e["kind"], e["subtype"]) for e in events] == [
        KINDS[(r["Event Type"], r["Event Subtype"])] for _, r in insulin
    ]
    assert [e["time"] for e in events] == [r["Timestamp (YYYY-MM-DDThh:mm:ss)"] for _, r in insulin]
    assert {e["device_id"] for e in events} == {"android G6"}
    assert all(e["problem"] is None for e in events)
    by_kind: Counter[str] = Counter()
    for _, r in insulin:
        by_kind[KINDS[(r["Event Type"], r["Event Subtype"])][0]] += float(r["Insulin Value (u)"])
    for kind, total in by_kind.items():
        assert sum(float(e["units"]) for e in events if e["kind"] == kind) == pytest.approx(total)
    assert Counter(e["kind"] for e in events) == Counter(
        KINDS[(r["Event Type"], r["Event Subtype"])][0] for _, r in insulin
    )
    # readings as before: every EGV; the 10 preamble and alert records skipped
    assert parsed.rows.num_rows == sum(r["Event Type"] == "EGV" for _, r in records)
    assert parsed.skipped == sum(
        r["Event Type"] not in ("EGV", "Insulin", "Carbs", "Exercise", "Health") for _, r in records
    )


def with_events(tmp_path: Path) -> Path:
    """The 12-column sample with one record of each event type appended, as Clarity writes
    them (Index, Timestamp, Event Type, Event Subtype, ..., Source Device ID, Glucose Value,
    Insulin Value, Carb Value, Duration, Rate of Change)."""
    lines = [
        "3000,2016-10-25T08:00:00,Carbs,,,,iPhone G6,,,45,,",
        "3001,2016-10-25T08:01:00,Insulin,Fast-Acting,,,iPhone G6,,4.5,,,",
        "3002,2016-10-25T22:00:00,Insulin,Long-Acting,,,iPhone G6,,18,,,",
        "3003,2016-10-25T17:00:00,Exercise,Medium,,,iPhone G6,,,,0:45:00,",
        "3004,2016-10-25T18:00:00,Exercise,Heavy,,,iPhone G6,,,,1:02:30,",
        "3005,2016-10-25T19:00:00,Exercise,Light,,,iPhone G6,,,,,",
        "3006,2016-10-25T20:00:00,Health,High Symptoms,,,iPhone G6,,,,,",
        "3007,2016-10-25T21:00:00,Health,Illness,,,iPhone G6,,,,,",
    ]
    text = SAMPLE_12.read_text(encoding="utf-8-sig").rstrip("\n") + "\n" + "\n".join(lines) + "\n"
    return write(tmp_path / "clarity12_events.csv", text)


def test_the_12_column_layout_maps_carbs_exercise_and_health(tmp_path):
    path = with_events(tmp_path)
    records = clarity_records(path)
    parsed, events = events_of(path)
    assert parsed.rows.num_rows == sum(r["Event Type"] == "EGV" for _, r in records) == 2148
    got = [
        (e["kind"], e["subtype"], e["units"], e["carbs_g"], e["duration_min"], e["intensity"])
        for e in events
    ]
    assert got == [
        ("carbs", "meal", None, "45", None, None),
        ("bolus", "normal", "4.5", None, None, None),
        ("basal", "injection", "18", None, None, None),
        ("exercise", None, None, None, "45.0", "medium"),
        ("exercise", None, None, None, "62.5", "high"),
        ("exercise", None, None, None, None, "low"),
        ("note", "high_symptoms", None, None, None, None),
        ("note", "illness", None, None, None, None),
    ]
    assert all(e["note"] is None and e["problem"] is None for e in events)
    assert [e["time"] for e in events][:2] == ["2016-10-25T08:00:00", "2016-10-25T08:01:00"]


def test_preamble_names_and_birth_date_are_never_read(tmp_path):
    parsed, events = events_of(with_events(tmp_path))
    preamble = {"Joe", "Schmoe", "1/1/1970"}
    for table in (parsed.rows, parsed.events):
        for column in table.columns:
            if pa.types.is_string(column.type):
                assert not preamble & set(column.to_pylist())
    assert not {"firstname", "lastname", "dateofbirth"} & {e["kind"] for e in events}


HEADER_14 = (
    "Index,Timestamp (YYYY-MM-DDThh:mm:ss),Event Type,Event Subtype,Patient Info,Device Info,"
    "Source Device ID,Glucose Value (mg/dL),Insulin Value (u),Carb Value (grams),"
    "Duration (hh:mm:ss),Glucose Rate of Change (mg/dL/min),Transmitter Time (Long Integer),"
    "Transmitter ID\n"
)
EGV = "{i},2026-03-01T08:{m:02d}:00,EGV,,,,android G7,{v},,,,,1000,XYZ\n"


def test_hostile_event_cells_become_problems_or_values_ingest_checks(tmp_path):
    huge = "9" * 100_000
    path = write(
        tmp_path / "hostile.csv",
        HEADER_14
        + EGV.format(i=1, m=0, v=120)
        + "2,2026-03-01T08:01:00,Insulin,Fast-Acting,,,android G7,,lots,,,,,\n"
        + f"3,2026-03-01T08:02:00,Carbs,,,,android G7,,,{huge},,,,\n"
        + "4,2026-03-01T08:03:00,Insulin,Intermediate,,,android G7,,5,,,,,\n"
        + "5,2026-03-01T08:04:00,Exercise,Light,,,android G7,,,,forty,,,\n"
        + "6,2026-03-01T08:05:00,Insulin,Fast-Acting,,,android G7,,3\n"
        + '7,2026-03-01T08:06:00,Carbs,,,,android G7,,,"12,5",,,,\n'
        + EGV.format(i=8, m=10, v=125),
    )
    parsed, events = events_of(path)
    assert parsed.rows.num_rows == 2
    assert pc.all(pc.is_null(parsed.rows["problem"])).as_py()
    got = {e["line"]: e for e in events}
    assert (got[3]["units"], got[3]["problem"]) == ("lots", None)  # ingest: not a number
    assert got[4]["carbs_g"] is None
    assert got[4]["problem"] == "the Carb Value (grams) cell has 100000 characters, not a number"
    assert got[5]["kind"] == "bolus"
    assert "subtype 'Intermediate'" in got[5]["problem"]
    assert got[6]["duration_min"] is None
    assert "'forty' is not a duration" in got[6]["problem"]
    assert (got[7]["kind"], got[7]["time"], got[7]["problem"]) == ("bolus", None, WIDTH_PROBLEM)
    assert got[8]["carbs_g"] == "12.5"  # a decimal comma, quoted


def test_a_header_without_an_amount_column_leaves_readings_whole(tmp_path):
    header = HEADER_14.replace("Insulin Value (u),", "")
    path = write(
        tmp_path / "no_insulin_column.csv",
        header
        + "1,2026-03-01T08:00:00,EGV,,,,android G7,120,,,,1000,XYZ\n"
        + "2,2026-03-01T08:01:00,Insulin,Fast-Acting,,,android G7,,,,,,\n"
        + "3,2026-03-01T08:02:00,Carbs,,,,android G7,,30,,,,\n",
    )
    parsed, events = events_of(path)
    assert parsed.rows.num_rows == 1
    assert [(e["kind"], e["units"], e["problem"]) for e in events] == [
        ("bolus", None, "no 'insulin value' column in the Clarity header"),
        ("carbs", None, None),
    ]
    assert events[1]["carbs_g"] == "30"


def test_a_file_without_event_records_has_no_events():
    _, parsed = read_raw_rows(SAMPLE_12, "dexcom")
    assert parsed.events is None
