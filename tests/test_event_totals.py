"""Insulin and carbohydrate per local day and per period (metrics.event_totals), on events built
by hand whose totals the tests work out by arithmetic."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from glucosestream.events import EVENT_SCHEMA
from glucosestream.metrics.basal_delivery import basal_delivery
from glucosestream.metrics.daily import DAILY_METRICS_SCHEMA
from glucosestream.metrics.event_totals import (
    DAILY_EVENT_TOTALS_SCHEMA,
    PERIOD_EVENT_TOTALS_SCHEMA,
    daily_event_totals,
    daily_rows_with_events,
    period_event_totals,
)
from glucosestream.metrics.result_schemas import PERIOD_EVENT_COLUMNS, PERIOD_METRICS_SCHEMA

PARIS = "Europe/Paris"
NEW_YORK = "America/New_York"
KOLKATA = "Asia/Kolkata"  # UTC+05:30: local midnight is 18:30 UTC
AT = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)
SEEDS = 12  # random pump records per test run (300 passed when written)


def local(zone: str, day: dt.date, hour: int = 0, minute: int = 0) -> dt.datetime:
    """The UTC instant of a wall-clock time in ``zone``."""
    wall = dt.datetime.combine(day, dt.time(hour, minute), ZoneInfo(zone))
    return wall.astimezone(dt.UTC)


def ev(kind, ts, *, zone=PARIS, subtype=None, units=None, rate=None, minutes=None, carbs=None,
       patient="p1", device="pump"):  # fmt: skip
    return {
        "patient_key": patient, "device_id": device, "source": "test", "ts": ts, "tz": zone,
        "kind": kind, "subtype": subtype, "units": units, "rate_u_h": rate,
        "duration_min": minutes, "carbs_g": carbs, "glucose_mg_dl": None, "original_value": None,
        "original_unit": None, "ketone_mmol_l": None, "intensity": None, "note": None,
        "batch_id": "b", "ingested_at": AT,
    }  # fmt: skip


def events(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)


def by_day(table: pa.Table) -> dict[tuple[str, dt.date], dict]:
    return {(r["patient_key"], r["date"]): r for r in table.to_pylist()}


D1, D2, D3 = dt.date(2026, 1, 10), dt.date(2026, 1, 11), dt.date(2026, 1, 12)


def test_boluses_and_carbs_count_on_the_local_day_of_their_time():
    # New York in January is UTC-5: 23:55 on the 10th is 04:55 UTC on the 11th.
    rows = [
        ev("bolus", local(NEW_YORK, D1, 23, 55), zone=NEW_YORK, subtype="normal", units=4.0),
        ev("carbs", local(NEW_YORK, D1, 23, 58), zone=NEW_YORK, subtype="meal", carbs=30.0),
        ev("bolus", local(NEW_YORK, D2, 0, 5), zone=NEW_YORK, subtype="normal", units=1.5),
        ev("carbs", local(NEW_YORK, D2, 0, 2), zone=NEW_YORK, subtype="correction", carbs=15.0),
        ev("carbs", local(NEW_YORK, D2, 12, 0), zone=NEW_YORK, subtype="meal", carbs=60.0),
        ev("bolus", local(NEW_YORK, D2, 12, 0), zone=NEW_YORK, subtype="automatic", units=0.3),
    ]
    out = daily_event_totals(events(rows))
    assert out.schema == DAILY_EVENT_TOTALS_SCHEMA
    days = by_day(out)
    assert sorted(d for _, d in days) == [D1, D2]
    first, second = days[("p1", D1)], days[("p1", D2)]
    assert (first["bolus_u"], first["carbs_g"], first["boluses"]) == (4.0, 30.0, 1)
    assert second["bolus_u"] == pytest.approx(1.5 + 0.3)
    assert second["carbs_g"] == 15.0 + 60.0
    assert second["boluses"] == 1  # the automatic bolus is the algorithm's, not counted
    assert second["tz"] == NEW_YORK
    for day in (first, second):  # boluses and no basal record: basal and total unknown
        assert day["basal_u"] is None
        assert day["insulin_total_u"] is None
        assert day["automated_pct"] is None


def schedule(zone: str, day: dt.date, changes: list[tuple[int, int, float]]) -> list[dict]:
    """Open segments (a pump's rate changes, no duration) on ``day`` at (hour, minute, rate)."""
    return [ev("basal", local(zone, day, h, m), zone=zone, subtype="scheduled", rate=r)
            for h, m, r in changes]  # fmt: skip


def test_open_segments_last_until_the_next_and_are_cut_at_local_midnight():
    rows = [
        *schedule(PARIS, D1, [(0, 0, 0.8), (22, 30, 1.2)]),
        *schedule(PARIS, D2, [(6, 0, 1.0)]),
        *schedule(PARIS, D3, [(0, 0, 0.9)]),  # the last record: covers nothing after itself
        ev("bolus", local(PARIS, D1, 8), subtype="normal", units=2.0),
    ]
    days = by_day(daily_event_totals(events(rows)))
    one, two, three = days[("p1", D1)], days[("p1", D2)], days[("p1", D3)]
    assert one["basal_u"] == pytest.approx(22.5 * 0.8 + 1.5 * 1.2)
    assert one["insulin_total_u"] == pytest.approx(22.5 * 0.8 + 1.5 * 1.2 + 2.0)
    assert two["basal_u"] == pytest.approx(6 * 1.2 + 18 * 1.0)  # 22:30 -> 06:00 spans midnight
    assert (two["bolus_u"], two["boluses"]) == (0.0, 0)  # an insulin day without a bolus
    assert two["insulin_total_u"] == pytest.approx(two["basal_u"])
    assert two["automated_pct"] == 0.0
    assert three["basal_u"] is None  # nothing known after 00:00 on the 12th


def test_a_temporary_rate_overrides_the_schedule_and_the_schedule_resumes():
    rows = [
        *schedule(PARIS, D1, [(0, 0, 0.8), (22, 30, 1.2)]),
        *schedule(PARIS, D2, [(6, 0, 1.0)]),
        *schedule(PARIS, D3, [(0, 0, 0.9)]),
        ev("basal", local(PARIS, D1, 23), subtype="temporary", rate=2.0, minutes=120),
    ]
    days = by_day(daily_event_totals(events(rows)))
    # D1: 0:00-22:30 at 0.8, 22:30-23:00 at 1.2, 23:00-24:00 at 2.0 (temporary)
    assert days[("p1", D1)]["basal_u"] == pytest.approx(22.5 * 0.8 + 0.5 * 1.2 + 1 * 2.0)
    # D2: 0:00-1:00 at 2.0 (temporary), 1:00-6:00 at 1.2 (schedule again), 6:00-24:00 at 1.0
    assert days[("p1", D2)]["basal_u"] == pytest.approx(1 * 2.0 + 5 * 1.2 + 18 * 1.0)
    out = daily_event_totals(events(rows))
    assert daily_event_totals(events(rows[::-1])).equals(out)
    delivery = basal_delivery(events(rows)).to_pylist()
    starts = [r["start_at"] for r in delivery]
    assert starts == sorted(starts)
    assert all(a["end_at"] <= b["start_at"] for a, b in itertools.pairwise(delivery))


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        (PARIS, dt.date(2026, 3, 29), 23),
        (PARIS, dt.date(2026, 10, 25), 25),
        (PARIS, dt.date(2026, 3, 28), 24),
        # Santiago moves its clocks from 00:00 to 01:00: the day starts at the jump.
        ("America/Santiago", dt.date(2026, 9, 6), 23),
    ],
)
def test_a_day_of_basal_is_its_local_length_across_a_clock_change(zone, day, hours):
    after = day + dt.timedelta(days=1)
    rows = [
        *schedule(zone, day, [(0, 0, 1.0)]),
        *schedule(zone, after, [(0, 0, 1.0)]),
        ev("bolus", local(zone, after, 0, 0), zone=zone, subtype="normal", units=1.0),
    ]
    days = by_day(daily_event_totals(events(rows)))
    assert days[("p1", day)]["basal_u"] == pytest.approx(hours * 1.0)
    assert days[("p1", day)]["tz"] == zone


def test_automated_share_of_the_basal_time_in_a_half_hour_zone():
    day = D2
    rows = [
        ev("basal", local(KOLKATA, day, 0), zone=KOLKATA, subtype="scheduled", rate=0.8,
           minutes=360),
        ev("basal", local(KOLKATA, day, 6), zone=KOLKATA, subtype="automated", rate=1.1,
           minutes=720),
        ev("basal", local(KOLKATA, day, 18), zone=KOLKATA, subtype="automated", rate=0.5,
           minutes=360),
    ]  # fmt: skip
    [row] = daily_event_totals(events(rows)).to_pylist()
    assert row["date"] == day
    assert row["basal_u"] == pytest.approx(6 * 0.8 + 12 * 1.1 + 6 * 0.5)
    assert row["automated_pct"] == pytest.approx(100 * 18 / 24)
    assert row["bolus_u"] == 0.0
    assert row["carbs_g"] is None


def test_suspensions_deliver_nothing_and_the_schedule_resumes_after_them():
    rows = [
        *schedule(PARIS, D1, [(0, 0, 0.8)]),
        *schedule(PARIS, D2, [(0, 0, 0.8)]),
        ev("bolus", local(PARIS, D2, 1), subtype="normal", units=1.0),
        ev("device", local(PARIS, D1, 10), subtype="pump_suspend", minutes=60),
        ev("basal", local(PARIS, D1, 14), subtype="suspended"),  # ends at the resume
        ev("device", local(PARIS, D1, 14, 30), subtype="pump_resume"),
    ]
    days = by_day(daily_event_totals(events(rows)))
    assert days[("p1", D1)]["basal_u"] == pytest.approx((24 - 1 - 0.5) * 0.8)
    assert days[("p1", D1)]["automated_pct"] == 0.0  # suspended time is known pump time


@pytest.mark.parametrize(("gap_min", "known"), [(10, True), (15, True), (20, False)])
def test_basal_is_known_when_the_day_lacks_at_most_fifteen_minutes(gap_min, known):
    start = local(PARIS, D1, 0, gap_min)
    rows = [ev("basal", start, subtype="temporary", rate=1.0, minutes=24 * 60 - gap_min)]
    [row] = daily_event_totals(events(rows)).to_pylist()
    expected = (24 * 60 - gap_min) / 60 * 1.0
    assert row["basal_u"] == (pytest.approx(expected) if known else None)
    assert row["automated_pct"] == 0.0


def test_an_open_segment_lasts_at_most_25_hours():
    rows = [
        *schedule(PARIS, D1, [(0, 0, 1.0)]),
        *schedule(PARIS, D3, [(12, 0, 1.0)]),  # 36 hours later
        ev("bolus", local(PARIS, D2, 9), subtype="normal", units=2.0),
    ]
    days = by_day(daily_event_totals(events(rows)))
    assert days[("p1", D1)]["basal_u"] == pytest.approx(24.0)
    assert days[("p1", D2)]["basal_u"] is None  # the 25 hours end at 01:00
    assert days[("p1", D2)]["bolus_u"] == 2.0


def test_an_extended_bolus_is_spread_over_its_duration_and_counted_once():
    rows = [  # a dual-wave bolus: 2 U now, 3 U over two hours from 23:00
        ev("bolus", local(PARIS, D1, 23), subtype="normal", units=2.0),
        ev("bolus", local(PARIS, D1, 23), subtype="extended", units=3.0, minutes=120),
        ev("bolus", local(PARIS, D2, 12), subtype="extended", units=1.0),  # no duration: at ts
    ]
    days = by_day(daily_event_totals(events(rows)))
    assert days[("p1", D1)]["bolus_u"] == pytest.approx(2.0 + 1.5)
    assert days[("p1", D1)]["boluses"] == 1
    assert days[("p1", D2)]["bolus_u"] == pytest.approx(1.5 + 1.0)
    assert days[("p1", D2)]["boluses"] == 1


def test_rows_sharing_patient_device_and_time_give_the_same_totals_in_either_order():
    at = local(PARIS, D1, 0)
    tied = [
        ev("bolus", at, subtype="normal", units=0.1),
        ev("bolus", at, subtype="extended", units=0.2, minutes=30),
        ev("carbs", at, subtype="meal", carbs=0.3),
        ev("basal", at, subtype="temporary", rate=0.7, minutes=24 * 60),
        ev("basal", at, subtype="temporary", rate=0.9, minutes=24 * 60),
    ]
    later = [ev("bolus", local(PARIS, D1, 18), subtype="normal", units=1.0)]
    one = daily_event_totals(events(tied + later))
    assert daily_event_totals(events(tied[::-1] + later)).equals(one)
    [row] = one.to_pylist()
    assert row["bolus_u"] == pytest.approx(0.1 + 0.2 + 1.0)
    assert row["boluses"] == 2  # the dual-wave bolus at midnight and the one at 18:00
    # Two segments starting together: one order of the amounts decides (the larger rate last).
    assert row["basal_u"] == pytest.approx(24 * 0.9)


def test_a_long_acting_injection_makes_the_basal_known():
    rows = [
        ev("basal", local(PARIS, D1, 22), subtype="injection", units=18.0, device="pen"),
        ev("bolus", local(PARIS, D1, 8), subtype="normal", units=5.0, device="pen"),
        ev("bolus", local(PARIS, D2, 8), subtype="normal", units=4.0, device="pen"),
    ]
    days = by_day(daily_event_totals(events(rows)))
    assert days[("p1", D1)]["basal_u"] == 18.0
    assert days[("p1", D1)]["insulin_total_u"] == 23.0
    assert days[("p1", D1)]["automated_pct"] is None  # no pump time recorded
    assert days[("p1", D2)]["basal_u"] is None  # no injection that day


def test_the_same_pump_under_two_device_ids_counts_once():
    one = [*schedule(PARIS, D1, [(0, 0, 1.0)]), *schedule(PARIS, D2, [(0, 0, 1.0)])]
    two = [{**row, "device_id": "uploader"} for row in one]
    days = by_day(daily_event_totals(events(one + two)))
    assert days[("p1", D1)]["basal_u"] == pytest.approx(24.0)


def test_other_kinds_give_a_day_with_its_columns_null():
    rows = [ev("exercise", local(PARIS, D1, 18), minutes=45), ev("carbs", local(PARIS, D2, 8),
            subtype="meal", carbs=40.0)]  # fmt: skip
    days = by_day(daily_event_totals(events(rows)))
    quiet = days[("p1", D1)]
    assert [quiet[c] for c in ("bolus_u", "basal_u", "carbs_g", "boluses")] == [None] * 4
    assert days[("p1", D2)]["carbs_g"] == 40.0
    assert days[("p1", D2)]["bolus_u"] is None


def test_a_daily_total_is_the_sum_of_that_local_days_events_in_any_row_order():
    rng = random.Random(19)
    rows, want_units, want_carbs = [], {}, {}
    for _ in range(300):
        patient = rng.choice(["a", "b"])
        zone = {"a": NEW_YORK, "b": KOLKATA}[patient]
        instant = AT + dt.timedelta(minutes=rng.randrange(0, 5 * 24 * 60))
        day = instant.astimezone(ZoneInfo(zone)).date()
        if rng.random() < 0.5:
            units = round(rng.uniform(0.1, 10), 2)
            rows.append(ev("bolus", instant, zone=zone, subtype="normal", units=units,
                           patient=patient))  # fmt: skip
            want_units[(patient, day)] = want_units.get((patient, day), 0.0) + units
        else:
            grams = float(rng.randrange(5, 120))
            rows.append(ev("carbs", instant, zone=zone, subtype="meal", carbs=grams,
                           patient=patient))  # fmt: skip
            want_carbs[(patient, day)] = want_carbs.get((patient, day), 0.0) + grams
    out = daily_event_totals(events(rows))
    days = by_day(out)
    assert set(days) == set(want_units) | set(want_carbs)
    for key, units in want_units.items():
        assert days[key]["bolus_u"] == pytest.approx(units)
    for key, grams in want_carbs.items():
        assert days[key]["carbs_g"] == grams
    rng.shuffle(rows)
    assert daily_event_totals(events(rows)).equals(out)  # bit for bit, whatever the order


def daily(rows: list[tuple]) -> pa.Table:
    names = ["patient_key", "date", "bolus_u", "basal_u", "insulin_total_u", "carbs_g",
             "boluses", "automated_pct"]  # fmt: skip
    table = pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in rows])
    return table.cast(
        pa.schema([pa.field("patient_key", pa.string()), pa.field("date", pa.date32()),
                   *(DAILY_METRICS_SCHEMA.field(n) for n in names[2:])])
    )  # fmt: skip


def test_period_totals_average_the_known_days_and_count_them():
    days = daily(
        [
            ("a", D1, 10.0, 20.0, 30.0, 150.0, 4, 50.0),
            ("a", D2, 6.0, None, None, None, 2, 100.0),
            ("a", D3, None, None, None, 90.0, None, None),
            ("b", D1, 1.0, 2.0, 3.0, 4.0, 1, None),
        ]
    )
    periods = pa.table(
        {
            "patient_key": ["a", "b", "a"],
            "period_start": pa.array([D1, D3, D2], pa.date32()),
            "period_end": pa.array([D3, D3, D2], pa.date32()),
        }
    )
    out = period_event_totals(days, periods)
    assert out.schema == PERIOD_EVENT_TOTALS_SCHEMA
    first, empty, single = out.to_pylist()
    assert (first["patient_key"], first["period_start"]) == ("a", D1)
    assert first["bolus_u_per_day"] == 8.0
    assert first["insulin_days"] == 2
    assert first["basal_u_per_day"] == 20.0
    assert first["basal_days"] == 1
    assert first["insulin_total_u_per_day"] == 30.0
    assert first["carbs_g_per_day"] == 120.0
    assert first["carbs_days"] == 2
    assert first["boluses_per_day"] == 3.0
    assert first["automated_pct"] == 75.0
    assert first["automated_days"] == 2
    assert empty["patient_key"] == "b"
    assert empty["bolus_u_per_day"] is None
    assert (empty["insulin_days"], empty["basal_days"], empty["carbs_days"]) == (0, 0, 0)
    assert (single["bolus_u_per_day"], single["insulin_days"]) == (6.0, 1)


def test_the_period_metrics_table_carries_the_period_totals_last():
    names = PERIOD_METRICS_SCHEMA.names
    assert tuple(names[-len(PERIOD_EVENT_COLUMNS) :]) == PERIOD_EVENT_COLUMNS
    assert names[-len(PERIOD_EVENT_COLUMNS) - 1] == "computed_at"  # as schema evolution adds
    assert PERIOD_EVENT_TOTALS_SCHEMA.names[3:] == list(PERIOD_EVENT_COLUMNS)
    assert all(PERIOD_METRICS_SCHEMA.field(n).nullable for n in PERIOD_EVENT_COLUMNS)


def test_daily_rows_take_the_totals_and_add_days_with_only_events():
    glucose = pa.Table.from_pylist(
        [
            {
                "patient_key": "a",
                "date": D1,
                "tz": PARIS,
                "readings": 288,
                "mean_mg_dl": 140.0,
                "gmi_pct": 6.6,
                "pct_below_54": 0.0,
                "pct_below_70": 1.0,
                "pct_70_180": 80.0,
                "pct_above_180": 19.0,
                "pct_above_250": 2.0,
                "pct_active": 100.0,
                "run_id": "r",
                "computed_at": AT,
            }
        ],
        schema=DAILY_METRICS_SCHEMA,
    )
    totals = daily_event_totals(
        events(
            [
                ev("bolus", local(PARIS, D1, 8), subtype="normal", units=5.0, patient="a"),
                ev("carbs", local(PARIS, D2, 8), subtype="meal", carbs=50.0, patient="a"),
            ]
        )
    )
    rows = daily_rows_with_events(glucose, totals, run_id="r2", computed_at=AT)
    assert rows.schema == DAILY_METRICS_SCHEMA
    with_readings, only_events = rows.to_pylist()
    assert (with_readings["readings"], with_readings["mean_mg_dl"]) == (288, 140.0)
    assert (with_readings["bolus_u"], with_readings["run_id"]) == (5.0, "r")
    assert only_events["date"] == D2
    assert only_events["readings"] == 0
    assert only_events["pct_active"] == 0.0
    assert only_events["mean_mg_dl"] is None
    assert (only_events["carbs_g"], only_events["tz"], only_events["run_id"]) == (50.0, PARIS, "r2")


def _reference_rates(rows: list[dict], start: dt.datetime, minutes: int) -> list[tuple]:
    """The basal rules applied minute by minute, the plain way: (rate, subtype) delivering at
    each minute from ``start``, or None. Rows have distinct start minutes and one zone."""
    pump = [r for r in rows if r["kind"] in ("basal", "device")]
    device_last = {}
    for r in pump:
        end = r["ts"] + dt.timedelta(minutes=r["duration_min"] or 0)
        device_last[r["device_id"]] = max(device_last.get(r["device_id"], end), end)

    def opens(r):
        return r["kind"] == "basal" and r["duration_min"] is None and r["subtype"] != "suspended"

    def until(r, marks):
        later = [o["ts"] for o in pump if o["device_id"] == r["device_id"] and marks(o)
                 and o["ts"] > r["ts"]]  # fmt: skip
        return min([*later, device_last[r["device_id"]], r["ts"] + dt.timedelta(hours=25)])

    timed, opened = [], []
    for r in pump:
        suspend = r["subtype"] in ("suspended", "pump_suspend")
        rate = 0.0 if suspend else r["rate_u_h"]
        segment = (r["ts"], rate, "suspended" if suspend else r["subtype"])
        if r["duration_min"] is not None and (suspend or r["kind"] == "basal"):
            timed.append((*segment, r["ts"] + dt.timedelta(minutes=r["duration_min"])))
        elif suspend:  # ends at the next resume or open segment of its device
            resumes = lambda o: opens(o) or o["subtype"] == "pump_resume"  # noqa: E731
            timed.append((*segment, until(r, resumes)))
        elif opens(r):
            opened.append((*segment, until(r, opens)))
    out = []
    for m in range(minutes):
        t = start + dt.timedelta(minutes=m)
        found = None
        for kind in (timed, opened):
            began = [s for s in kind if s[0] <= t]
            if began:
                last = max(began, key=lambda s: s[0])  # the latest start replaces the others
                if t < last[3]:
                    found = (last[1], last[2])
                    break
        out.append(found)
    return out


def _random_pump_rows(rng: random.Random, zone: str, start: dt.datetime) -> list[dict]:
    rows = []
    for m in sorted(rng.sample(range(0, 3 * 24 * 60, 5), 40)):
        at, device = start + dt.timedelta(minutes=m), rng.choice(["pump", "pump", "uploader"])
        pick = rng.random()
        if pick < 0.08:
            kind, subtype = "device", rng.choice(["pump_suspend", "pump_resume"])
            minutes = rng.choice([None, 20]) if subtype == "pump_suspend" else None
            rows.append(ev(kind, at, zone=zone, subtype=subtype, minutes=minutes, device=device))
            continue
        subtype = rng.choice(["scheduled", "scheduled", "temporary", "automated"])
        minutes = None if subtype == "scheduled" else rng.choice([0, 15, 30, 90, 240])
        rows.append(ev("basal", at, zone=zone, subtype=subtype, rate=round(rng.uniform(0, 2), 3),
                       minutes=minutes, device=device))  # fmt: skip
    return rows


@pytest.mark.parametrize("seed", range(SEEDS))
def test_basal_totals_equal_the_rules_applied_minute_by_minute(seed):
    rng = random.Random(seed)
    zone = rng.choice(["UTC", PARIS, KOLKATA])
    start = local(zone, D1)
    rows = _random_pump_rows(rng, zone, start)
    span = 4 * 24 * 60
    rates = _reference_rates(rows, start, span)
    want: dict[dt.date, list[tuple]] = {}
    for m, found in enumerate(rates):
        day = (start + dt.timedelta(minutes=m)).astimezone(ZoneInfo(zone)).date()
        want.setdefault(day, []).append(found)
    days = by_day(daily_event_totals(events(rows)))
    for day, minutes_of_day in want.items():
        known = [f for f in minutes_of_day if f is not None]
        row = days.get(("p1", day))
        if row is None:
            assert not known
            continue
        complete = len(known) >= len(minutes_of_day) - 15
        expected = sum(rate for rate, _ in known) / 60
        assert row["basal_u"] == (pytest.approx(expected, abs=1e-9) if complete else None), day
        if known:
            share = 100 * sum(1 for _, s in known if s == "automated") / len(known)
            assert row["automated_pct"] == pytest.approx(share, abs=1e-9)
