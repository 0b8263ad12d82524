"""The shortcuts the compiled kernels take for speed give the same numbers, bit for bit, as the
straightforward computation they replace (``metrics.kernels``; docs/decisions.md, "metric
kernel speed"): order statistics by counting instead of sorting, the median reading interval by
majority vote, long gaps by integer comparison, the one-hour window SDs side by side, GRI
zones by a sorted search, the one-pass check of the readings' order, the grid filled reading by
reading, one scan of the grid for its band counts and runs, and the mean and SD by four running
sums (equal within rounding)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from glucosestream.metrics.cohort_layout import prepare_cohort
from glucosestream.metrics.kernel_columns import _zones
from glucosestream.metrics.kernels import (
    cohort_scan,
    grid_fill,
    numeric,
    order,
    patients,
    reading_groups,
)
from glucosestream.metrics.kernels.grid_scan import scan_grid
from glucosestream.metrics.kernels.grid_variability import _window_sd_mean
from glucosestream.metrics.kernels.numeric import nan_mean, nan_sd, quantile_sorted
from glucosestream.metrics.kernels.order import (
    count_at_most,
    mad_counted,
    median_counted,
    quantile_counted,
)
from glucosestream.metrics.kernels.reading_groups import PROBS
from glucosestream.metrics.reference import consensus, risk
from glucosestream.metrics.reference.interpolation_grid import build_grid
from glucosestream.metrics.reference.series import PatientSeries


def _like_the_lake(kernel: Callable[..., Any], *writable: int) -> Callable[..., Any]:
    """``kernel`` called as the cohort pass calls it: its input arrays read-only (they are
    Arrow's buffers), except the positions in ``writable`` (outputs). numba compiles read-only
    and writable arrays apart; the warm-up compiles the lake's kind, so the tests use that one
    rather than compiling a second kind of each kernel for themselves."""

    def call(*args: Any) -> Any:
        fixed = []
        for i, arg in enumerate(args):
            if isinstance(arg, np.ndarray) and i not in writable:
                arg = arg.copy()
                arg.setflags(write=False)
            fixed.append(arg)
        return kernel(*fixed)

    return call


scan_readings = _like_the_lake(cohort_scan.scan_readings)
dt0_min_of = _like_the_lake(grid_fill.dt0_min_of)
grid_days = _like_the_lake(grid_fill.grid_days)
fill_grid = _like_the_lake(grid_fill.fill_grid, 5)
mean_sd = _like_the_lake(numeric.mean_sd)
counted = _like_the_lake(order.counted)
_gaps_min = _like_the_lake(patients._gaps_min)
distribution_into = _like_the_lake(reading_groups.distribution_into, 0)

whole_readings = st.lists(st.integers(1, 700), min_size=1, max_size=300).map(
    lambda v: np.array(v, dtype=np.float64)
)


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@settings(max_examples=150, deadline=None)
@given(whole_readings)
def test_counted_order_statistics_equal_the_sorted_ones(g: np.ndarray) -> None:
    cumulative, lowest = counted(g)
    x = np.sort(g)
    assert cumulative.size == g.max() - g.min() + 1
    for q in PROBS:
        assert quantile_counted(cumulative, lowest, q) == quantile_sorted(x, q)
    med = float(np.median(x))
    assert median_counted(cumulative, lowest) == med
    assert mad_counted(cumulative, lowest, med) == float(np.median(np.abs(x - med)))
    for value in (0.0, 62.0, 140.0, 140.5, 900.0):
        assert count_at_most(cumulative, lowest, value) == np.count_nonzero(g <= value)


def test_mad_walks_out_from_a_median_between_two_values() -> None:
    g = np.array([10.0, 11.0, 13.0, 20.0, 20.0, 21.0])  # median 16.5: deviations all x.5
    cumulative, lowest = counted(g)
    med = median_counted(cumulative, lowest)
    assert med == 16.5
    assert mad_counted(cumulative, lowest, med) == np.median(np.abs(g - med)) == 4.0


def test_values_that_are_not_whole_or_too_spread_are_not_counted() -> None:
    for g in ([100.0, 100.5], [0.0, 100.0], [-5.0, 100.0], [1.0, 5000.0], [np.inf, 100.0]):
        assert counted(np.array(g))[0].size == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(40, 400), min_size=2, max_size=200),
    st.sampled_from([1.0, 0.5, 1 / 18.0156]),
)
def test_distribution_is_the_same_by_counting_or_by_sorting(values: list[int], unit: float) -> None:
    """Whole values are counted, fractions sorted: either way the row is what sorting gives."""
    g = np.array(values, dtype=np.float64) * unit
    row = np.full(12, np.nan)
    distribution_into(row, 0, g)
    x = np.sort(g)
    want = [quantile_sorted(x, q) for q in PROBS]
    med = np.median(x)
    want += [want[4] - want[2], want[6] - want[0]]
    want.append(risk.MAD_NORMAL_CONSTANT * np.median(np.abs(x - med)))
    want.append(100.0 * np.count_nonzero(g > 140) / g.size)
    want.append(100.0 * np.count_nonzero((g >= 63) & (g <= 140)) / g.size)
    assert row.tolist() == want


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from([60, 299, 300, 300, 301, 900, 3600]), min_size=1, max_size=120),
)
def test_grid_step_by_majority_vote_equals_the_median_rule(steps: list[int]) -> None:
    t = np.concatenate(([0], np.cumsum(steps))).astype(np.int64)
    median_min = float(np.median(np.diff(t).astype(np.float64))) / 60.0
    dt0 = max(1, round(median_min))  # round half to even, as numpy
    divisors = [c for c in range(1, 1441) if 1440 % c == 0]
    want = dt0 if 1440 % dt0 == 0 else min(divisors, key=lambda c: (abs(c - dt0), c))
    assert dt0_min_of(t) == want


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(0, 10_000), min_size=1, max_size=80),
    st.sampled_from([45.0, 44.999, 45.01, 0.0, 7.5, 1e-9, float("nan")]),
)
def test_long_gaps_by_integer_comparison_equal_the_division(steps: list[int], limit: float) -> None:
    t = np.cumsum(np.array(steps, dtype=np.int64))
    gaps = [float(b - a) / 60.0 for a, b in itertools.pairwise(t)]
    longest, over = _gaps_min(t, limit)
    assert longest == max([0.0, *gaps])
    assert over == sum(gap > limit for gap in gaps)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.one_of(st.floats(40, 400), st.just(float("nan"))), min_size=1, max_size=150),
    st.integers(1, 20),
)
def test_window_sds_side_by_side_equal_one_window_at_a_time(values: list[float], w: int) -> None:
    x = np.array(values)
    sds = np.array([nan_sd(x[i : i + w]) for i in range(x.size - w + 1)])
    assert _same(_window_sd_mean(x, w), nan_mean(sds) if sds.size else math.nan)


def test_gri_zones_by_sorted_search_equal_the_per_value_rule() -> None:
    gri = np.array([math.nan, -1.0, 0.0, 19.99, 20.0, 20.01, 40.0, 60.0, 79.9, 80.0, 99.0, 101])
    assert _zones(gri).to_pylist() == [consensus.gri_zone(float(v)) for v in gri]


def test_one_pass_check_finds_order_repeats_and_missing_values() -> None:
    offsets = np.array([0, 3, 6, 6, 8], dtype=np.int64)
    t = np.array([1, 2, 3, 5, 5, 9, 7, 4], dtype=np.int64)  # repeat in p1, order broken in p3
    g = np.array([1.0, 2.0, math.nan, 4.0, 5.0, 6.0, 7.0, 8.0])
    assert scan_readings(offsets, t, g) == (False, False, 1)
    assert scan_readings(offsets[:3], t[:6], np.nan_to_num(g[:6])) == (True, False, 0)
    assert scan_readings(offsets[:2], t[:3], np.ones(3)) == (True, True, 0)
    # a patient's last reading and the next patient's first may share a time
    assert scan_readings(np.array([0, 1, 2]), np.array([5, 5]), np.ones(2)) == (True, True, 0)


def test_readings_known_distinct_are_their_own_views_per_instant() -> None:
    table = pa.table(
        {
            "id": ["a", "a", "b", "b"],
            "time": pa.array([0, 300, 0, 0], pa.timestamp("s")),
            "gl": [100.0, 110.0, 120.0, 130.0],
        }
    )
    readings = prepare_cohort(table).readings
    assert not readings.distinct  # b has two readings at one time
    instants = readings.mean_per_instant()
    assert instants.distinct
    assert instants.glucose_mg_dl.tolist() == [100.0, 110.0, 125.0]
    assert instants.mean_per_instant() is instants
    one_each = prepare_cohort(table.slice(0, 3)).readings
    assert one_each.distinct
    assert one_each.last_per_instant() is one_each


def _pgs_one(gvp: float, mean: float, tir: float, n54: float, n70: float) -> float:
    """Hirsch 2015/2017's PGS for one patient, in scalar arithmetic (as risk.py had it)."""
    f_gvp = 1.0 + 9.0 / (1.0 + np.exp(-0.049 * (gvp - 65.47)))
    f_mg = 1.0 + 9.0 * (
        1.0 / (1.0 + np.exp(0.1139 * (mean - 72.08)))
        + 1.0 / (1.0 + np.exp(-0.09195 * (mean - 157.57)))
    )
    f_tir = 1.0 + 9.0 / (1.0 + np.exp(0.0833 * (tir - 55.04)))
    f_54 = 0.5 + 4.5 * (1.0 - np.exp(-0.81093 * n54))
    f_70 = 0.5714 * n70 + 0.625 if n70 <= 7.65 else 5.0
    return float(f_gvp + f_mg + f_tir + f_54 + f_70)


def test_pgs_of_many_patients_equals_one_at_a_time() -> None:
    rng = np.random.default_rng(7)
    n = 500
    columns = [
        rng.uniform(0, 200, n),
        rng.uniform(60, 300, n),
        rng.uniform(0, 100, n),
        rng.uniform(0, 10, n),
        np.concatenate([rng.uniform(0, 15, n - 2), [7.65, 7.650001]]),
    ]
    names = ("gvp_pct", "mean_mg_dl", "tir_pct", "n54_per_week", "n70_per_week")
    many = risk.personal_glycemic_states(**dict(zip(names, columns, strict=True)))
    want = [_pgs_one(*(float(c[i]) for c in columns)) for i in range(n)]
    assert many.tolist() == want
    assert [
        risk.personal_glycemic_state(
            **{k: float(c[i]) for k, c in zip(names, columns, strict=True)}
        )
        for i in range(3)
    ] == want[:3]


STEPS_S = [60, 240, 299, 300, 301, 330, 600, 900, 2700, 4000]  # on and off the grid, gaps
grid_readings = st.lists(
    st.tuples(st.sampled_from(STEPS_S), st.integers(40, 400)),
    min_size=1,
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(grid_readings, st.sampled_from([1, 5, 15]), st.sampled_from([900.0, 2700.0]))
def test_grid_filled_reading_by_reading_equals_the_reference(
    steps: list[tuple[int, int]], dt0: int, max_gap_s: float
) -> None:
    """``fill_grid`` walks the readings, not the grid points; the points must be the
    reference grid's bit for bit (exact readings, interpolations, gaps, both ends)."""
    t = 1_767_225_600 + 7 + np.cumsum([s for s, _ in steps]).astype(np.int64)
    g = np.array([v for _, v in steps], dtype=np.float64)
    want = build_grid(PatientSeries(t, g), dt0_min=dt0, inter_gap_min=max_gap_s / 60).flat
    first_day, n_days = grid_days(t)
    got = np.empty(n_days * (1440 // dt0))
    fill_grid(t, g, dt0, first_day, max_gap_s, got)
    assert got.size == want.size
    assert all(_same(a, b) for a, b in zip(got.tolist(), want.tolist(), strict=True))


grids = st.lists(
    st.one_of(st.just(math.nan), st.sampled_from([53.9, 54.0, 69.9, 70.0, 180.0, 180.1, 250.0])),
    max_size=80,
).map(lambda v: np.array(v, dtype=np.float64))


def _runs_of(beyond: list[bool]) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, b in enumerate([*beyond, False]):
        if b and start is None:
            start = i
        elif not b and start is not None:
            runs.append((start, i))
            start = None
    return runs


def _pairs(edges: np.ndarray, n: int) -> list[tuple[int, int]]:
    return [(int(edges[2 * k]), int(edges[2 * k + 1])) for k in range(n)]


@settings(max_examples=200, deadline=None)
@given(grids)
def test_one_scan_of_the_grid_gives_its_band_counts_and_runs(x: np.ndarray) -> None:
    counts, (low, n_low), (high, n_high) = scan_grid(x)
    present = x[~np.isnan(x)]
    assert counts == (
        present.size,
        np.count_nonzero(present < 54),
        np.count_nonzero(present < 70),
        np.count_nonzero(present > 180),
        np.count_nonzero(present > 250),
        np.count_nonzero((present >= 70) & (present <= 140)),
    )
    assert _pairs(low, n_low) == _runs_of([v < 70 for v in x.tolist()])
    assert _pairs(high, n_high) == _runs_of([v > 180 for v in x.tolist()])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(0.0, 1000.0), max_size=50))
def test_mean_and_sd_by_four_sums_equal_numpys(values: list[float]) -> None:
    x = np.array(values, dtype=np.float64)
    mean, sd = mean_sd(x)
    if x.size == 0:
        assert math.isnan(mean)
        assert math.isnan(sd)
        return
    assert math.isclose(mean, float(np.mean(x)), rel_tol=1e-13, abs_tol=1e-13)
    if x.size < 2:
        assert math.isnan(sd)
    else:
        assert math.isclose(sd, float(np.std(x, ddof=1)), rel_tol=1e-9, abs_tol=1e-9)
