"""LibreView strip, ketone, insulin, food and note records become raw event rows; the expected
counts and sums are worked out here from the samples with the csv module only."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow.compute as pc
import pytest

from glucosestream.formats.delimited import WIDTH_PROBLEM
from glucosestream.formats.detect import read_raw_rows

from .conftest import DATA, write

LIBRE = DATA / "samples" / "libreview"
UK_MMOL = LIBRE / "cgm_data_processor_sample_libreview_mmol_uk.csv"
SPANISH = LIBRE / "glucopy_prueba_1_spanish_mgdl.csv"
LIBRE_3 = LIBRE / "cgm_format_FreeStyle_Libre_3_synthetic_mgdl_ddmmyyyy.csv"
# Columns by position (the 19-column layout every sample shares; 0-based).
TYPE, RAPID, CARBS, LONG, NOTES, STRIP, KETONE, MEAL_INSULIN = 3, 7, 9, 12, 13, 14, 15, 16


def libre_records(path: Path, header_line: int) -> list[tuple[int, list[str]]]:
    """(line, fields) of each record after the header on ``header_line`` (1-based; the samples
    hold no quoted line breaks)."""
    text = path.read_bytes().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    return [(i + 1, row) for i, row in enumerate(rows) if i + 1 > header_line and row]


def parsed_of(path: Path):
    fmt, parsed = read_raw_rows(path, "libreview")
    assert fmt == "libreview"
    return parsed


def test_uk_mmol_sample_gives_each_insulin_and_food_amount():
    records = libre_records(UK_MMOL, 2)
    insulin = [(n, r) for n, r in records if r[TYPE] == "4"]
    food = [(n, r) for n, r in records if r[TYPE] == "5"]
    rapid = [(n, float(r[RAPID])) for n, r in insulin if r[RAPID]]
    long = [(n, float(r[LONG])) for n, r in insulin if r[LONG]]
    carbs = [(n, float(r[CARBS])) for n, r in food if r[CARBS]]
    assert len(rapid) + len(long) == 147
    assert len(carbs) == 88
    parsed = parsed_of(UK_MMOL)
    events = parsed.events.to_pylist()

    def of(kind, subtype, column):
        return [
            (e["line"], float(e[column]))
            for e in events
            if (e["kind"], e["subtype"]) == (kind, subtype)
        ]

    assert of("bolus", "normal", "units") == rapid
    assert of("basal", "injection", "units") == long
    assert of("carbs", "meal", "carbs_g") == carbs
    assert sum(u for _, u in of("bolus", "normal", "units")) == pytest.approx(
        sum(u for _, u in rapid)
    )
    assert len(events) == len(rapid) + len(long) + len(carbs)
    assert all(e["problem"] is None for e in events)
    assert {e["device_id"] for e in events} == {r[1] for _, r in insulin}
    # skipped: the insulin records with only a non-numeric entry, and the empty notes
    no_amount = sum(not (r[RAPID] or r[LONG]) for _, r in insulin)
    assert no_amount == 1
    empty_notes = sum(r[TYPE] == "6" and not r[NOTES] for _, r in records)
    assert parsed.skipped == no_amount + empty_notes
    assert parsed.rows.num_rows == sum(r[TYPE] in ("0", "1") for _, r in records)


def test_spanish_sample_strips_and_ketones_with_their_spilled_decimal_comma():
    records = libre_records(SPANISH, 3)
    strips = [(n, r[STRIP]) for n, r in records if r[TYPE] == "2"]
    # a ketone of 0.1 mmol/L written "0,1" unquoted: "0" in Ketone, "1" in Meal Insulin
    ketones = [(n, f"{r[KETONE]}.{r[MEAL_INSULIN]}") for n, r in records if r[TYPE] == "3"]
    assert len(strips) == 1773
    assert len(ketones) == 6
    events = parsed_of(SPANISH).events.to_pylist()
    smbg = [(e["line"], e["glucose"]) for e in events if e["kind"] == "smbg"]
    assert smbg == strips
    assert {e["unit"] for e in events if e["kind"] == "smbg"} == {"mg/dL"}
    got = [(e["line"], e["ketone"]) for e in events if e["kind"] == "ketone"]
    assert got == ketones
    assert {e["subtype"] for e in events if e["kind"] == "ketone"} == {"blood"}
    assert all(e["units"] is None for e in events)  # the spill is not read as meal insulin


def test_libre_3_sample_has_only_empty_notes_and_no_events():
    parsed = parsed_of(LIBRE_3)
    assert parsed.events is None
    assert parsed.skipped == sum(r[TYPE] == "6" for _, r in libre_records(LIBRE_3, 2))


LIBRE_US_HEADER = (
    "Device,Serial Number,Device Timestamp,Record Type,Historic Glucose mmol/L,"
    "Scan Glucose mmol/L,Non-numeric Rapid-Acting Insulin,Rapid-Acting Insulin (units),"
    "Non-numeric Food,Carbohydrates (grams),Carbohydrates (servings),"
    "Non-numeric Long-Acting Insulin,Long-Acting Insulin (units),Notes,Strip Glucose mmol/L,"
    "Ketone mmol/L,Meal Insulin (units),Correction Insulin (units),User Change Insulin (units)\n"
)


def record(time: str, kind: int, cells: dict[int, str]) -> str:
    fields = ["Libre app", "S-1", time, str(kind)] + [""] * 15
    for at, value in cells.items():
        fields[at] = value
    return ",".join(fields) + "\n"


def test_hand_written_export_notes_both_insulins_and_hostile_cells(tmp_path):
    huge = "7" * 50_000
    path = write(
        tmp_path / "libre_events.csv",
        "Glucose Data,Generated on,01-05-2026 08:43 PM UTC,Generated by,Pat Example\n"
        + LIBRE_US_HEADER
        + record("01-02-2026 11:45 PM", 0, {4: "6.5"})
        + record("01-02-2026 11:50 PM", 4, {RAPID: "4", LONG: "12"})
        + record("01-02-2026 11:51 PM", 5, {CARBS: '"12,5"'})
        + record("01-02-2026 11:52 PM", 6, {NOTES: '"felt odd, pizza"'})
        + record("01-02-2026 11:53 PM", 4, {RAPID: "abc"})
        + record("01-02-2026 11:54 PM", 5, {CARBS: huge})
        + record("01-02-2026 11:55 PM", 5, {10: "2"})  # servings only: not grams
        + "Libre app,S-1,01-02-2026 11:56 PM,4,,,,3\n"  # narrow
        + record("01-02-2026 11:57 PM", 2, {STRIP: "5", 15: "4"}).replace("\n", ",\n")
        + record("01-02-2026 11:58 PM", 0, {4: "6.7"}),
    )
    parsed = parsed_of(path)
    assert parsed.rows.num_rows == 2
    assert pc.all(pc.is_null(parsed.rows["problem"])).as_py()
    assert parsed.time_formats[0].endswith("%p")
    events = parsed.events.to_pylist()
    got = [
        (e["line"], e["kind"], e["subtype"], e["units"] or e["carbs_g"] or e["glucose"], e["note"])
        for e in events
    ]
    assert got == [
        (4, "bolus", "normal", "4", None),
        (4, "basal", "injection", "12", None),
        (5, "carbs", "meal", "12.5", None),
        (6, "note", None, None, "felt odd, pizza"),
        (7, "bolus", "normal", "abc", None),  # ingest: not a number
        (8, "carbs", "meal", None, None),
        (10, "bolus", None, None, None),
        (11, "smbg", None, "5.4", None),  # "5,4" unquoted, one field too many
    ]
    problems = {e["line"]: e["problem"] for e in events if e["problem"]}
    assert problems == {
        8: "the Carbohydrates (grams) cell has 50000 characters, not a number",
        10: WIDTH_PROBLEM,
    }
    assert events[-1]["unit"] == "mmol/L"
    assert parsed.skipped == 1  # the servings-only food record


def test_a_header_without_the_insulin_columns_gives_problem_rows(tmp_path):
    header = LIBRE_US_HEADER.replace("Rapid-Acting Insulin (units)", "Schnellwirkend (E)")
    path = write(
        tmp_path / "libre_unknown_columns.csv",
        "Glucose Data,Generated on,01-05-2026 08:43 UTC,Generated by,X\n"
        + header
        + record("02-01-2026 10:00", 0, {4: "6.5"})
        + record("02-01-2026 10:01", 4, {RAPID: "4"}),
    )
    parsed = parsed_of(path)
    assert parsed.rows.num_rows == 1
    assert [(e["kind"], e["problem"]) for e in parsed.events.to_pylist()] == [
        ("bolus", "no 'rapid-acting insulin (units)' column in the LibreView header")
    ]
