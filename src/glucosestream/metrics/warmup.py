"""Compile the metric kernels ahead of first use: ``python -m glucosestream.metrics.warmup``.

numba compiles each kernel on its first call (about a minute for the whole catalog on two
cores) and caches the machine code next to the sources; `make` runs this once after installing,
so the first `glucosestream run` or page view does not pay for it. Both say when they compile.
"""

from __future__ import annotations

import datetime as dt
import sys
import time

import pyarrow as pa

from glucosestream.metrics import agp_profile, compute_metrics, compute_period_metrics, episode_rows
from glucosestream.metrics.kernels import announce_compilation
from glucosestream.synth import CohortSpec, generate_chunks

__all__ = ["warm_up"]


def warm_up() -> float:
    """Run every kernel once on a small cohort; returns the seconds it took."""
    started = time.perf_counter()
    spec = CohortSpec(patients=2, days=16, profile="t1d", interval_min=5, seed=0)
    chunk = pa.concat_tables(generate_chunks(spec))
    frame = pa.table(
        {
            "id": chunk["patient_id"].cast(pa.string()),
            "time": chunk["time"],
            "gl": chunk["glucose_mg_dl"].cast(pa.float64()),
        }
    )
    # Sorted input reads the Arrow buffers in place (read-only arrays); unsorted input is sorted
    # into new, writable ones: numba compiles each kind apart, so both are warmed.
    unsorted = frame.take(pa.array(range(frame.num_rows - 1, -1, -1)))
    for rows in (frame, unsorted):
        for metric_set in ("consensus", "all"):
            for compat in ("published", "iglu"):
                compute_metrics(rows, metric_set, compat=compat)
    readings = pa.table(
        {
            "patient_key": chunk["patient_id"].cast(pa.string()),
            "ts": chunk["time"],
            "glucose_mg_dl": chunk["glucose_mg_dl"].cast(pa.float64()),
            "tz": chunk["tz"].cast(pa.string()),
        }
    )
    first = spec.start
    periods = pa.table(
        {
            "patient_key": pa.array(["P00001", "P00002"]),
            "period_start": pa.array([first, first], pa.date32()),
            "period_end": pa.array([first + dt.timedelta(days=13)] * 2, pa.date32()),
        }
    )
    stamp = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    compute_period_metrics(readings, periods, run_id="warmup", computed_at=stamp)
    episode_rows(readings, periods, run_id="warmup", computed_at=stamp)
    agp_profile(readings, periods, run_id="warmup", computed_at=stamp)
    return time.perf_counter() - started


def _say_compiling() -> None:
    print("compiling metric kernels (about a minute)…", file=sys.stderr, flush=True)  # noqa: T201


if __name__ == "__main__":
    with announce_compilation(_say_compiling):
        seconds = warm_up()
    print(f"metric kernels ready ({seconds:.0f} s)")  # noqa: T201 -- a make step's one line
