"""The compiled cohort pass gives the same bits on one thread as on every core.

``compute_metrics`` runs the per-patient kernel on threads, each over its own ranges of whole
patients (``metrics.kernel_columns``); each patient's row is written by one thread only, so the
result must not depend on how many threads ran it or how the patients were cut into ranges:
compared bit for bit (NaN positions and signs of zero included) on random cohorts with gaps,
jitter, repeated times, missing values and unsorted rows, in both compat modes.
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa
import pytest

from glucosestream.errors import InvalidInput
from glucosestream.metrics import kernel_columns
from glucosestream.metrics.calculator import compute_metrics, episode_table
from glucosestream.metrics.cohort_layout import prepare_cohort
from glucosestream.metrics.kernel_columns import (
    cohort_columns,
    numba_threads,
    patient_ranges,
    usable_cores,
)
from glucosestream.metrics.metric_options import MetricOptions
from glucosestream.metrics.spec import ALL
from tests.test_metrics_cohort import _cohort

EVERY_CORE = usable_cores()


def _bits(table: pa.Table) -> dict[str, bytes]:
    """Each column's exact bits and nulls (float columns), or its values (the others)."""
    out = {}
    for name in table.column_names:
        column = table[name].combine_chunks()
        if pa.types.is_floating(column.type):
            values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
            out[name] = values.tobytes() + np.asarray(column.is_null()).tobytes()
        else:
            out[name] = repr(column.to_pylist()).encode()
    return out


@pytest.fixture
def small_ranges(monkeypatch):
    """Ranges of a few hundred readings, so a test cohort is cut into many of them."""
    monkeypatch.setattr(kernel_columns, "MIN_RANGE_READINGS", 300)


@pytest.mark.parametrize("compat", ["published", "iglu"])
@pytest.mark.parametrize("seed", [11, 12])
def test_one_thread_and_every_core_give_the_same_bits(seed, compat, small_ranges):
    table = _cohort(seed, patients=24)
    one = compute_metrics(table, "all", compat=compat, threads=1)
    assert one.column_names == ["id", *ALL]
    want = _bits(one)
    for threads in sorted({2, 3, EVERY_CORE}):
        many = compute_metrics(table, "all", compat=compat, threads=threads)
        got = _bits(many)
        assert [n for n in want if got[n] != want[n]] == []
    floats = [n for n in ALL if pa.types.is_floating(one[n].type)]
    assert sum(int(np.isnan(one[n].to_numpy()).sum()) for n in floats) > 0  # NaNs compared too


def test_streamed_slices_and_episode_rows_are_the_same_on_any_thread_count(small_ranges):
    table = _cohort(15, patients=12)
    grouped = table.sort_by([("id", "ascending")])
    reader = pa.RecordBatchReader.from_batches(grouped.schema, grouped.to_batches(500))
    streamed = compute_metrics(reader, "consensus", threads=3)
    assert _bits(streamed) == _bits(compute_metrics(table, "consensus", threads=1))
    for compat in ("published", "iglu"):
        one = episode_table(table, compat=compat, threads=1)
        assert _bits(episode_table(table, compat=compat, threads=4)) == _bits(one)


def test_ranges_cover_every_patient_once_in_order():
    counts = np.array([0, 5000, 70_000, 0, 120_000, 3, 40_000, 0] + [9000] * 40)
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    for threads in (1, 2, 3, 8):
        ranges = patient_ranges(offsets, threads)
        assert ranges[0][0] == 0
        assert ranges[-1][1] == counts.size
        assert all(a < b for a, b in ranges)
        assert all(ranges[k][1] == ranges[k + 1][0] for k in range(len(ranges) - 1))
        assert len(ranges) <= max(1, threads * kernel_columns.RANGES_PER_THREAD)
    assert patient_ranges(offsets, 1) == [(0, counts.size)]
    assert patient_ranges(np.array([0, 10, 20], dtype=np.int64), 8) == [(0, 2)]  # too small
    assert patient_ranges(np.zeros(1, dtype=np.int64), 4) == [(0, 0)]  # no patient


def test_an_empty_cohort_and_a_failing_range_behave_as_on_one_thread(small_ranges, monkeypatch):
    empty = _cohort(16, patients=2).slice(0, 0)
    assert compute_metrics(empty, "all", threads=4).num_rows == 0
    cohort = prepare_cohort(_cohort(16, patients=10))

    def broken(*args):
        raise RuntimeError("kernel failed")

    monkeypatch.setattr(kernel_columns, "patient_metrics_into", broken)
    with pytest.raises(RuntimeError, match="kernel failed"):
        cohort_columns(cohort, ALL, MetricOptions(), threads=4)


def test_the_thread_count_is_checked_and_numbas_setting_restored():
    before = numba.get_num_threads()
    with numba_threads(1):
        assert numba.get_num_threads() == 1
        with numba_threads(10_000):  # capped at numba's own threads
            assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before
    table = _cohort(14, patients=2)
    for bad in (0, -2, 1.5, True, "2"):
        with pytest.raises(InvalidInput, match="threads="):
            compute_metrics(table, threads=bad)
    assert numba.get_num_threads() == before
