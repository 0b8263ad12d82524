"""Tidepool datums become raw event rows (contract section 1): every JSON example of Tidepool's
own data-type docs (tests/data/samples/tidepool/tidepool_event_doc_examples.json), each mapping
of the table on hand-written datums, and hostile values."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from glucosestream.formats.detect import detect_format, read_raw_rows
from glucosestream.formats.event_rows import RAW_EVENT_SCHEMA

SAMPLES = Path(__file__).parent / "data" / "samples" / "tidepool"
EXAMPLES = SAMPLES / "tidepool_event_doc_examples.json"
MS_PER_MIN = 60_000
BASAL = {"scheduled": "scheduled", "temp": "temporary", "automated": "automated"}


def described(datum):
    """What Tidepool's docs say the datum is, in event terms (numbers, not text): written out
    from the docs' field descriptions, independently of the parser."""
    kind, sub = datum["type"], datum.get("subType")
    ms = datum.get("duration")
    minutes = ms / MS_PER_MIN if isinstance(ms, int) else None
    if kind == "basal":
        delivery = datum["deliveryType"]
        if delivery == "suspend":
            return [("basal", "suspended", {"rate_u_h": 0.0, "duration_min": minutes})]
        return [("basal", BASAL[delivery], {"rate_u_h": datum["rate"], "duration_min": minutes})]
    if kind == "bolus":
        extended = ("bolus", "extended", {"units": datum.get("extended"), "duration_min": minutes})
        normal = {"units": datum.get("normal")}
        return {
            "normal": [("bolus", "normal", normal)],
            "automated": [("bolus", "automatic", normal)],
            "square": [extended],
            "dual/square": [("bolus", "normal", normal), extended],
        }[sub]
    if kind == "wizard":
        carbs = [("carbs", "meal", {"carbs_g": datum["carbInput"]})]
        embedded = datum["bolus"] if isinstance(datum["bolus"], dict) else None
        return carbs + ([("bolus", "normal", {"units": embedded["normal"]})] if embedded else [])
    if kind == "smbg":
        return [("smbg", None, {"glucose": datum["value"], "unit": datum["units"]})]
    if kind == "bloodKetone":
        return [("ketone", "blood", {"ketone": datum["value"]})]
    if kind == "physicalActivity":
        assert datum["duration"]["units"] == "minutes"
        duration = {"duration_min": datum["duration"]["value"]}
        return [("exercise", None, {**duration, "intensity": datum["reportedIntensity"]})]
    if kind == "deviceEvent":
        if sub == "reservoirChange":
            return [("device", "cartridge_change", {})]
        if sub == "prime":
            return [("device", "site_change", {})] if datum["primeTarget"] == "cannula" else []
        if sub == "status":
            return [("device", "pump_suspend", {"duration_min": minutes})]
        return []  # alarm, calibration, timeChange
    if kind == "insulin":  # the docs' example: a mix of compounds, no acting type
        assert "simple" not in datum["formulation"]
        return [("bolus", None, {"units": datum["dose"]["total"]})]
    assert kind == "food"
    assert "nutrition" not in datum  # the docs' food has only its weight
    return []


def as_numbers(row):
    amounts = {}
    for name in ("units", "rate_u_h", "duration_min", "carbs_g", "glucose", "ketone"):
        if row[name] is not None:
            amounts[name] = float(row[name])
    for name in ("unit", "intensity"):
        if row[name] is not None:
            amounts[name] = row[name]
    return (row["kind"], row["subtype"], amounts)


def test_every_documented_example_becomes_the_event_its_docs_describe():
    examples = json.loads(EXAMPLES.read_text())
    assert detect_format(EXAMPLES) == "tidepool"
    fmt, parsed = read_raw_rows(EXAMPLES)
    assert (fmt, parsed.rows.num_rows) == ("tidepool", 0)
    assert parsed.events.schema == RAW_EVENT_SCHEMA
    got = defaultdict(list)
    problems = {}
    for row in parsed.events.to_pylist():
        got[row["line"]].append(as_numbers(row))
        if row["problem"] is not None:
            problems[row["line"]] = row["problem"]
    expected = {}
    for line, datum in enumerate(examples.values(), start=1):
        events = [
            (k, s, {n: v for n, v in a.items() if v is not None}) for k, s, a in described(datum)
        ]
        if events:
            expected[line] = events
    assert dict(got) == expected
    assert parsed.skipped == len(examples) - len(expected)
    insulin = list(examples).index("insulin_insulin") + 1
    assert problems == {insulin: "an insulin dose whose formulation gives no actingType"}
    # Each event keeps its datum's instant and device.
    datums = list(examples.values())
    for row in parsed.events.to_pylist():
        assert row["time"] == datums[row["line"] - 1]["time"]
        assert row["device_id"] == datums[row["line"] - 1]["deviceId"]


def test_the_examples_cover_every_mapped_type():
    examples = json.loads(EXAMPLES.read_text()).values()
    covered = {(d["type"], d.get("subType") or d.get("deliveryType")) for d in examples}
    assert covered >= {
        ("basal", "scheduled"),
        ("basal", "temp"),
        ("basal", "automated"),
        ("basal", "suspend"),
        ("bolus", "normal"),
        ("bolus", "square"),
        ("bolus", "dual/square"),
        ("bolus", "automated"),
        ("wizard", None),
        ("smbg", "manual"),
        ("bloodKetone", None),
        ("physicalActivity", None),
        ("deviceEvent", "reservoirChange"),
        ("deviceEvent", "prime"),
        ("deviceEvent", "status"),
        ("insulin", None),
    }


def read_datums(tmp_path, datums):
    path = tmp_path / "tidepool.json"
    base = {"deviceId": "pump-1", "time": "2026-02-01T10:00:00.000Z", "timezoneOffset": 60}
    path.write_text(json.dumps([{**base, **d} if isinstance(d, dict) else d for d in datums]))
    fmt, parsed = read_raw_rows(path)
    assert fmt == "tidepool"
    rows = parsed.events.to_pylist() if parsed.events is not None else []
    brief = [
        (
            r["line"],
            r["kind"],
            r["subtype"],
            {
                k: r[k]
                for k in ("units", "rate_u_h", "duration_min", "carbs_g", "ketone", "intensity")
                if r[k] is not None
            },
            r["problem"],
        )
        for r in rows
    ]
    return brief, parsed.skipped


def test_food_wizard_exchanges_percent_temp_basals_and_pen_doses(tmp_path):
    rows, skipped = read_datums(
        tmp_path,
        [
            {"type": "food", "nutrition": {"carbohydrate": {"net": 25, "units": "grams"}}},
            {"type": "food", "nutrition": {"carbohydrate": {"net": 2, "units": "exchanges"}}},
            {"type": "wizard", "carbInput": 3, "carbUnits": "exchanges", "bolus": "id"},
            {"type": "wizard", "carbInput": 0, "bolus": "id"},  # a correction: no carbs
            {
                "type": "basal",
                "deliveryType": "temp",
                "percent": 0.5,
                "suppressed": {"rate": 1.5},
                "duration": 1_800_000,
            },
            {"type": "physicalActivity", "duration": {"value": 1.5, "units": "hours"}},
            {"type": "physicalActivity", "duration": {"value": 900, "units": "seconds"}},
            {"type": "deviceEvent", "subType": "status", "status": "resumed"},
            {"type": "upload"},
            {"type": "insulin", "dose": {"total": 4, "units": "Units"}},
            {
                "type": "insulin",
                "dose": {"total": 4, "units": "Units"},
                "formulation": {"simple": {"actingType": "rapid"}},
            },
            {
                "type": "insulin",
                "dose": {"total": 22, "units": "Units"},
                "formulation": {"simple": {"actingType": "long", "brand": "Tresiba"}},
            },
            {
                "type": "insulin",
                "dose": {"total": 10, "units": "mL"},
                "formulation": {"simple": {"actingType": "intermediate"}},
            },
        ],
    )
    assert rows == [
        (1, "carbs", "meal", {"carbs_g": "25"}, None),
        (2, "carbs", "meal", {"carbs_g": "2"}, "carbohydrate in exchanges, not grams"),
        (3, "carbs", "meal", {"carbs_g": "3"}, "carbInput is in exchanges, not grams"),
        (5, "basal", "temporary", {"rate_u_h": "0.75", "duration_min": "30.0"}, None),
        (6, "exercise", None, {"duration_min": "90.0"}, None),
        (7, "exercise", None, {"duration_min": "15.0"}, None),
        (8, "device", "pump_resume", {}, None),
        (
            10,
            "bolus",
            None,
            {"units": "4"},
            "an insulin dose whose formulation gives no actingType",
        ),
        (11, "bolus", "normal", {"units": "4"}, None),
        (12, "basal", "injection", {"units": "22"}, None),
        (13, "basal", "injection", {"units": "10"}, "dose in mL, not Units"),
    ]
    assert skipped == 2  # the correction wizard, the upload


def test_hostile_values_are_problems_or_text_ingest_quarantines(tmp_path):
    rows, skipped = read_datums(
        tmp_path,
        [
            {"type": "bolus", "subType": "normal", "normal": "lots"},
            {"type": "bolus", "subType": "square", "extended": 2, "duration": "1h"},
            {"type": "bolus", "subType": "weird", "normal": 1},
            {"type": "basal", "deliveryType": "scheduled", "rate": "x" * 100, "duration": 1e308},
            {
                "type": "basal",
                "deliveryType": "temp",
                "percent": 10**400,
                "suppressed": {"rate": 1e308},
            },
            {"type": "deviceEvent", "subType": "status", "status": {"suspended": True}},
            {"type": "deviceEvent", "subType": ["prime"]},
            {"type": {"nested": "bolus"}},
            {"type": "bloodKetone", "value": 1.2, "units": "mg/dL"},
            {"type": "physicalActivity", "duration": 30},
            "not a datum",
        ],
    )
    assert rows == [
        (1, "bolus", "normal", {"units": "lots"}, None),
        (2, "bolus", "extended", {"units": "2"}, "duration (ms) is not a number: 1h"),
        (3, "bolus", "weird", {"units": "1"}, None),  # ingest: unknown subtype
        (
            4,
            "basal",
            "scheduled",
            {"duration_min": repr(1e308 / MS_PER_MIN)},
            "rate has 100 characters, not a number",
        ),
        (5, "basal", "temporary", {}, "percent is too large to be one"),
        (9, "ketone", "blood", {"ketone": "1.2"}, "ketone in mg/dL, not mmol/L"),
        (10, "exercise", None, {}, "duration is not a {value, units} object"),
    ]
    assert skipped == 4


@pytest.mark.parametrize("status", ["suspended", "resumed"])
def test_pump_status_events_carry_their_duration_in_minutes(tmp_path, status):
    rows, _ = read_datums(
        tmp_path,
        [{"type": "deviceEvent", "subType": "status", "status": status, "duration": 90_000}],
    )
    subtype = {"suspended": "pump_suspend", "resumed": "pump_resume"}[status]
    assert rows == [(1, "device", subtype, {"duration_min": "1.5"}, None)]
