"""The compiled whole-cohort pass against the per-patient reference implementation.

``compute_metrics`` runs compiled kernels over a whole cohort (``metrics.columns``); the
per-patient reference (``catalog.compute_patient``) is the readable definition. They must agree
on every metric, in both compat modes, on cohorts with mixed sampling intervals, gaps, jitter,
duplicate timestamps, missing values, unsorted rows and ids in any order.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from glucosestream.metrics.api import compute_metrics
from glucosestream.metrics.catalog import ALL, CONSENSUS, MetricOptions, compute_patient
from glucosestream.metrics.cohort import prepare_cohort
from glucosestream.metrics.columns import GROUP_NAMES
from glucosestream.metrics.kernels.patients import GROUPS
from glucosestream.metrics.series import prepare_series

DAY_S = 86_400


def _patient(rng: np.random.Generator, pid: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    step_min = int(rng.choice([1, 5, 15]))
    n = int(rng.integers(20, 3 * 1440 // step_min))
    steps = np.full(n, step_min * 60, dtype=np.int64)
    steps[rng.random(n) < 0.02] *= int(rng.integers(2, 40))  # gaps, some over 45 min
    t = 20_000 * DAY_S + int(rng.integers(0, DAY_S)) + np.cumsum(steps)
    t = t + rng.integers(-30, 31, n) * (rng.random() < 0.5)  # jitter for half the patients
    g = 140 + 90 * np.sin(np.arange(n) * step_min / 170.0) + rng.normal(0, 12, n)
    g = np.clip(g, 40, 400)
    if rng.random() < 0.5:  # whole mg/dL (most CGMs) for half the patients, fractions otherwise
        g = g.round()
    dup = rng.random(n) < 0.03  # repeated timestamps with other values
    t = np.concatenate([t, t[dup]])
    g = np.concatenate([g, g[dup] + 7])
    g[rng.random(g.size) < 0.01] = np.nan
    return [pid] * t.size, t, g


def _cohort(seed: int, patients: int = 7) -> pa.Table:
    rng = np.random.default_rng(seed)
    ids: list[str] = []
    ts, gs = [], []
    for k in range(patients):
        i, t, g = _patient(rng, f"p{k:02d}")
        ids += i
        ts.append(t)
        gs.append(g)
    ids += ["all-missing"] * 3
    ts.append(np.array([20_000 * DAY_S, 20_000 * DAY_S + 300, 20_000 * DAY_S + 600]))
    gs.append(np.full(3, np.nan))
    order = rng.permutation(len(ids))
    return pa.table(
        {
            "id": pa.array(ids).take(pa.array(order)),
            "time": pa.array(np.concatenate(ts)[order], pa.timestamp("s")),
            "gl": pa.array(np.concatenate(gs)[order], pa.float64()),
        }
    )


def _reference(table: pa.Table, options: MetricOptions) -> dict[str, dict[str, object]]:
    ids = np.asarray(table["id"].to_pylist())
    t = table["time"].cast(pa.int64()).to_numpy()
    g = table["gl"].to_numpy(zero_copy_only=False)
    out = {}
    for pid in sorted(set(ids.tolist())):
        series = prepare_series(t[ids == pid], g[ids == pid])
        out[pid] = dict(compute_patient(series, ALL, options))
    return out


def _agree(ours: object, want: object) -> bool:
    if isinstance(want, float) and math.isnan(want):
        return ours is None or (isinstance(ours, float) and math.isnan(ours))
    if isinstance(want, float):
        return isinstance(ours, float) and math.isclose(ours, want, rel_tol=1e-9, abs_tol=1e-9)
    return ours == want


def test_kernel_groups_carry_the_catalog_names():
    assert len(GROUPS) == len(GROUP_NAMES)
    for (name, width), names in zip(GROUPS, GROUP_NAMES, strict=True):
        assert width == len(names) or name == "pgs", name


@pytest.mark.parametrize("compat", ["published", "iglu"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cohort_pass_equals_per_patient_reference(seed, compat):
    table = _cohort(seed)
    options = MetricOptions(compat=compat)
    want = _reference(table, options)
    ours = {r["id"]: r for r in compute_metrics(table, "all", compat=compat).to_pylist()}
    assert list(ours) == sorted(want)
    bad = [
        (pid, name, ours[pid][name], want[pid][name])
        for pid in want
        for name in ALL
        if pid != "all-missing" and not _agree(ours[pid][name], want[pid][name])
    ]
    assert bad == []
    assert all(v is None or math.isnan(v) for k, v in ours["all-missing"].items() if k != "id")


def test_id_order_and_encoding_do_not_change_results():
    table = _cohort(4)
    sorted_table = table.sort_by([("id", "ascending"), ("time", "ascending")])
    encoded = table.set_column(0, "id", table["id"].dictionary_encode())
    base = compute_metrics(table, CONSENSUS).to_pylist()
    for other in (sorted_table, encoded):
        rows = compute_metrics(other, CONSENSUS).to_pylist()
        assert [r["id"] for r in rows] == [r["id"] for r in base]
        for a, b in zip(rows, base, strict=True):
            assert all(_agree(a[k], b[k]) for k in b)


def test_sorted_input_is_grouped_without_copying_the_order():
    table = _cohort(5).sort_by([("id", "ascending"), ("time", "ascending")])
    cohort = prepare_cohort(table)
    assert cohort.ids.to_pylist() == sorted(set(table["id"].to_pylist()))
    counts = np.diff(cohort.readings.offsets)
    assert counts.sum() == np.count_nonzero(~np.isnan(table["gl"].to_numpy()))
    assert np.all(np.diff(cohort.readings.time_s[: counts[0]]) >= 0)
