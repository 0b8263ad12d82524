"""The compiled whole-cohort pass against the per-patient reference implementation.

``compute_metrics`` runs compiled kernels over a whole cohort (``metrics.kernel_columns``); the
per-patient reference (``catalog.compute_patient``) is the readable definition. They must agree
on every metric, in both compat modes, on cohorts with mixed sampling intervals, gaps, jitter,
duplicate timestamps, missing values, unsorted rows and ids in any order.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from glucosestream.errors import InvalidInput
from glucosestream.metrics import calculator as api
from glucosestream.metrics.calculator import compute_metrics
from glucosestream.metrics.cohort_layout import cohort_slices, patient_runs, prepare_cohort
from glucosestream.metrics.metric_options import MetricOptions
from glucosestream.metrics.reference.patient_metrics import compute_patient
from glucosestream.metrics.reference.series import prepare_series
from glucosestream.metrics.reference.sufficiency import iglu_active_count
from glucosestream.metrics.spec import ALL, CONSENSUS

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


def test_slices_of_whole_patients_give_the_results_of_one_pass(monkeypatch):
    """Rows grouped by id (times within a patient still unsorted, with duplicates and missing
    values) are computed a slice of whole patients at a time: the same numbers as one pass."""
    table = _cohort(6, patients=9)
    grouped = table.take(
        pa.array(np.argsort(table["id"].to_numpy(zero_copy_only=False), kind="stable"))
    )
    max_rows = 700  # smaller than some patients, bigger than others
    slices = list(cohort_slices(grouped, max_rows))
    counts = [int(c.readings.offsets[-1]) for c in slices]
    assert len(slices) > 3
    assert [i for c in slices for i in c.ids.to_pylist()] == sorted(set(table["id"].to_pylist()))
    assert all(len(c.ids) == 1 for c in slices if c.readings.offsets[-1] > max_rows)
    assert sum(counts) == np.count_nonzero(~np.isnan(table["gl"].to_numpy()))
    whole = compute_metrics(table, "all").to_pylist()
    monkeypatch.setattr(api, "SLICE_READINGS", max_rows)
    sliced = compute_metrics(grouped, "all").to_pylist()
    assert [r["id"] for r in sliced] == [r["id"] for r in whole]
    for a, b in zip(sliced, whole, strict=True):
        assert [k for k in b if not _agree(a[k], b[k])] == []


def test_ungrouped_rows_are_not_sliced():
    table = _cohort(7)
    assert len(list(cohort_slices(table, 100))) == 1


def test_one_patient_over_several_chunks_is_one_ascending_run():
    table = _cohort(7, patients=1).sort_by("id").slice(3)  # drop "all-missing": one patient
    chunked = pa.Table.from_batches(table.to_batches(max_chunksize=40))
    runs = patient_runs(chunked)
    assert runs is not None
    assert runs[0].to_pylist() == ["p00"]
    assert runs[1].tolist() == [0, chunked.num_rows]


def test_a_stream_grouped_by_id_is_read_a_slice_at_a_time(monkeypatch):
    table = _cohort(8, patients=9)
    grouped = table.take(pa.array(np.argsort(table["id"].to_numpy(zero_copy_only=False))))
    grouped = grouped.set_column(0, "id", grouped["id"].dictionary_encode())
    whole = compute_metrics(table, "all").to_pylist()
    monkeypatch.setattr(api, "SLICE_READINGS", 500)
    seen: list[int] = []

    def batches() -> object:
        for batch in grouped.to_batches(max_chunksize=170):  # cuts patients between batches
            seen.append(batch.num_rows)
            yield batch

    reader = pa.RecordBatchReader.from_batches(grouped.schema, batches())
    streamed = compute_metrics(reader, "all").to_pylist()
    assert len(seen) > 10
    assert [r["id"] for r in streamed] == [r["id"] for r in whole]
    for a, b in zip(streamed, whole, strict=True):
        assert [k for k in b if not _agree(a[k], b[k])] == []


def test_a_stream_not_grouped_by_id_is_refused_and_an_empty_one_gives_no_rows(monkeypatch):
    table = _cohort(9)
    monkeypatch.setattr(api, "SLICE_READINGS", 100)
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=50))
    with pytest.raises(InvalidInput, match="not grouped by id"):
        compute_metrics(reader, CONSENSUS)
    empty = pa.RecordBatchReader.from_batches(table.schema, [])
    assert compute_metrics(empty, CONSENSUS).num_rows == 0


def test_iglu_active_count_loses_only_the_excess_of_intervals_rounding_above_dt0():
    """5-minute readings: ten intervals of 300 s, six of 340 s (round to 6 min: gaps losing 40 s
    each, 4 min in all), six of 260 s (kept whole), then a 20-minute gap (losing 15 min)."""
    steps = [300] * 10 + [340, 260] * 6 + [1200]
    t = np.concatenate(([0], np.cumsum(steps))).astype(np.int64)
    assert iglu_active_count(t, 5) == round((t[-1] - 6 * 40 - 900) / 300) + 1 == 23
    assert t.size == 24  # the published count: distinct readings
    even = np.arange(0, 13 * 300, 300, dtype=np.int64)
    assert iglu_active_count(even, 5) == even.size  # no jitter: the distinct count
    table = pa.table(
        {
            "id": ["a"] * t.size,
            "time": pa.array(t + 20_000 * DAY_S, pa.timestamp("s")),
            "gl": [120.0] * t.size,
        }
    )
    expected = round(t[-1] / 300) + 1  # 27 readings in the span
    iglu = compute_metrics(table, ["active_pct"], compat="iglu")["active_pct"][0].as_py()
    published = compute_metrics(table, ["active_pct"])["active_pct"][0].as_py()
    assert iglu == pytest.approx(100 * 23 / expected)
    assert published == pytest.approx(100 * 24 / expected)
