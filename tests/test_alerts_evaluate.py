"""The pure alert core: rules, the AR2 forecast and the evaluator."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glucosestream.alerts.changes import AlertChange
from glucosestream.alerts.evaluate import ActiveAlert, alert_id_for, evaluate
from glucosestream.alerts.forecast import ar2, ar2_inputs, forecast
from glucosestream.alerts.rules import DEFAULT_RULES, RuleRow, rules_for
from glucosestream.config import AlertSettings
from glucosestream.metrics.reference.episodes import find_episodes
from glucosestream.metrics.reference.interpolation_grid import build_grid
from glucosestream.metrics.reference.series import prepare_series
from glucosestream.readings import ReadingFlag

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def _at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


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
    assert "the default stays" in caplog.text


def test_ar2_matches_numbers_worked_by_hand():
    # now 100, 5 min before 110: y_before = ln(110/140) = -0.241162, y_now = ln(100/140) =
    # -0.336472; step 1: -0.723 * -0.241162 + 1.716 * -0.336472 = -0.403026,
    # 140 * e^-0.403026 = 93.56 -> 94; step 2: -0.723 * -0.336472 + 1.716 * -0.403026 =
    # -0.448324 -> 89.42 -> 89; step 3: -0.477935 -> 86.81 -> 87; step 4: -0.495999 -> 85.25.
    assert ar2(100.0, 110.0) == (94.0, 89.0, 87.0, 85.0)
    # 80 then 70: -0.784838 -> 63.87; -0.845637 -> 60.10; -0.883675 -> 57.86; -0.904991 -> 56.64
    assert ar2(70.0, 80.0) == (64.0, 60.0, 58.0, 57.0)
    assert ar2(140.0, 140.0, steps=6) == (140.0,) * 6  # the fixed point of the log transform
    assert ar2(45.0, 90.0)[-1] == 36.0  # kept within 36-400
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


# --- the evaluator --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reading:
    """A live reading with the fields the evaluator reads (the tests' factory)."""

    ts: dt.datetime
    glucose_mg_dl: float
    device_id: str = "dev1"
    flags: int = 0
    tz: str = "UTC"
    direction: str | None = None
    rate_mg_dl_min: float | None = None


class Patient:
    """One patient's window and active alerts, changed as the store would change them."""

    def __init__(self, rules=None) -> None:
        self.readings: list[Reading] = []
        self.active: dict[str, ActiveAlert] = {}
        self.snoozes: dict[str, dt.datetime] = {}
        self.rules = rules or rules_for("p1", [], AlertSettings())
        self.log: list[AlertChange] = []

    def add(self, minutes: float, glucose: float, *, now: float | None = None, **kw):
        reading = Reading(_at(minutes), glucose, **kw)
        if all((r.device_id, r.ts) != (reading.device_id, reading.ts) for r in self.readings):
            self.readings = sorted([*self.readings, reading], key=lambda r: r.ts)
        return self.tick(minutes if now is None else now)

    def tick(self, now: float) -> list[AlertChange]:
        state = (self.readings, self.rules, self.active, _at(now))
        changes = evaluate(*state, patient_key="p1", snoozed_until=self.snoozes, fresh_min=15)
        for c in changes:
            if c.event == "cleared":
                del self.active[c.kind]
            else:
                old = self.active.get(c.kind)
                acked = old.acked if old else False
                self.active[c.kind] = ActiveAlert(c.alert_id, c.kind, c.level, acked, c.suppressed)
        self.log.extend(changes)
        return changes

    def ack(self, kind: str) -> None:
        self.active[kind] = dataclasses.replace(self.active[kind], acked=True)

    def events(self, kind: str) -> list[tuple[str, dt.datetime]]:
        return [(c.event, c.at) for c in self.log if c.kind == kind]


def _only(changes, kind: str) -> list[AlertChange]:
    return [c for c in changes if c.kind == kind]


def _kinds(changes) -> list[str]:
    return sorted(c.delivered_kind for c in changes)


def test_low_fires_once_over_several_readings_and_clears():
    p = Patient()
    assert _kinds(p.add(0, 68)) == ["low"]
    assert p.add(5, 66) == []
    assert p.add(10, 69) == []
    (cleared,) = p.add(15, 70)
    assert cleared.delivered_kind == "low_cleared"
    assert cleared.alert_id == p.log[0].alert_id
    assert (cleared.seq, cleared.glucose_mg_dl) == (2, 70)
    assert _kinds(p.add(20, 67)) == ["low"]  # a new episode, a new alert
    assert p.log[-1].alert_id != cleared.alert_id


def test_urgent_low_is_at_or_below_55_and_a_sensor_low_counts():
    p = Patient()
    assert _kinds(p.add(0, 55)) == ["low", "urgent_low"]
    assert _kinds(p.add(5, 56)) == ["urgent_low_cleared"]
    assert _kinds(p.add(10, 60, flags=int(ReadingFlag.SENSOR_LOW))) == ["urgent_low"]


def test_high_is_above_250():
    p = Patient()
    assert p.add(0, 250) == []
    (fired,) = p.add(5, 251)
    assert (fired.kind, fired.glucose_mg_dl, fired.threshold_mg_dl) == ("high", 251, 250)
    assert _kinds(p.add(10, 250)) == ["high_cleared"]


def test_urgent_low_soon_fires_on_the_ar2_forecast_and_gives_way_to_urgent_low():
    p = Patient()
    p.add(0, 100)
    assert p.add(5, 90) == []  # forecast 84, 80, 77, 76
    p = Patient()
    p.add(0, 85)
    (fired,) = _only(p.add(5, 70), "urgent_low_soon")  # forecast 61, 56, 52, 51: 52 at +15
    assert fired.event == "fired"
    assert fired.detail["forecast_mg_dl"] == [61.0, 56.0, 52.0, 51.0]
    assert _kinds(p.add(10, 55)) == ["low", "urgent_low", "urgent_low_soon_cleared"]


def test_urgent_low_soon_horizon_follows_the_rule():
    rules = rules_for("p1", [RuleRow("p1", "urgent_low_soon", True, None, 10.0)], AlertSettings())
    p = Patient(rules)
    p.add(0, 85)
    assert _only(p.add(5, 70), "urgent_low_soon") == []  # within 10 minutes: 61, 56


def test_no_forecast_no_change():
    p = Patient()
    p.add(0, 85)
    p.add(5, 70)
    assert "urgent_low_soon" in p.active
    assert p.add(30, 80) == []  # 25 minutes after the last reading: no older bucket
    assert "urgent_low_soon" in p.active


def test_rising_and_falling_fast_from_the_uploaders_rate():
    p = Patient()
    assert _kinds(p.add(0, 120, rate_mg_dl_min=2.5)) == ["rising_fast"]
    assert p.add(5, 130, rate_mg_dl_min=2.1) == []
    assert _kinds(p.add(10, 132, rate_mg_dl_min=2.0)) == ["rising_fast_cleared"]
    assert _kinds(p.add(15, 120, rate_mg_dl_min=-2.4)) == ["falling_fast"]


def test_rate_precedence_uploader_rate_then_arrow_then_computed():
    p = Patient()
    p.add(0, 100)
    # a rise of 3 mg/dL/min computed, an up arrow, but the uploader's rate says 0.5
    assert p.add(5, 115, direction="DoubleUp", rate_mg_dl_min=0.5) == []
    p = Patient()
    p.add(0, 100)
    assert _kinds(p.add(5, 101, direction="SingleUp")) == ["rising_fast"]  # the arrow wins
    assert _kinds(p.add(10, 100, direction="FortyFiveDown")) == ["rising_fast_cleared"]
    rules = rules_for("p1", [RuleRow("p1", "rising_fast", True, 1.5, None)], AlertSettings())
    p = Patient(rules)
    p.add(0, 100)
    assert p.add(5, 101, direction="FortyFiveUp") == []  # 1-2 straddles 1.5: computed 0.2
    assert _kinds(p.add(10, 111, direction="FortyFiveUp")) == ["rising_fast"]  # computed 2
    p = Patient()
    p.add(0, 100)
    (fired,) = p.add(5, 89)  # computed: -2.2 mg/dL/min
    assert (fired.kind, fired.detail["rate_source"]) == ("falling_fast", "computed")
    assert fired.detail["rate_mg_dl_min"] == pytest.approx(-2.2)


def test_a_change_carries_the_newest_readings_arrow():
    p = Patient()
    (fired,) = p.add(0, 60, direction="SingleDown", rate_mg_dl_min=-0.5)
    assert fired.direction == "SingleDown"  # the uploader's arrow, as sent
    p = Patient()
    p.add(0, 75)
    assert [c.direction for c in p.add(5, 69)] == ["FortyFiveDown"]  # -1.2 mg/dL/min computed
    assert [c.direction for c in p.add(30, 75)] == [None]  # a gap: no arrow


def test_no_rate_across_devices_or_a_gap():
    p = Patient()
    p.add(0, 100, device_id="a")
    assert p.add(5, 130, device_id="b") == []
    assert p.add(25, 170, device_id="b") == []  # 20 minutes after b's last reading


def test_the_newest_readings_device_is_evaluated():
    p = Patient()
    assert _kinds(p.add(0, 60, device_id="a")) == ["low"]
    assert _kinds(p.add(1, 120, device_id="b")) == ["low_cleared"]


def test_an_old_reading_clears_but_does_not_fire():
    p = Patient()
    assert p.add(0, 60, now=16) == []  # 16 minutes old when it arrives: a backfill
    assert p.active == {}
    assert _kinds(p.add(20, 60)) == ["low"]
    assert _kinds(p.add(25, 90, now=44)) == ["low_cleared"]


def test_a_reposted_reading_does_not_fire_again():
    p = Patient()
    p.add(0, 60)
    p.add(5, 90)
    assert p.add(0, 60, now=6) == []  # the same reading posted again: first arrival wins
    assert [e for e, _ in p.events("low")] == ["fired", "cleared"]


def test_stale_data_warns_at_20_escalates_at_40_and_clears_on_a_reading():
    p = Patient()
    p.add(0, 120)
    assert p.tick(19.9) == []
    (fired,) = p.tick(20)
    assert (fired.kind, fired.level, fired.at) == ("stale_data", "warning", _at(20))
    assert fired.glucose_mg_dl is None
    assert p.tick(30) == []
    (escalated,) = p.tick(40)
    assert (escalated.event, escalated.level, escalated.seq) == ("escalated", "urgent", 1)
    assert escalated.alert_id == fired.alert_id
    assert p.tick(50) == []
    (cleared,) = p.add(55, 120)
    assert (cleared.delivered_kind, cleared.level) == ("stale_data_cleared", "urgent")
    assert cleared.alert_id == fired.alert_id


def test_an_acknowledged_alert_is_not_escalated_and_its_clear_is_delivered():
    p = Patient()
    p.add(0, 120)
    p.tick(20)
    p.ack("stale_data")
    assert p.tick(45) == []
    (cleared,) = p.add(50, 110)
    assert cleared.event == "cleared"
    assert not cleared.suppressed


def test_a_snoozed_kind_fires_suppressed_and_so_does_its_clear():
    p = Patient()
    p.snoozes["low"] = _at(30)
    (fired,) = p.add(0, 60)
    assert fired.suppressed
    (cleared,) = p.add(5, 70)
    assert cleared.suppressed
    assert not p.add(35, 60)[0].suppressed  # the snooze is over


def test_an_episode_that_outlasts_its_snooze_is_delivered_then_once():
    p = Patient()
    p.snoozes["low"] = _at(12)
    (fired,) = p.add(0, 65)
    assert fired.suppressed
    assert p.add(5, 66) == []
    (late,) = p.add(15, 66)
    assert (late.event, late.alert_id, late.suppressed) == ("fired", fired.alert_id, False)
    assert late.detail["after_snooze"]
    assert p.add(20, 66) == []
    (cleared,) = p.add(25, 75)
    assert (cleared.alert_id, cleared.suppressed) == (fired.alert_id, False)


def test_a_stale_alert_that_outlasts_its_snooze_is_delivered_then_escalates():
    p = Patient()
    p.add(0, 120)
    p.snoozes["stale_data"] = _at(30)
    (fired,) = p.tick(20)
    assert fired.suppressed
    (late,) = p.tick(31)
    assert (late.event, late.level, late.suppressed) == ("fired", "warning", False)
    assert late.alert_id == fired.alert_id
    (escalated,) = p.tick(40)
    assert not escalated.suppressed


def test_a_snoozed_stale_alert_escalates_suppressed():
    p = Patient()
    p.add(0, 120)
    p.snoozes["stale_data"] = _at(60)
    assert p.tick(20)[0].suppressed
    assert p.tick(40)[0].suppressed


def test_a_disabled_kind_never_fires_and_clears_if_active():
    rows = [RuleRow("*", "high", False, None, None), RuleRow("*", "stale_data", False, None, None)]
    p = Patient(rules_for("p1", rows, AlertSettings()))
    assert p.add(0, 300) == []
    assert p.tick(60) == []
    p.active["high"] = ActiveAlert("al_x", "high")
    assert _kinds(p.add(65, 300)) == ["high_cleared"]


def test_the_alert_id_is_the_same_for_the_same_fire():
    first = alert_id_for("p1", "low", T0)
    assert first == alert_id_for("p1", "low", T0)
    assert first != alert_id_for("p1", "low", _at(5))
    assert first != alert_id_for("p2", "low", T0)
    assert len(first) == 32
    assert first.startswith("al_")
    assert alert_id_for("p1", "low", _at(-5)) < first  # sortable by time


def test_the_level2_episode_fires_after_15_minutes_below_54_and_clears_after_15_back():
    p = Patient()
    for i, g in enumerate([80, 50, 50, 50]):
        p.add(5 * i, g)
    assert p.events("hypo_level2_episode") == [("fired", _at(15))]  # 3 grid points below 54
    p.add(20, 50)
    for i, g in enumerate([60, 60, 60, 60], start=5):
        p.add(5 * i, g)
    assert p.events("hypo_level2_episode") == [("fired", _at(15)), ("cleared", _at(35))]


def _expected_episode_changes(readings: list[Reading]) -> list[tuple[str, dt.datetime]]:
    """The fire and clear times find_episodes implies on the whole trace: a grid point is known
    at the first reading at or after it."""
    t = np.array([int(r.ts.timestamp()) for r in readings], dtype=np.int64)
    g = np.array([r.glucose_mg_dl for r in readings])
    grid = build_grid(prepare_series(t, g).mean_per_instant())
    flat, times = grid.flat, grid.time_s()
    points = math.ceil(15 / grid.dt0_min)

    def known_at(index: int) -> dt.datetime | None:
        after = np.flatnonzero(t >= times[index])
        return readings[int(after[0])].ts if after.size else None

    out: list[tuple[str, dt.datetime]] = []
    for episode in find_episodes(grid, "hypo", 54.0):
        out.append(("fired", known_at(episode.start + points - 1)))
        if episode.stop < flat.size and not np.isnan(flat[episode.stop]):  # recovered
            end = known_at(episode.stop + points - 1)
        else:  # a gap the grid does not bridge ended it: known when the next piece starts
            later = np.flatnonzero(~np.isnan(flat[episode.stop :]))
            end = known_at(episode.stop + int(later[0])) if later.size else None
        if end is not None:
            out.append(("cleared", end))
    return out


@st.composite
def _traces(draw):
    start = draw(st.integers(0, 3600))
    n = draw(st.integers(2, 70))
    steps, regular = [], 0
    for _ in range(n - 1):
        gap = regular >= 3 and draw(st.integers(0, 9)) == 0
        steps.append(draw(st.integers(46 * 60, 120 * 60)) if gap else draw(st.integers(280, 320)))
        regular = 0 if gap else regular + 1
    glucose = draw(st.lists(st.floats(40, 75), min_size=n, max_size=n))
    ts = start + np.concatenate(([0], np.cumsum(steps))).astype(np.int64)
    return [Reading(T0 + dt.timedelta(seconds=int(s)), v) for s, v in zip(ts, glucose, strict=True)]


@settings(max_examples=100, deadline=None)
@given(_traces())
def test_level2_alerts_fire_and_clear_when_find_episodes_says(readings):
    p = Patient()
    for r in readings:
        p.readings.append(r)
        p.tick((r.ts - T0).total_seconds() / 60)
    expected = _expected_episode_changes(readings)
    assert p.events("hypo_level2_episode") == expected, [
        (str(r.ts.time()), r.glucose_mg_dl) for r in readings
    ]
