"""CareLink pump records (boluses, basal rates, temp basals, bolus-wizard carbs, meter BGs,
suspend/resume) become raw event rows.

The only public CareLink sample is a Guardian Connect export (CGM only, no pump), so the pump
records here are written by hand. Where each name comes from:
- the column names: the header line of that sample's sections (``HEADER``, read from the file,
  48 columns: ``Basal Rate (U/h)``, ``Temp Basal Amount``, ``Temp Basal Type``, ``Temp Basal
  Duration (h:mm:ss)``, ``Bolus Type``, ``Bolus Volume Delivered (U)``, ``Bolus Duration
  (h:mm:ss)``, ``Suspend``, ``BWZ Carb Input (grams)``, ``BG Reading (mg/dL)``, ``Sensor
  Calibration BG (mg/dL)``);
- the ``Bolus Type`` values: Normal, Square, Dual (normal part), Dual (square part), as listed
  for CareLink's column in the FLAIR study's public data dictionary (FLAIRDevicePump.BolusType);
- ``Temp Basal Type``: "insulin rate or percent of basal" (CareLink's column description);
- ``Suspend`` values: USER_SUSPEND, NORMAL_PUMPING (the values CareLink writes for a user's
  suspend and the resumption of pumping);
- ``Event Marker`` ``Meal: 60,00grams``: the sample's own (a meal logged in the app);
- the layout (``;``, EU decimal commas, a ``-------;<device>;Pump;<serial>;-------`` marker,
  newest record first): the sample's.
"""

from __future__ import annotations

import csv
import io

import pyarrow.compute as pc

from glucosestream.formats.delimited import WIDTH_PROBLEM
from glucosestream.formats.detect import read_raw_rows

from .conftest import DATA, write

SAMPLE = DATA / "samples" / "medtronic_carelink" / "cgm_format_guardian_connect_eu_excerpt.csv"
_SAMPLE_LINES = SAMPLE.read_text(encoding="utf-8-sig").splitlines()
HEADER = _SAMPLE_LINES[6].split(";")  # the pump section's header line
PREAMBLE = "\n".join(_SAMPLE_LINES[:5]).replace("Livia", "Ann").replace("Zaharia", "Other")


def record(index: int, date: str, time: str, **cells: str) -> str:
    """One record of the sample's layout; ``cells`` by column name."""
    fields = dict.fromkeys(HEADER, "")
    fields.update({"Index": f"{index},00000", "Date": date, "Time": time})
    for name, value in cells.items():
        assert name in fields, name  # a column of the sample's header
        fields[name] = value
    return ";".join(fields.values())


def pump_export(tmp_path, pump_records: list[str], *, sensor: bool = True):
    lines = [PREAMBLE, "-------;MiniMed 640G;Pump;NG1234567H;-------", ";".join(HEADER)]
    lines += pump_records
    if sensor:
        lines += [
            "-------;MiniMed 640G;Sensor;NG1234567H;-------",
            ";".join(HEADER),
            record(2, "2026/03/02", "08:05:00", **{"Sensor Glucose (mg/dL)": "131"}),
            record(1, "2026/03/02", "08:00:00", **{"Sensor Glucose (mg/dL)": "128"}),
        ]
    return write(tmp_path / "carelink_pump.csv", "\n".join(lines) + "\n")


def c(name: str, value: str) -> dict[str, str]:
    return {name: value}


def test_pump_records_become_boluses_basal_segments_carbs_bgs_and_suspends(tmp_path):
    records = [  # newest first, as CareLink writes them
        record(16, "2026/03/02", "22:00:00", **c("Basal Rate (U/h)", "0,900")),
        record(15, "2026/03/02", "19:00:00", **c("Suspend", "NORMAL_PUMPING")),
        record(14, "2026/03/02", "18:30:00", **c("Suspend", "USER_SUSPEND")),
        record(
            13,
            "2026/03/02",
            "13:00:00",
            **{
                "Bolus Type": "Dual (square part)",
                "Bolus Volume Delivered (U)": "1,50",
                "Bolus Duration (h:mm:ss)": "1:00:00",
            },
        ),
        record(
            12,
            "2026/03/02",
            "12:00:00",
            **{"Bolus Type": "Dual (normal part)", "Bolus Volume Delivered (U)": "2,00"},
        ),
        record(11, "2026/03/02", "12:00:00", **c("BWZ Carb Input (grams)", "60")),
        record(10, "2026/03/02", "10:00:00", **c("BWZ Carb Input (grams)", "0")),  # no meal
        record(
            9,
            "2026/03/02",
            "09:00:00",
            **{
                "Bolus Type": "Square",
                "Bolus Volume Delivered (U)": "3,00",
                "Bolus Duration (h:mm:ss)": "2:00:00",
            },
        ),
        record(
            8,
            "2026/03/02",
            "08:00:00",
            **{"Bolus Type": "Normal", "Bolus Volume Delivered (U)": "4,50"},
        ),
        record(7, "2026/03/02", "07:55:00", **c("BWZ Carb Input (grams)", "45")),
        record(6, "2026/03/02", "07:50:00", **c("Sensor Calibration BG (mg/dL)", "118")),
        record(5, "2026/03/02", "07:50:00", **c("BG Reading (mg/dL)", "120")),
        record(
            4,
            "2026/03/02",
            "07:00:00",
            **{
                "Temp Basal Amount": "150",
                "Temp Basal Type": "Percent",
                "Temp Basal Duration (h:mm:ss)": "0:30:00",
            },
        ),
        record(3, "2026/03/02", "06:00:00", **c("Basal Rate (U/h)", "1,200")),
        record(
            2,
            "2026/03/02",
            "03:00:00",
            **{
                "Temp Basal Amount": "0,500",
                "Temp Basal Type": "Insulin Rate",
                "Temp Basal Duration (h:mm:ss)": "1:30:00",
            },
        ),
        record(1, "2026/03/02", "00:00:00", **c("Basal Rate (U/h)", "0,800")),
        record(0, "2026/03/02", "00:00:00", **c("Alarm", "CAL NOW")),
    ]
    path = pump_export(tmp_path, records)
    fmt, parsed = read_raw_rows(path, "carelink")
    assert fmt == "carelink"
    assert parsed.rows.num_rows == 2
    assert parsed.skipped == 2  # the alarm, the zero-carb wizard record
    events = parsed.events.to_pylist()
    got = [
        (e["time"][11:16], e["kind"], e["subtype"], e["units"], e["rate_u_h"], e["duration_min"])
        for e in events
    ]
    assert got == [  # in time order
        ("00:00", "basal", "scheduled", None, "0.800", "360.0"),
        ("03:00", "basal", "temporary", None, "0.500", "90.0"),
        ("06:00", "basal", "scheduled", None, "1.200", "960.0"),
        ("07:00", "basal", "temporary", None, "1.8", "30.0"),  # 150 % of 1.2 U/h
        ("07:50", "smbg", None, None, None, None),
        ("07:50", "smbg", None, None, None, None),
        ("07:55", "carbs", "meal", None, None, None),
        ("08:00", "bolus", "normal", "4.50", None, None),
        ("09:00", "bolus", "extended", "3.00", None, "120.0"),
        ("12:00", "carbs", "meal", None, None, None),
        ("12:00", "bolus", "normal", "2.00", None, None),
        ("13:00", "bolus", "extended", "1.50", None, "60.0"),
        ("18:30", "device", "pump_suspend", None, None, None),
        ("19:00", "device", "pump_resume", None, None, None),
        ("22:00", "basal", "scheduled", None, "0.900", None),  # until the next: not known
    ]
    assert [e["glucose"] for e in events if e["kind"] == "smbg"] == ["120", "118"]
    assert {e["unit"] for e in events if e["kind"] == "smbg"} == {"mg/dL"}
    assert [e["carbs_g"] for e in events if e["kind"] == "carbs"] == ["45", "60"]
    assert {e["device_id"] for e in events} == {"NG1234567H"}
    assert all(e["problem"] is None for e in events)
    assert events[0]["time"] == "2026/03/02 00:00:00"
    assert parsed.time_formats[0] == "%Y/%m/%d %H:%M:%S"


def test_the_guardian_sample_meter_bgs_and_logged_meals_are_events():
    text = SAMPLE.read_text(encoding="utf-8-sig")
    records = list(csv.reader(io.StringIO(text), delimiter=";"))
    sensor_at = next(i for i, r in enumerate(records) if r[:1] == ["-------"] and r[2] == "Sensor")
    bg, marker = HEADER.index("BG Reading (mg/dL)"), HEADER.index("Event Marker")
    expected = []
    for r in records[7:sensor_at]:  # file order: newest first
        if len(r) > marker and r[marker].startswith("Meal: "):  # "Meal: 60,00grams"
            grams = r[marker].removeprefix("Meal: ").removesuffix("grams").replace(",", ".")
            expected.append((f"{r[1]} {r[2]}", "carbs", grams))
        if len(r) > bg and r[bg].strip():
            expected.append((f"{r[1]} {r[2]}", "smbg", r[bg]))
    assert sum(k == "smbg" for _, k, _ in expected) == 40
    assert sum(k == "carbs" for _, k, _ in expected) == 26
    _, parsed = read_raw_rows(SAMPLE, "carelink")
    events = parsed.events.to_pylist()
    got = [(e["time"], e["kind"], e["glucose"] or e["carbs_g"]) for e in events]
    assert got == expected[::-1]
    assert {e["unit"] for e in events if e["kind"] == "smbg"} == {"mg/dL"}
    assert {e["subtype"] for e in events if e["kind"] == "carbs"} == {"meal"}
    assert all(e["problem"] is None for e in events)
    assert parsed.rows.num_rows == 1999
    # the app's 54 "Insulin: n" markers (which insulin is not said) stay skipped
    assert parsed.skipped == 401 - 40 - 26


def test_hostile_pump_cells_are_problems_or_values_ingest_checks(tmp_path):
    huge = "8" * 80_000
    records = [
        record(6, "2026/03/02", "12:00:00", **c("Suspend", "SOMETHING_ELSE")),
        record(
            5,
            "2026/03/02",
            "11:00:00",
            **{"Bolus Type": "Triple", "Bolus Volume Delivered (U)": "2,00"},
        ),
        "4,00000;2026/03/02;10:00:00;;;;;;;;Normal;;5,00",  # cut short
        record(3, "2026/03/02", "09:00:00", **c("BWZ Carb Input (grams)", huge)),
        record(
            2,
            "2026/03/02",
            "08:00:00",
            **{"Bolus Type": "Normal", "Bolus Volume Delivered (U)": "viel"},
        ),
        record(
            1,
            "2026/03/02",
            "07:00:00",
            **{
                "Temp Basal Amount": "50",
                "Temp Basal Type": "Percent",
                "Temp Basal Duration (h:mm:ss)": "soon",
            },
        ),
    ]
    _, parsed = read_raw_rows(pump_export(tmp_path, records), "carelink")
    assert parsed.rows.num_rows == 2
    assert pc.all(pc.is_null(parsed.rows["problem"])).as_py()
    got = {e["line"]: e for e in parsed.events.to_pylist()}
    assert len(got) == 6
    events = sorted(got.values(), key=lambda e: -e["line"])  # record 1 first
    percent, viel, carbs, narrow, triple, other = events
    assert percent["rate_u_h"] is None
    assert "'soon' is not a duration" in percent["problem"]
    assert (viel["units"], viel["problem"]) == ("viel", None)  # ingest: not a number
    assert carbs["carbs_g"] is None
    assert carbs["problem"] == (
        "the BWZ Carb Input (grams) cell has 80000 characters, not a number"
    )
    assert (narrow["kind"], narrow["time"], narrow["problem"]) == ("bolus", None, WIDTH_PROBLEM)
    assert triple["subtype"] is None
    assert "Bolus Type 'Triple'" in triple["problem"]
    assert (other["kind"], other["subtype"]) == ("device", None)
    assert "'something_else'" in other["problem"]


def test_a_percent_temp_basal_without_a_scheduled_rate_has_a_problem(tmp_path):
    records = [
        record(
            1,
            "2026/03/02",
            "07:00:00",
            **{
                "Temp Basal Amount": "50",
                "Temp Basal Type": "Percent",
                "Temp Basal Duration (h:mm:ss)": "1:00:00",
            },
        ),
    ]
    _, parsed = read_raw_rows(pump_export(tmp_path, records, sensor=False), "carelink")
    (event,) = parsed.events.to_pylist()
    assert (event["rate_u_h"], event["duration_min"]) == (None, "60.0")
    assert event["problem"] == "a temp basal of '50' percent with no scheduled basal rate before it"
