"""Nightscout treatments become raw event rows (contract section 1): the public iAPS sample,
the exporter CSV's ``# TREATMENTS`` section, each eventType of the table, and hostile input."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glucosestream.formats.detect import detect_format, read_raw_rows
from glucosestream.formats.event_rows import RAW_EVENT_SCHEMA
from glucosestream.formats.nightscout import treatments_from_records

SAMPLES = Path(__file__).parent / "data" / "samples" / "nightscout"
TREATMENTS = SAMPLES / "cgm_format_nightscout_treatments.json"
EXPORTER = SAMPLES / "cgm_format_nightscout-data-with-treatments.csv"
BOLUS_TYPES = {"Meal Bolus", "Snack Bolus", "Bolus", "Correction Bolus"}


def rows_of(records, first_line=1):
    parsed = treatments_from_records(records, first_line)
    assert parsed.rows.num_rows == 0
    assert parsed.events.schema == RAW_EVENT_SCHEMA
    return parsed.events.to_pylist(), parsed.skipped


def brief(rows):
    """Each row as (kind, subtype, and the amount columns it fills)."""
    amounts = ("units", "rate_u_h", "duration_min", "carbs_g", "glucose", "unit", "note")
    return [
        (r["kind"], r["subtype"], {k: r[k] for k in amounts if r[k] is not None}, r["problem"])
        for r in rows
    ]


def expected_kind(document):
    """The table of contract section 1, written out for the eventTypes the iAPS sample has."""
    event_type = document["eventType"]
    if event_type == "Temporary Target":
        return []
    if event_type == "SMB" or (
        event_type in BOLUS_TYPES and document.get("bolus", {}).get("isSMB") is True
    ):
        return [("bolus", "automatic")] + [("carbs", "meal")] * bool(document.get("carbs"))
    if event_type in BOLUS_TYPES:
        return [("bolus", "normal")] + [("carbs", "meal")] * bool(document.get("carbs"))
    return [
        {
            "Sensor Start": ("device", "sensor_start"),
            "Temp Basal": ("basal", "automated"),  # iAPS, a closed loop, entered them
            "Carb Correction": ("carbs", "correction"),
            "Site Change": ("device", "site_change"),
            "Insulin Change": ("device", "cartridge_change"),
        }[event_type]
    ]


def test_the_iaps_sample_becomes_events_by_the_contract_table():
    documents = json.loads(TREATMENTS.read_text())
    assert detect_format(TREATMENTS) == "nightscout"
    fmt, parsed = read_raw_rows(TREATMENTS)
    assert (fmt, parsed.rows.num_rows) == ("nightscout", 0)
    rows = parsed.events.to_pylist()
    expected = Counter(kind for d in documents for kind in expected_kind(d))
    assert Counter((r["kind"], r["subtype"]) for r in rows) == expected
    assert parsed.skipped == sum(d["eventType"] == "Temporary Target" for d in documents)
    assert all(r["problem"] is None for r in rows)
    # Each row keeps its document's line (1-based index), time, device and amounts.
    by_line = {i: d for i, d in enumerate(documents, start=1)}
    for row in rows:
        document = by_line[row["line"]]
        assert row["time"] == document["created_at"]
        assert row["device_id"] == document["enteredBy"]
        if row["kind"] == "bolus":
            assert float(row["units"]) == document["insulin"]
        elif row["kind"] == "basal":
            assert float(row["rate_u_h"]) == document["absolute"]
            assert float(row["duration_min"]) == document["duration"]
        elif row["kind"] == "carbs":
            assert float(row["carbs_g"]) == document["carbs"]
    boluses = [d for d in documents if d["eventType"] in BOLUS_TYPES | {"SMB"}]
    insulin = sum(float(r["units"]) for r in rows if r["kind"] == "bolus")
    assert insulin == pytest.approx(sum(d["insulin"] for d in boluses))


def test_the_exporter_csv_treatments_section_becomes_events():
    records = list(csv.reader(EXPORTER.read_text().splitlines()))
    start = next(i for i, r in enumerate(records) if r and r[0].startswith("# TREATMENTS"))
    header = records[start + 1]
    section = [dict(zip(header, r, strict=True)) for r in records[start + 2 :] if r]
    _, parsed = read_raw_rows(EXPORTER)
    rows = parsed.events.to_pylist()
    mapped = {
        "SMB": ("bolus", "automatic", "Insulin (U)", "units"),
        "Bolus": ("bolus", "normal", "Insulin (U)", "units"),
        "Carb Correction": ("carbs", "correction", "Carbs (g)", "carbs_g"),
    }
    expected = [
        (mapped[r["Event Type"]][:2], r[mapped[r["Event Type"]][2]], f"{r['Date']} {r['Time']}")
        for r in section
        if r["Event Type"] in mapped
    ]
    got = [((r["kind"], r["subtype"]), r["units"] or r["carbs_g"], r["time"]) for r in rows]
    assert got == expected[::-1]  # the export is newest first; events come oldest first
    # Temp Basal rows carry no rate in this export: skipped, as are no other rows.
    assert parsed.skipped == sum(r["Event Type"] == "Temp Basal" for r in section)
    assert {r["Event Type"] for r in section} <= set(mapped) | {"Temp Basal"}
    assert all(r["problem"] is None for r in rows)
    assert parsed.rows.num_rows > 0  # the entries are still read as readings


T = "2026-03-01T12:00:00.000Z"


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            {"eventType": "Meal Bolus", "insulin": 4.5, "carbs": 45},
            [
                ("bolus", "normal", {"units": "4.5"}, None),
                ("carbs", "meal", {"carbs_g": "45"}, None),
            ],
        ),
        (
            {"eventType": "Snack Bolus", "insulin": 1, "carbs": 0},
            [("bolus", "normal", {"units": "1"}, None)],
        ),
        (
            {"eventType": "Correction Bolus", "insulin": "2.0", "isSMB": True},
            [("bolus", "automatic", {"units": "2.0"}, None)],
        ),
        (
            {"eventType": "Bolus", "insulin": 0.3, "automatic": True},
            [("bolus", "automatic", {"units": "0.3"}, None)],
        ),
        ({"eventType": "SMB", "insulin": 0.2}, [("bolus", "automatic", {"units": "0.2"}, None)]),
        (
            {"eventType": "Meal Bolus", "carbs": 30, "insulin": None},
            [("carbs", "meal", {"carbs_g": "30"}, None)],
        ),
        (
            {
                "eventType": "Combo Bolus",
                "enteredinsulin": 6,
                "insulin": 3.6,
                "splitNow": 60,
                "splitExt": 40,
                "relative": 1.2,
                "duration": 120,
            },
            [
                ("bolus", "normal", {"units": "3.6"}, None),
                ("bolus", "extended", {"units": "2.4", "duration_min": "120"}, None),
            ],
        ),
        (
            {"eventType": "Combo Bolus", "insulin": 0, "relative": 1.5, "duration": 60},
            [("bolus", "extended", {"units": "1.5", "duration_min": "60"}, None)],
        ),
        (
            {"eventType": "Carb Correction", "carbs": 15},
            [("carbs", "correction", {"carbs_g": "15"}, None)],
        ),
        (
            {"eventType": "Temp Basal", "absolute": 0.8, "rate": 0.5, "duration": 30},
            [("basal", "automated", {"rate_u_h": "0.8", "duration_min": "30"}, None)],
        ),
        (
            {"eventType": "Temp Basal", "rate": 0, "duration": 30},
            [("basal", "automated", {"rate_u_h": "0", "duration_min": "30"}, None)],
        ),
        (
            {"eventType": "Temp Basal", "percent": -50, "duration": 30},
            [
                (
                    "basal",
                    "automated",
                    {"duration_min": "30"},
                    "a temporary basal given only as a percent of the profile's rate",
                )
            ],
        ),
        (
            {"eventType": "Exercise", "duration": 45},
            [("exercise", None, {"duration_min": "45"}, None)],
        ),
        ({"eventType": "Sensor Start"}, [("device", "sensor_start", {}, None)]),
        ({"eventType": "Sensor Change"}, [("device", "sensor_start", {}, None)]),
        ({"eventType": "Sensor Stop"}, [("device", "sensor_stop", {}, None)]),
        ({"eventType": "Site Change"}, [("device", "site_change", {}, None)]),
        ({"eventType": "Insulin Change"}, [("device", "cartridge_change", {}, None)]),
        (
            {"eventType": "Pump Suspend", "duration": 20},
            [("device", "pump_suspend", {"duration_min": "20"}, None)],
        ),
        ({"eventType": "Suspend Pump"}, [("device", "pump_suspend", {}, None)]),
        ({"eventType": "Resume Pump"}, [("device", "pump_resume", {}, None)]),
        (
            {"eventType": "BG Check", "glucose": 6.2, "units": "mmol", "glucoseType": "Finger"},
            [("smbg", None, {"glucose": "6.2", "unit": "mmol/L"}, None)],
        ),
        (
            {"eventType": "BG Check", "glucose": 112, "units": "mg/dl"},
            [("smbg", None, {"glucose": "112", "unit": "mg/dL"}, None)],
        ),
        ({"eventType": "Note", "notes": "pizza"}, [("note", None, {"note": "pizza"}, None)]),
        ({"eventType": "Announcement", "notes": "x"}, [("note", None, {"note": "x"}, None)]),
        ({"eventType": "Carbs", "carbs": 20}, [("carbs", "meal", {"carbs_g": "20"}, None)]),
        ({"eventType": "<none>", "insulin": 2}, [("bolus", "normal", {"units": "2"}, None)]),
    ],
)
def test_each_event_type_of_the_table(document, expected):
    rows, skipped = rows_of([{"created_at": T, "enteredBy": "AndroidAPS", **document}])
    assert (brief(rows), skipped) == (expected, 0)
    assert {(r["line"], r["time"], r["device_id"]) for r in rows} == {(1, T, "AndroidAPS")}


@pytest.mark.parametrize(
    ("entered_by", "subtype"),
    [
        ("openaps://AndroidAPS", "automated"),
        ("loop://iPhone", "automated"),
        ("iAPS", "automated"),
        ("Trio", "automated"),
        ("careportal", "temporary"),  # a person set it
        ("", "temporary"),
        (None, "temporary"),
    ],
)
def test_a_temp_basal_is_automated_when_a_closed_loop_entered_it(entered_by, subtype):
    document = {"eventType": "Temp Basal", "absolute": 0.8, "duration": 30}
    rows, _ = rows_of([{"created_at": T, "enteredBy": entered_by, **document}])
    assert [(r["kind"], r["subtype"]) for r in rows] == [("basal", subtype)]


@pytest.mark.parametrize(
    "document",
    [
        {"eventType": "Temporary Target", "targetTop": 140, "duration": 60},
        {"eventType": "Profile Switch", "profile": "Default"},
        {"eventType": "OpenAPS Offline", "duration": 30},
        {"eventType": "Question", "notes": "?"},
        {"eventType": "Temp Basal", "duration": 0},  # the end of a temporary basal
        {"eventType": "Temp Basal", "absolute": 1.0, "duration": 0},
        {"eventType": "Temp Basal", "duration": 30},  # no rate at all
        {"eventType": "D.A.D. Alert", "insulin": 0, "carbs": None},
    ],
)
def test_skipped_event_types(document):
    assert rows_of([{"created_at": T, **document}]) == ([], 1)


def test_time_falls_back_to_timestamp_then_date():
    ms = 1_772_366_400_000  # 2026-03-01T12:00:00Z
    rows, _ = rows_of(
        [
            {"eventType": "Site Change", "timestamp": ms},
            {"eventType": "Site Change", "timestamp": "2026-03-01T13:00:00+01:00"},
            {"eventType": "Site Change", "date": ms},
            {"eventType": "Site Change", "date": 1e300},
            {"eventType": "Site Change"},
        ],
        first_line=7,
    )
    assert [(r["line"], r["time"]) for r in rows] == [
        (7, "2026-03-01T12:00:00.000+00:00"),
        (8, "2026-03-01T13:00:00+01:00"),
        (9, "2026-03-01T12:00:00.000+00:00"),
        (10, "1e+300"),
        (11, None),
    ]


def test_hostile_records_are_rows_with_problems_never_exceptions():
    rows, skipped = rows_of(
        [
            ["not", "an", "object"],
            "text",
            None,
            {"eventType": "Bolus", "insulin": "lots"},
            {"eventType": "Bolus", "insulin": "9" * 5000},
            {"eventType": "Meal Bolus", "insulin": {"nested": 1}, "carbs": "x" * 100},
            {"eventType": "Bolus"},
            {"eventType": "Carb Correction", "carbs": 0},
            {"eventType": ["Bolus"], "insulin": 1},
        ]
    )
    assert skipped == 0
    assert brief(rows) == [
        ("", None, {}, "a treatment must be a JSON object, not an array"),
        ("", None, {}, "a treatment must be a JSON object, not a string"),
        ("", None, {}, "a treatment must be a JSON object, not null"),
        ("bolus", "normal", {"units": "lots"}, None),  # ingest: not a number
        ("bolus", "normal", {}, "the insulin field has 5000 characters, not a number"),
        ("bolus", "normal", {"units": '{"nested": 1}'}, None),
        ("carbs", "meal", {}, "the carbs field has 100 characters, not a number"),
        ("bolus", "normal", {}, "a bolus treatment with neither insulin nor carbs"),
        ("carbs", "correction", {}, "a carb correction with no carbs"),
        ("bolus", "normal", {"units": "1"}, None),  # an eventType that is no string: unknown
    ]
    assert [r["line"] for r in rows] == [1, 2, 3, 4, 5, 6, 6, 7, 8, 9]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = st.sampled_from(
    [
        "eventType",
        "insulin",
        "carbs",
        "duration",
        "absolute",
        "rate",
        "percent",
        "glucose",
        "units",
        "notes",
        "created_at",
        "timestamp",
        "date",
        "enteredBy",
        "enteredinsulin",
        "relative",
        "isSMB",
        "automatic",
        "bolus",
    ]
)
EVENT_TYPES = st.sampled_from(
    ["Meal Bolus", "SMB", "Combo Bolus", "Temp Basal", "BG Check", "Note", "Exercise", "Bogus"]
)


@settings(max_examples=30, deadline=None)
@given(
    records=st.lists(
        st.dictionaries(FIELDS, JSON_VALUES, max_size=6).flatmap(
            lambda d: EVENT_TYPES.map(lambda t: {"eventType": t, **d})
        )
        | JSON_VALUES,
        max_size=6,
    )
)
def test_any_json_records_are_events_or_skipped(records):
    rows, skipped = rows_of(records)
    lines = {r["line"] for r in rows}
    assert len(lines) + skipped == len(records)
    assert lines <= set(range(1, len(records) + 1))


def test_a_treatments_file_is_detected_whatever_its_first_item(tmp_path):
    path = tmp_path / "treatments.json"
    documents = [
        7,
        {"eventType": "Meal Bolus", "insulin": 2, "created_at": T, "deviceId": "x"},
        {"eventType": "Temporary Target", "created_at": T},
    ]
    path.write_text(json.dumps(documents))
    assert detect_format(path) == "nightscout"
    _, parsed = read_raw_rows(path)
    assert brief(parsed.events.to_pylist()) == [
        ("", None, {}, "a treatment must be a JSON object, not a number"),
        ("bolus", "normal", {"units": "2"}, None),
    ]
    assert parsed.skipped == 1


def test_a_single_treatment_document_is_read_too(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"eventType": "Site Change", "created_at": T}, indent=1))
    _, parsed = read_raw_rows(path)
    assert brief(parsed.events.to_pylist()) == [("device", "site_change", {}, None)]


def test_treatments_posted_as_entries_are_refused_saying_where_they_belong():
    from glucosestream.errors import InvalidInput
    from glucosestream.formats.nightscout import read_nightscout_entries

    with pytest.raises(InvalidInput, match="send them to /api/v1/treatments"):
        read_nightscout_entries([{"eventType": "Meal Bolus", "carbs": 20}], source="POST")
