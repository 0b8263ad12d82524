"""The reporting window: the newest local day counts only when its data reaches its end."""

from __future__ import annotations

import datetime as dt

import pytest

from glucosestream.metrics import REPORT_DAYS, report_window
from glucosestream.metrics.report_window import last_complete_day


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_an_export_made_at_ten_leaves_its_last_day_partial():
    window = report_window(at("2026-03-15T10:00"))
    assert (window.start, window.end) == (dt.date(2026, 3, 1), dt.date(2026, 3, 14))
    assert window.partial_day == dt.date(2026, 3, 15)
    assert window.days == REPORT_DAYS


@pytest.mark.parametrize(
    ("newest", "complete"),
    [
        ("2026-03-15T23:45", "2026-03-15"),  # a 15-minute sensor's last slot
        ("2026-03-15T23:40", "2026-03-15"),  # exactly 20 minutes before midnight
        ("2026-03-15T23:39", "2026-03-14"),
        ("2026-03-15T00:00", "2026-03-14"),
    ],
)
def test_the_newest_day_is_complete_only_within_its_last_twenty_minutes(newest, complete):
    assert last_complete_day(at(newest)) == dt.date.fromisoformat(complete)


def test_a_complete_newest_day_ends_the_window_and_nothing_is_partial():
    window = report_window(at("2026-03-15T23:58:30"), days=7)
    assert (window.start, window.end, window.partial_day) == (
        dt.date(2026, 3, 9),
        dt.date(2026, 3, 15),
        None,
    )


def test_a_zone_aware_time_is_judged_on_its_own_wall_clock():
    newest = dt.datetime(2026, 3, 15, 23, 50, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert last_complete_day(newest) == dt.date(2026, 3, 15)


def test_a_window_has_at_least_one_day():
    with pytest.raises(ValueError, match="at least one day"):
        report_window(at("2026-03-15T10:00"), days=0)
