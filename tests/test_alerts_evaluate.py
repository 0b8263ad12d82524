"""The pure alert core: rules, the AR2 forecast and the evaluator."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from glucosestream.alerts.forecast import ar2, ar2_inputs, forecast
from glucosestream.alerts.rules import DEFAULT_RULES, RuleRow, rules_for
from glucosestream.config import AlertSettings

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def _at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


# --- rules ----------------------------------------------------------------------------------


def _row(patient: str, kind: str, *, enabled: bool = True, threshold=None, minutes=None):
    return RuleRow(patient, kind, enabled, threshold, minutes)


def test_the_defaults_are_the_issues_numbers():
    rules = rules_for("p1", [], AlertSettings())
    assert rules.get("urgent_low").threshold_mg_dl == 55
    assert rules.get("low").threshold_mg_dl == 70
    assert rules.get("high").threshold_mg_dl == 250
    assert rules.get("urgent_low_soon").minutes == 20
    assert rules.get("rising_fast").rate_mg_dl_min == 2
    assert rules.get("falling_fast").rate_mg_dl_min == 2
    assert rules.get("stale_data").minutes == 20
    assert rules.stale_urgent_min == 40
    assert rules.get("hypo_level2_episode").threshold_mg_dl == 54
    assert rules.get("hypo_level2_episode").minutes == 15
    assert all(rules.enabled(kind) for kind in DEFAULT_RULES)


def test_stale_minutes_come_from_the_settings():
    rules = rules_for("p1", [], AlertSettings(stale_warn_min=10, stale_urgent_min=25))
    assert rules.get("stale_data").minutes == 10
    assert rules.stale_urgent_min == 25


def test_the_patients_row_wins_over_the_sites_and_other_patients_are_ignored():
    rows = [
        _row("p1", "low", threshold=65),
        _row("*", "low", threshold=75),
        _row("*", "high", threshold=300),
        _row("p2", "high", enabled=False),
    ]
    rules = rules_for("p1", rows, AlertSettings())
    assert rules.get("low").threshold_mg_dl == 65
    assert rules.get("high").threshold_mg_dl == 300
    assert rules.enabled("high")
    assert not rules_for("p2", rows, AlertSettings()).enabled("high")


def test_a_row_can_turn_a_kind_off_and_change_rates_and_minutes():
    rows = [
        _row("p1", "rising_fast", enabled=False),
        _row("p1", "falling_fast", threshold=3),
        _row("p1", "stale_data", minutes=30),
    ]
    rules = rules_for("p1", rows, AlertSettings())
    assert not rules.enabled("rising_fast")
    assert rules.get("falling_fast").rate_mg_dl_min == 3
    assert rules.get("stale_data").minutes == 30


def test_urgent_low_can_be_neither_disabled_nor_moved(caplog):
    rows = [_row("*", "urgent_low", enabled=False), _row("p1", "urgent_low", threshold=45)]
    with caplog.at_level(logging.WARNING):
        rules = rules_for("p1", rows, AlertSettings())
    assert rules.enabled("urgent_low")
    assert rules.get("urgent_low").threshold_mg_dl == 55
    assert "fixed at 55 mg/dL" in caplog.text


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 10.0, 900.0, -70.0])
def test_a_bad_row_never_silences_or_moves_an_alert(value, caplog):
    with caplog.at_level(logging.WARNING):
        rules = rules_for("p1", [_row("p1", "low", threshold=value)], AlertSettings())
    assert rules.get("low") == DEFAULT_RULES["low"]
    assert "outside 40.0-400.0" in caplog.text


def test_a_row_of_an_unknown_kind_is_ignored(caplog):
    with caplog.at_level(logging.WARNING):
        rules = rules_for("p1", [_row("p1", "lowish", threshold=60)], AlertSettings())
    assert "lowish" not in rules.by_kind
    assert "unknown kind 'lowish'" in caplog.text


# --- AR2 ------------------------------------------------------------------------------------


def test_ar2_matches_numbers_worked_by_hand():
    # now 100, 5 min before 110: y_before = ln(110/140) = -0.241162, y_now = ln(100/140) =
    # -0.336472; step 1: -0.723 * -0.241162 + 1.716 * -0.336472 = -0.403026,
    # 140 * e^-0.403026 = 93.56 -> 94; step 2: -0.723 * -0.336472 + 1.716 * -0.403026 =
    # -0.448324 -> 89.42 -> 89; step 3: -0.477935 -> 86.81 -> 87; step 4: -0.495999 -> 85.25.
    assert ar2(100.0, 110.0) == (94.0, 89.0, 87.0, 85.0)
    # 80 then 70: -0.784838 -> 63.87; -0.845637 -> 60.10; -0.883675 -> 57.86; -0.904991 -> 56.64
    assert ar2(70.0, 80.0) == (64.0, 60.0, 58.0, 57.0)
    assert ar2(140.0, 140.0, steps=6) == (140.0,) * 6  # the fixed point of the log transform


def test_ar2_is_kept_within_36_and_400():
    assert ar2(45.0, 90.0)[-1] == 36.0
    assert ar2(380.0, 250.0)[-1] == 400.0


def test_ar2_inputs_take_the_bucket_means():
    points = [
        (_at(-10), 120.0),
        (_at(-5.5), 110.0),
        (_at(-4.5), 106.0),
        (_at(-1), 101.0),
        (_at(0), 99.0),
    ]
    # bucket 0: -2.5..+2.5 min -> 101, 99 (mean 100); bucket 1: 2.5..7.5 min before -> 110, 106
    inputs = ar2_inputs(points)
    assert inputs is not None
    assert inputs.now_mg_dl == pytest.approx(100.0)
    assert inputs.before_mg_dl == pytest.approx(108.0)


def test_ar2_inputs_interpolate_back_to_five_minutes_across_a_gap():
    # buckets 12 min apart (newest readings): 100 now, 124 then -> 24 / 12 * 5 = 10 -> 110
    inputs = ar2_inputs([(_at(-12), 124.0), (_at(0), 100.0)])
    assert inputs is not None
    assert inputs.before_mg_dl == pytest.approx(110.0)
    assert forecast([(_at(-12), 124.0), (_at(0), 100.0)], _at(1)) == (94.0, 89.0, 87.0, 85.0)


def test_no_forecast_without_an_older_bucket_or_from_an_old_reading():
    assert ar2_inputs([(_at(-20), 120.0), (_at(0), 100.0)]) is None  # 20 min: past 4 buckets
    assert forecast([(_at(0), 100.0)], _at(1)) is None
    assert forecast([(_at(-5), 110.0), (_at(0), 100.0)], _at(10.5)) is None  # newest 10.5 min old
    assert forecast([(_at(-5), 110.0), (_at(0), 100.0)], _at(10)) is not None


def test_sensor_error_values_take_no_part():
    inputs = ar2_inputs([(_at(-5), 110.0), (_at(-1), 39.0), (_at(0), 100.0)])
    assert inputs is not None
    assert inputs.now_mg_dl == 100.0
