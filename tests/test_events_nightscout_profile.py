"""Nightscout profiles: a basal schedule laid over a bounded window as scheduled basal segments
(formats/nightscout_profile.py): the public sample, succession of documents, the 31-day cap,
days the clocks change, unreadable schedules."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from pathlib import Path

import pytest

from glucosestream.formats.detect import read_raw_rows
from glucosestream.formats.nightscout_profile import scheduled_basal

PROFILE = (
    Path(__file__).parent / "data" / "samples" / "nightscout" / "cgm_format_nightscout_profile.json"
)


def utc(text):
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def profile(start, zone, basal, **extra):
    return {
        "startDate": start,
        "defaultProfile": "p",
        "enteredBy": "Loop",
        "store": {"p": {"timezone": zone, "basal": basal, "units": "mg/dl"}},
        **extra,
    }


def test_a_profile_file_alone_gives_no_rows_and_is_not_refused():
    fmt, parsed = read_raw_rows(PROFILE)
    documents = json.loads(PROFILE.read_text())
    assert (fmt, parsed.rows.num_rows, parsed.events) == ("nightscout", 0, None)
    assert parsed.skipped == len(documents)


def test_the_sample_profile_schedule_over_a_window():
    documents = json.loads(PROFILE.read_text())
    newest = max(documents, key=lambda d: d["startDate"])
    store = newest["store"][newest["defaultProfile"]]
    zone = zoneinfo.ZoneInfo(store["timezone"])
    start, end = utc("2026-04-05T13:00:00"), utc("2026-04-07T20:00:00")
    rows = scheduled_basal(documents, start, end).to_pylist()
    # Independently: every entry's local time on the local days around the window, in UTC;
    # the one running at the window's start keeps its own start; none after the end.
    instants = sorted(
        (
            dt.datetime.combine(day, dt.time(), zone)
            .replace(hour=int(e["time"][:2]), minute=int(e["time"][3:]))
            .astimezone(dt.UTC),
            str(e["value"]),
        )
        for day in (dt.date(2026, 4, 4) + dt.timedelta(days=n) for n in range(5))
        for e in store["basal"]
    )
    running = max(i for i in instants if i[0] <= start)
    expected = [running, *(i for i in instants if start < i[0] < end)]
    got = [(dt.datetime.fromisoformat(r["time"]), r["rate_u_h"]) for r in rows]
    assert got == expected
    assert {
        (r["kind"], r["subtype"], r["duration_min"], r["tz"], r["device_id"]) for r in rows
    } == {("basal", "scheduled", None, store["timezone"], newest["enteredBy"])}
    # The same schedule over an overlapping window gives the same rows where they overlap.
    later = scheduled_basal(documents, utc("2026-04-06T02:00:00"), end).to_pylist()
    assert [r["time"] for r in later] == [r["time"] for r in rows][-len(later) :]


def test_each_document_holds_until_the_next_and_the_window_is_at_most_31_days():
    documents = [
        profile("2026-01-01T00:00:00Z", "UTC", [{"time": "00:00", "value": 1}]),
        profile("2026-03-01T12:00:00Z", "UTC", [{"timeAsSeconds": 0, "value": 2}]),
    ]
    rows = scheduled_basal(documents, utc("2025-12-01T00:00:00"), utc("2026-03-03T00:00:00"))
    got = [(r["time"], r["rate_u_h"]) for r in rows.to_pylist()]
    # 31 days back from the end: 2026-01-31; the first document until 03-01 12:00, then the second.
    assert got[0] == ("2026-01-31T00:00:00+00:00", "1")
    assert got[-3:] == [
        ("2026-03-01T00:00:00+00:00", "1"),
        ("2026-03-01T12:00:00+00:00", "2"),
        ("2026-03-02T00:00:00+00:00", "2"),
    ]
    assert len(got) == 30 + 2  # Jan 31 .. Mar 1 at rate 1 (1 + 28 + 1 days), then two at rate 2
    assert (
        scheduled_basal(documents, utc("2024-01-01T00:00:00"), utc("2024-02-01T00:00:00")).num_rows
        == 0
    )


def test_entries_the_clocks_skip_or_repeat():
    basal = [{"time": "00:00", "value": 0.5}, {"time": "02:30", "value": 0.9}]
    documents = [profile("2026-01-01T00:00:00Z", "Europe/Berlin", basal)]
    spring = scheduled_basal(documents, utc("2026-03-28T23:00:00"), utc("2026-03-29T12:00:00"))
    # 02:30 does not exist on 29 March: the rate starts when the clocks jump (01:00 UTC).
    assert [r["time"] for r in spring.to_pylist()] == [
        "2026-03-28T23:00:00+00:00",
        "2026-03-29T01:00:00+00:00",
    ]
    autumn = scheduled_basal(documents, utc("2026-10-24T22:00:00"), utc("2026-10-25T12:00:00"))
    # 02:30 is shown twice on 25 October: the first time (CEST, 00:30 UTC).
    assert [r["time"] for r in autumn.to_pylist()] == [
        "2026-10-24T22:00:00+00:00",
        "2026-10-25T00:30:00+00:00",
    ]


def test_unreadable_schedules_are_one_problem_row_each():
    documents = [
        profile("2026-01-01T00:00:00Z", "Mars/Olympus", [{"time": "00:00", "value": 1}]),
        profile(
            "2026-01-02T00:00:00Z",
            "UTC",
            [{"time": f"{h:02}:00", "value": 1} for h in range(24)] * 3,
        ),
        profile("2026-01-03T00:00:00Z", "UTC", [{"value": 1}]),
        {**profile("2026-01-04T00:00:00Z", "UTC", []), "defaultProfile": "missing"},
        profile("2026-01-05T00:00:00Z", "UTC", [{"time": "00:00", "value": "x" * 99}]),
        "not a profile",
        {"store": {}, "startDate": "no date"},
    ]
    rows = scheduled_basal(documents, utc("2026-01-01T00:00:00"), utc("2026-01-05T06:00:00"))
    assert [(r["line"], r["rate_u_h"], r["problem"]) for r in rows.to_pylist()] == [
        (1, None, "the profile's timezone Mars/Olympus is not a known zone"),
        (2, None, "a basal schedule of 72 entries (at most 48)"),
        (3, None, "basal schedule entry 1 has no time of day"),
        (4, None, "the profile has no default store with a basal schedule"),
        (5, "(too long)", None),
    ]
    naive = utc("2026-01-01T00:00:00").replace(tzinfo=None)
    with pytest.raises(ValueError, match="aware"):
        scheduled_basal(documents, naive, utc("2026-01-02T00:00:00"))
