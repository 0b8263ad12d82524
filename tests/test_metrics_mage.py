"""MAGE by the moving-average method (metrics/mage.py and its compiled kernel) on traces whose
turning points are known by construction. The comparison with iglu's own numbers is in
test_metrics_iglu.py."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from glucosestream.metrics.calculator import compute_metrics
from glucosestream.metrics.reference import mage
from glucosestream.metrics.reference.interpolation_grid import Grid

DAY = 19_000  # any day number
POINTS_PER_DAY = 288  # 5-minute grid


def _grid(g: np.ndarray) -> Grid:
    days = -(-g.size // POINTS_PER_DAY)
    padded = np.concatenate([g, np.full(days * POINTS_PER_DAY - g.size, np.nan)])
    return Grid(5, DAY, padded.reshape(days, POINTS_PER_DAY))


def _compiled(g: np.ndarray) -> dict[str, float]:
    """The same trace through compute_metrics (the compiled kernels), as 5-minute readings."""
    present = ~np.isnan(g)
    minutes = 5 * (np.arange(g.size) + 1)
    table = pa.table(
        {
            "id": pa.array(["p"] * int(present.sum())),
            "time": pa.array((DAY * 1440 + minutes[present]) * 60, pa.timestamp("s")),
            "gl": pa.array(g[present], pa.float64()),
        }
    )
    names = ["mage_plus_mg_dl", "mage_minus_mg_dl", "mage_service_mg_dl"]
    row = compute_metrics(table, names, compat="iglu").to_pylist()[0]
    return {n: float(row[n]) for n in names}


def _dip_before_crossing() -> np.ndarray:
    """Flat at 100, up to 200, one reading at 80, three at 195, flat at 100, back to 200.

    The 80 comes while the short average is still above the long one (they cross three points
    later), so it lies before the crossing that reveals the fall: the fall is 200 -> 80 and the
    next rise 80 -> 200. A nadir searched only between the crossings would be 100.
    """
    peak = [np.full(64, 100.0), np.full(20, 200.0)]
    dip = [[80.0], np.full(3, 195.0)]
    return np.concatenate([*peak, *dip, np.full(64, 100.0), np.full(64, 200.0)])


def test_lowest_point_after_a_peak_counts_even_before_the_crossing():
    g = _dip_before_crossing()
    delta = mage._moving_average(g, 5) - mage._moving_average(g, 32)
    assert np.all(delta[84:88] > 0)  # the short average is still above at the dip (84) ...
    assert delta[88] < 0  # ... and crosses three points later
    result = mage.mage_moving_average(_grid(g))
    # While the averages are equal (the first 64 points) there is no interval, so the turning
    # points are 200, 80, 200: one fall of 120 and one rise of 120, the fall first.
    assert (result.plus_mg_dl, result.minus_mg_dl) == (120.0, 120.0)
    assert result.service_mg_dl == 120.0
    assert [s.first_is_plus for s in result.segments] == [False]
    assert _compiled(g) == {
        "mage_plus_mg_dl": 120.0,
        "mage_minus_mg_dl": 120.0,
        "mage_service_mg_dl": 120.0,
    }


def test_moving_average_takes_the_present_values_of_each_window():
    x = np.array([1.0, np.nan, 3.0, np.nan, np.nan, np.nan, np.nan, np.nan, 5.0])
    ma = mage._moving_average(x, 3)
    # Windows of 3 points: (1, -, 3) -> 2, (-, 3, -) -> 3, (3, -, -) -> 3, then empty windows,
    # then (-, -, 5) -> 5; the two points before the first full window take its mean.
    want = [2.0, 2.0, 2.0, 3.0, 3.0, np.nan, np.nan, np.nan, 5.0]
    np.testing.assert_array_equal(ma, want)


@pytest.mark.parametrize(("missing", "segments"), [(36, 1), (37, 2)])
def test_segments_are_cut_only_at_gaps_longer_than_max_gap(missing, segments):
    """36 missing 5-minute points (180 min) stay inside a segment; 37 cut the trace."""
    # 6-hour cycles between 90 and 210, from a nadir to a nadir: every swing is 120
    wave = 150.0 - 60.0 * np.cos(np.arange(5 * 72 + 1) * 2 * math.pi / 72)
    g = np.concatenate([wave, np.full(missing, np.nan), wave])
    result = mage.mage_moving_average(_grid(g))
    assert len(result.segments) == segments
    assert result.plus_mg_dl == pytest.approx(120.0, rel=1e-12)
    assert result.minus_mg_dl == pytest.approx(120.0, rel=1e-12)
    compiled = _compiled(g)
    assert compiled["mage_plus_mg_dl"] == pytest.approx(result.plus_mg_dl, rel=1e-12)
    assert compiled["mage_minus_mg_dl"] == pytest.approx(result.minus_mg_dl, rel=1e-12)


def _spike_at_the_end() -> np.ndarray:
    """Three hours at 5 minutes: flat at 100, then one spike 160, 250, 160, 100. The short
    average rises above the long one at the spike and is still above at the end: they never
    cross, so the trace has no excursion by the moving-average method."""
    return np.concatenate([np.full(33, 100.0), [160.0, 250.0, 160.0, 100.0]])


def test_iglu_mode_gives_max_minus_min_when_the_averages_never_cross():
    g = _spike_at_the_end()
    delta = mage._moving_average(g, 5) - mage._moving_average(g, 32)
    assert mage._crossings(delta)[1].size == 0
    # iglu 4.3.0 documents MAGE = max - min for such a trace; the published mode has no MAGE.
    published = mage.mage_moving_average(_grid(g))
    assert math.isnan(published.avg_mg_dl)
    iglu = mage.mage_moving_average(_grid(g), iglu=True)
    assert iglu.avg_mg_dl == iglu.plus_mg_dl == iglu.minus_mg_dl == iglu.service_mg_dl == 150.0
    assert _compiled(g) == dict.fromkeys(
        ["mage_plus_mg_dl", "mage_minus_mg_dl", "mage_service_mg_dl"], 150.0
    )
    table = pa.table(
        {
            "id": ["p"] * g.size,
            "time": pa.array((DAY * 1440 + 5 * (np.arange(g.size) + 1)) * 60, pa.timestamp("s")),
            "gl": g,
        }
    )
    assert compute_metrics(table, "mage_mg_dl", compat="iglu")["mage_mg_dl"][0].as_py() == 150.0
    value = compute_metrics(table, "mage_mg_dl")["mage_mg_dl"][0].as_py()
    assert value is None or math.isnan(value)
