"""Meal-anchored glucose (metrics.meal_response) on traces built by hand, whose pre-meal value,
peak, time to peak and 2-hour excursion are worked out by arithmetic."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections.abc import Callable
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from glucosestream.events import EVENT_SCHEMA
from glucosestream.metrics.meal_response import MEAL_RESPONSE_SCHEMA, meal_responses
from glucosestream.readings import READING_SCHEMA

NOON = dt.datetime(2026, 5, 4, 12, 0, tzinfo=dt.UTC)
AT = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)


def minutes(m: float) -> dt.datetime:
    return NOON + dt.timedelta(minutes=m)


def rise_and_fall(m: float) -> float:
    """Flat at 100 before noon, +1 mg/dL a minute to 160 at 13:00, then -0.5 a minute."""
    if m <= 0:
        return 100.0
    if m <= 60:
        return 100.0 + m
    return 160.0 - 0.5 * (m - 60)


def trace(shape: Callable[[float], float], start: int = -60, stop: int = 240, step: int = 5,
          patient: str = "p1", skip: tuple[int, int] | None = None) -> list[dict]:  # fmt: skip
    rows = []
    for m in range(start, stop + 1, step):
        if skip and skip[0] <= m <= skip[1]:
            continue
        rows.append(
            {
                "patient_key": patient,
                "device_id": "cgm",
                "source": "test",
                "ts": minutes(m),
                "glucose_mg_dl": shape(m),
                "original_value": shape(m),
                "original_unit": "mg/dL",
                "flags": 0,
                "tz": "UTC",
                "batch_id": "b",
                "ingested_at": AT,
                "direction": None,
                "rate_mg_dl_min": None,
            }
        )
    return rows


def readings(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=READING_SCHEMA)


def carbs(at: dt.datetime, grams: float = 50.0, patient: str = "p1", zone: str = "UTC",
          subtype: str = "meal") -> dict:  # fmt: skip
    row = dict.fromkeys(EVENT_SCHEMA.names)
    row |= {"patient_key": patient, "device_id": "pump", "source": "test", "ts": at, "tz": zone,
            "kind": "carbs", "subtype": subtype, "carbs_g": grams, "batch_id": "b",
            "ingested_at": AT}  # fmt: skip
    return row


def responses(reading_rows: list[dict], meals: list[dict]) -> list[dict]:
    events = pa.Table.from_pylist(meals, schema=EVENT_SCHEMA)
    out = meal_responses(readings(reading_rows), events, run_id="r", computed_at=AT)
    assert out.schema == MEAL_RESPONSE_SCHEMA
    return out.to_pylist()


def test_pre_meal_peak_time_to_peak_and_two_hour_excursion():
    [row] = responses(trace(rise_and_fall), [carbs(minutes(2))])  # the meal logged at 12:02
    assert (row["premeal_mg_dl"], row["premeal_at"]) == (100.0, minutes(0))
    assert (row["peak_mg_dl"], row["peak_at"]) == (160.0, minutes(60))
    assert row["peak_rise_mg_dl"] == 60.0
    assert row["time_to_peak_min"] == 58.0
    # 2 h after 12:02 is 14:02: the 14:00 reading (2 min away) beats 14:05 (3 min away).
    assert (row["two_hour_mg_dl"], row["two_hour_at"]) == (160.0 - 0.5 * 60, minutes(120))
    assert row["excursion_2h_mg_dl"] == 30.0
    assert row["window_min"] == 180.0
    assert row["window_readings"] == len(range(5, 182, 5))  # 12:05 .. 15:00
    assert (row["carbs_g"], row["subtype"], row["date"]) == (50.0, "meal", NOON.date())


def test_without_a_reading_in_the_fifteen_minutes_before_there_is_no_pre_meal_value():
    rows = trace(rise_and_fall, skip=(-20, -1))  # nothing from 11:40 to 11:59
    [row] = responses(rows, [carbs(minutes(-3))])  # meal at 11:57: last reading 11:35
    assert row["premeal_mg_dl"] is None
    assert row["peak_rise_mg_dl"] is None
    assert row["excursion_2h_mg_dl"] is None
    assert row["peak_mg_dl"] == 160.0  # the peak itself is known: 12:00 is 3 min in
    assert row["time_to_peak_min"] == 63.0


def test_a_gap_of_more_than_thirty_minutes_in_the_window_leaves_the_peak_unknown():
    rows = trace(rise_and_fall, skip=(40, 70))  # 12:35 -> 13:15: 40 minutes without a reading
    [row] = responses(rows, [carbs(minutes(0))])
    assert row["peak_mg_dl"] is None
    assert row["peak_at"] is None
    assert row["time_to_peak_min"] is None
    assert row["two_hour_mg_dl"] == 130.0  # one reading near 14:00 is enough for it
    # 12:40 -> 13:10 is exactly 30 minutes: allowed; the highest reading is 13:10's.
    exactly = responses(trace(rise_and_fall, skip=(45, 65)), [carbs(minutes(0))])[0]
    assert (exactly["peak_mg_dl"], exactly["time_to_peak_min"]) == (155.0, 70.0)


def test_data_ending_before_the_window_ends_leaves_the_peak_unknown():
    [row] = responses(trace(rise_and_fall, stop=140), [carbs(minutes(0))])
    assert row["peak_mg_dl"] is None  # 14:20 -> 15:00: 40 minutes with nothing known
    assert row["two_hour_mg_dl"] == 130.0
    [row] = responses(trace(rise_and_fall, stop=150), [carbs(minutes(0))])
    assert row["peak_mg_dl"] == 160.0  # 14:30 -> 15:00 is exactly 30 minutes: allowed


def test_a_later_meal_ends_the_window_and_a_dessert_does_not():
    later = [carbs(minutes(0)), carbs(minutes(45), grams=30.0)]
    first, second = responses(trace(rise_and_fall), later)
    assert first["window_min"] == 45.0
    assert (first["peak_mg_dl"], first["time_to_peak_min"]) == (145.0, 45.0)
    assert first["two_hour_mg_dl"] is None  # the second meal came before the 2 hours
    assert first["excursion_2h_mg_dl"] is None
    assert second["premeal_mg_dl"] == 145.0
    assert second["window_min"] == 180.0
    dessert = [carbs(minutes(0)), carbs(minutes(20), grams=25.0)]
    first, second = responses(trace(rise_and_fall), dessert)
    assert first["window_min"] == 180.0  # 20 min later: the same eating occasion
    assert first["peak_mg_dl"] == 160.0
    assert first["two_hour_mg_dl"] == 130.0


def test_a_falling_trace_has_a_negative_rise_and_ties_take_the_first_peak():
    falling = responses(trace(lambda m: 200.0 - 0.25 * m), [carbs(minutes(0))])[0]
    assert falling["peak_at"] == minutes(5)
    assert falling["peak_rise_mg_dl"] == pytest.approx(-1.25)
    assert falling["excursion_2h_mg_dl"] == pytest.approx(-30.0)
    plateau = responses(trace(lambda m: min(150.0, 100.0 + max(m, 0))), [carbs(minutes(0))])[0]
    assert (plateau["peak_mg_dl"], plateau["time_to_peak_min"]) == (150.0, 50.0)


def test_the_two_hour_reading_must_be_within_fifteen_minutes():
    near = responses(trace(rise_and_fall, skip=(106, 134)), [carbs(minutes(0))])[0]
    assert near["two_hour_at"] == minutes(105)  # 15 min from 14:00, before 14:15: the earlier
    assert near["two_hour_mg_dl"] == 160.0 - 0.5 * 45
    far = responses(trace(rise_and_fall, skip=(101, 139)), [carbs(minutes(0))])[0]
    assert far["two_hour_mg_dl"] is None  # 13:40 and 14:20 are 20 min away
    assert far["two_hour_at"] is None


def test_each_patient_uses_only_their_own_readings_and_days_are_local():
    new_york = "America/New_York"
    late = dt.datetime(2026, 5, 4, 23, 50, tzinfo=ZoneInfo(new_york)).astimezone(dt.UTC)
    rows = trace(rise_and_fall, patient="a")
    meals = [carbs(minutes(0), patient="a"), carbs(late, patient="b", zone=new_york)]
    a, b = sorted(responses(rows, meals), key=lambda r: r["patient_key"])
    assert a["peak_mg_dl"] == 160.0
    assert b["date"] == dt.date(2026, 5, 4)  # 03:50 UTC on the 5th
    assert b["tz"] == new_york
    assert [b[c] for c in ("premeal_mg_dl", "peak_mg_dl", "two_hour_mg_dl")] == [None] * 3
    assert b["window_readings"] == 0


def test_no_meals_give_no_rows():
    events = pa.Table.from_pylist([], schema=EVENT_SCHEMA)
    out = meal_responses(readings(trace(rise_and_fall)), events, run_id="r", computed_at=AT)
    assert out.num_rows == 0
    assert out.schema == MEAL_RESPONSE_SCHEMA


def _reference(reading_rows: list[dict], meal_times: list[dt.datetime]) -> list[dict]:
    """The definitions applied reading by reading, the plain way (one patient)."""
    points = sorted((r["ts"], r["glucose_mg_dl"]) for r in reading_rows)
    out = []
    for meal in meal_times:
        before = [p for p in points if meal - dt.timedelta(minutes=15) <= p[0] <= meal]
        premeal = before[-1] if before else None
        later = [m for m in meal_times if m >= meal + dt.timedelta(minutes=30)]
        end = min([meal + dt.timedelta(hours=3), *later])
        window = [p for p in points if meal < p[0] <= end]
        times = [meal, *(p[0] for p in window), end]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        peak = None
        if window and max(gaps) <= dt.timedelta(minutes=30):
            peak = max(window, key=lambda p: (p[1], -p[0].timestamp()))  # the first highest
        target = meal + dt.timedelta(hours=2)
        near = sorted(points, key=lambda p: (abs(p[0] - target), p[0]))
        two = near[0] if near and abs(near[0][0] - target) <= dt.timedelta(minutes=15) else None
        if end < target:
            two = None
        out.append({"premeal": premeal, "peak": peak, "two": two, "end": end})
    return out


@pytest.mark.parametrize("seed", range(10))  # 300 passed when written
def test_random_traces_equal_the_definitions_applied_reading_by_reading(seed):
    rng = random.Random(seed)
    rows = [
        r
        for r in trace(lambda m: 100.0 + rng.randrange(0, 200), start=-60, stop=600)
        if rng.random() > 0.2  # a fifth of the readings missing, some gaps long
    ]
    for r in rows:
        r["ts"] += dt.timedelta(seconds=rng.randrange(-40, 40))  # sensor jitter
    meal_times = sorted({minutes(rng.randrange(0, 400)) for _ in range(5)})
    got = responses(rows, [carbs(t) for t in meal_times])
    for row, want in zip(got, _reference(rows, meal_times), strict=True):
        for name, key in (("premeal", "premeal"), ("peak", "peak"), ("two_hour", "two")):
            found = want[key]
            assert row[f"{name}_at"] == (found[0] if found else None), (seed, name)
            assert row[f"{name}_mg_dl"] == (found[1] if found else None), (seed, name)
        assert row["window_min"] == (want["end"] - row["meal_at"]) / dt.timedelta(minutes=1)
