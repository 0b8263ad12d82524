"""The metric catalog for a whole cohort at once: named Arrow columns, one row per patient.
PURE.

``cohort_columns(cohort, names, options)`` runs the compiled per-patient pass
(``kernels.patients``) for the groups that hold ``names`` and returns ``{name: column}``. Each
kernel group declares the columns its writers fill (``kernels.patients.GROUPS``); values are
read back by those names, never by position, and tests/test_metrics_spec.py holds them equal to
``metrics.spec.GROUPS``. The numbers are those of ``reference.patient_metrics.compute_patient``
(the readable reference, tested against this), without a Python loop per patient except for
PGS's final formula.

The pass runs on ``threads`` threads (default: every core this process may use), each taking
ranges of whole patients of about equal readings in turn; the kernels hold no lock and each
patient's row is written by one thread only, so the numbers are the same bit for bit on any
number of threads (tests/test_metrics_threads.py). The few kernels numba itself spreads over
its threads (``compiled_parallel``: sorting times within patients, the AGP profiles) are capped
at the same count by ``numba_threads``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Final

import numba
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.metrics.cohort_layout import Cohort, Readings
from glucosestream.metrics.kernels.patients import (
    GROUPS,
    PGS_INPUT_COLUMNS,
    patient_metrics_into,
)
from glucosestream.metrics.metric_options import MetricOptions
from glucosestream.metrics.reference import consensus, risk
from glucosestream.metrics.spec import BY_NAME

__all__ = ["cohort_columns", "numba_threads", "patient_ranges", "usable_cores", "views"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
# A thread's share of a cohort is cut into ranges of about this many readings at least (about
# a dozen patients of a fortnight, 0.4 ms of the consensus pass): fewer, bigger ranges for
# small cohorts, whose handing over would cost more than it saves; one range runs inline.
MIN_RANGE_READINGS: Final = 50_000
RANGES_PER_THREAD: Final = 4  # so a thread that finishes early takes another range


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


@contextlib.contextmanager
def numba_threads(threads: int) -> Iterator[None]:
    """Inside, the ``compiled_parallel`` kernels this thread runs use at most ``threads`` of
    numba's threads (``NUMBA_NUM_THREADS``, every core by default). numba's setting is per
    calling thread, so other threads running kernels at the same time keep theirs."""
    most = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]  # set at import
    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(threads, most)))
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _views_of(readings: Readings, options: MetricOptions) -> tuple[Readings, Readings, Readings]:
    instants = readings.mean_per_instant()
    if options.compat == "iglu":
        return readings, instants, readings.last_per_instant()
    return instants, instants, instants


def views(cohort: Cohort, options: MetricOptions) -> tuple[Readings, Readings, Readings]:
    """(rows plain summaries count, one value per instant, what the grid interpolates)."""
    return _views_of(cohort.readings, options)


def patient_ranges(offsets: IntArray, threads: int) -> list[tuple[int, int]]:
    """Consecutive ranges ``(first, stop)`` of whole patients covering all of them, cut at the
    patients nearest to equal shares of the readings: ``RANGES_PER_THREAD`` per thread, fewer
    when a share would hold under ``MIN_RANGE_READINGS`` readings (one range: run inline)."""
    patients, readings = offsets.size - 1, int(offsets[-1])
    count = max(1, min(threads * RANGES_PER_THREAD, readings // MIN_RANGE_READINGS, patients))
    if threads == 1 or count == 1:
        return [(0, patients)]
    targets = np.arange(1, count) * (readings / count)
    cuts = np.searchsorted(offsets, targets, side="left").tolist()
    bounds = sorted({0, patients, *(c for c in cuts if 0 < c < patients)})
    return [(bounds[k], bounds[k + 1]) for k in range(len(bounds) - 1)]


def _patient_pass(
    readings: Readings, options: MetricOptions, bases: IntArray, width: int, threads: int
) -> FloatArray:
    """The kernel's matrix for every patient, ranges of patients run on ``threads`` threads."""
    out = np.full((readings.offsets.size - 1, width), np.nan)
    iglu, gap = options.compat == "iglu", float(options.inter_gap_min)

    def run(first: int, stop: int) -> None:
        rows, instants, source = _views_of(readings.patients(first, stop), options)
        patient_metrics_into(
            out[first:stop],
            rows.as_tuple(),
            instants.as_tuple(),
            source.as_tuple(),
            bases,
            iglu,
            gap,
        )

    ranges = patient_ranges(readings.offsets, threads)
    if len(ranges) == 1:
        run(*ranges[0])
        return out
    with ThreadPoolExecutor(min(threads, len(ranges)), "metric-kernels") as pool:
        for done in [pool.submit(run, first, stop) for first, stop in ranges]:
            done.result()  # raises a range's error here
    return out


def _wall_clock_text(seconds: FloatArray) -> pa.Array:
    missing = np.isnan(seconds)
    stamps = pa.array(np.where(missing, 0, seconds).astype(np.int64), pa.timestamp("s"))
    text = pc.cast(stamps, pa.string())  # YYYY-MM-DD HH:MM:SS, twice as fast as strftime
    return pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), text)


def _zones(gri: FloatArray) -> pa.Array:
    """``consensus.gri_zone`` of each value: the first zone whose upper bound is >= the value
    (a sorted search over the bounds), E above them all, null for NaN."""
    labels = pa.array([zone for zone, _ in consensus.GRI_ZONE_UPPER] + ["E"], pa.string())
    uppers = np.array([upper for _, upper in consensus.GRI_ZONE_UPPER])
    found = np.searchsorted(uppers, np.where(np.isnan(gri), 0.0, gri), side="left")
    return pc.take(labels, pa.array(found, mask=np.isnan(gri)))


def _pgs(inputs: FloatArray) -> FloatArray:
    out = np.full(inputs.shape[0], np.nan)
    known = ~np.isnan(inputs).any(axis=1)
    gvp, mean, tir, n54, n70 = (np.ascontiguousarray(inputs[known, k]) for k in range(5))
    out[known] = risk.personal_glycemic_states(
        gvp_pct=gvp, mean_mg_dl=mean, tir_pct=tir, n54_per_week=n54, n70_per_week=n70
    )
    return out


def _group_of(name: str) -> int:
    group = BY_NAME[name].group
    return next(k for k, (kernel_group, _) in enumerate(GROUPS) if kernel_group == group)


def _named_column(name: str, block: FloatArray, columns: tuple[str, ...]) -> pa.Array:
    """Metric ``name`` from its group's ``block`` of kernel output, found by column name."""
    if name == "pgs":
        inputs = block[:, [columns.index(c) for c in PGS_INPUT_COLUMNS]]
        return pa.array(_pgs(inputs), pa.float64())
    values = block[:, columns.index(name)]
    if name == "gri_zone":
        return _zones(block[:, columns.index("gri")])
    if BY_NAME[name].result == "local_time":
        return _wall_clock_text(values)
    return pa.array(values, pa.float64())


def cohort_columns(
    cohort: Cohort,
    names: Sequence[str],
    options: MetricOptions | None = None,
    threads: int | None = None,
) -> dict[str, pa.Array]:
    """``{name: column}`` for ``names`` (all in ``spec.ALL``), one value per patient, computed
    on ``threads`` threads (default: ``usable_cores()``)."""
    options = options or MetricOptions()
    asked = {_group_of(name) for name in names}
    bases = np.full(len(GROUPS), -1, dtype=np.int64)
    width = 0
    for k, (_, columns) in enumerate(GROUPS):
        if k in asked:
            bases[k] = width
            width += len(columns)
    out = _patient_pass(cohort.readings, options, bases, width, threads or usable_cores())
    result: dict[str, pa.Array] = {}
    for name in names:
        k = _group_of(name)
        columns = GROUPS[k][1]
        block = out[:, bases[k] : bases[k] + len(columns)]
        result[name] = _named_column(name, block, columns)
    return result
