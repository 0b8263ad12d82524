"""Local times around daylight-saving changes: the repeated hour is resolved by file order, the
skipped hour is quarantined. Expected instants come from zoneinfo (fold=0 / fold=1)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path

import pytest

from glucosestream.ingest import ingest_path
from glucosestream.lake import RawZone

from .conftest import FixedClock, write
from .test_formats_layouts import carelink_text


@pytest.fixture
def clock():
    """Received after every reading of this module: the plausible range ends 10 minutes after
    receipt (readings.FUTURE_SKEW), and these readings are dated up to November 2026."""
    return FixedClock(dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC))


BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def batch_of(settings, report):
    return next(
        b for b in RawZone(Path(settings.lake.root)).list_batches() if b.batch_id == report.batch_id
    )


def five_minute_wall_clock(zone, start_utc, count):
    """Local wall-clock times of readings every 5 minutes, with the fold each one is in."""
    instants = [start_utc + dt.timedelta(minutes=5 * i) for i in range(count)]
    return [(i.astimezone(zone).replace(tzinfo=None), i) for i in instants]


def test_the_repeated_hour_is_resolved_by_file_order(settings, tmp_path, clock):
    # Berlin falls back at 03:00 CEST on 25 October 2026 (01:00 UTC): 02:00-02:59 happens twice.
    wall = five_minute_wall_clock(BERLIN, dt.datetime(2026, 10, 24, 23, 30, tzinfo=dt.UTC), 36)
    assert len({local for local, _ in wall}) < len(wall)  # the file really repeats local times
    lines = [f"A,{local:%Y-%m-%d %H:%M:%S},{100 + i}" for i, (local, _) in enumerate(wall)]
    path = write(tmp_path / "fold.csv", "patient_id,time,glucose_mg_dl\n" + "\n".join(lines))
    report = ingest_path(settings, path, tz="Europe/Berlin", now=clock)
    assert (report.accepted, report.duplicates, report.quarantined) == (len(wall), 0, 0)
    readings = batch_of(settings, report).readings().to_pylist()
    by_value = {r["glucose_mg_dl"]: r["ts"] for r in readings}
    assert [by_value[100 + i] for i in range(len(wall))] == [instant for _, instant in wall]


def test_a_newest_first_export_resolves_the_repeated_hour_the_same_way(settings, tmp_path, clock):
    wall = five_minute_wall_clock(BERLIN, dt.datetime(2026, 10, 25, 0, 20, tzinfo=dt.UTC), 24)
    rows = [
        f"{i},00000;{local:%Y/%m/%d};{local:%H:%M:%S};;;;;{100 + i};\n"
        for i, (local, _) in reversed(list(enumerate(wall)))
    ]
    path = write(tmp_path / "carelink_fold.csv", carelink_text(rows))
    report = ingest_path(settings, path, patient_id="P", tz="Europe/Berlin", now=clock)
    assert (report.accepted, report.duplicates) == (len(wall), 0)
    by_value = {
        r["glucose_mg_dl"]: r["ts"] for r in batch_of(settings, report).readings().to_pylist()
    }
    assert [by_value[100 + i] for i in range(len(wall))] == [instant for _, instant in wall]


def test_a_single_pass_through_the_repeated_hour_takes_the_earlier_instant(
    settings, tmp_path, clock
):
    # New York falls back at 02:00 EDT on 1 November 2026: 01:00-01:59 happens twice. A device
    # that read only 01:10 and 01:40 once (say, the sensor was off for the second pass).
    path = write(
        tmp_path / "once.csv",
        "patient_id,time,glucose_mg_dl\nA,2026-11-01 00:50:00,90\nA,2026-11-01 01:10:00,91\n"
        "A,2026-11-01 01:40:00,92\nA,2026-11-01 02:30:00,93\n",
    )
    report = ingest_path(settings, path, tz="America/New_York", now=clock)
    readings = sorted(batch_of(settings, report).readings().to_pylist(), key=lambda r: r["ts"])
    expected = [
        dt.datetime(2026, 11, 1, h, m, tzinfo=NEW_YORK, fold=0).astimezone(dt.UTC)
        for h, m in ((0, 50), (1, 10), (1, 40), (2, 30))
    ]
    assert [r["ts"] for r in readings] == expected


def test_a_time_in_the_spring_forward_gap_is_quarantined(settings, tmp_path, clock):
    # Berlin springs forward at 02:00 CET on 29 March 2026: 02:00-02:59 never happens.
    path = write(
        tmp_path / "gap.csv",
        "patient_id,time,glucose_mg_dl\nA,2026-03-29 01:55:00,100\nA,2026-03-29 02:00:00,101\n"
        "A,2026-03-29 02:30:00,102\nA,2026-03-29 03:00:00,103\n",
    )
    report = ingest_path(settings, path, tz="Europe/Berlin", now=clock)
    assert (report.received, report.accepted, report.quarantined) == (4, 2, 2)
    assert report.received == report.accepted + report.duplicates + report.quarantined
    batch = batch_of(settings, report)
    assert {(q["line"], q["reason"], q["time"]) for q in batch.quarantine().to_pylist()} == {
        (3, "local time skipped by a daylight-saving change", "2026-03-29 02:00:00"),
        (4, "local time skipped by a daylight-saving change", "2026-03-29 02:30:00"),
    }
    assert sorted(r["ts"] for r in batch.readings().to_pylist()) == [
        dt.datetime(2026, 3, 29, 0, 55, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 29, 1, 0, tzinfo=dt.UTC),
    ]


def test_times_with_an_offset_are_not_touched_by_the_zone(settings, tmp_path, clock):
    path = write(
        tmp_path / "offsets.csv",
        "patient_id,time,glucose_mg_dl\nA,2026-10-25T02:30:00+02:00,100\n"
        "A,2026-10-25T02:30:00+01:00,101\nA,2026-03-29T02:30:00+01:00,102\n",
    )
    report = ingest_path(settings, path, tz="Europe/Berlin", now=clock)
    assert (report.accepted, report.quarantined) == (3, 0)
    assert sorted(r["ts"] for r in batch_of(settings, report).readings().to_pylist()) == [
        dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC),
        dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.UTC),
        dt.datetime(2026, 10, 25, 1, 30, tzinfo=dt.UTC),
    ]
